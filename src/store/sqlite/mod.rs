//! The embedded store: one SQLite database file in WAL mode.
//!
//! SQLite allows one writer at a time. The store reads through a pool of read-only
//! connections (WAL readers never block the writer or each other) and writes through two
//! connections that take turns: the hot writes (accepting messages, recording attempts,
//! claiming due deliveries) go through a batching writer that commits many of them per
//! transaction on a thread of its own, with its own `rusqlite` connection (`writer`), so
//! throughput does not pay one fsync per message; management writes go through a sqlx pool
//! of one connection, which the batching writer also holds while it writes a batch, so only
//! one of the two writes at a time. A management commit is durable when it returns
//! (`synchronous = FULL`); a batch is made durable by the writer's sync thread, which fsyncs
//! the WAL before the batch's callers are answered.

mod claims;
mod connection;
mod enqueue;
mod idempotency;
mod queue;
mod records;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::BatchMetrics;
use super::engine::{Engine, EngineConn};
use super::sql::Sql;
use crate::domain::sealed::{Plaintext, SecretsAtRest};

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    writes: mpsc::Sender<writer::WriteJob>,
    /// Tells the batching writer to stop, on `close`.
    stop_writing: CancellationToken,
    /// The batching writer's task, until `close` waits for it.
    batching: Mutex<Option<JoinHandle<()>>>,
    /// Seals and opens endpoint credentials (`domain::sealed`).
    secrets: Arc<dyn SecretsAtRest>,
}

/// Whether opening the database gives back the claims found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsAtOpen {
    /// The process that will deliver: claims still held were left by a previous run that
    /// died, and are given back at once rather than when their leases expire.
    GiveBack,
    /// A command run beside a serving hookd (`hookd rotate-main-key`, `hookd prune`, …):
    /// the claims are that hookd's deliveries in flight, left alone.
    Keep,
}

