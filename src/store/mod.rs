//! Persistence and the delivery queue, behind one narrow interface with domain operations.
//!
//! [`Store`] is what the rest of the crate sees, split into one trait per resource. The
//! embedded backend is SQLite ([`sqlite::SqliteStore`]); the scale-out backend, shared by
//! several nodes, is PostgreSQL ([`postgres::PgStore`]). Both pass the same conformance
//! tests (`tests/it/queue.rs` and the whole integration suite), and a test keeps their
//! schemas' tables, columns and indexes the same by name (`tests/it/schema.rs`).
//!
//! ## Each query is written once
//! Every trait but [`QueueStore`] and [`IdempotencyStore`] is implemented once, in
//! `queries`, for any [`engine::Engine`]: a query is a [`sql::Sql`] statement (the same text
//! on both engines, `$n` parameters), run on a [`sql::Conn`] and decoded by `rows`. Where the engines differ, the query asks its
//! engine (`lock_lists`, `notify_due`, `FOR_UPDATE`, `push_array_holds`). [`QueueStore`], the
//! hot path, is each backend's own: SQLite's batching writer, PostgreSQL's
//! `FOR UPDATE SKIP LOCKED` claims and batched statements. So is [`IdempotencyStore`], which
//! SDK clients put on the hot path too (a key on every POST): on SQLite its writes share the
//! writer's batches. Adding a table means a migration
//! for each backend (types differ) and its queries once, in `queries`:
//!
//! ```ignore
//! #[async_trait]
//! impl<E: Engine> MonitorStore for E {
//!     async fn get_monitor(&self, id: &MonitorId) -> Result<Option<Monitor>> {
//!         let get = Sql::new("SELECT id, name, last_seen FROM monitor WHERE id = $1")
//!             .bind(id.as_str());
//!         let row = self.reads().acquire().await?.row(&get).await?;
//!         row.as_ref().map(rows::monitor).transpose()
//!     }
//! }
//! ```
//!
//! Invariants every backend keeps:
//! - A message and its delivery rows are written in one transaction, and `enqueue_message`
//!   returns only once that transaction is durable.
//! - Ids are assigned by the store while it holds the write lock (SQLite's one writer; on
//!   PostgreSQL a lock per list, across nodes), so that id order is commit order and keyset
//!   pagination never skips an item that was committed before the page boundary was passed.
//! - A delivery is claimed by one dispatcher at a time, under a lease; a record moves the
//!   delivery on only while the delivery still carries that claim's lease. A new message's
//!   deliveries may be written already claimed by the dispatcher of the node that accepts it
//!   ([`DirectClaims`]), so the common case needs no claim at all.
//! - On PostgreSQL a claim names its node (`delivery.claimed_by`); the claims of a node whose
//!   heartbeat went stale are given back by one other node ([`NodeStore`]), and the lease
//!   guard above keeps such a node's late records from moving anything.
//! - A claim takes a throttled endpoint's or application's deliveries only within its token
//!   bucket (`throttle`), read and written in the claim's transaction; such deliveries are
//!   never written claimed by `enqueue_message`.
//! - A FIFO endpoint has at most one delivery that is not parked: the head of its line
//!   (`endpoint.fifo_head`); the rest wait with a NULL `next_attempt_at` and are promoted one
//!   at a time, in id order, by the write that ends the head (`fifo`). Such deliveries are
//!   never written claimed either.
//! - Timestamps are integer microseconds, payloads and JSON columns are text: the same SQL
//!   shape works on both backends.

mod engine;
mod error;
mod fifo;
mod health;
mod page;
pub mod postgres;
mod queries;
pub(crate) mod rows;
mod sql;
pub mod sqlite;
mod stats;
mod throttle;
mod types;

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::entity::{EntityType, EntityVersion};
use crate::domain::events::HealthState;
use crate::domain::events::OperationalEvent;
use crate::domain::health::HealthCounters;
use crate::domain::{
    AppId, AppKey, Application, Attempt, AttemptId, BackgroundTask, DeliveryCounts, DeliveryStatus,
    Endpoint, EndpointId, EndpointKey, EntityKey, EntityTypeName, EventId, EventType,
    EventTypeName, Message, MessageId, MessageKey, RetryPolicy, TaskId, TaskKind, Timestamp,
    TokenId,
};

