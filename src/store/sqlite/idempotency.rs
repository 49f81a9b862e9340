//! Idempotency keys on SQLite, inside the writer's batches.
//!
//! Every request that carries an `Idempotency-Key` claims the key before it runs and stores
//! its response after (see `api::idempotency`). The Svix SDKs send a key with every POST, so
//! with SDK clients that is two writes per message besides the message itself. Written
//! through the sqlx write connection, each was a transaction of its own with its own fsync,
//! queued on the one write connection ahead of the batching writer: at 64 concurrent
//! clients, 128 fsyncs in a row before each batch. In the writer's batch they share its
//! commit, and they are answered at commit, without waiting for its fsync (why that is safe
//! is in `writer`).
//!
//! The statements are those of the generic implementation (`queries::admin`), run in arrival
//! order within the batch, so two claims of one key in the same batch see each other: the
//! first holds the key, the second finds it in progress.
//!
//! A new message carries its key with it ([`crate::store::KeyedWrite`], see
//! [`enqueue_keyed`]): claim, message and response are written in the message's own job,
//! one trip to the writer instead of three.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::SqliteStore;
use super::enqueue;
use super::queue::answered;
use super::writer::WriteJob;
use crate::domain::Timestamp;
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::{now, to_micros};
use crate::store::{
    Enqueued, IdempotencyClaim, IdempotencyStore, NewMessage, Result, StoreError, StoredResponse,
};

const INSERT: &str = "INSERT INTO idempotency_key (key, state, started_at) VALUES (?1, 0, ?2) \
     ON CONFLICT (key) DO NOTHING";
const READ: &str = "SELECT state, status, body, started_at FROM idempotency_key WHERE key = ?1";
const TAKE_OVER: &str = "UPDATE idempotency_key SET started_at = ?2 WHERE key = ?1";
const COMPLETE: &str =
    "UPDATE idempotency_key SET state = 1, status = ?2, body = ?3 WHERE key = ?1";
const RELEASE: &str = "DELETE FROM idempotency_key WHERE key = ?1 AND state = 0";

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency_key(
        &self,
        key: &str,
        lock_expired_before: Timestamp,
    ) -> Result<IdempotencyClaim> {
        let (reply, answer) = oneshot::channel();
        let job = KeyJob::Claim {
            key: key.to_owned(),
            now: now(),
            expired_before: lock_expired_before,
            reply,
        };
        self.write(WriteJob::Key(job)).await?;
        answered(answer).await
    }

    async fn complete_idempotency_key(&self, key: &str, response: &StoredResponse) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let job = KeyJob::Complete {
            key: key.to_owned(),
            response: response.clone(),
            reply,
        };
        self.write(WriteJob::Key(job)).await?;
        answered(answer).await
    }

    async fn release_idempotency_key(&self, key: &str) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let job = KeyJob::Release {
            key: key.to_owned(),
            reply,
        };
        self.write(WriteJob::Key(job)).await?;
        answered(answer).await
    }
}

