//! The change-detection scenario: entity snapshots as fast as the connections go (closed
//! loop), each a new state of one of [`KEYS`] products, a tenth of them raising a price
//! enough to fire the `price.changed` threshold rule. It measures snapshots per second and
//! checks that every fired event arrived at the one endpoint (subscribed to
//! `price.changed`) as a message.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::Method;

use crate::driver::{self, Kind, Load, Mode};
use crate::receiver::{self, Behaviour, Tally};
use crate::report::{Latency, Run};
use crate::{Args, procfs};

pub const DESCRIPTION: &str = "entity snapshots, closed loop, 10 % firing a rule";
/// Products the snapshots are spread over.
const KEYS: u64 = 1000;
/// One snapshot of a key in this many fires the rule.
const FIRE_EVERY: u64 = 10;

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Run> {
    let (scratch, hookd) = crate::scenario::start_hookd(args, binary, "entities", "5,300").await?;
    let (status, body) = hookd
        .call(
            Method::PUT,
            "/api/v1/entity-type/product",
            Some(serde_json::json!({"rules": [{
                "eventType": "price.changed", "field": "/price", "when": "threshold",
                "minPct": 1
            }]})),
        )
        .await?;
    anyhow::ensure!(status == 200, "creating the entity type: {status} {body:?}");
    let tally = Arc::new(Tally::new(args.messages, 1));
    let behaviour = Behaviour {
        fail_every: 0,
        slow_delay: std::time::Duration::ZERO,
        close_connections: args.receiver_closes,
    };
    let (receiver_addr, receiver_tid) = receiver::start(tally.clone(), behaviour)?;
    let mut fields = serde_json::Map::new();
    fields.insert("eventTypes".into(), serde_json::json!(["price.changed"]));
    let apps = hookd
        .setup(1, 1, &fields, |_, k| format!("http://{receiver_addr}/{k}"))
        .await?;

    let pid = hookd.pid;
    let cpu_before = pid.and_then(procfs::process_cpu);
    let receiver_cpu_before = procfs::thread_cpu(&receiver_tid).unwrap_or_default();
    let started = Instant::now();
    let load = Load {
        kind: Kind::Snapshots {
            keys: KEYS,
            fire_every: FIRE_EVERY,
        },
        addrs: vec![hookd.addr],
        token: hookd.token.clone(),
        apps,
        mode: Mode::Closed {
            messages: args.messages,
        },
        connections: args.connections,
        pad: args.pad,
        idempotency_keys: args.idempotency_keys,
        stop: Default::default(),
    };
    let sent = tokio::task::spawn_blocking(move || driver::run(load)).await??;
    // The receiver cannot read these payloads' sequence numbers: it counts requests.
    let delivered = || tally.requests.load(Ordering::Relaxed);
    let drain_started = Instant::now();
    let mut last = (delivered(), Instant::now());
    while delivered() < sent.fired && last.1.elapsed().as_secs() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if delivered() != last.0 {
            last = (delivered(), Instant::now());
        }
    }
    let drained_in = drain_started.elapsed().as_secs_f64();
    Ok(Run {
        scenario: "entities".into(),
        description: DESCRIPTION.into(),
        backend: if scratch.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
        offered_per_s: None,
        sent: sent.sent,
        accepted: sent.accepted,
        ingest_errors: sent.errors,
        first_ingest_error: sent.first_error.clone(),
        accepted_per_s: sent.accepted as f64 / sent.elapsed.as_secs_f64(),
        deliveries_expected: sent.fired,
        delivered: delivered(),
        delivered_per_s: delivered() as f64 / (sent.elapsed.as_secs_f64() + drained_in),
        first_attempts_per_s: 0.0,
        latency: Latency::default(),
        healthy_latency: None,
        missing_after_drain: sent.fired.saturating_sub(delivered()),
        duplicates: delivered().saturating_sub(sent.fired),
        hookd_cpu_s: pid
            .and_then(procfs::process_cpu)
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before).as_secs_f64()),
        database_cpu_s: None,
        hookd_idle_rss_mib: None,
        hookd_peak_rss_mib: pid.and_then(|p| procfs::memory_mib(p, "VmHWM")),
        worst_ms_by_second: Vec::new(),
        ingest_latency: Some(Latency::of(sent.ingest_micros())),
        ingest_worst_ms_by_second: Vec::new(),
        machine_steal_s: None,
        hookd_rss_samples_mib: Vec::new(),
        driver_cpu_s: sent.cpu.as_secs_f64(),
        receiver_cpu_s: procfs::thread_cpu(&receiver_tid)
            .unwrap_or_default()
            .saturating_sub(receiver_cpu_before)
            .as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        figures: Vec::new(),
    })
}
