//! The embedded store: one SQLite database file in WAL mode.
//!
//! SQLite allows one writer at a time, so the store keeps exactly one write connection and a
//! pool of read-only connections (WAL readers never block the writer or each other). Every
//! write goes through the write connection; message ingestion goes through a batching task
//! that commits many messages per transaction (`writer`), so throughput does not pay one
//! fsync per message. `synchronous = FULL` makes each commit durable before it returns.

mod admin;
mod applications;
mod attempts;
mod claims;
mod deliveries;
mod endpoints;
mod event_types;
mod messages;
mod records;
mod sql;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    writes: mpsc::Sender<writer::WriteJob>,
}

/// How many writes may wait for the batching writer before callers wait too.
const WRITE_QUEUE: usize = 8192;

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite://` URL and migrates it.
    pub async fn open_url(url: &str, read_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid SQLite database URL {url:?}: {e}"))?;
        if options.get_filename() == Path::new(":memory:") {
            anyhow::bail!(
                "an in-memory SQLite database cannot be shared by hookd's connections; name a file"
            );
        }
        Self::open(options, read_connections).await
    }

    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open_path(path: &Path, read_connections: u32) -> anyhow::Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path), read_connections).await
    }

    async fn open(options: SqliteConnectOptions, read_connections: u32) -> anyhow::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
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
        // The embedded store belongs to one hookd process, so claims still held when it
        // opens were left by a previous run that died: give them back now rather than make
        // them wait for their leases to expire.
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
        let reader = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let (writes, jobs) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer::run(writer.clone(), jobs));
        Ok(Self {
            writer,
            reader,
            writes,
        })
    }

    /// Sends a job to the batching writer.
    async fn write(&self, job: writer::WriteJob) -> super::Result<()> {
        self.writes
            .send(job)
            .await
            .map_err(|_| super::StoreError::Unavailable(sqlx::Error::PoolClosed))
    }

    /// Closes both pools, waiting for running queries; later calls fail as unavailable.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