/// What a batch does with one key, and whom it tells.
pub enum KeyJob {
    /// Claims the key for a request about to run; a claim started before `expired_before`
    /// whose request never finished is taken over.
    Claim {
        key: String,
        now: Timestamp,
        expired_before: Timestamp,
        reply: oneshot::Sender<Result<IdempotencyClaim>>,
    },
    /// Stores the response of the request that holds the key.
    Complete {
        key: String,
        response: StoredResponse,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Lets go of a held key without a response, so a retry runs again.
    Release {
        key: String,
        reply: oneshot::Sender<Result<()>>,
    },
}

impl KeyJob {
    /// Tells the caller how the committed job went: `claim` is what [`run`] returned.
    pub(super) fn answer(self, claim: Option<IdempotencyClaim>) {
        match (self, claim) {
            (KeyJob::Claim { reply, .. }, Some(claim)) => {
                let _ = reply.send(Ok(claim));
            }
            // `run` returns an outcome for every claim; without one the key stays as it was,
            // and "in progress" makes the caller ask again.
            (KeyJob::Claim { reply, .. }, None) => {
                let _ = reply.send(Ok(IdempotencyClaim::InProgress));
            }
            (KeyJob::Complete { reply, .. } | KeyJob::Release { reply, .. }, _) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    pub(super) fn fail(self, e: StoreError) {
        match self {
            KeyJob::Claim { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            KeyJob::Complete { reply, .. } | KeyJob::Release { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Writes `news`, each with its idempotency key if it has one ([`KeyedWrite`]), in the
/// batch's transaction: the key is claimed first, and a message whose key is taken is not
/// written; a written message's response is stored for its key, and a refused message's
/// claim is deleted again. Messages without a key are written as [`enqueue::enqueue_all`]
/// writes them, and in their order.
///
/// [`KeyedWrite`]: crate::store::KeyedWrite
pub(super) fn enqueue_keyed(
    conn: &Connection,
    news: &[&NewMessage],
    secrets: &dyn SecretsAtRest,
) -> Result<Vec<Result<Enqueued>>> {
    if news.iter().all(|new| new.key.is_none()) {
        return enqueue::enqueue_all(conn, news, secrets);
    }
    let now = now();
    let mut taken: Vec<Option<StoreError>> = Vec::with_capacity(news.len());
    let mut to_write = Vec::with_capacity(news.len());
    for new in news {
        let claim = match &new.key {
            Some(key) => claim(conn, &key.key, now, key.expired_before)?,
            None => IdempotencyClaim::Claimed,
        };
        match claim {
            IdempotencyClaim::Claimed => {
                taken.push(None);
                to_write.push(*new);
            }
            other => taken.push(Some(StoreError::KeyTaken(other))),
        }
    }
    let mut written = enqueue::enqueue_all(conn, &to_write, secrets)?.into_iter();
    let mut results = Vec::with_capacity(news.len());
    for (new, taken) in news.iter().zip(taken) {
        if let Some(taken) = taken {
            results.push(Err(taken));
            continue;
        }
        let mut result = written
            .next()
            .ok_or_else(|| StoreError::Corrupt("a message of the batch was not written".into()))?;
        if let Some(key) = &new.key {
            match &mut result {
                Ok(enqueued) => {
                    let response = (key.respond)(&enqueued.message);
                    complete(conn, &key.key, &response)?;
                    enqueued.response = Some(response);
                }
                Err(_) => release(conn, &key.key)?,
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// Runs one key job; `Some` for a claim.
pub(super) fn run(conn: &Connection, job: &KeyJob) -> Result<Option<IdempotencyClaim>> {
    match job {
        KeyJob::Claim {
            key,
            now,
            expired_before,
            ..
        } => claim(conn, key, *now, *expired_before).map(Some),
        KeyJob::Complete { key, response, .. } => complete(conn, key, response).map(|()| None),
        KeyJob::Release { key, .. } => release(conn, key).map(|()| None),
    }
}

/// Stores the response of the request holding `key`.
fn complete(conn: &Connection, key: &str, response: &StoredResponse) -> Result<()> {
    conn.prepare_cached(COMPLETE)?.execute(params![
        key,
        i64::from(response.status),
        response.body
    ])?;
    Ok(())
}

/// Lets go of a held key without a response.
fn release(conn: &Connection, key: &str) -> Result<()> {
    conn.prepare_cached(RELEASE)?.execute(params![key])?;
    Ok(())
}

fn claim(
    conn: &Connection,
    key: &str,
    now: Timestamp,
    expired_before: Timestamp,
) -> Result<IdempotencyClaim> {
    let now = to_micros(now);
    if conn.prepare_cached(INSERT)?.execute(params![key, now])? == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    // Only this thread writes, and it is inside the transaction: the row the insert ran into
    // is still there.
    let existing = conn
        .prepare_cached(READ)?
        .query_row(params![key], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<i64>>(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((state, status, body, started_at)) = existing else {
        return Ok(IdempotencyClaim::InProgress);
    };
    if state == 1 {
        return Ok(IdempotencyClaim::Completed(StoredResponse {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
            body: body.unwrap_or_default(),
        }));
    }
    if started_at >= to_micros(expired_before) {
        return Ok(IdempotencyClaim::InProgress);
    }
    // Held by a request that died without finishing: take it over.
    conn.prepare_cached(TAKE_OVER)?.execute(params![key, now])?;
    Ok(IdempotencyClaim::Claimed)
}
