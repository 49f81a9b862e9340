//! Scenario (i), many tenants: A applications with E endpoints each (default 10,000 × 10),
//! all but one filled with SQL as copies of one made through the API, then messages fanned
//! out to every endpoint of applications taken in a shuffled order, as fast as the
//! connections go (closed loop).

use std::time::Instant;

use serde_json::json;

use crate::driver::Mode;
use crate::fill::shapes;
use crate::measure::{measure, prepare};
use crate::prefill::{self, Bed};
use crate::report::Figure;
use crate::report::Run;
use crate::scenario::Spec;
use crate::{Args, fill};

pub const DEFAULT_APPS: usize = 10_000;
pub const DEFAULT_ENDPOINTS: usize = 10;

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Run> {
    let (mut apps, mut per_app) = (
        args.apps.unwrap_or(DEFAULT_APPS).max(1),
        args.endpoints_per_app.unwrap_or(DEFAULT_ENDPOINTS).max(1),
    );
    if args.smoke {
        (apps, per_app) = (apps.min(50), per_app.min(3));
    }
    let spec = Spec {
        name: "i".into(),
        description: format!(
            "{apps} apps x {per_app} endpoints, each message fanned out to one app's endpoints, \
             closed loop"
        ),
        apps,
        fanout: per_app,
        slow_apps: 0,
        mode: Mode::Closed {
            messages: (args.messages / 10).max(100),
        },
        fail_every: 0,
        retry_schedule: "5,300",
        fifo: false,
    };
    let mut bed = Bed::start(args, binary, "i", spec.retry_schedule).await?;
    // One application made through the API for the load (the rest are copies of the
    // template one, which gets no messages).
    let mut target = prepare(
        args,
        &Spec {
            apps: 1,
            ..spec.clone()
        },
        bed.hookd(),
    )
    .await?;
    let urls: Vec<String> = (0..per_app)
        .map(|k| format!("http://{}/{k}", target.receiver))
        .collect();
    let run = crate::now_micros();
    let seeded = prefill::seed(
        bed.hookd(),
        &format!("tenant-template-{run}"),
        &[json!({ "url": urls[0] })],
        "bench.seed",
    )
    .await?;
    bed.stop().await?;
    let templates = seeded.templates(bed.store(), 0)?;
    eprintln!("  filling {} apps x {per_app} endpoints", apps - 1);
    let fill_started = Instant::now();
    let filled = shapes::tenants(
        bed.store(),
        &templates,
        1..apps,
        |a| format!("tenant-{run}-{a}"),
        &urls,
    )?;
    fill::settle(bed.store())?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    let start_s = bed.start_node().await?.as_secs_f64();
    target.apps.extend(filled);
    shuffle(&mut target.apps, run);
    let nodes = [bed.hookd()];
    let mut measured = measure(args, &spec, &nodes, bed.postgres(), target).await?;
    measured.figures = vec![
        Figure::new("applications", apps as f64, "apps"),
        Figure::new("endpoints", (apps * per_app) as f64, "endpoints"),
        Figure::new("fill time", fill_s, "s"),
        Figure::new("start with them", start_s, "s"),
        Figure::new(
            "fan-out deliveries per second",
            measured.delivered_per_s,
            "deliveries/s",
        ),
    ];
    Ok(measured)
}

/// A Fisher–Yates shuffle driven by xorshift from `seed`: consecutive messages go to
/// scattered applications, the same order for the same seed.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_keeps_every_item() {
        let mut items: Vec<u32> = (0..1000).collect();
        shuffle(&mut items, 42);
        assert_ne!(items, (0..1000).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..1000).collect::<Vec<_>>());
    }
}
