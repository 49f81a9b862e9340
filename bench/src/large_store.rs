//! Scenario (g), a large store: N delivered messages and N attempts already stored (one
//! application, ten endpoints each subscribed to one of ten event types, created over the
//! past 30 days), then listings through the API measured on it, and (a) and (b) run on it.

use std::sync::Arc;
use std::time::Instant;

use hyper::Method;
use serde_json::json;

use crate::fill::shapes::{self, Landmarks, Messages, Target};
use crate::hookd::Hookd;
use crate::measure::{measure, prepare};
use crate::prefill::{self, Bed};
use crate::receiver::{self, Behaviour, Tally};
use crate::report::{Figure, Latency, Run};
use crate::scenario::grown_spec;
use crate::{Args, fill};

pub const DEFAULT_PREFILL: u64 = 10_000_000;
const ENDPOINTS: usize = 10;
const DAY_MICROS: i64 = 86_400_000_000;

pub async fn execute(args: &Args, binary: Option<&std::path::Path>) -> anyhow::Result<Vec<Run>> {
    let n = args.prefill_or(DEFAULT_PREFILL);
    let started = Instant::now();
    let mut bed = Bed::start(args, binary, "g", "5,300").await?;
    let grown = grow(args, &mut bed, n).await?;
    let requests = if args.smoke { 20 } else { 200 };
    let mut figures = grown.figures.clone();
    figures.extend(listings(bed.hookd(), &grown, requests).await?);
    let backend = if bed.postgres() { "postgres" } else { "sqlite" };
    let mut runs = vec![Run {
        scenario: "g-lists".into(),
        description: format!(
            "listings on a store of {n} messages and attempts ({requests} requests each)"
        ),
        backend: backend.into(),
        wall_s: started.elapsed().as_secs_f64(),
        figures,
        ..Run::default()
    }];
    for name in ["a", "b"] {
        let context = format!(" on a store of {n} messages");
        let spec = grown_spec(name, args, &format!("g-{name}"), &context)?;
        eprintln!("running {} ({})", spec.name, spec.description);
        let target = prepare(args, &spec, bed.hookd()).await?;
        runs.push(measure(args, &spec, &[bed.hookd()], bed.postgres(), target).await?);
    }
    Ok(runs)
}

/// The history application and what the fill left to list from.
struct Grown {
    uid: String,
    endpoint_ids: Vec<String>,
    landmarks: Landmarks,
    /// Of the fill: its time, the store's size, hookd's start on it.
    figures: Vec<Figure>,
}

/// Seeds the history application through the API, fills `n` messages into it with SQL
/// and starts hookd again on the store.
async fn grow(args: &Args, bed: &mut Bed<'_>, n: u64) -> anyhow::Result<Grown> {
    let (receiver, _) = receiver::start(Arc::new(Tally::new(1, 1)), Behaviour::default())?;
    let url = |k: usize| format!("http://{receiver}/{k}");
    let bodies: Vec<_> = (0..ENDPOINTS)
        .map(|k| json!({"url": url(k), "eventTypes": [event_type(k)]}))
        .collect();
    let uid = format!("history-{}", crate::now_micros());
    let seeded = prefill::seed(bed.hookd(), &uid, &bodies, &event_type(0)).await?;
    bed.stop().await?;

    let templates = seeded.templates(bed.store(), 0)?;
    let targets: Vec<Target> = (0..ENDPOINTS)
        .map(|k| Target {
            id: seeded.endpoint_ids[k].clone(),
            url: url(k),
            event_type: event_type(k),
        })
        .collect();
    // The seeded store's size, so the figure per message is what the fill added.
    let bytes_before = fill::settle(bed.store())?;
    let now = crate::now_micros() as i64;
    eprintln!("  filling {n} messages, deliveries and attempts");
    let fill_started = Instant::now();
    let landmarks = shapes::history(
        bed.store(),
        &templates,
        &Messages {
            app_id: &seeded.app_id,
            endpoints: &targets,
            count: n,
            from_micros: now - 30 * DAY_MICROS,
            to_micros: now - DAY_MICROS / 24,
            pad: args.pad,
        },
    )?;
    let bytes = fill::settle(bed.store())?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    let start_s = bed.start_node().await?.as_secs_f64();
    Ok(Grown {
        uid,
        endpoint_ids: seeded.endpoint_ids,
        landmarks,
        figures: vec![
            Figure::new("messages stored", (n + 1) as f64, "messages"),
            Figure::new("fill time", fill_s, "s"),
            Figure::new("store size", bytes as f64 / 1e6, "MB"),
            Figure::new(
                "bytes on disk per filled message (with its delivery and attempt)",
                bytes.saturating_sub(bytes_before) as f64 / n.max(1) as f64,
                "B",
            ),
            Figure::new("start on the filled store", start_s, "s"),
        ],
    })
}

/// Checks that a filled message reads back, then times each listing.
async fn listings(hookd: &Hookd, grown: &Grown, requests: usize) -> anyhow::Result<Vec<Figure>> {
    let uid = &grown.uid;
    let middle = &grown.landmarks.middle_msg;
    let (status, body) = hookd
        .call(
            Method::GET,
            &format!("/api/v1/app/{uid}/msg/{middle}"),
            None,
        )
        .await?;
    anyhow::ensure!(
        status == 200 && body.windows(6).any(|w| w == b"\"seq\":"),
        "a filled message is not readable through the API: {status} {body:?}"
    );
    let ep = &grown.endpoint_ids[3];
    let attempt = grown.landmarks.middle_attempt.clone().unwrap_or_default();
    let et = event_type(3);
    let lists = [
        ("messages, first page", "msg?limit=50".to_owned()),
        (
            "messages, deep page",
            format!("msg?limit=50&iterator={middle}"),
        ),
        (
            "messages of one event type, first page",
            format!("msg?limit=50&event_types={et}"),
        ),
        (
            "messages of one event type, deep page",
            format!("msg?limit=50&event_types={et}&iterator={middle}"),
        ),
        (
            "endpoint's messages, first page",
            format!("endpoint/{ep}/msg?limit=50"),
        ),
        (
            "endpoint's messages, deep page",
            format!("endpoint/{ep}/msg?limit=50&iterator={middle}"),
        ),
        (
            "endpoint's attempts, first page",
            format!("attempt/endpoint/{ep}?limit=50"),
        ),
        (
            "endpoint's attempts, deep page",
            format!("attempt/endpoint/{ep}?limit=50&iterator={attempt}"),
        ),
        ("attempts of a message", format!("attempt/msg/{middle}")),
    ];
    let mut figures = Vec::new();
    for (name, query) in lists {
        let path = format!("/api/v1/app/{uid}/{query}");
        let latency = time_list(hookd, &path, requests).await?;
        figures.push(Figure::new(&format!("{name}: p50"), latency.p50_ms, "ms"));
        figures.push(Figure::new(&format!("{name}: p99"), latency.p99_ms, "ms"));
    }
    Ok(figures)
}

fn event_type(k: usize) -> String {
    format!("bench.e{k}")
}

/// Lists `path` `requests` times, one after the other; each answer must be a page with
/// items in it.
async fn time_list(hookd: &Hookd, path: &str, requests: usize) -> anyhow::Result<Latency> {
    let mut micros = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let (status, body) = hookd.call(Method::GET, path, None).await?;
        micros.push(started.elapsed().as_micros() as u64);
        anyhow::ensure!(status == 200, "{path}: {status} {body:?}");
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(
            page["data"].as_array().is_some_and(|d| !d.is_empty()),
            "{path}: an empty page on the filled store"
        );
    }
    Ok(Latency::of(micros))
}
