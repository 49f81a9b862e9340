use thiserror::Error;

/// What a unique constraint was protecting, so the API can say it in words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Conflict {
    #[error("the uid is already in use")]
    Uid,
    #[error("an event type with this name already exists")]
    EventType,
    #[error("a message with this eventId already exists for this application")]
    EventId,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(Conflict),
    #[error("not found")]
    NotFound,
    /// The database could not be reached or refused work (connection lost, pool
    /// exhausted, disk full, shutting down): the request may succeed if retried later.
    #[error("the store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A row that should have parsed did not: a bug or manual tampering.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// An error of the SQLite connection that the write batches run on (rusqlite, not sqlx).
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
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
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| retryable(&c)) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// PostgreSQL error codes (SQLSTATE) that mean "not now" rather than "never": the server is
/// shutting down or was told to end the session, the connection failed, too many clients,
/// or a serialization failure or deadlock that a retry gets past.
fn retryable(code: &str) -> bool {
    code.starts_with("08") // connection_exception
        || code.starts_with("57P") // admin_shutdown, crash_shutdown, cannot_connect_now
        || code.starts_with("53") // insufficient_resources: too many connections, disk full
        || matches!(code, "40001" | "40P01" | "55P03") // serialization, deadlock, lock timeout
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