/// How many writes may wait for the batching writer before callers wait too.
const WRITE_QUEUE: usize = 8192;
/// How long a connection waits for another one's write lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL pages after which a commit checkpoints them into the database file: SQLite's default,
/// 1,000 (4 MiB). A longer WAL (32,768 pages until this was measured) copies the hot pages
/// (the ends of the tables and of each endpoint's index range) less often, but the commit
/// that checkpoints is the writer thread's, and a long WAL makes it long: readers keep the
/// WAL from restarting, so every commit past the threshold checkpoints again, each slower
/// than the last, for seconds. `hookd-bench b --idempotency-keys --pad 256` (1,000 msg/s,
/// three commits per message): ingest max 24–28 ms in a saw-tooth of about four seconds
/// with 32,768 pages, 18 ms with 4,096, 11 ms with 1,000. Throughput did not move:
/// `hookd-bench a` 13,063 and 13,155 delivered/s with 1,000 pages against 13,117 and 12,833,
/// and `hookd-bench c` 15,299 and 14,212 deliveries/s with less CPU (7.6–8.1 s against
/// 8.4–8.8 s; with 32,768 pages both runs fell into the regime where ingest outruns
/// delivery).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1_000;

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite://` URL and migrates it.
    /// Credentials are stored as they are (no main key).
    pub async fn open_url(url: &str, read_connections: u32) -> anyhow::Result<Self> {
        let secrets = Arc::new(Plaintext);
        let (metrics, claims) = (BatchMetrics::noop(), ClaimsAtOpen::GiveBack);
        Self::open_url_measured(url, read_connections, metrics, secrets, claims).await
    }

    /// As [`SqliteStore::open_url`], measuring the batching writer's batches, sealing and
    /// opening credentials with `secrets`, and doing with claims as `claims` says.
    pub async fn open_url_measured(
        url: &str,
        read_connections: u32,
        metrics: BatchMetrics,
        secrets: Arc<dyn SecretsAtRest>,
        claims: ClaimsAtOpen,
    ) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid SQLite database URL {url:?}: {e}"))?;
        if options.get_filename() == Path::new(":memory:") {
            anyhow::bail!(
                "an in-memory SQLite database cannot be shared by hookd's connections; name a file"
            );
        }
        Self::open(options, read_connections, metrics, secrets, claims).await
    }

    /// Opens (creating if needed) the database file at `path` and migrates it.
    /// Credentials are stored as they are (no main key).
    pub async fn open_path(path: &Path, read_connections: u32) -> anyhow::Result<Self> {
        let secrets = Arc::new(Plaintext);
        let (metrics, claims) = (BatchMetrics::noop(), ClaimsAtOpen::GiveBack);
        Self::open_path_measured(path, read_connections, metrics, secrets, claims).await
    }

    /// As [`SqliteStore::open_path`], measuring the batching writer's batches, sealing and
    /// opening credentials with `secrets`, and doing with claims as `claims` says.
    pub async fn open_path_measured(
        path: &Path,
        read_connections: u32,
        metrics: BatchMetrics,
        secrets: Arc<dyn SecretsAtRest>,
        claims: ClaimsAtOpen,
    ) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open(options, read_connections, metrics, secrets, claims).await
    }

    async fn open(
        options: SqliteConnectOptions,
        read_connections: u32,
        metrics: BatchMetrics,
        secrets: Arc<dyn SecretsAtRest>,
        claims: ClaimsAtOpen,
    ) -> anyhow::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory")
            // Every connection that commits must agree, or a management write would
            // checkpoint the whole WAL at 1,000 pages.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The batching writer acquires this connection for every batch (see `writer`):
            // a ping each time would cost it a round trip to sqlx's worker thread, and a
            // connection to a local file does not go stale.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open SQLite database {:?}: {e}",
                    options.get_filename()
                )
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate SQLite database: {e}"))?;
        // The embedded store belongs to one hookd process, so claims still held when the
        // process that delivers opens it were left by a previous run that died: give them
        // back now rather than make them wait for their leases to expire.
        if claims == ClaimsAtOpen::GiveBack {
            let released = sqlx::query(
                "UPDATE delivery SET status = 1, next_attempt_at = $1, lease_until = NULL
                 WHERE status = 3",
            )
            .bind(crate::domain::time::to_micros(crate::domain::time::now()))
            .execute(&writer)
            .await?;
            if released.rows_affected() > 0 {
                tracing::info!(
                    deliveries = released.rows_affected(),
                    "released deliveries claimed by a previous run"
                );
            }
        }
        // Opened once migrations ran: the writer thread's connection expects the schema.
        let conn = connection::open(options.get_filename()).map_err(|e| {
            anyhow::anyhow!(
                "cannot open SQLite database {:?} for the writer: {e}",
                options.get_filename()
            )
        })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let thread = writer::WriterThread::spawn(conn, metrics, secrets.clone())?;
        let (writes, jobs) = mpsc::channel(WRITE_QUEUE);
        let stop_writing = CancellationToken::new();
        let batching = tokio::spawn(writer::run(
            writer.clone(),
            thread,
            jobs,
            stop_writing.clone(),
        ));
        Ok(Self {
            writer,
            reader,
            writes,
            stop_writing,
            batching: Mutex::new(Some(batching)),
            secrets,
        })
    }

    /// Sends a job to the batching writer.
    async fn write(&self, job: writer::WriteJob) -> super::Result<()> {
        self.writes
            .send(job)
            .await
            .map_err(|_| super::StoreError::Unavailable(sqlx::Error::PoolClosed))
    }

    /// Stops the batching writer (a batch being written still commits; queued writes fail
    /// as unavailable) and closes its connection, then both pools, waiting for running
    /// queries; later calls fail as unavailable.
    pub async fn close(&self) {
        self.stop_writing.cancel();
        let batching = self
            .batching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(batching) = batching {
            // It ends once the writer thread has closed its connection.
            let _ = batching.await;
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// What SQLite does its own way for the queries written once (`store::queries`).
#[async_trait]
impl Engine for SqliteStore {
    type Db = sqlx::Sqlite;

    /// WAL readers: they never block the writer or each other.
    fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one write connection, which the batching writer takes turns with.
    fn writes(&self) -> &SqlitePool {
        &self.writer
    }

    fn secrets(&self) -> &dyn SecretsAtRest {
        &*self.secrets
    }

    /// Nothing to take: every write goes through the one write connection, so ids drawn in
    /// a write transaction are committed in the order they were drawn.
    async fn lock_lists(_: &mut EngineConn<Self>, _: &[String]) -> super::Result<()> {
        Ok(())
    }

    /// Nobody else to tell: one process owns the database, and it wakes its own dispatcher.
    async fn notify_due(_: &mut EngineConn<Self>) -> super::Result<()> {
        Ok(())
    }

    /// One process owns the database, and runs each job once.
    async fn try_lock_job(_: &mut EngineConn<Self>, _: &str) -> super::Result<bool> {
        Ok(true)
    }

    /// A write transaction already excludes every other writer.
    const SKIP_LOCKED: &'static str = "";
    const FAILED_STATEMENT_ABORTS: bool = false;
    const FOR_UPDATE: &'static str = "";
    /// Its foreign keys are checked as they were declared.
    const KEY_SHARE: &'static str = "";

    fn push_array_holds(sql: &mut Sql, column: &str, value: &str) {
        sql.push(&format!(
            "EXISTS (SELECT 1 FROM json_each({column}) WHERE value = "
        ))
        .push_bind(value)
        .push(")");
    }
}

/// No peers to watch: one process owns the database, so there is no heartbeat and no node
/// table. A process that dies leaves its claims to their leases, and since it was the only
/// one delivering, they are given back when it starts again (`claim_due` takes expired
/// leases, and a clean stop gives them back at once).
#[async_trait]
impl super::NodeStore for SqliteStore {
    fn node_id(&self) -> Option<&str> {
        None
    }

    /// Nothing to write: this is the only node.
    async fn node_heartbeat(&self, _: &super::NodeBeat) -> super::Result<super::NodeReport> {
        Ok(super::NodeReport {
            live: 1,
            ..super::NodeReport::default()
        })
    }

    /// Nothing to remove; the dispatcher gives back its own claims as it stops.
    async fn node_leave(&self, _: crate::domain::Timestamp) -> super::Result<u64> {
        Ok(0)
    }
}
