//! Scenario (h), a backlog drain: one endpoint was down while M deliveries piled up for it
//! and is back. The backlog is filled as hookd stores deliveries waiting for an endpoint
//! (pending, due since their message was created: the worst case, all due at once), hookd
//! is started on that store (a restart in the middle of a backlog), and while the backlog
//! drains, new messages to ten other applications' endpoints keep coming at 500/s.
//!
//! Measured: how long the restarted hookd takes to answer its health check and to deliver
//! a new message, the drain rate (backlog deliveries per second from the start to the last
//! one), the new messages' latency during the drain, and hookd's RSS throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use crate::driver::{self, Kind, Load, Mode};
use crate::fill::shapes::{self, Messages, Target};
use crate::hookd::Hookd;
use crate::measure::{self, Target as MeasureTarget, prepare};
use crate::prefill::{self, Bed};
use crate::receiver::{self, Behaviour, Tally};
use crate::report::{Figure, Latency, Run};
use crate::scenario::Spec;
use crate::{Args, fill, now_micros, procfs};

pub const DEFAULT_PREFILL: u64 = 1_000_000;
const FLOW_RATE: f64 = 500.0;
const FLOW_APPS: usize = 10;
/// The most the new messages keep coming for; they stop once the backlog is drained.
const FLOW_MAX: Duration = Duration::from_secs(1800);
/// The drain is over when nothing of the backlog arrived for this long.
const STALLED: Duration = Duration::from_secs(20);

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Run> {
    let m = args.prefill_or(DEFAULT_PREFILL);
    let started = Instant::now();
    let mut bed = Bed::start(args, binary, "h", "5,300").await?;
    let backlog = Arc::new(Tally::new(m, 1));
    let (backlog_rx, backlog_tid) = receiver::start(backlog.clone(), Behaviour::default())?;
    let backlog_url = format!("http://{backlog_rx}/0");
    let uid = format!("backlog-{}", now_micros());
    let endpoint = [json!({ "url": backlog_url })];
    let seeded = prefill::seed(bed.hookd(), &uid, &endpoint, "bench.event").await?;
    let flow = flow_spec(m);
    let target = prepare(args, &flow, bed.hookd()).await?;
    bed.stop().await?;

    let templates = seeded.templates(bed.store(), 0)?;
    let now = now_micros() as i64;
    eprintln!("  filling a backlog of {m} due deliveries");
    let endpoints = [Target {
        id: seeded.endpoint_ids[0].clone(),
        url: backlog_url,
        event_type: "bench.event".into(),
    }];
    shapes::backlog(
        bed.store(),
        &templates,
        &Messages {
            app_id: &seeded.app_id,
            endpoints: &endpoints,
            count: m,
            from_micros: now - 3_600_000_000,
            to_micros: now - 1_000_000,
            pad: args.pad,
        },
    )?;
    fill::settle(bed.store())?;

    let restart = restart(&mut bed, &target).await?;
    let hookd = bed.hookd();
    let pid = hookd.pid;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(measure::sample_rss(pid, sampling.clone()));
    let sent = drain_with_flow(args, hookd, &flow, &target, &backlog, m).await?;
    sampling.store(false, Ordering::Relaxed);
    let rss_samples = sampler.await.unwrap_or_default();

    let drained = backlog.delivered.load(Ordering::Relaxed);
    let last = backlog.last_delivery.load(Ordering::Relaxed);
    let drain_s = last.saturating_sub(restart.at_micros) as f64 / 1e6;
    let drain_rate = drained as f64 / drain_s.max(1e-3);
    let flowed = target.tally.delivered.load(Ordering::Relaxed);
    let latency = Latency::of(target.tally.latencies(|_| true));
    let receivers_cpu = [&backlog_tid, &target.receiver_tid]
        .iter()
        .map(|tid| procfs::thread_cpu(tid).unwrap_or_default().as_secs_f64())
        .sum();
    Ok(Run {
        scenario: flow.name.clone(),
        description: flow.description.clone(),
        backend: if bed.postgres() { "postgres" } else { "sqlite" }.into(),
        offered_per_s: Some(FLOW_RATE),
        sent: sent.sent,
        accepted: sent.accepted,
        ingest_errors: sent.errors,
        first_ingest_error: sent.first_error.clone(),
        accepted_per_s: sent.accepted as f64 / sent.elapsed.as_secs_f64(),
        deliveries_expected: m + sent.accepted,
        delivered: drained + flowed,
        delivered_per_s: drain_rate,
        latency: latency.clone(),
        missing_after_drain: (m + sent.accepted).saturating_sub(drained + flowed),
        duplicates: backlog.duplicates.load(Ordering::Relaxed)
            + target.tally.duplicates.load(Ordering::Relaxed),
        hookd_cpu_s: pid.and_then(procfs::process_cpu).map(|d| d.as_secs_f64()),
        hookd_peak_rss_mib: pid.and_then(|p| procfs::memory_mib(p, "VmHWM")),
        worst_ms_by_second: target
            .tally
            .worst_by_window(FLOW_RATE as usize)
            .into_iter()
            .take(sent.sent.div_ceil(FLOW_RATE as u64) as usize)
            .collect(),
        hookd_rss_samples_mib: rss_samples,
        driver_cpu_s: sent.cpu.as_secs_f64(),
        receiver_cpu_s: receivers_cpu,
        wall_s: started.elapsed().as_secs_f64(),
        figures: vec![
            Figure::new("backlog", m as f64, "deliveries"),
            Figure::new(
                "start with the backlog: health answers",
                restart.healthy_s,
                "s",
            ),
            Figure::new(
                "start with the backlog: a new message delivered",
                restart.ready_s,
                "s",
            ),
            Figure::new("backlog drained", drained as f64, "deliveries"),
            Figure::new("drain time (from the start)", drain_s, "s"),
            Figure::new("drain rate", drain_rate, "deliveries/s"),
            Figure::new("new messages during the drain: p99", latency.p99_ms, "ms"),
        ],
        ..Run::default()
    })
}

