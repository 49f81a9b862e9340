//! Scenario (h), a backlog drain: one endpoint was down while M deliveries piled up for it
//! and is back. The backlog is filled as hookd stores deliveries waiting for an endpoint
//! (pending, due since their message was created: the worst case, all due at once), hookd
//! is started on that store, and while the backlog drains new messages to ten other
//! applications' endpoints keep coming at 500/s. Half-way through the drain hookd is
//! restarted (SIGTERM, a new process on the same store and port) while the new messages
//! keep coming.
//!
//! Measured: for the start on the full backlog and for the restart half-way, how long until
//! the health check answers and until a message to a probe endpoint of its own is
//! delivered; the drain rate (backlog deliveries per second from the first start to the
//! last one, the restart included); the new messages' latency during the drain; hookd's
//! RSS throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use crate::driver::{self, Kind, Load, Mode};
use crate::fill::shapes::{self, Messages, Target};
use crate::hookd::Hookd;
use crate::measure::{Target as MeasureTarget, prepare};
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
    let probe = Probe::setup(bed.hookd()).await?;
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

    // The server's CPU from the first start to the drain's end: the backlog's claims and
    // records, and the new messages'.
    let database_cpu_before = bed.postgres().then(procfs::postgres_cpu).flatten();
    let start_micros = now_micros();
    let starting = Instant::now();
    let healthy_s = bed.start_node().await?.as_secs_f64();
    let ready_s = probe.delivered(bed.hookd(), starting).await?;
    let first = Restart {
        backlog_left: m,
        stopped_s: 0.0,
        healthy_s,
        ready_s,
    };
    let d = drain_with_flow(args, &mut bed, &flow, &target, &backlog, m, &probe).await?;

    let database_cpu_s = procfs::postgres_cpu_since(database_cpu_before);
    let drained = backlog.delivered.load(Ordering::Relaxed);
    let last = backlog.last_delivery.load(Ordering::Relaxed);
    let drain_s = last.saturating_sub(start_micros) as f64 / 1e6;
    let drain_rate = drained as f64 / drain_s.max(1e-3);
    let flowed = target.tally.delivered.load(Ordering::Relaxed);
    let latency = Latency::of(target.tally.latencies(|_| true));
    let pid = bed.hookd().pid;
    let receivers_cpu = [&backlog_tid, &target.receiver_tid]
        .iter()
        .map(|tid| procfs::thread_cpu(tid).unwrap_or_default().as_secs_f64())
        .sum();
    let sent = &d.sent;
    let mut figures = vec![
        Figure::new("backlog", m as f64, "deliveries"),
        Figure::new("backlog drained", drained as f64, "deliveries"),
        Figure::new("drain time (from the first start)", drain_s, "s"),
        Figure::new("drain rate (restart included)", drain_rate, "deliveries/s"),
        Figure::new("new messages during the drain: p99", latency.p99_ms, "ms"),
        Figure::new(
            "new messages refused or failed",
            sent.errors as f64,
            "messages",
        ),
    ];
    figures.extend(first.figures("start on the full backlog"));
    if let Some(mid) = &d.restart {
        figures.extend(mid.figures("restart half-way"));
    }
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
        // Both processes': the one before the restart and the one after.
        hookd_cpu_s: pid
            .and_then(procfs::process_cpu)
            .map(|cpu| cpu.as_secs_f64() + d.first_cpu_s.unwrap_or(0.0)),
        hookd_peak_rss_mib: pid
            .and_then(|p| procfs::memory_mib(p, "VmHWM"))
            .map(|now| now.max(d.first_peak_rss_mib.unwrap_or(0.0))),
        worst_ms_by_second: target
            .tally
            .worst_by_window(FLOW_RATE as usize)
            .into_iter()
            .take(sent.sent.div_ceil(FLOW_RATE as u64) as usize)
            .collect(),
        ingest_latency: Some(Latency::of(sent.ingest_micros())),
        ingest_worst_ms_by_second: sent.ingest_worst_by_second(FLOW_RATE),
        hookd_rss_samples_mib: d.rss_samples.clone(),
        database_cpu_s,
        driver_cpu_s: sent.cpu.as_secs_f64(),
        receiver_cpu_s: receivers_cpu,
        wall_s: started.elapsed().as_secs_f64(),
        figures,
        ..Run::default()
    })
}

