//! The scale-out store: one PostgreSQL database shared by any number of hookd nodes.
//!
//! PostgreSQL is both the store and the queue. What the embedded store gets from having one
//! writer, this one gets from the database:
//! - **Claims** lock due deliveries with `FOR UPDATE SKIP LOCKED` and lease them in one
//!   statement (`queue`), so each delivery is attempted by one node at a time, and a dead
//!   node's claims come due again when their leases expire, or sooner, once its heartbeat
//!   goes stale and another node gives them back (`nodes`).
//! - **Id order is commit order**: inserting into a list (applications; an application's
//!   endpoints or messages) takes a transaction-scoped advisory lock for that list and
//!   draws the id after the greatest stored one (`lock_lists`), so keyset pagination visits
//!   every item exactly once on every node, whatever their clocks.
//! - **Group commit**: messages and attempt records are written in batches, one transaction
//!   each (`batch`), so many requests share one commit and one lock acquisition.
//! - **Waking other nodes**: every write that makes deliveries due sends a notification on
//!   [`CHANNEL`] in its transaction (delivered on commit); worker nodes LISTEN for it
//!   (`listener`).
//!
//! Connection loss, a full pool (after [`PoolSettings::acquire_timeout`]) and a server
//! shutting down surface as [`StoreError::Unavailable`], which the API answers with 503.

mod batch;
mod idempotency;
mod ingest;
mod listener;
mod nodes;
mod queue;
mod records;
mod sql;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::domain::Timestamp;
use crate::domain::sealed::{Plaintext, SecretsAtRest};
use crate::store::engine::{Engine, EngineConn};
use crate::store::sql::Sql;
use crate::store::{
    AttemptRecord, BatchMetrics, Enqueued, IdempotencyClaim, NewMessage, StoreError, StoreMetrics,
};
use batch::{Batcher, Target};
use writer::WriterThread;

pub use ingest::LOCK_AND_READ_LAST_IDS;
pub use listener::listen_for_deliveries;
pub use queue::{LOOK_PAST, LOOK_PAST_PAUSE};
pub use records::RECORD;
pub use writer::PLANNER;

/// The channel that tells worker nodes deliveries may have become due.
pub const CHANNEL: &str = "hookd_deliveries";

/// How long a statement waits for a lock (a list lock, a row) before failing as unavailable.
const LOCK_TIMEOUT: &str = "10s";
/// How long the server lets a hookd session sit idle inside a transaction. hookd never does
/// (no transaction spans anything but its own statements), so only a node that stopped
/// answering mid-transaction hits it, and its locks are then released.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

/// A pooled connection idle for longer than this is pinged before it is handed out (see
/// [`PgStore::connect`]).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The most messages (or attempt records) one transaction writes.
const MAX_BATCH: usize = 256;

/// How the connection pool is sized.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// The most connections this node opens (at least 3): the writer thread's (`writer`),
    /// and the rest, one of which listens for notifications.
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails as unavailable.
    pub acquire_timeout: Duration,
}

pub struct PgStore {
    /// Requests, claims and the LISTEN connection.
    pool: PgPool,
    /// The batches' connections, opened on the writer thread.
    writer_pool: PgPool,
    /// This node's id in the node table and in its claims (`delivery.claimed_by`): one per
    /// connected store, drawn at random when it connects.
    node: Arc<str>,
    /// Whether this node's heartbeat has been written before.
    joined: AtomicBool,
    /// When (microseconds) this node's claims may next look past the head of the due
    /// queue: a look that found nothing pauses them (`queue::LOOK_PAST_PAUSE`).
    look_past_from: AtomicI64,
    ingest: Batcher<NewMessage, Enqueued>,
    records: Batcher<AttemptRecord, ()>,
    /// Idempotency keys' claims and stored responses, each batched (`idempotency`).
    key_claims: Batcher<idempotency::KeyClaim, IdempotencyClaim>,
    key_completions: Batcher<idempotency::KeyCompletion, ()>,
    /// Seals and opens endpoint credentials (`domain::sealed`).
    secrets: Arc<dyn SecretsAtRest>,
    /// Runs the batchers; declared last, so that it stops after they are dropped.
    writer: WriterThread,
}

