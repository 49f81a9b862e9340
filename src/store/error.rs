use thiserror::Error;

/// Why a write conflicts with what is stored (what a unique constraint was protecting, or a
/// state that forbids it), so the API can say it in words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Conflict {
    #[error("the uid is already in use")]
    Uid,
    #[error("an event type with this name already exists")]
    EventType,
    #[error("a message with this eventId already exists for this application")]
    EventId,
    #[error("the message was not sent with a deliverAt: it has no schedule to cancel")]
    NotScheduled,
    #[error("delivery of the message has started: its schedule can no longer be cancelled")]
    DeliveryStarted,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    /// The database could not be reached or refused work (connection lost, pool
    /// exhausted, disk full, I/O error, busy, shutting down): the request may succeed if
    /// retried later. SQLite errors of these kinds from the writer thread's connection stay
    /// [`StoreError::Sqlite`]; [`StoreError::is_unavailable`] knows them.
    #[error("the store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A row that should have parsed did not: a bug or manual tampering.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A credential stored encrypted cannot be read: it is under a main key this node does
    /// not have, or it was altered (see `domain::sealed`). The message names the row, the
    /// column and the key id, never the value.
    #[error("cannot decrypt a stored secret: {0}")]
    Sealed(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// An error of the SQLite connection that the write batches run on (rusqlite, not sqlx).
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
    /// The message's idempotency key ([`super::KeyedWrite`]) is held by another request, or
    /// was answered already: the message was not written.
    #[error("the idempotency key is taken")]
    KeyTaken(super::IdempotencyClaim),
    /// A batched write failed as a whole; every request in the batch gets this.
    #[error("the write batch holding this request failed")]
    BatchFailed(#[source] std::sync::Arc<StoreError>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db) if database_unavailable(db.as_ref()) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// Whether the error says "not now" rather than "never": the store is unreachable, busy,
    /// full or failing, or a write batch rolled back as a whole. Nothing was written, and the
    /// same request may succeed later (the API answers 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::BatchFailed(_) => true,
            StoreError::Sqlite(e) => e
                .sqlite_error()
                .is_some_and(|f| sqlite_unavailable(f.extended_code)),
            StoreError::Conflict(_)
            | StoreError::NotFound
            | StoreError::Corrupt(_)
            | StoreError::Sealed(_)
            | StoreError::KeyTaken(_)
            | StoreError::Database(_) => false,
        }
    }
}

fn database_unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.parse().is_ok_and(sqlite_unavailable)
    } else {
        retryable(&code)
    }
}

/// SQLite result codes (primary code in the low byte of the extended one) that come from the
/// file system or from another connection, not from the statement: SQLITE_BUSY (5),
/// SQLITE_LOCKED (6), SQLITE_NOMEM (7), SQLITE_IOERR (10), SQLITE_FULL (13),
/// SQLITE_CANTOPEN (14, e.g. out of file descriptors), SQLITE_PROTOCOL (15).
fn sqlite_unavailable(extended_code: i32) -> bool {
    matches!(extended_code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
}

/// PostgreSQL error codes (SQLSTATE) that mean "not now" rather than "never": the server is
/// shutting down or was told to end the session, the connection failed, too many clients or
/// a full disk, a serialization failure or deadlock that a retry gets past, or a server that
/// only reads (a standby, until the pool reaches the new primary).
fn retryable(code: &str) -> bool {
    code.starts_with("08") // connection_exception
        || code.starts_with("57P") // admin_shutdown, crash_shutdown, cannot_connect_now
        || code.starts_with("53") // insufficient_resources: too many connections, disk full
        || matches!(code, "40001" | "40P01" | "55P03") // serialization, deadlock, lock timeout
        || code == "25006" // read_only_sql_transaction: connected to a standby, e.g. mid-failover
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Maps a unique-constraint violation to `conflict`, anything else through `From`.
pub(crate) fn unique_as(conflict: Conflict) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(conflict.clone())
        }
        _ => StoreError::from(e),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use sqlx::{ConnectOptions, Executor};

    use super::*;

    async fn connect(path: &std::path::Path) -> SqliteConnection {
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true)
            .busy_timeout(Duration::ZERO)
            .connect()
            .await
            .unwrap()
    }

    /// Runs `sql` on `conn`, which must fail with an error the store calls unavailable.
    async fn assert_unavailable(conn: &mut SqliteConnection, sql: &str) {
        let e = StoreError::from(sqlx::query(sql).execute(conn).await.unwrap_err());
        assert!(matches!(e, StoreError::Unavailable(_)), "{sql}: {e:?}");
    }

    #[tokio::test]
    async fn a_full_sqlite_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(&dir.path().join("db")).await;
        conn.execute("CREATE TABLE t (v BLOB)").await.unwrap();
        // The database may not grow past its current pages: SQLITE_FULL, as on a full disk.
        conn.execute("PRAGMA max_page_count = 2").await.unwrap();
        assert_unavailable(&mut conn, "INSERT INTO t VALUES (zeroblob(100000))").await;
    }

    #[tokio::test]
    async fn a_busy_sqlite_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut holder = connect(&path).await;
        holder.execute("CREATE TABLE t (v)").await.unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let mut other = connect(&path).await;
        assert_unavailable(&mut other, "INSERT INTO t VALUES (1)").await;
    }

    #[tokio::test]
    async fn an_sqlite_file_that_cannot_be_opened_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("db");
        let cannot = SqliteConnectOptions::new()
            .filename(&missing)
            .connect()
            .await
            .unwrap_err();
        let e = StoreError::from(cannot);
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[test]
    fn writer_thread_errors_of_the_file_system_are_unavailable() {
        let failure = |code| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        // SQLITE_BUSY, SQLITE_IOERR_WRITE, SQLITE_IOERR_FSYNC, SQLITE_FULL, SQLITE_CANTOPEN.
        for code in [5, 778, 1034, 13, 14] {
            assert!(failure(code).is_unavailable(), "code {code}");
        }
        // SQLITE_CONSTRAINT, SQLITE_CORRUPT, SQLITE_ERROR: bugs or damage, not "later".
        for code in [19, 11, 1] {
            assert!(!failure(code).is_unavailable(), "code {code}");
        }
    }

    #[test]
    fn postgres_codes_for_not_now_are_retryable() {
        // admin_shutdown, too_many_connections, disk_full, lock_not_available, read-only.
        for code in ["57P01", "53300", "53100", "55P03", "25006", "08006"] {
            assert!(retryable(code), "{code}");
        }
        // unique_violation, syntax_error, undefined_table.
        for code in ["23505", "42601", "42P01"] {
            assert!(!retryable(code), "{code}");
        }
    }
}