pub use error::{Conflict, StoreError};
pub use page::{Cursor, Order, PageQuery};
pub use stats::{
    BatchMetrics, EndpointCounts, MinuteActivity, PoolUsage, QueueStats, StoreMetrics,
    TroubledEndpoint,
};
pub use types::{Applied, Snapshot};
pub use types::{
    AttemptFilter, AttemptRecord, ClaimLimits, ClaimedDelivery, DeliveryState, Direct,
    DirectClaims, Enqueued, IdempotencyClaim, InlineApplication, KeyedWrite, MessageFilter,
    NewApplication, NewEndpoint, NewMessage, NextStep, OutboxEvent, PurgeStep, StoredResponse,
    TaskFilter,
};
pub use types::{DeadLetter, FailedFilter, NodeBeat, NodeReport, ReplayFilter, ReplayStep};
pub use types::{NewMonitor, NewToken, TokenState, TokenUse};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything hookd keeps. Object safe, so the service holds an `Arc<dyn Store>`.
pub trait Store:
    ApplicationStore
    + EventTypeStore
    + EndpointStore
    + MessageStore
    + DeliveryStore
    + ReplayStore
    + QueueStore
    + AdminStore
    + IdempotencyStore
    + TaskStore
    + StatsStore
    + OperationalEventStore
    + NodeStore
    + SecretStore
    + TokenStore
    + MonitorStore
    + EntityStore
    + SourceStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: ApplicationStore
        + EventTypeStore
        + EndpointStore
        + MessageStore
        + DeliveryStore
        + ReplayStore
        + QueueStore
        + AdminStore
        + IdempotencyStore
        + TaskStore
        + StatsStore
        + OperationalEventStore
        + NodeStore
        + SecretStore
        + TokenStore
        + MonitorStore
        + EntityStore
        + SourceStore
        + Send
        + Sync
{
}

/// How a path names an ingest source: its id or its uid.
pub type SourceKey = crate::domain::ResourceKey<crate::domain::SourceId>;

