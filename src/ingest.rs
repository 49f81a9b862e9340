//! Ingest sources (see `domain::ingest`): the cron runner. What a source receives comes in
//! through `api::ingest`; what a `cron` source posts is made here.
//!
//! Every node looks, once a second, for cron sources whose next run is due. For each, it
//! writes the run's message (eventId `hookd-cron-<unix time of the scheduled run>`) to the
//! source's application, then moves the source's next run past now. The eventId makes the
//! run exactly once: a node that loses the race, or one that restarts between the two steps,
//! finds the message written (`Conflict::EventId`) and only moves the schedule on.
//!
//! **Missed runs**: while no hookd ran, nothing was posted; at start the source is due, and
//! it runs once (for the earliest scheduled time missed), then resumes at the next time after
//! now. Runs missed in between are not made up: a job started by a schedule should run once
//! when it can, not once per hour it was down.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::ingest::{IngestSource, SourceKind};
use crate::domain::time::now;
use crate::domain::{EventId, EventTypeName, Payload, ResourceKey};
use crate::store::{Conflict, NewMessage, Store, StoreError};

/// How often a node looks for cron runs that are due.
pub const CRON_EVERY: Duration = Duration::from_secs(1);
/// Due sources handled per round at most.
const BATCH: usize = 100;
/// The event type of the messages a cron source posts.
pub const CRON_EVENT_TYPE: &str = "cron.run";

/// The eventId of a cron source's run scheduled at `at` (unix seconds).
pub fn cron_event_id(at: i64) -> String {
    format!("hookd-cron-{at}")
}

/// Runs due cron sources until `shutdown`; wakes `wake` after writing messages.
pub async fn run_cron(
    store: Arc<dyn Store>,
    payload_retention: Option<TimeDelta>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(CRON_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                match run_due(&*store, payload_retention).await {
                    Ok(0) => {}
                    Ok(_) => wake.notify_one(),
                    Err(e) => tracing::warn!(error = %e, "cannot run the due cron sources"),
                }
            }
        }
    }
}

/// One round: runs the cron sources due now; returns how many runs this call wrote.
pub async fn run_due(
    store: &dyn Store,
    payload_retention: Option<TimeDelta>,
) -> Result<usize, StoreError> {
    let at = now();
    let mut written = 0;
    for source in store.due_cron_sources(at, BATCH).await? {
        if run_one(store, &source, at, payload_retention).await? {
            written += 1;
        }
    }
    Ok(written)
}

async fn run_one(
    store: &dyn Store,
    source: &IngestSource,
    at: crate::domain::Timestamp,
    payload_retention: Option<TimeDelta>,
) -> Result<bool, StoreError> {
    let (SourceKind::Cron(job), Some(scheduled)) = (&source.kind, source.next_run_at) else {
        return Ok(false);
    };
    let new = NewMessage {
        app: ResourceKey::Id(source.app_id.clone()),
        create_app: None,
        event_type: EventTypeName::from_stored(CRON_EVENT_TYPE.to_owned()),
        event_id: Some(EventId::from_stored(cron_event_id(scheduled.timestamp()))),
        channels: None,
        payload: Payload::from_stored(job.payload.clone()),
        payload_retention,
        deliver_at: None,
        priority: None,
        only_endpoint: None,
        direct: None,
        key: None,
    };
    let written = match store.enqueue_message(new).await {
        Ok(_) => true,
        // Another node ran it, or this one before a restart.
        Err(StoreError::Conflict(Conflict::EventId)) => false,
        // The source was deleted meanwhile.
        Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    };
    match job.schedule.next(at, false) {
        Some(next) => {
            store.advance_cron(&source.id, scheduled, next).await?;
        }
        None => tracing::warn!(source = %source.id, "the cron schedule has no time left"),
    }
    Ok(written)
}
