//! Change detection: entities' snapshots become messages when a rule of their type fires.
//!
//! An application sends the current state of an entity (`PUT
//! /api/v1/app/{app}/entity/{type}/{key}`); hookd keeps the last state and every version,
//! and applies the rules of the entity type (`PUT /api/v1/entity-type/{type}`, shared by
//! every application; see [`crate::domain::entity`] for what each rule compares). A type
//! with no rules, or none defined, keeps states and histories and fires nothing.
//!
//! **Atomicity.** One write transaction reads each snapshot's key state (locking its row),
//! compares, and writes the new state, its history row and one row per fired event to the
//! `entity_event` outbox ([`crate::store::EntityStore::apply_snapshots`]). So there is
//! never a state without its events nor an event without its state; an equal state writes
//! nothing; snapshots of one key sent at once are applied one after the other.
//!
//! **Group commit.** [`SnapshotWriter`] hands the snapshots that arrive while a transaction
//! commits to the next one together (up to [`SNAPSHOT_BATCH`]): one commit, one fsync, for
//! many snapshots. A lone snapshot waits for nothing. Snapshots of one key keep their
//! arrival order within a batch, and a batch locks its keys in key order, so two nodes'
//! batches never deadlock (PostgreSQL).
//!
//! **Delivery.** [`crate::outbox::run`] drains the outbox ([`EntityEvents`]) as it drains
//! the operational one: woken right after a snapshot fired something, and every
//! [`crate::outbox::POLL`]; one node at a time on PostgreSQL (a job lock not waited for). Each row becomes a message of its
//! application with the eventId `hookd-ent-<row id>`, the rule's event type and the payload
//! `{key, entityType, field, old, new, changePct, observedAt, entity}`, then the rows are
//! deleted. A row whose message exists already (a drain stopped before deleting it) is not
//! sent again: each event is exactly one message, across restarts and nodes, typically
//! within milliseconds of the snapshot, and is then delivered like any message (endpoints'
//! `eventTypes` apply).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{EventId, Payload, ResourceKey};
use crate::events::EventSettings;
use crate::store::{Applied, Conflict, NewMessage, OutboxEvent, Snapshot, Store, StoreError};

/// Most snapshots one transaction applies.
pub const SNAPSHOT_BATCH: usize = 256;

type Pending = (Snapshot, oneshot::Sender<Result<Applied, StoreError>>);

/// Applies snapshots with group commit (see the module note). Cloned handles share one
/// writer task, [`SnapshotWriter::run`].
#[derive(Clone)]
pub struct SnapshotWriter {
    queue: mpsc::Sender<Pending>,
}

impl SnapshotWriter {
    /// The handle, and the task to run until `shutdown`.
    pub fn new(
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (queue, pending) = mpsc::channel(SNAPSHOT_BATCH * 4);
        (Self { queue }, Self::run(store, pending, shutdown))
    }

    /// Applies `snapshot`, durably, once its batch commits.
    pub async fn apply(&self, snapshot: Snapshot) -> Result<Applied, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send((snapshot, answer))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    async fn run(
        store: Arc<dyn Store>,
        mut pending: mpsc::Receiver<Pending>,
        shutdown: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                first = pending.recv() => match first {
                    Some(first) => first,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < SNAPSHOT_BATCH {
                match pending.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (mut snapshots, answers): (Vec<Snapshot>, Vec<_>) = batch.into_iter().unzip();
            // Observed when applied, in queue order: a key's versions never go back in time.
            for snapshot in &mut snapshots {
                snapshot.observed_at = crate::domain::time::now();
            }
            match store.apply_snapshots(snapshots).await {
                Ok(results) => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(result);
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for answer in answers {
                        let _ = answer.send(Err(StoreError::BatchFailed(e.clone())));
                    }
                }
            }
        }
    }
}

/// What a snapshot gets when the writer stopped (shutdown) before answering.
fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

/// Outbox rows per batch.
pub const BATCH: usize = 500;

/// The message eventId of outbox row `id`.
pub fn event_id(id: i64) -> String {
    format!("hookd-ent-{id}")
}

/// The entity events' outbox (see [`crate::outbox`]).
pub struct EntityEvents(pub EventSettings);

#[async_trait::async_trait]
impl crate::outbox::Outbox for EntityEvents {
    const WHAT: &'static str = "entity events";
    const BATCH: usize = BATCH;

    async fn take(
        &self,
        store: &dyn Store,
        limit: usize,
    ) -> Result<Option<Box<dyn crate::store::OutboxBatch>>, StoreError> {
        store.take_entity_events(limit).await
    }

    async fn send(&self, store: &dyn Store, events: &[OutboxEvent]) -> Result<usize, StoreError> {
        send(store, self.0, events).await
    }
}

/// Writes one message per event; returns how many were written (not counting those
/// written before).
async fn send(
    store: &dyn Store,
    settings: EventSettings,
    events: &[OutboxEvent],
) -> Result<usize, StoreError> {
    let mut written = 0;
    for event in events {
        let Some(app) = &event.app else { continue };
        let new = NewMessage {
            app: ResourceKey::Id(app.clone()),
            create_app: None,
            event_type: event.event_type.clone(),
            event_id: Some(EventId::from_stored(event_id(event.id))),
            channels: None,
            payload: Payload::from_stored(event.payload.clone()),
            payload_retention: settings.payload_retention,
            deliver_at: None,
            priority: None,
            only_endpoint: None,
            direct: None,
            key: None,
        };
        match store.enqueue_message(new).await {
            Ok(_) => written += 1,
            // Written by a drain that stopped before deleting the row.
            Err(StoreError::Conflict(Conflict::EventId)) => {}
            // The application was deleted since (its rows go with it).
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
