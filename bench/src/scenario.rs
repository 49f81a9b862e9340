//! The scenarios of the performance issue: what each one sends and where (its [`Spec`]s,
//! or its own module for those on a grown store), and the hookd each run starts.

use std::time::Duration;

use crate::Args;
use crate::driver::Mode;
use crate::hookd::{self, Hookd, Launch, ScratchDatabase};
use crate::measure;
use crate::report::Run;

#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub description: String,
    pub apps: usize,
    pub fanout: usize,
    /// The first `slow_apps` applications' endpoints answer after `measure::SLOW_DELAY`.
    pub slow_apps: usize,
    pub mode: Mode,
    pub fail_every: u64,
    pub retry_schedule: &'static str,
    /// The endpoints are FIFO (`ordering: "fifo"`): one delivery at a time, in order.
    pub fifo: bool,
}

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

/// `name`'s one spec, renamed, for a scenario that runs it on a grown store or on several
/// nodes. In a smoke run its closed loop sends 500 messages: what such a run checks is the
/// setup around the load, and the smoke as a whole stays near a minute.
pub fn grown_spec(name: &str, args: &Args, new_name: &str, context: &str) -> anyhow::Result<Spec> {
    let mut spec = specs(name, args)?.remove(0);
    spec.name = new_name.into();
    spec.description = format!("{}{context}", spec.description);
    if let (true, Mode::Closed { messages }) = (args.smoke, &mut spec.mode) {
        *messages = (*messages).min(500);
    }
    Ok(spec)
}

/// The endpoint fields a run sets besides the URL: `ordering` for FIFO scenarios, the
/// `--signature` scheme and `--secret` if given.
pub fn endpoint_fields(
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
                listen: None,
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
    let target = measure::prepare(args, spec, &hookd).await?;
    measure::measure(args, spec, &[&hookd], scratch.is_some(), target).await
}