/// The new messages: an open loop to [`FLOW_APPS`] applications of one endpoint each.
fn flow_spec(backlog: u64) -> Spec {
    Spec {
        name: "h".into(),
        description: format!(
            "a backlog of {backlog} due deliveries to one endpoint drained, with a restart \
             half-way, while 500 msg/s go to {FLOW_APPS} others"
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

/// An application whose one endpoint only gets the probes, on a receiver of its own: a
/// probe's delivery tells the node is delivering new messages.
struct Probe {
    uid: String,
    tally: Arc<Tally>,
}

impl Probe {
    async fn setup(hookd: &Hookd) -> anyhow::Result<Self> {
        let tally = Arc::new(Tally::new(0, 1));
        let (rx, _) = receiver::start(tally.clone(), Behaviour::default())?;
        let uids = hookd
            .setup(1, 1, &serde_json::Map::new(), |_, _| {
                format!("http://{rx}/0")
            })
            .await?;
        Ok(Self {
            uid: uids[0].clone(),
            tally,
        })
    }

    /// Sends a probe and waits for its delivery; returns the seconds since `since`.
    async fn delivered(&self, hookd: &Hookd, since: Instant) -> anyhow::Result<f64> {
        let before = self.tally.requests.load(Ordering::Relaxed);
        prefill::call(
            hookd,
            Method::POST,
            &format!("/api/v1/app/{}/msg", self.uid),
            json!({"eventType": "bench.probe", "payload": {"probe": true}}),
        )
        .await?;
        while self.tally.requests.load(Ordering::Relaxed) == before {
            anyhow::ensure!(
                since.elapsed() < Duration::from_secs(600),
                "no probe delivered 10 minutes after the (re)start"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(since.elapsed().as_secs_f64())
    }
}

/// What a (re)start on the backlog took.
struct Restart {
    /// Backlog deliveries not yet made when it began.
    backlog_left: u64,
    /// From SIGTERM to the old process's exit (0 for the first start).
    stopped_s: f64,
    /// From the new process's start to its health check's answer.
    healthy_s: f64,
    /// From then to the delivery of a probe sent once it was healthy.
    ready_s: f64,
}

impl Restart {
    fn figures(&self, what: &str) -> Vec<Figure> {
        vec![
            Figure::new(
                &format!("{what}: backlog left"),
                self.backlog_left as f64,
                "deliveries",
            ),
            Figure::new(&format!("{what}: old process exited"), self.stopped_s, "s"),
            Figure::new(&format!("{what}: health answers"), self.healthy_s, "s"),
            Figure::new(
                &format!("{what}: a new message delivered"),
                self.ready_s,
                "s",
            ),
        ]
    }
}

/// What the drain with the flow gave.
struct Drained {
    sent: driver::Sent,
    /// The restart half-way, unless the backlog stalled before half of it was in.
    restart: Option<Restart>,
    /// The process before the restart: its CPU time and peak RSS.
    first_cpu_s: Option<f64>,
    first_peak_rss_mib: Option<f64>,
    rss_samples: Vec<f64>,
}

/// Sends the flow until the backlog is in (or stalls), restarting hookd once half of it is;
/// then waits for the flow's last deliveries.
async fn drain_with_flow(
    args: &Args,
    bed: &mut Bed<'_>,
    flow: &Spec,
    target: &MeasureTarget,
    backlog: &Tally,
    m: u64,
    probe: &Probe,
) -> anyhow::Result<Drained> {
    let hookd = bed.hookd();
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        kind: Kind::Messages,
        addrs: vec![hookd.addr],
        token: hookd.token.clone(),
        apps: target.apps.clone(),
        mode: flow.mode.clone(),
        connections: args.connections,
        pad: args.pad,
        idempotency_keys: args.idempotency_keys,
        stop: stop.clone(),
    };
    let pid = Arc::new(AtomicU32::new(hookd.pid.unwrap_or(0)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample_rss(pid.clone(), sampling.clone()));
    let driver = tokio::task::spawn_blocking(move || driver::run(load));

    let mut drained = Drained {
        sent: driver::Sent::default(),
        restart: None,
        first_cpu_s: None,
        first_peak_rss_mib: None,
        rss_samples: Vec::new(),
    };
    if wait_for_backlog(backlog, m / 2).await {
        let old = bed.hookd().pid;
        drained.first_cpu_s = old.and_then(procfs::process_cpu).map(|d| d.as_secs_f64());
        drained.first_peak_rss_mib = old.and_then(|p| procfs::memory_mib(p, "VmHWM"));
        let backlog_left = m.saturating_sub(backlog.delivered.load(Ordering::Relaxed));
        let (stopped, healthy) = bed.restart_first().await?;
        // The new process's start, which the probe's time counts from.
        let restarted = Instant::now()
            .checked_sub(healthy)
            .unwrap_or_else(Instant::now);
        pid.store(bed.hookd().pid.unwrap_or(0), Ordering::Relaxed);
        drained.restart = Some(Restart {
            backlog_left,
            stopped_s: stopped.as_secs_f64(),
            healthy_s: healthy.as_secs_f64(),
            ready_s: probe.delivered(bed.hookd(), restarted).await?,
        });
        wait_for_backlog(backlog, m).await;
    }
    stop.store(true, Ordering::Relaxed);
    drained.sent = driver.await??;
    crate::measure::drain(&target.tally, drained.sent.accepted).await;
    sampling.store(false, Ordering::Relaxed);
    drained.rss_samples = sampler.await.unwrap_or_default();
    Ok(drained)
}

/// Waits until `count` backlog deliveries arrived (`true`), or nothing of it arrived for
/// [`STALLED`] (`false`).
async fn wait_for_backlog(tally: &Tally, count: u64) -> bool {
    let mut last = (tally.delivered.load(Ordering::Relaxed), Instant::now());
    while last.0 < count {
        if last.1.elapsed() >= STALLED {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = tally.delivered.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    true
}

/// hookd's RSS every second, following the process across the restart (`pid`).
async fn sample_rss(pid: Arc<AtomicU32>, running: Arc<AtomicBool>) -> Vec<f64> {
    let mut samples = Vec::new();
    while running.load(Ordering::Relaxed) {
        if let Some(rss) = procfs::memory_mib(pid.load(Ordering::Relaxed), "VmRSS") {
            samples.push((rss * 10.0).round() / 10.0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}
