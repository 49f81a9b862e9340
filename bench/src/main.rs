//! hookd-bench: measures hookd end to end on this machine.
//!
//! It starts a receiver and a `hookd serve` (fresh data directory, or a fresh PostgreSQL
//! database), creates applications and endpoints through the API, sends messages through the
//! API, and measures what arrives: accepted and delivered messages per second, ingest→receipt
//! latency, messages missing after a drain, hookd's CPU time and memory, and the CPU time of
//! its own driver and receiver threads (so it can show it was not the bottleneck).
//!
//!     cargo run --release -p hookd-bench -- all            # every scenario, SQLite
//!     cargo run --release -p hookd-bench -- a b --database-url postgres://postgres@127.0.0.1/postgres
//!     cargo run --release -p hookd-bench -- all --smoke    # seconds-long check that it works
//!     cargo run --release -p hookd-bench -- g --prefill 10000000   # (a), (b), listings on 10 M
//!
//! Scenarios (g) to (j) fill hookd's own tables with SQL (`fill`) between a first start,
//! which makes the rows to copy through the API, and a second one on the grown store.

mod backlog;
mod driver;
mod entities;
mod fill;
mod hookd;
mod large_store;
mod measure;
mod prefill;
mod procfs;
mod receiver;
mod report;
mod retention;
mod scenario;
mod tenants;
mod two_nodes;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "hookd-bench", about = "Measure hookd end to end")]
pub struct Args {
    /// Scenarios to run: a, b, c, d, e, fifo (one FIFO endpoint), entities (snapshots, 10 %
    /// firing a rule), all (a to e); and, on a grown store (docs/performance.md, "Cost as it
    /// grows"): g (large store), h (backlog drain), i (many tenants), j (retention under
    /// load), k (two nodes on PostgreSQL; needs --database-url).
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// Run on PostgreSQL: an admin URL; each run gets a fresh database next to it.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The hookd binary (default: build the release binary and use it).
    #[arg(long)]
    pub hookd: Option<PathBuf>,
    /// Target an already running hookd instead (its base URL, e.g. http://127.0.0.1:8071).
    #[arg(long, requires = "token")]
    pub url: Option<String>,
    #[arg(long)]
    pub token: Option<String>,
    /// With --url: the process id, to read its CPU and memory.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Messages for the closed-loop scenarios (a, e); (c) sends a tenth of it.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Seconds of open-loop load for (b) and (d).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Messages per second in open loop.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Concurrent connections of the driver.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Bytes of padding in each payload.
    #[arg(long, default_value_t = 100)]
    pub pad: usize,
    /// Send an `idempotency-key` header with every POST, a new key each time, as the Svix
    /// SDKs do (`auto_` and a UUID) when the caller gives none.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// The receiver answers every delivery with `Connection: close` (as an HTTP/1.0 server
    /// does), so hookd opens a connection per delivery.
    #[arg(long)]
    pub receiver_closes: bool,
    /// The endpoints' signature scheme, as hookd's `signature` field (e.g.
    /// '{"scheme": "stripe"}'); default: hookd's (`standard`).
    #[arg(long)]
    pub signature: Option<String>,
    /// The endpoints' secret (e.g. a `whsk_` ed25519 key, to measure `v1a` signing);
    /// default: one hookd generates.
    #[arg(long)]
    pub secret: Option<String>,
    /// Rows filled into the store before (g) (messages and attempts, default 10 M), (h)
    /// (due deliveries, default 1 M) and (j) (old messages, default 1 M).
    #[arg(long)]
    pub prefill: Option<u64>,
    /// Applications for (i) (default 10,000).
    #[arg(long)]
    pub apps: Option<usize>,
    /// Endpoints per application for (i) (default 10).
    #[arg(long)]
    pub endpoints_per_app: Option<usize>,
    /// Tiny sizes: checks the benchmark works, measures nothing worth reading.
    #[arg(long)]
    pub smoke: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub json: PathBuf,
    /// Where to write the results as a Markdown table.
    #[arg(long, default_value = "target/bench/results.md")]
    pub markdown: PathBuf,
}

impl Args {
    /// `--prefill`, or the scenario's default; with `--smoke` at most 2,000.
    pub fn prefill_or(&self, default: u64) -> u64 {
        let n = self.prefill.unwrap_or(default);
        if self.smoke { n.min(2_000) } else { n }
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.messages = args.messages.min(2_000);
        args.duration = args.duration.min(2);
        args.rate = args.rate.min(500.0);
    }
    let runs = scenario::run_all(&args).await?;
    let table = report::markdown(&runs);
    println!("{table}");
    for path in [&args.json, &args.markdown] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&runs)?)?;
    std::fs::write(&args.markdown, table)?;
    eprintln!(
        "results: {} and {}",
        args.json.display(),
        args.markdown.display()
    );
    let incomplete: Vec<_> = runs.iter().filter(|r| r.missing_after_drain > 0).collect();
    if !incomplete.is_empty() {
        anyhow::bail!(
            "messages missing after the drain in: {}",
            incomplete
                .iter()
                .map(|r| r.scenario.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
