//! Scenario (j), retention under load: N delivered messages older than the retention
//! period (default 1 M, from 40 to 2 days old, each with its delivery and attempt) are in
//! the store when hookd starts with `retention_days = 1`; its retention job starts pruning
//! them at once, in batches, while (b) runs. Measured: (b) as usual, and the time from
//! hookd's start until no message older than the period is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fill::shapes::{self, Messages, Target};
use crate::fill::{self, StoreAt};
use crate::measure::{measure, prepare};
use crate::prefill::{self, Bed};
use crate::report::{Figure, Run};
use crate::scenario::grown_spec;
use crate::{Args, now_micros};

pub const DEFAULT_PREFILL: u64 = 1_000_000;
const DAY_MICROS: i64 = 86_400_000_000;
/// How long to wait for the prune once (b) is over.
const PRUNE_MAX: Duration = Duration::from_secs(1800);

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Run> {
    let n = args.prefill_or(DEFAULT_PREFILL);
    let context = format!(" while retention prunes {n} old messages");
    let spec = grown_spec("b", args, "j", &context)?;
    let mut bed = Bed::start(args, binary, "j", spec.retry_schedule).await?;
    let target = prepare(args, &spec, bed.hookd()).await?;
    let url = format!("http://{}/0", target.receiver);
    let uid = format!("old-{}", now_micros());
    let seeded = prefill::seed(bed.hookd(), &uid, &[json!({ "url": url })], "bench.old").await?;
    bed.stop().await?;
    let templates = seeded.templates(bed.store(), 0)?;
    let now = now_micros() as i64;
    eprintln!("  filling {n} messages older than the retention period");
    shapes::history(
        bed.store(),
        &templates,
        &Messages {
            app_id: &seeded.app_id,
            endpoints: &[Target {
                id: seeded.endpoint_ids[0].clone(),
                url,
                event_type: "bench.old".into(),
            }],
            count: n,
            from_micros: now - 40 * DAY_MICROS,
            to_micros: now - 2 * DAY_MICROS,
            pad: args.pad,
        },
    )?;
    fill::settle(bed.store())?;
    let old = format!(
        "SELECT EXISTS (SELECT 1 FROM message WHERE created_at < {})",
        now - DAY_MICROS
    );
    anyhow::ensure!(
        fill::query_int(bed.store(), &old)? == 1,
        "the fill left no old message"
    );

    bed.set_env("HOOKD_RETENTION_DAYS", "1");
    let started = Instant::now();
    let watching = Arc::new(AtomicBool::new(true));
    let watch = tokio::task::spawn_blocking({
        let (store, watching) = (bed.store().clone(), watching.clone());
        move || prune_time(&store, &old, started, &watching)
    });
    bed.start_node().await?;
    let nodes = [bed.hookd()];
    let mut run = measure(args, &spec, &nodes, bed.postgres(), target).await?;
    let b_over = started.elapsed();
    let waited = Instant::now();
    while !watch.is_finished() && waited.elapsed() < PRUNE_MAX {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.store(false, Ordering::Relaxed);
    let pruned_in = watch.await??;
    let left = fill::query_int(
        bed.store(),
        &format!(
            "SELECT count(*) FROM message WHERE created_at < {}",
            now - DAY_MICROS
        ),
    )?;
    run.figures = vec![
        Figure::new("old messages", n as f64, "messages"),
        Figure::new("(b) over, from hookd's start", b_over.as_secs_f64(), "s"),
        Figure::new(
            "prune done, from hookd's start",
            pruned_in.map_or(f64::NAN, |d| d.as_secs_f64()),
            "s",
        ),
        Figure::new("old messages left at the end", left as f64, "messages"),
        Figure::new("(b) p99 during the prune", run.latency.p99_ms, "ms"),
    ];
    Ok(run)
}

/// Polls (every 250 ms, through the messages' creation-time index) until no old message is
/// left; how long that took from `started`, or `None` if told to stop first.
fn prune_time(
    store: &StoreAt,
    old: &str,
    started: Instant,
    watching: &AtomicBool,
) -> anyhow::Result<Option<Duration>> {
    while watching.load(Ordering::Relaxed) {
        if fill::query_int(store, old)? == 0 {
            return Ok(Some(started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(None)
}
