//! Background tasks: work an API call starts and a node finishes later (purging an
//! application's payloads; replays, recoveries and dead-letter requeues, whose steps are in
//! [`crate::replay`]). The task kinds are [`TaskKind`]'s.
//!
//! Every node runs a [`run`] loop. It claims a running task under a lease, runs it in steps
//! of at most [`crate::retention::BATCH`] messages, each its own short transaction, and after
//! each step saves the task's progress (`data`, `cursor`) with a fresh lease. No transaction
//! stays open across steps, and on PostgreSQL one node at a time holds a task's lease.
//!
//! **Restarts.** A task left `running` by a node that stopped or died is *resumed*, from the
//! last step saved, by the first node to claim it once its lease has run out (at most
//! [`LEASE`] later; a node that shuts down gracefully gives its lease back at once). Steps
//! are idempotent (a purge step removes payloads still present, and counts only those), so
//! a step run twice changes and counts nothing twice; so are replay-missing and recovery
//! steps. A bulk-replay step run twice (its node died before saving it) sends its batch
//! twice: a replay is a re-send, at least once, as every delivery is. A step that fails
//! because the store is unavailable is tried again later; one that fails otherwise marks
//! the task `failed`, with the error in its `data`.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::clock::Clock;
use crate::domain::{BackgroundTask, MessageId, TaskKind, TaskStatus, Timestamp};
use crate::retention::BATCH;
use crate::store::{Store, StoreError};

/// How long a claim on a task lasts without a step saved: a dead node's tasks are taken
/// over this long after its last step.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a node looks for tasks it was not told about (created on another node, or
/// left by a dead one).
const POLL: Duration = Duration::from_secs(15);

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Claims and runs tasks until `shutdown`: whenever `wake` is notified (a task was created
/// on this node), and every [`POLL`] (by `clock`).
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    deliveries_due: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        // Before the claims: a clock that moves on while they run (a test's manual clock)
        // then finds the sleep below already over, rather than extended past its move.
        let next = clock.now() + delta(POLL);
        while !shutdown.is_cancelled() {
            let now = clock.now();
            match store.claim_task(now, now + delta(LEASE)).await {
                Ok(Some(task)) => {
                    run_task(&*store, &*clock, task, &deliveries_due, &shutdown).await
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim background tasks");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = clock.sleep_until(next) => {}
        }
    }
}

/// Runs a claimed task step by step until it finishes, fails, is lost to another node, or
/// the node shuts down (then the lease is given back, so the task resumes at once elsewhere
/// or after a restart). `deliveries_due` wakes this node's dispatcher after a step queued
/// deliveries (other nodes hear of them from the store, as of any due delivery).
async fn run_task(
    store: &dyn Store,
    clock: &dyn Clock,
    mut task: BackgroundTask,
    deliveries_due: &Notify,
    shutdown: &CancellationToken,
) {
    let id = task.id.clone();
    tracing::info!(task_id = %id, kind = task.kind.as_str(), "running background task");
    loop {
        let held = task.lease_until;
        let now = clock.now();
        if shutdown.is_cancelled() {
            task.lease_until = now;
            if let Err(e) = store.save_task(&task, held).await {
                tracing::warn!(task_id = %id, error = %e, "cannot give a task back at shutdown");
            }
            return;
        }
        match step(store, &mut task, now).await {
            Ok(0) => {}
            Ok(_) => deliveries_due.notify_one(),
            Err(e) if e.is_unavailable() => {
                // Left running under its lease: claimed again once the lease runs out.
                tracing::warn!(task_id = %id, error = %e, "background task step failed; will retry");
                return;
            }
            Err(e) => {
                tracing::error!(task_id = %id, error = %e, "background task failed");
                task.status = TaskStatus::Failed;
                task.data.insert("error".into(), json!(e.to_string()));
            }
        }
        let now = clock.now();
        task.updated_at = now;
        task.lease_until = now + delta(LEASE);
        match store.save_task(&task, held).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(task_id = %id, "background task taken over by another node");
                return;
            }
            Err(e) => {
                tracing::warn!(task_id = %id, error = %e, "cannot save a background task's progress; will retry");
                return;
            }
        }
        if task.status != TaskStatus::Running {
            let data = Value::Object(task.data.clone());
            tracing::info!(task_id = %id, status = task.status.as_str(), %data, "background task done");
            return;
        }
    }
}

/// Runs one step of the task at `now` and records its progress in `task` (not yet saved);
/// returns how many deliveries it queued.
async fn step(
    store: &dyn Store,
    task: &mut BackgroundTask,
    now: Timestamp,
) -> Result<u64, StoreError> {
    match task.kind {
        TaskKind::PurgeContent => purge_step(store, task).await.map(|()| 0),
        TaskKind::BulkReplay | TaskKind::ReplayMissing | TaskKind::Recover => {
            crate::replay::step(store, task, now).await
        }
    }
}

/// `application.purge_content`: the cursor is the last message id looked at.
async fn purge_step(store: &dyn Store, task: &mut BackgroundTask) -> Result<(), StoreError> {
    let Some(app) = task.app_id.clone() else {
        return Err(StoreError::Corrupt(
            "a purge task without an application".into(),
        ));
    };
    let after = task.cursor.clone().map(MessageId::from_stored);
    let step = store.purge_payloads(&app, after.as_ref(), BATCH).await?;
    let purged = task
        .data
        .get("messagesPurged")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + step.purged;
    task.data.insert("messagesPurged".into(), json!(purged));
    match step.last {
        Some(last) => task.cursor = Some(last.to_string()),
        None => task.status = TaskStatus::Finished,
    }
    Ok(())
}

/// The data a new task of `kind` starts with.
pub fn initial_data(kind: TaskKind) -> serde_json::Map<String, Value> {
    let mut data = serde_json::Map::new();
    match kind {
        TaskKind::PurgeContent => {
            data.insert("messagesPurged".into(), json!(0));
        }
        TaskKind::BulkReplay | TaskKind::ReplayMissing | TaskKind::Recover => {
            data.insert(crate::replay::SENT.into(), json!(0));
        }
    }
    data
}
