//! How one run of a spec is carried out and measured: its receiver and applications
//! ([`prepare`]), the load, the drain and what is read from /proc and the receiver
//! ([`measure`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::driver::{self, Kind, Load, Mode};
use crate::hookd::Hookd;
use crate::receiver::{self, Behaviour, Tally};
use crate::report::{Latency, Run};
use crate::scenario::{Spec, endpoint_fields};
use crate::{Args, procfs};

const SLOW_DELAY: Duration = Duration::from_secs(2);
/// The drain ends when nothing new has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(20);
const DRAIN_MAX: Duration = Duration::from_secs(300);

/// Where a spec's messages go: a receiver of its own and the applications made for it.
pub struct Target {
    pub tally: Arc<Tally>,
    pub receiver: std::net::SocketAddr,
    pub receiver_tid: String,
    /// Message `seq` goes to `apps[seq % apps.len()]`.
    pub apps: Vec<String>,
}

/// Starts the spec's receiver and makes its applications and endpoints on `hookd`.
pub async fn prepare(args: &Args, spec: &Spec, hookd: &Hookd) -> anyhow::Result<Target> {
    let messages = match spec.mode {
        Mode::Closed { messages } => messages,
        Mode::Open { rate, duration } => (rate * duration.as_secs_f64()) as u64,
    };
    let tally = Arc::new(Tally::new(messages, spec.fanout as u64));
    let behaviour = Behaviour {
        fail_every: spec.fail_every,
        slow_delay: SLOW_DELAY,
        close_connections: args.receiver_closes,
    };
    let (receiver, receiver_tid) = receiver::start(tally.clone(), behaviour)?;
    let slow_apps = spec.slow_apps;
    let apps = hookd
        .setup(
            spec.apps,
            spec.fanout,
            &endpoint_fields(spec, args)?,
            |a, k| {
                let slow = if a < slow_apps { "/slow" } else { "" };
                format!("http://{receiver}{slow}/{k}")
            },
        )
        .await?;
    Ok(Target {
        tally,
        receiver,
        receiver_tid,
        apps,
    })
}

/// Sends the spec's load to `nodes` (spread over their connections), waits for the drain and
/// measures. CPU time is the nodes' together; memory is the first node's.
pub async fn measure(
    args: &Args,
    spec: &Spec,
    nodes: &[&Hookd],
    postgres: bool,
    target: Target,
) -> anyhow::Result<Run> {
    let Target {
        tally,
        receiver_tid,
        apps,
        ..
    } = target;
    let slow_apps = spec.slow_apps;
    let pid = nodes.first().and_then(|n| n.pid);
    let pids: Vec<u32> = nodes.iter().filter_map(|n| n.pid).collect();
    let nodes_cpu = || -> Option<f64> {
        pids.iter()
            .map(|&p| procfs::process_cpu(p).map(|d| d.as_secs_f64()))
            .sum()
    };
    let idle_rss = pid.and_then(|p| procfs::memory_mib(p, "VmRSS"));
    let cpu_before = nodes_cpu();
    let receiver_cpu_before = procfs::thread_cpu(&receiver_tid).unwrap_or_default();
    let steal_before = procfs::machine_steal();
    let database_cpu_before = postgres.then(procfs::postgres_cpu).flatten();
    let started = Instant::now();

    let load = Load {
        kind: Kind::Messages,
        addrs: nodes.iter().map(|n| n.addr).collect(),
        token: nodes.first().map(|n| n.token.clone()).unwrap_or_default(),
        apps,
        mode: spec.mode.clone(),
        connections: args.connections,
        pad: args.pad,
        idempotency_keys: args.idempotency_keys,
        stop: Default::default(),
    };
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn(sample_rss(pid, sampling.clone()));
    let sent = tokio::task::spawn_blocking(move || driver::run(load)).await??;
    let expected = sent.accepted * spec.fanout as u64;
    drain(&tally, expected).await;
    sampling.store(false, Ordering::Relaxed);
    let rss_samples = sampler.await.unwrap_or_default();
    let database_cpu_s = procfs::postgres_cpu_since(database_cpu_before);

    let secs_since_start = |micros: u64| (micros.saturating_sub(sent.start_micros)) as f64 / 1e6;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let fanout = spec.fanout as u64;
    let healthy = |slot: usize| ((slot as u64 / fanout) % spec.apps as u64) as usize >= slow_apps;
    Ok(Run {
        scenario: spec.name.clone(),
        description: spec.description.clone(),
        backend: if postgres { "postgres" } else { "sqlite" }.into(),
        offered_per_s: match spec.mode {
            Mode::Open { rate, .. } => Some(rate),
            Mode::Closed { .. } => None,
        },
        sent: sent.sent,
        accepted: sent.accepted,
        ingest_errors: sent.errors,
        first_ingest_error: sent.first_error.clone(),
        accepted_per_s: sent.accepted as f64 / sent.elapsed.as_secs_f64(),
        deliveries_expected: expected,
        delivered,
        delivered_per_s: delivered as f64
            / secs_since_start(tally.last_delivery.load(Ordering::Relaxed)).max(1e-3),
        first_attempts_per_s: tally.first_attempts.load(Ordering::Relaxed) as f64
            / secs_since_start(tally.last_first_attempt.load(Ordering::Relaxed)).max(1e-3),
        latency: Latency::of(tally.latencies(|_| true)),
        healthy_latency: (slow_apps > 0).then(|| Latency::of(tally.latencies(healthy))),
        missing_after_drain: expected.saturating_sub(delivered),
        duplicates: tally.duplicates.load(Ordering::Relaxed),
        hookd_cpu_s: nodes_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after - before),
        worst_ms_by_second: match spec.mode {
            Mode::Open { rate, .. } => tally.worst_by_window((rate as usize) * spec.fanout),
            Mode::Closed { .. } => Vec::new(),
        },
        ingest_latency: Some(Latency::of(sent.ingest_micros())),
        ingest_worst_ms_by_second: match spec.mode {
            Mode::Open { rate, .. } => sent.ingest_worst_by_second(rate),
            Mode::Closed { .. } => Vec::new(),
        },
        database_cpu_s,
        machine_steal_s: procfs::machine_steal()
            .zip(steal_before)
            .map(|(after, before)| after.saturating_sub(before).as_secs_f64()),
        hookd_idle_rss_mib: idle_rss,
        hookd_peak_rss_mib: pid.and_then(|p| procfs::memory_mib(p, "VmHWM")),
        hookd_rss_samples_mib: rss_samples,
        driver_cpu_s: sent.cpu.as_secs_f64(),
        receiver_cpu_s: procfs::thread_cpu(&receiver_tid)
            .unwrap_or_default()
            .saturating_sub(receiver_cpu_before)
            .as_secs_f64(),
        wall_s: started.elapsed().as_secs_f64(),
        figures: Vec::new(),
    })
}

/// Waits until every expected delivery arrived, or nothing has arrived for a while.
pub async fn drain(tally: &Tally, expected: u64) {
    let started = Instant::now();
    let mut last = tally.delivered.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while tally.delivered.load(Ordering::Relaxed) < expected && started.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = tally.delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > DRAIN_IDLE {
            break;
        }
    }
}

pub async fn sample_rss(pid: Option<u32>, running: Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    let mut samples = Vec::new();
    let Some(pid) = pid else { return samples };
    while running.load(Ordering::Relaxed) {
        if let Some(rss) = procfs::memory_mib(pid, "VmRSS") {
            samples.push((rss * 10.0).round() / 10.0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}
