//! The scenarios of the performance issue, and how one run is carried out and measured.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::driver::{self, Kind, Load, Mode};
use crate::hookd::{self, Hookd, Launch, ScratchDatabase};
use crate::receiver::{self, Behaviour, Tally};
use crate::report::{Latency, Run};
use crate::{Args, procfs};

#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub apps: usize,
    pub fanout: usize,
    /// The first `slow_apps` applications' endpoints answer after [`SLOW_DELAY`].
    pub slow_apps: usize,
    pub mode: Mode,
    pub fail_every: u64,
    pub retry_schedule: &'static str,
    /// The endpoints are FIFO (`ordering: "fifo"`): one delivery at a time, in order.
    pub fifo: bool,
}

const SLOW_DELAY: Duration = Duration::from_secs(2);
/// The drain ends when nothing new has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(20);
const DRAIN_MAX: Duration = Duration::from_secs(300);

pub fn specs(name: &str, args: &Args) -> anyhow::Result<Vec<Spec>> {
    let closed = Mode::Closed {
        messages: args.messages,
    };
    let open = |secs: u64| Mode::Open {
        rate: args.rate,
        duration: Duration::from_secs(secs),
    };
    let spec =
        |name: &str, description: &str, apps, fanout, slow_apps, mode, fail_every, retry| Spec {
            name: name.into(),
            description: description.into(),
            apps,
            fanout,
            slow_apps,
            mode,
            fail_every,
            retry_schedule: retry,
            fifo: false,
        };
    Ok(match name {
        "a" => vec![spec(
            "a",
            "one endpoint, closed loop",
            1,
            1,
            0,
            closed,
            0,
            "5,300",
        )],
        "b" => vec![spec(
            "b",
            "one endpoint, open loop",
            1,
            1,
            0,
            open(args.duration),
            0,
            "5,300",
        )],
        "c" => vec![spec(
            "c",
            "100 apps x 10 endpoints, fan-out, closed loop",
            100,
            10,
            0,
            Mode::Closed {
                messages: (args.messages / 10).max(100),
            },
            0,
            "5,300",
        )],
        "d" => {
            let secs = args.duration.min(20);
            vec![
                spec(
                    "d-baseline",
                    "100 healthy endpoints, open loop",
                    100,
                    1,
                    0,
                    open(secs),
                    0,
                    "5,300",
                ),
                spec(
                    "d",
                    "99 healthy endpoints + 1 answering in 2 s, open loop",
                    100,
                    1,
                    1,
                    open(secs),
                    0,
                    "5,300",
                ),
            ]
        }
        "e" => vec![spec(
            "e",
            "one endpoint, 10 % of first attempts answered 500, retries after 1 s",
            1,
            1,
            0,
            closed,
            10,
            "1,1,1",
        )],
        "fifo" => vec![Spec {
            fifo: true,
            ..spec(
                "fifo",
                "one FIFO endpoint (one delivery at a time, in order), closed loop",
                1,
                1,
                0,
                closed,
                0,
                "5,300",
            )
        }],
        "all" => ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| specs(n, args))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect(),
        other => anyhow::bail!(
            "unknown scenario {other:?} (a, b, c, d, e, fifo, entities, all, g, h, i, j or k)"
        ),
    })
}

/// The endpoint fields a run sets besides the URL: `ordering` for FIFO scenarios, the
/// `--signature` scheme and `--secret` if given.
fn endpoint_fields(
    spec: &Spec,
    args: &Args,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut fields = serde_json::Map::new();
    if spec.fifo {
        fields.insert("ordering".into(), "fifo".into());
    }
    if let Some(signature) = &args.signature {
        let scheme: serde_json::Value = serde_json::from_str(signature)
            .map_err(|e| anyhow::anyhow!("--signature is not JSON: {e}"))?;
        fields.insert("signature".into(), scheme);
    }
    if let Some(secret) = &args.secret {
        fields.insert("secret".into(), secret.as_str().into());
    }
    Ok(fields)
}