/// Ingest sources, their URL tokens and logs (`crate::ingest`).
#[async_trait]
pub trait SourceStore {
    /// `Conflict::Uid` if the uid is taken. The source's application must exist.
    async fn insert_source(&self, source: &crate::domain::ingest::IngestSource) -> Result<()>;
    async fn get_source(
        &self,
        key: &SourceKey,
    ) -> Result<Option<crate::domain::ingest::IngestSource>>;
    /// The source whose ingest URL has this token: its current one, or an earlier one still
    /// valid at `now`.
    async fn source_by_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<crate::domain::ingest::IngestSource>>;
    /// Up to `page.limit + 1` sources in scan order, by id.
    async fn list_sources(
        &self,
        page: &PageQuery,
    ) -> Result<Vec<crate::domain::ingest::IngestSource>>;
    /// Saves every field but `id`, `app_id` and `created_at`; `Conflict::Uid`, `NotFound`.
    async fn update_source(&self, source: &crate::domain::ingest::IngestSource) -> Result<()>;
    /// Makes `new_token` the source's token; the current one stays valid until
    /// `old_valid_until`. `false` (and nothing changed) when `max_valid_old` earlier tokens
    /// are still valid at `now`. `NotFound` for a source without a URL (cron).
    async fn rotate_source_token(
        &self,
        id: &crate::domain::SourceId,
        new_token: &str,
        now: Timestamp,
        old_valid_until: Timestamp,
        max_valid_old: usize,
    ) -> Result<bool>;
    async fn insert_ingest_log(&self, entry: &crate::domain::ingest::IngestLog) -> Result<()>;
    /// Up to `page.limit + 1` log entries of the source in scan order, by id.
    async fn list_ingest_logs(
        &self,
        source: &crate::domain::SourceId,
        page: &PageQuery,
    ) -> Result<Vec<crate::domain::ingest::IngestLog>>;
    /// Cron sources whose next run is due at `now`, earliest first.
    async fn due_cron_sources(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<crate::domain::ingest::IngestSource>>;
    /// Moves a cron source's next run from `from` to `to`; `false` if it was not at `from`
    /// (another node advanced it first, or the source changed).
    async fn advance_cron(
        &self,
        id: &crate::domain::SourceId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<bool>;
    /// Deletes up to `limit` log entries older than `before`; how many.
    async fn prune_ingest_logs(&self, before: Timestamp, limit: usize) -> Result<u64>;
}

/// Freshness monitors (`crate::monitors`).
#[async_trait]
pub trait MonitorStore {
    async fn insert_monitor(&self, new: NewMonitor) -> Result<crate::domain::Monitor>;
    async fn get_monitor(
        &self,
        id: &crate::domain::MonitorId,
    ) -> Result<Option<crate::domain::Monitor>>;
    async fn list_monitors(&self, page: &PageQuery) -> Result<Vec<crate::domain::Monitor>>;
    /// Saves a monitor's name, description and expectation.
    async fn update_monitor(
        &self,
        monitor: crate::domain::Monitor,
    ) -> Result<crate::domain::Monitor>;
    async fn delete_monitor(&self, id: &crate::domain::MonitorId) -> Result<bool>;
    /// Monitors to check at `now`: those due (nothing seen for `max_silence`) and the stale
    /// ones (to see them recover), soonest due first.
    async fn monitors_to_check(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<crate::domain::MonitorId>>;
    /// Looks at the messages the monitor has not seen yet and sets its state as at `at`,
    /// writing `monitor.stale` or `monitor.recovered` when it changes (once, whatever the
    /// number of nodes). The monitor as it is now, and whether this check changed its
    /// state; `None` if it was deleted.
    async fn check_monitor(
        &self,
        id: &crate::domain::MonitorId,
        at: Timestamp,
    ) -> Result<Option<(crate::domain::Monitor, bool)>>;
}

/// Change detection (`crate::entities`): entity types' rules, entities' states and
/// histories, and the `entity_event` outbox their snapshots write.
#[async_trait]
pub trait EntityStore {
    /// Creates or replaces an entity type (its `created_at` is kept when it exists).
    async fn put_entity_type(&self, entity_type: EntityType) -> Result<EntityType>;
    async fn get_entity_type(&self, name: &EntityTypeName) -> Result<Option<EntityType>>;
    /// Up to `page.limit + 1` entity types in scan order, by name.
    async fn list_entity_types(&self, page: &PageQuery) -> Result<Vec<EntityType>>;
    /// `false` when there was none. The entities of the type stay.
    async fn delete_entity_type(&self, name: &EntityTypeName) -> Result<bool>;
    /// Applies snapshots in one write transaction, one answer per snapshot, in order. Each
    /// locks its key's row (inserting it first, so concurrent first snapshots of a key take
    /// turns), compares, and, if the state differs, writes the new version, its history row
    /// and one `entity_event` row per rule of the type that fires (see
    /// [`crate::domain::entity`]); an equal state writes nothing. Snapshots of one key are
    /// applied in the batch's order. A snapshot of an application that does not exist is
    /// `NotFound` alone; any other error fails the whole batch (nothing is written).
    async fn apply_snapshots(&self, batch: Vec<Snapshot>) -> Result<Vec<Result<Applied>>>;
    async fn get_entity(
        &self,
        app: &AppId,
        entity_type: &EntityTypeName,
        key: &EntityKey,
    ) -> Result<Option<EntityVersion>>;
    /// Up to `page.limit + 1` versions of the key in scan order; the page's keys are
    /// version numbers.
    async fn list_entity_history(
        &self,
        app: &AppId,
        entity_type: &EntityTypeName,
        key: &EntityKey,
        page: &PageQuery,
    ) -> Result<Vec<EntityVersion>>;
    /// Takes the `entity_event` drain job with its oldest `limit` rows, as
    /// [`OperationalEventStore::take_operational_events`] does.
    async fn take_entity_events(&self, limit: usize) -> Result<Option<Box<dyn OutboxBatch>>>;
}

/// API tokens (`crate::api::auth`); only their hashes are stored.
#[async_trait]
pub trait TokenStore {
    async fn insert_token(&self, new: NewToken) -> Result<crate::domain::ApiToken>;
    /// The token whose SHA-256 (hex) this is, expired or not, with its rate-limit window.
    async fn token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<(crate::domain::ApiToken, TokenState)>>;
    async fn get_token(&self, id: &TokenId) -> Result<Option<crate::domain::ApiToken>>;
    /// Every token, expired ones included, by id.
    async fn list_tokens(&self, page: &PageQuery) -> Result<Vec<crate::domain::ApiToken>>;
    /// Revokes a token: it is deleted. `false` when there was none.
    async fn delete_token(&self, id: &TokenId) -> Result<bool>;
    /// Makes the tokens limited to `app` (only those of `sessions`, when any are given)
    /// expire at `at`, unless they expire before; returns their ids.
    async fn expire_app_tokens(
        &self,
        app: &AppId,
        at: Timestamp,
        sessions: &[String],
    ) -> Result<Vec<TokenId>>;
    /// Adds each token's requests to its window and records its last use; returns the state
    /// of each token named that still exists (a token missing from the answer was revoked).
    async fn sync_token_usage(&self, uses: &[TokenUse]) -> Result<Vec<TokenState>>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn prune_expired_tokens(&self, before: Timestamp) -> Result<u64>;
}

/// The credentials kept at rest (endpoint secrets, previous secrets, headers) and the main
/// keys they are sealed under (`domain::sealed`).
#[async_trait]
pub trait SecretStore {
    /// How many stored credential values are in plaintext, and under each key id. Reads
    /// every endpoint row (a start-up check, not a hot path); empty lists and maps, which
    /// are never sealed, are not counted.
    async fn secrets_census(&self) -> Result<SecretsCensus>;
    /// One step of re-encrypting under the current main key: the credentials of up to
    /// `limit` endpoints with ids after `after`, in id order, that are not sealed under it
    /// (plaintext, or under a previous key) are rewritten, in one short transaction, each
    /// row only if unchanged since it was read. Nothing else in the row changes (not even
    /// `updated_at`). Calling it until `last` is `None` walks the whole table once.
    async fn reseal_secrets(&self, after: &str, limit: usize) -> Result<ResealStep>;
    /// Re-encrypts under the current main key every ingest source's config that is not
    /// (they hold their senders' secrets), each row only if unchanged since it was read;
    /// how many were rewritten. Sources are few: one pass.
    async fn reseal_source_configs(&self) -> Result<u64>;
}

/// See [`SecretStore::secrets_census`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecretsCensus {
    pub plaintext: u64,
    /// Values by the id of the main key they are sealed under.
    pub by_key: std::collections::BTreeMap<String, u64>,
}

/// See [`SecretStore::reseal_secrets`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResealStep {
    /// The greatest endpoint id read; `None` when there was none left.
    pub last: Option<String>,
    /// Values rewritten under the current key.
    pub rewritten: u64,
    /// Rows that changed between being read and being rewritten (written meanwhile, by an
    /// API call, under the writer's current key): left as they are.
    pub skipped: u64,
}

/// The `Idempotency-Key` records of requests (`api::idempotency`). On SQLite they are
/// written by the batching writer, as the Svix SDKs send a key with every POST.
#[async_trait]
pub trait IdempotencyStore {
    /// Claims an idempotency key for one request. See [`IdempotencyClaim`].
    async fn claim_idempotency_key(
        &self,
        key: &str,
        lock_expired_before: Timestamp,
    ) -> Result<IdempotencyClaim>;
    /// Stores the response of the request that claimed `key`.
    async fn complete_idempotency_key(&self, key: &str, response: &StoredResponse) -> Result<()>;
    /// Releases a claimed key without a response, so a retry runs the request again.
    async fn release_idempotency_key(&self, key: &str) -> Result<()>;
}

/// A [`KeyedWrite`] in three steps: claim the key, write the message (`write`), then store
/// its response, or let the key go if the message was refused. For a store whose message
/// writes cannot hold the claim themselves (PostgreSQL's batched statements). Clients see
/// what SQLite's one transaction gives them; a crash between the steps leaves the key held
/// until its claim expires, as a crash of a request did before keys were folded into writes.
pub async fn keyed_in_steps<S, W>(keys: &S, key: &KeyedWrite, write: W) -> Result<Enqueued>
where
    S: IdempotencyStore + Sync + ?Sized,
    W: std::future::Future<Output = Result<Enqueued>>,
{
    match keys
        .claim_idempotency_key(&key.key, key.expired_before)
        .await?
    {
        IdempotencyClaim::Claimed => {}
        taken => return Err(StoreError::KeyTaken(taken)),
    }
    match write.await {
        Ok(mut enqueued) => {
            let response = (key.respond)(&enqueued.message);
            // The message is written: its answer stands even if it cannot be kept for replay.
            if let Err(e) = keys.complete_idempotency_key(&key.key, &response).await {
                tracing::error!(error = %e, "storing a response for idempotent replay failed");
            }
            enqueued.response = Some(response);
            Ok(enqueued)
        }
        Err(refused) => {
            if let Err(e) = keys.release_idempotency_key(&key.key).await {
                tracing::warn!(error = %e, "releasing an idempotency key failed; it expires by itself");
            }
            Err(refused)
        }
    }
}

#[async_trait]
pub trait AdminStore {
    /// Succeeds when the store answers a trivial query.
    async fn ping(&self) -> Result<()>;
    /// Deletes idempotency records started before `before`; returns how many.
    async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64>;
    /// Retention: deletes up to `limit` of the oldest messages created before `before` that
    /// have nothing left to deliver (every delivery succeeded or failed), with their
    /// deliveries and attempts; returns how many. Each call is one short transaction that
    /// walks the `created_at` index, so calling it until it returns 0 prunes any backlog
    /// without long locks. `None`: another node is running a batch of this job right now
    /// (PostgreSQL; one node at a time runs it).
    async fn prune_messages(&self, before: Timestamp, limit: usize) -> Result<Option<u64>>;
    /// Payload retention: removes the payloads of up to `limit` messages whose payload
    /// expiry is at or before `now`, as an expunge does (the message and its attempts stay);
    /// returns how many. One short transaction walking the expiry index; `None` as for
    /// [`AdminStore::prune_messages`].
    async fn expire_payloads(&self, now: Timestamp, limit: usize) -> Result<Option<u64>>;
}

/// Background tasks. A running task belongs to the node holding its lease: it claims the
/// task ([`TaskStore::claim_task`]), runs a short step, and saves the step's progress with a
/// new lease ([`TaskStore::save_task`]), fenced by the lease it held, so a node that lost
/// the task (its lease ran out and another took it over) cannot overwrite the new owner's
/// progress. No transaction stays open across steps.
#[async_trait]
pub trait TaskStore {
    /// Stores a new running task, claimable at once. `cursor`: what its first step starts
    /// from (a replay's parameters, say), in the kind's own format.
    async fn insert_task(
        &self,
        kind: TaskKind,
        app: Option<&AppId>,
        data: serde_json::Map<String, serde_json::Value>,
        cursor: Option<String>,
    ) -> Result<BackgroundTask>;
    async fn get_task(&self, id: &TaskId) -> Result<Option<BackgroundTask>>;
    /// Up to `page.limit + 1` tasks in scan order, by id (creation order).
    async fn list_tasks(
        &self,
        filter: &TaskFilter,
        page: &PageQuery,
    ) -> Result<Vec<BackgroundTask>>;
    /// Takes the running task whose lease ran out longest ago (new tasks first), leasing it
    /// until `lease`.
    async fn claim_task(&self, now: Timestamp, lease: Timestamp) -> Result<Option<BackgroundTask>>;
    /// Saves the task's status, data, cursor and lease if it still holds the lease `held`;
    /// `false` if another node took it over meanwhile (nothing is saved).
    async fn save_task(&self, task: &BackgroundTask, held: Timestamp) -> Result<bool>;
    /// Deletes the tasks that finished or failed before `before`; returns how many.
    async fn prune_tasks(&self, before: Timestamp) -> Result<u64>;
}

/// Replays, recoveries and dead letters (`queries::replays`). The steps of their background
/// tasks: each is one short transaction over at most `limit` deliveries or messages,
/// walking an index from `after` (the previous step's [`ReplayStep::last`]), so a task never
/// holds a transaction for its whole run. Queued deliveries are due at `now` as manual
/// attempts with a fresh retry schedule, or parked if their endpoint is disabled.
#[async_trait]
pub trait ReplayStore {
    /// Bulk replay: queues again the endpoint's deliveries matching `filter`, in message id
    /// order after `after`. A step run twice queues its deliveries twice (a replay is a
    /// re-send: at least once).
    async fn replay_step(
        &self,
        endpoint: &EndpointId,
        filter: &ReplayFilter,
        after: Option<&MessageId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep>;
    /// Replay missing: creates a delivery to the endpoint for each message of its
    /// application created in `[since, until)` that it subscribes to (event types,
    /// channels) and never had a delivery for, in message id order after `after`. A step
    /// run twice creates nothing twice.
    async fn replay_missing_step(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        after: Option<&MessageId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep>;
    /// Recover / dead-letter requeue: queues again the application's failed deliveries
    /// matching `filter`, in delivery number order after `after`, walking the
    /// `delivery_failed` partial index. A delivery queued is no longer failed, so a step run
    /// twice queues nothing twice.
    async fn requeue_failed_step(
        &self,
        app: &AppId,
        filter: &FailedFilter,
        after: Option<i64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<ReplayStep>;
    /// Queues again the application's failed deliveries numbered `ids` (at most a few
    /// thousand), in one transaction; returns how many were failed and are now queued.
    async fn requeue_failed(&self, app: &AppId, ids: &[i64], now: Timestamp) -> Result<u64>;
    /// Up to `page.limit + 1` of the application's dead letters in scan order, keyed by
    /// delivery number (the page's keys are numbers).
    async fn list_dead_letters(
        &self,
        app: &AppId,
        filter: &FailedFilter,
        page: &PageQuery,
    ) -> Result<Vec<DeadLetter>>;
}

/// What an operator reads about the store (metrics, readiness); see `stats`.
#[async_trait]
pub trait StatsStore {
    /// Unfinished deliveries by state at `now`, in one pass over the queue's partial index.
    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats>;
    /// When the longest-waiting delivery due at `now` came due: one index lookup.
    async fn oldest_due(&self, now: Timestamp) -> Result<Option<Timestamp>>;
    async fn endpoint_counts(&self) -> Result<EndpointCounts>;
    /// Messages accepted and attempts recorded per minute from `since`'s minute on, oldest
    /// first; minutes with nothing are left out. Reads the messages' `created_at` index and
    /// the attempts' primary key (ids sort by creation time) over that range only.
    async fn activity(&self, since: Timestamp) -> Result<Vec<MinuteActivity>>;
    /// Up to `limit` enabled endpoints whose health is `failing` or `degraded`, failing
    /// first, then by their run of failures.
    async fn troubled_endpoints(&self, limit: usize) -> Result<Vec<TroubledEndpoint>>;
    /// This node's database connections, from its pools (no query).
    fn pool_usage(&self) -> PoolUsage;
}

/// The operational events outbox (`operational_event`), drained by `crate::events`.
///
/// The store writes the events of the endpoint changes it makes in their own transactions
/// ([`EndpointStore`], [`ApplicationStore::delete_application`]); nothing about the
/// operational application's own endpoints is ever written.
#[async_trait]
pub trait OperationalEventStore {
    /// Writes `events` to the outbox in one transaction of their own, for a writer with no
    /// transaction to add them to.
    async fn insert_operational_events(&self, events: &[OperationalEvent]) -> Result<()>;
    /// Takes the outbox's drain job with its oldest `limit` rows, in id order; `None` when
    /// another node holds the job (PostgreSQL: a lock not waited for, so nodes do not all
    /// read the same rows). The job stays held until the batch is finished or released:
    /// the caller must end it one way or the other, and must not hold it across HTTP calls.
    async fn take_operational_events(&self, limit: usize) -> Result<Option<Box<dyn OutboxBatch>>>;
}

/// Rows taken from the outbox, with the drain job held.
#[async_trait]
pub trait OutboxBatch: Send {
    fn events(&self) -> &[OutboxEvent];
    /// Deletes the batch's rows and lets the job go.
    async fn finish(self: Box<Self>) -> Result<()>;
    /// Lets the job go and leaves the rows for the next drain.
    async fn release(self: Box<Self>) -> Result<()>;
}

#[async_trait]
pub trait ApplicationStore {
    /// Creates an application; `Conflict::Uid` if the uid is taken.
    async fn insert_application(&self, new: NewApplication) -> Result<Application>;
    async fn get_application(&self, key: &AppKey) -> Result<Option<Application>>;
    /// Saves every field but `id` and `created_at`; sets `updated_at`.
    async fn update_application(&self, app: Application) -> Result<Application>;
    /// Deletes the application with its endpoints, messages and deliveries; writes
    /// `endpoint.deleted` for each of its endpoints in the same transaction.
    async fn delete_application(&self, id: &AppId) -> Result<()>;
    /// Up to `page.limit + 1` applications in scan order (see [`PageQuery`]); never the
    /// operational application (`OPERATIONAL_APP_UID`), which is reached by its uid only.
    async fn list_applications(&self, page: &PageQuery) -> Result<Vec<Application>>;
}

#[async_trait]
pub trait EventTypeStore {
    /// Creates an event type; `Conflict::EventType` if the name exists (archived or not).
    async fn insert_event_type(&self, event_type: &EventType) -> Result<()>;
    async fn get_event_type(&self, name: &EventTypeName) -> Result<Option<EventType>>;
    async fn update_event_type(&self, event_type: &EventType) -> Result<()>;
    /// Removes the event type for good (DELETE with `expunge=true`).
    async fn delete_event_type(&self, name: &EventTypeName) -> Result<()>;
    /// The event types that have a retry policy, with it (the dispatcher's copy).
    async fn event_type_retry_policies(&self) -> Result<Vec<(EventTypeName, RetryPolicy)>>;
    async fn list_event_types(
        &self,
        page: &PageQuery,
        include_archived: bool,
    ) -> Result<Vec<EventType>>;
}

/// Endpoints. The writes add their operational events to the outbox in their transaction
/// (see [`OperationalEventStore`]), except for the operational application's endpoints.
#[async_trait]
pub trait EndpointStore {
    /// Creates the endpoint; writes `endpoint.created`.
    async fn insert_endpoint(&self, new: NewEndpoint) -> Result<Endpoint>;
    async fn get_endpoint(&self, app: &AppId, key: &EndpointKey) -> Result<Option<Endpoint>>;
    /// Saves every field but `id`, `app_id` and `created_at`; sets `updated_at`. Disabling
    /// an endpoint parks its pending deliveries; enabling it makes them due at once.
    ///
    /// Writes `endpoint.updated`, and `endpoint.disabled` (trigger and reason `manual`) or
    /// `endpoint.enabled` when `disabled` changes: this is the API's write, so a change it
    /// makes is a manual one. Whether it changes is decided by the row as locked in this
    /// transaction, so concurrent updates report one transition, not two.
    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint>;
    /// Deletes the endpoint; writes `endpoint.deleted`.
    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()>;
    /// The application's endpoints; with `health`, only those showing that state (an
    /// endpoint with no attempt recorded is healthy; a disabled one is disabled).
    async fn list_endpoints(
        &self,
        app: &AppId,
        health: Option<HealthState>,
        page: &PageQuery,
    ) -> Result<Vec<Endpoint>>;
    /// The health counters of those of `ids` that have any (an attempt was recorded).
    async fn endpoint_health(
        &self,
        ids: &[EndpointId],
    ) -> Result<HashMap<EndpointId, HealthCounters>>;
}

#[async_trait]
pub trait MessageStore {
    async fn get_message(&self, app: &AppId, key: &MessageKey) -> Result<Option<Message>>;
    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<Message>>;
    /// Removes the payload of a message; its record and delivery log stay.
    async fn expunge_message_content(&self, app: &AppId, id: &MessageId) -> Result<()>;
    /// Removes the payloads of the application's messages named by `keys` (ids or
    /// eventIds), in one transaction; returns the messages it found, as (id, eventId).
    async fn expunge_messages(
        &self,
        app: &AppId,
        keys: &[MessageKey],
    ) -> Result<Vec<(MessageId, Option<EventId>)>>;
    /// One step of purging every payload of an application: up to `limit` messages with
    /// ids after `after`, in id order, in one transaction. See [`PurgeStep`].
    async fn purge_payloads(
        &self,
        app: &AppId,
        after: Option<&MessageId>,
        limit: usize,
    ) -> Result<PurgeStep>;
    /// Cancels a scheduled message (one sent with a `deliverAt`) before any of its
    /// deliveries started: deletes it with its deliveries, as if it had never been sent.
    /// `NotFound`; `Conflict::NotScheduled` for a message without `deliverAt`;
    /// `Conflict::DeliveryStarted` once any delivery was claimed or attempted.
    async fn cancel_scheduled(&self, app: &AppId, id: &MessageId) -> Result<()>;
}

/// The hot path: accepting messages, claiming due deliveries, recording attempts. Each
/// engine has its own, since that is where they differ most (SQLite's batching writer;
/// PostgreSQL's `FOR UPDATE SKIP LOCKED` claims, list locks and batched statements).
#[async_trait]
pub trait QueueStore {
    /// Writes the message and one delivery per endpoint that accepts it, in one durable
    /// transaction: claimed for `new.direct` if it reserves it, pending otherwise.
    /// `Conflict::EventId` if the application already has a message with this `eventId`;
    /// `NotFound` if the application does not exist and no inline application was given.
    async fn enqueue_message(&self, new: NewMessage) -> Result<Enqueued>;
    /// Accepts a batch ingest request's messages in one transaction of their own, one result
    /// per message as `enqueue_message` answers it (none is claimed at once: `direct` is not
    /// used). With `atomic`, if any is refused nothing is written, and the `Ok`s are what
    /// would have been.
    async fn enqueue_batch(
        &self,
        news: Vec<NewMessage>,
        atomic: bool,
    ) -> Result<Vec<Result<Enqueued>>>;
    /// Claims deliveries due at `now` (pending, or sending with an expired lease) of enabled
    /// endpoints, oldest due first, within `limits`, leasing them until `lease`. Committed
    /// before it returns: no transaction stays open while they are sent.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Stores the attempt and moves its delivery on, if the claim still holds its lease.
    /// Durable when it returns; many records share one commit under load.
    async fn record_attempt(&self, record: AttemptRecord) -> Result<()>;
}

/// The delivering nodes that share the store, and their claims (PostgreSQL).
///
/// Each delivering node writes a heartbeat every few seconds; a node whose heartbeat is
/// older than `dead_after` is taken for dead, and the first other node to notice gives its
/// claims back (due at once), so they are attempted again within seconds rather than when
/// their leases expire. A node that was only slow keeps sending what it had claimed, but
/// its records no longer carry the deliveries' leases: its attempts are logged and move
/// nothing (see [`QueueStore::record_attempt`]), so the worst a late heartbeat costs is a
/// delivery made twice, which at-least-once delivery allows.
///
/// A store only one process uses (SQLite) has no peers: it has no node id, and its
/// heartbeat and leave do nothing.
#[async_trait]
pub trait NodeStore {
    /// This node's id in the node table and in the claims it makes (`delivery.claimed_by`);
    /// `None` where there are no other nodes (SQLite).
    fn node_id(&self) -> Option<&str>;
    /// Writes this node's heartbeat (inserting its row if it has none: at its first beat,
    /// or after another node took it for dead), then gives back the claims of every other
    /// node whose heartbeat is older than `beat.dead_after`, removing their rows. Nodes
    /// that beat at once never both give back one node's claims.
    async fn node_heartbeat(&self, beat: &NodeBeat) -> Result<NodeReport>;
    /// At a clean shutdown, once the dispatcher has stopped: gives back whatever this node
    /// still has claimed (due at `now`) and removes its row. Returns the claims given back.
    async fn node_leave(&self, now: Timestamp) -> Result<u64>;
}

/// The delivery queue's management side and the attempt log.
#[async_trait]
pub trait DeliveryStore {
    /// The earliest time after `after` at which a delivery comes due (a retry, or a lease
    /// running out). What is due already is found by `claim_due`.
    async fn next_due(&self, after: Timestamp) -> Result<Option<Timestamp>>;
    /// Gives claimed deliveries back (at shutdown), due at `now`, without an attempt.
    async fn release_claims(&self, claims: &[(i64, Timestamp)], now: Timestamp) -> Result<()>;
    /// Gives a head, due at `now`, to every FIFO line with parked deliveries and none (its
    /// head went away by a path that does not promote, such as its message's deletion);
    /// returns how many lines moved. A safety net run with the retention jobs (`fifo`).
    async fn repair_fifo_lines(&self, now: Timestamp) -> Result<u64>;

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageQuery,
    ) -> Result<Vec<Attempt>>;
    async fn get_attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>>;
    /// Removes the stored response body of an attempt.
    async fn expunge_attempt_content(&self, app: &AppId, id: &AttemptId) -> Result<()>;
    /// The messages delivered (or being delivered) to an endpoint, keyed by message id.
    async fn list_endpoint_messages(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<(Message, DeliveryState)>>;
    /// The endpoints a message is delivered to, keyed by endpoint id.
    async fn list_message_endpoints(
        &self,
        msg: &MessageId,
        page: &PageQuery,
    ) -> Result<Vec<(Endpoint, DeliveryState)>>;
    /// Queues the message for the endpoint again, now, as a manual attempt with a fresh
    /// retry schedule (creating the delivery if the endpoint never had it).
    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<()>;
    /// The endpoint's deliveries of messages created in the range, counted by status.
    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryCounts>;
    /// The endpoint's attempts made in the range, counted by outcome (`success` and `fail`).
    async fn endpoint_attempt_counts(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryCounts>;
    /// The message's deliveries counted by status.
    async fn message_delivery_counts(&self, msg: &MessageId) -> Result<DeliveryCounts>;
}