impl PgStore {
    /// Connects to the database named by a `postgres://` URL and migrates it. Several nodes
    /// may start at once: migrations run under the migrator's own advisory lock.
    /// Credentials are stored as they are (no main key).
    pub async fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<Self> {
        Self::connect_measured(url, settings, StoreMetrics::noop(), Arc::new(Plaintext)).await
    }

    /// As [`PgStore::connect`], measuring the message and attempt-record writers' batches,
    /// and sealing and opening credentials with `secrets`.
    pub async fn connect_measured(
        url: &str,
        settings: PoolSettings,
        metrics: StoreMetrics,
        secrets: Arc<dyn SecretsAtRest>,
    ) -> anyhow::Result<Self> {
        let redacted = crate::config::redact_url(url);
        let cannot_connect =
            |e| anyhow::anyhow!("cannot connect to PostgreSQL at {redacted:?}: {e}");
        let base = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL {redacted:?}: {e}"))?
            .application_name("hookd")
            // PostgreSQL's NOTICEs ("relation already exists, skipping" at every start) are
            // not worth an operator's attention.
            .options([("client_min_messages", "warning")]);
        // Migrations get a connection of their own, without the lock timeout: a node that
        // starts while another runs a long migration waits for it.
        let mut migrating = PgConnection::connect_with(&base)
            .await
            .map_err(cannot_connect)?;
        sqlx::migrate!("migrations/postgres")
            .run(&mut migrating)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate the PostgreSQL database: {e}"))?;
        warn_without_autovacuum(&mut migrating).await;
        migrating.close().await.map_err(cannot_connect)?;
        // A lock held by a node that vanished without closing its connection (a network
        // partition) fails requests waiting for it with 503 rather than hanging them, and the
        // server ends such a session's transaction.
        let options = base.options([
            ("lock_timeout", LOCK_TIMEOUT),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
        ]);
        let (writers, rest) = writer::split(settings.max_connections);
        let pool = pool_options(settings.min_connections.min(rest), rest, &settings)
            .connect_with(options.clone())
            .await
            .map_err(cannot_connect)?;
        let writer = WriterThread::start().await?;
        let min = settings.min_connections.min(writers);
        let writer_pool = writer
            .run(async move {
                pool_options(min, writers, &settings)
                    .connect_with(options.options(writer::PLANNER))
                    .await
            })
            .await?
            .map_err(cannot_connect)?;
        let node: Arc<str> = format!("node_{:016x}", rand::random::<u64>()).into();
        let target = || Target {
            pool: writer_pool.clone(),
            node: node.clone(),
            secrets: secrets.clone(),
        };
        Ok(Self {
            ingest: Batcher::spawn(
                writer.handle(),
                target(),
                ingest::write,
                MAX_BATCH,
                metrics.pg_ingest,
            ),
            records: Batcher::spawn(
                writer.handle(),
                target(),
                records::write,
                MAX_BATCH,
                metrics.pg_records,
            ),
            key_claims: Batcher::spawn(
                writer.handle(),
                target(),
                idempotency::claim,
                MAX_BATCH,
                BatchMetrics::noop(),
            ),
            key_completions: Batcher::spawn(
                writer.handle(),
                target(),
                idempotency::complete,
                MAX_BATCH,
                BatchMetrics::noop(),
            ),
            pool,
            writer_pool,
            node,
            joined: AtomicBool::new(false),
            look_past_from: AtomicI64::new(i64::MIN),
            secrets,
            writer,
        })
    }

    /// The connection pool, for the LISTEN task.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for running queries; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
        let writer_pool = self.writer_pool.clone();
        // On its own thread, whose runtime drives its connections.
        let _ = self
            .writer
            .run(async move { writer_pool.close().await })
            .await;
    }
}

