//! Retention: the jobs that remove payloads when they expire and delete whole messages past
//! the configured age, on every node, in short batches; with them, the FIFO lines' safety
//! net (`DeliveryStore::repair_fifo_lines`).
//!
//! Each batch is one short transaction of at most [`BATCH`] messages, walking an index
//! (payload expiry, or creation time), so neither job holds locks for long or scans every
//! message; the dispatcher's transactions go on between batches. On PostgreSQL a batch runs
//! under a job lock that other nodes do not wait for: one node at a time does each job's
//! batches, and the others skip their turn.
//!
//! What they did is logged (counts only) and counted in `hookd_payloads_expired_total` and
//! `hookd_messages_pruned_total`.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio_util::sync::CancellationToken;

use crate::delivery::clock::Clock;
use crate::store::{Result, Store};

/// Messages per batch: one short transaction (a few milliseconds on SQLite).
pub const BATCH: usize = 250;
/// The least pause between two batches of a job.
const MIN_PAUSE: Duration = Duration::from_millis(2);
/// How often the jobs look for work.
const EVERY: Duration = Duration::from_secs(60);
/// Background tasks that finished longer ago than this are deleted (the contract lists the
/// tasks of the past 90 days).
const TASKS_KEPT: TimeDelta = TimeDelta::days(90);
/// Ingest sources' log entries older than this are deleted (the messages they became are
/// kept as `retention_days` says).
pub const INGEST_LOG_KEPT: TimeDelta = TimeDelta::days(30);

/// The counters the jobs add to.
#[derive(Debug, Clone)]
pub struct RetentionMetrics {
    pub payloads_expired: metrics::Counter,
    pub messages_pruned: metrics::Counter,
}

#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Messages older than this with nothing left to deliver are deleted; `None`: never.
    pub messages: Option<TimeDelta>,
}

/// Runs both jobs now and then every minute (by `clock`), until `shutdown`.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: RetentionSettings,
    measure: RetentionMetrics,
    shutdown: CancellationToken,
) {
    loop {
        let now = clock.now();
        let done = tokio::select! {
            _ = shutdown.cancelled() => return,
            done = run_once(&*store, now, settings, &measure, &shutdown) => done,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "retention job failed; trying again in a minute");
        }
        let next = now + TimeDelta::from_std(EVERY).unwrap_or(TimeDelta::MAX);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.sleep_until(next) => {}
        }
    }
}

/// One round of both jobs at `now`: every batch due, until none is left (or another node
/// holds a job).
async fn run_once(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
    settings: RetentionSettings,
    measure: &RetentionMetrics,
    shutdown: &CancellationToken,
) -> Result<()> {
    let expired = batches(shutdown, || async {
        let n = store.expire_payloads(now, BATCH).await?;
        measure.payloads_expired.increment(n.unwrap_or(0));
        Ok(n)
    })
    .await?;
    if expired > 0 {
        tracing::info!(payloads = expired, "removed expired payloads");
    }
    if let Some(age) = settings.messages {
        let before = now - age;
        let pruned = batches(shutdown, || async move {
            let n = store.prune_messages(before, BATCH).await?;
            measure.messages_pruned.increment(n.unwrap_or(0));
            Ok(n)
        })
        .await?;
        if pruned > 0 {
            tracing::info!(messages = pruned, %before, "deleted messages past retention_days");
        }
    }
    let lines = store.repair_fifo_lines(now).await?;
    if lines > 0 {
        tracing::info!(
            lines,
            "gave FIFO lines left without a head their next delivery"
        );
    }
    let logged = batches(shutdown, || async {
        Ok(Some(
            store
                .prune_ingest_logs(now - INGEST_LOG_KEPT, BATCH)
                .await?,
        ))
    })
    .await?;
    if logged > 0 {
        tracing::debug!(
            entries = logged,
            "deleted ingest log entries older than 30 days"
        );
    }
    let tasks = store.prune_tasks(now - TASKS_KEPT).await?;
    if tasks > 0 {
        tracing::debug!(tasks, "deleted old background tasks");
    }
    Ok(())
}

/// Runs `batch` until it does nothing, another node holds its job, or shutdown; returns how
/// many rows the batches changed.
///
/// Between two batches it pauses as long as the last one took (at least [`MIN_PAUSE`]): on
/// SQLite a batch holds the one write lock, and a writer waiting for it (ingest, the
/// delivery engine's records) sleeps and looks again; back-to-back batches left it waiting
/// for hundreds of milliseconds (`hookd-bench j`: (b)'s p99 619 ms while 1 M messages were
/// pruned). Half the time for the job, at most, and the rest for the others.
async fn batches<F, Fut>(shutdown: &CancellationToken, mut batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<u64>>>,
{
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        match batch().await? {
            Some(0) | None => break,
            Some(n) => total += n,
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(started.elapsed().max(MIN_PAUSE)) => {}
        }
    }
    Ok(total)
}