/// The new messages: an open loop to [`FLOW_APPS`] applications of one endpoint each.
fn flow_spec(backlog: u64) -> Spec {
    Spec {
        name: "h".into(),
        description: format!(
            "a backlog of {backlog} due deliveries to one endpoint drained while 500 msg/s go \
             to {FLOW_APPS} others"
        ),
        apps: FLOW_APPS,
        fanout: 1,
        slow_apps: 0,
        mode: Mode::Open {
            rate: FLOW_RATE,
            duration: FLOW_MAX,
        },
        fail_every: 0,
        retry_schedule: "5,300",
        fifo: false,
    }
}

/// What the start on the backlog took.
struct Restart {
    /// When the process was started (µs since the epoch).
    at_micros: u64,
    /// From then to the health check's answer.
    healthy_s: f64,
    /// From then to the delivery of a message sent once it was healthy.
    ready_s: f64,
}

async fn restart(bed: &mut Bed<'_>, flow: &MeasureTarget) -> anyhow::Result<Restart> {
    let at_micros = now_micros();
    let restarted = Instant::now();
    let healthy_s = bed.start_node().await?.as_secs_f64();
    // The probe's payload has no `seq`: the receiver counts it as a request only.
    let before = flow.tally.requests.load(Ordering::Relaxed);
    prefill::call(
        bed.hookd(),
        Method::POST,
        &format!("/api/v1/app/{}/msg", flow.apps[0]),
        json!({"eventType": "bench.probe", "payload": {"probe": true}}),
    )
    .await?;
    while flow.tally.requests.load(Ordering::Relaxed) == before {
        anyhow::ensure!(
            restarted.elapsed() < Duration::from_secs(600),
            "no new message delivered 10 minutes after the restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Restart {
        at_micros,
        healthy_s,
        ready_s: restarted.elapsed().as_secs_f64(),
    })
}

/// Sends the flow until the backlog is in (or stalls), then waits for the flow's last
/// deliveries; returns what the driver sent.
async fn drain_with_flow(
    args: &Args,
    hookd: &Hookd,
    flow: &Spec,
    target: &MeasureTarget,
    backlog: &Tally,
    m: u64,
) -> anyhow::Result<driver::Sent> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        kind: Kind::Messages,
        addrs: vec![hookd.addr],
        token: hookd.token.clone(),
        apps: target.apps.clone(),
        mode: flow.mode.clone(),
        connections: args.connections,
        pad: args.pad,
        stop: stop.clone(),
    };
    let driver = tokio::task::spawn_blocking(move || driver::run(load));
    wait_for_backlog(backlog, m).await;
    stop.store(true, Ordering::Relaxed);
    let sent = driver.await??;
    measure::drain(&target.tally, sent.accepted).await;
    Ok(sent)
}

/// Waits until the whole backlog arrived, or nothing of it arrived for [`STALLED`].
async fn wait_for_backlog(tally: &Tally, backlog: u64) {
    let mut last = (tally.delivered.load(Ordering::Relaxed), Instant::now());
    while last.0 < backlog && last.1.elapsed() < STALLED {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = tally.delivered.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
}