/// A pool of at most `max` connections, `min` kept open.
fn pool_options(min: u32, max: u32, settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .min_connections(min)
        .max_connections(max)
        .acquire_timeout(settings.acquire_timeout)
        // A connection that sat idle may have been cut (a server restart, a proxy's
        // timeout): ping it first, and open another if it does not answer. One in
        // constant use is not pinged: under load that is a round trip more for every
        // batch (6 % of the message writer's time in `(a)`), and a connection lost
        // mid-use fails its statement either way.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(
                async move { Ok(meta.idle_for < PING_AFTER_IDLE || conn.ping().await.is_ok()) },
            )
        })
}

/// What PostgreSQL does its own way for the queries written once (`store::queries`).
#[async_trait]
impl Engine for PgStore {
    type Db = sqlx::Postgres;

    fn reads(&self) -> &PgPool {
        &self.pool
    }

    fn writes(&self) -> &PgPool {
        &self.pool
    }

    fn secrets(&self) -> &dyn SecretsAtRest {
        &*self.secrets
    }

    /// Transaction-scoped advisory locks, one per list, shared by every node.
    async fn lock_lists(conn: &mut EngineConn<Self>, lists: &[String]) -> crate::store::Result<()> {
        lock_lists(conn, lists).await
    }

    /// `NOTIFY` on [`CHANNEL`], which worker nodes LISTEN to.
    async fn notify_due(conn: &mut EngineConn<Self>) -> crate::store::Result<()> {
        notify_due(conn).await
    }

    /// A transaction-scoped advisory lock, not waited for: the node that does not get it
    /// leaves the batch to the one that did.
    async fn try_lock_job(conn: &mut EngineConn<Self>, job: &str) -> crate::store::Result<bool> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(job_lock_key(job))
            .fetch_one(conn)
            .await?;
        Ok(locked)
    }

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const FAILED_STATEMENT_ABORTS: bool = true;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const KEY_SHARE: &'static str = " FOR KEY SHARE";

    fn push_array_holds(sql: &mut Sql, column: &str, value: &str) {
        sql.push(&format!("({column}::jsonb) ? ")).push_bind(value);
    }
}

/// Takes the transaction-scoped locks that order inserts into these lists (e.g.
/// `message:<app>`) across every node, in one round trip, in the order of their keys, so
/// that transactions locking overlapping sets never deadlock. Held until the transaction
/// ends, so ids drawn under them after the greatest stored one commit in id order.
async fn lock_lists(conn: &mut PgConnection, lists: &[String]) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = lists.iter().map(|l| list_lock_key(l)).collect();
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k.key)
         FROM unnest($1::int8[]) WITH ORDINALITY AS k(key, n) ORDER BY k.n",
    )
    .bind(&keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// The advisory lock key of a list: 64 bits of its name's SHA-256 (a collision would only
/// make two lists share a lock).
/// The advisory lock key a batch of the job `job` (`payload-expiry`, `prune-messages`) holds
/// while it runs: a SQL job of one's own that takes it (`pg_advisory_xact_lock`) takes
/// turns with hookd's nodes.
pub fn job_lock_key(job: &str) -> i64 {
    list_lock_key(&format!("job:{job}"))
}

fn list_lock_key(list: &str) -> i64 {
    let digest = Sha256::digest(list.as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

/// Tells listening nodes that deliveries may be due; sent when the transaction commits.
async fn notify_due(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

fn micros(t: Timestamp) -> i64 {
    crate::domain::time::to_micros(t)
}

/// The queue relies on autovacuum: every claim and record of a delivery leaves a dead entry
/// in the due-deliveries indexes, which only a vacuum removes, and a claim walks over the
/// entries of every delivery made since the last one. Without it a backlog of one endpoint
/// drains at tens of deliveries a second after a few hundred thousand (`hookd-bench h`,
/// docs/performance.md). Nothing fails, so the operator is told once at start.
async fn warn_without_autovacuum(conn: &mut PgConnection) {
    let setting: Result<String, _> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&mut *conn)
        .await;
    if matches!(setting.as_deref(), Ok("off")) {
        tracing::warn!(
            "autovacuum is off on this PostgreSQL server: deliveries will be claimed more and \
             more slowly as they are made; turn it on (the default), or VACUUM the delivery \
             table often"
        );
    }
}