pub async fn run_all(args: &Args) -> anyhow::Result<Vec<Run>> {
    let binary = match (&args.hookd, &args.url) {
        (Some(path), _) => Some(path.clone()),
        (None, None) => Some(hookd::binary(true)?),
        (None, Some(_)) => None,
    };
    let mut runs = Vec::new();
    for name in &args.scenarios {
        let grown = match name.as_str() {
            "g" => Some(crate::large_store::execute(args, binary.as_deref()).await?),
            "h" => Some(vec![
                crate::backlog::execute(args, binary.as_deref()).await?,
            ]),
            "i" => Some(vec![
                crate::tenants::execute(args, binary.as_deref()).await?,
            ]),
            "j" => Some(vec![
                crate::retention::execute(args, binary.as_deref()).await?,
            ]),
            "k" => Some(crate::two_nodes::execute(args, binary.as_deref()).await?),
            _ => None,
        };
        if let Some(grown) = grown {
            for run in &grown {
                eprintln!(
                    "  {}: {:.0} delivered/s, p99 {:.1} ms, {} figures",
                    run.scenario,
                    run.delivered_per_s,
                    run.latency.p99_ms,
                    run.figures.len()
                );
            }
            runs.extend(grown);
            continue;
        }
        if name == "entities" {
            eprintln!("running entities ({})", crate::entities::DESCRIPTION);
            let run = crate::entities::execute(args, binary.as_deref()).await?;
            eprintln!(
                "  {:.0} snapshots/s, {} fired, {} delivered, {} missing",
                run.accepted_per_s, run.deliveries_expected, run.delivered, run.missing_after_drain
            );
            runs.push(run);
            continue;
        }
        for spec in specs(name, args)? {
            eprintln!("running {} ({})", spec.name, spec.description);
            let run = execute(args, &spec, binary.as_deref()).await?;
            eprintln!(
                "  {:.0} accepted/s, {:.0} delivered/s, p99 {:.1} ms, {} missing",
                run.accepted_per_s,
                run.delivered_per_s,
                run.latency.p99_ms,
                run.missing_after_drain
            );
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The hookd a scenario measures: the one at `--url`, or `binary` started on a fresh data
/// directory (or a fresh PostgreSQL database named after `name`, kept while the returned
/// guard lives).
pub async fn start_hookd(
    args: &Args,
    binary: Option<&std::path::Path>,
    name: &str,
    retry_schedule: &'static str,
) -> anyhow::Result<(Option<ScratchDatabase>, Hookd)> {
    let scratch = args
        .database_url
        .as_deref()
        .map(|url| ScratchDatabase::create(url, name))
        .transpose()?;
    let hookd = match (&args.url, binary) {
        (Some(url), _) => {
            let addr = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()?;
            Hookd::remote(addr, args.token.clone().unwrap_or_default(), args.pid).await?
        }
        (None, Some(binary)) => {
            Hookd::launch(Launch {
                binary,
                database_url: scratch.as_ref().map(|s| s.url.clone()),
                retry_schedule,
                data_dir: None,
                env: Vec::new(),
            })
            .await?
        }
        (None, None) => anyhow::bail!("no hookd to measure"),
    };
    Ok((scratch, hookd))
}

async fn execute(
    args: &Args,
    spec: &Spec,
    binary: Option<&std::path::Path>,
) -> anyhow::Result<Run> {
    let (scratch, hookd) = start_hookd(
        args,
        binary,
        &spec.name.replace('-', "_"),
        spec.retry_schedule,
    )
    .await?;
    let target = prepare(args, spec, &hookd).await?;
    measure(args, spec, &[&hookd], scratch.is_some(), target).await
}

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
        stop: Default::default(),
    };
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn(sample_rss(pid, sampling.clone()));
    let sent = tokio::task::spawn_blocking(move || driver::run(load)).await??;
    let expected = sent.accepted * spec.fanout as u64;
    drain(&tally, expected).await;
    sampling.store(false, Ordering::Relaxed);
    let rss_samples = sampler.await.unwrap_or_default();
    let database_cpu_s = procfs::postgres_cpu()
        .zip(database_cpu_before)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64());

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
