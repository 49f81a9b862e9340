//! Group commit for the two hot writes: accepting messages and recording attempts.
//!
//! Both queue here; one task takes everything that is waiting (up to [`MAX_BATCH`]),
//! writes it in one transaction with a savepoint per job, and commits once. While that
//! commit's fsync runs, new jobs queue up and form the next batch, so under load many
//! messages share one fsync, and a lone message is written at once. A job that fails
//! (duplicate `eventId`, unknown application) rolls back to its savepoint without affecting
//! the rest of the batch. Callers are answered only after the commit.

use std::sync::Arc;

use sqlx::{Acquire, QueryBuilder, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::domain::time::{now, to_micros};
use crate::domain::{AppId, Message, MessageId, ResourceKey};
use crate::store::error::unique_as;
use crate::store::rows;
use crate::store::{AttemptRecord, Conflict, InlineApplication, NewMessage, Result, StoreError};

/// The most messages one transaction holds.
const MAX_BATCH: usize = 512;

pub enum WriteJob {
    Enqueue {
        new: NewMessage,
        reply: oneshot::Sender<Result<Message>>,
    },
    Record {
        record: AttemptRecord,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What a job produced, until the commit decides whether the caller gets it.
enum Done {
    Enqueued(Result<Message>),
    Recorded(Result<()>),
}

impl WriteJob {
    fn answer(self, done: Done) {
        // A caller that went away (client disconnected) does not undo the write.
        match (self, done) {
            (WriteJob::Enqueue { reply, .. }, Done::Enqueued(r)) => {
                let _ = reply.send(r);
            }
            (WriteJob::Record { reply, .. }, Done::Recorded(r)) => {
                let _ = reply.send(r);
            }
            (job, _) => job.fail(StoreError::Corrupt(
                "write job answered out of order".into(),
            )),
        }
    }

    fn fail(self, e: StoreError) {
        match self {
            WriteJob::Enqueue { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            WriteJob::Record { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Runs until every sender is dropped.
pub async fn run(pool: SqlitePool, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write_batch(&pool, &batch).await {
            Ok(results) => {
                for (job, done) in batch.drain(..).zip(results) {
                    job.answer(done);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = batch.len(), "write batch failed to commit");
                let shared = Arc::new(e);
                for job in batch.drain(..) {
                    job.fail(StoreError::BatchFailed(shared.clone()));
                }
            }
        }
    }
}

async fn write_batch(pool: &SqlitePool, batch: &[WriteJob]) -> Result<Vec<Done>> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let mut savepoint = tx.begin().await?;
        let (ok, done) = match job {
            WriteJob::Enqueue { new, .. } => {
                let r = insert_message(&mut savepoint, new).await;
                (r.is_ok(), Done::Enqueued(r))
            }
            WriteJob::Record { record, .. } => {
                let r = super::deliveries::apply_record(&mut savepoint, record).await;
                (r.is_ok(), Done::Recorded(r))
            }
        };
        if ok {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        results.push(done);
    }
    tx.commit().await?;
    Ok(results)
}

async fn insert_message(conn: &mut SqliteConnection, new: &NewMessage) -> Result<Message> {
    let app_id = resolve_app(conn, new).await?;
    let message = Message {
        id: MessageId::generate(),
        app_id,
        event_type: new.event_type.clone(),
        event_id: new.event_id.clone(),
        channels: new.channels.clone(),
        payload: Some(new.payload.clone()),
        created_at: now(),
    };
    let created = to_micros(message.created_at);
    sqlx::query(
        "INSERT INTO message (id, app_id, event_type, event_id, channels, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(message.id.as_str())
    .bind(message.app_id.as_str())
    .bind(message.event_type.as_str())
    .bind(message.event_id.as_ref().map(|e| e.as_str()))
    .bind(rows::opt_to_json(message.channels.as_ref()))
    .bind(new.payload.as_str())
    .bind(created)
    .execute(&mut *conn)
    .await
    .map_err(unique_as(Conflict::EventId))?;

    let endpoints = sqlx::query(
        "SELECT id, event_types, channels FROM endpoint WHERE app_id = $1 AND disabled = 0",
    )
    .bind(message.app_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut matching = Vec::with_capacity(endpoints.len());
    for row in &endpoints {
        let id: String = sqlx::Row::try_get(row, "id")?;
        let wanted = match &new.only_endpoint {
            Some(only) => only.as_str() == id,
            None => {
                rows::subscription(row)?.accepts(&message.event_type, message.channels.as_deref())
            }
        };
        if wanted {
            matching.push(id);
        }
    }
    if !matching.is_empty() {
        let mut qb = QueryBuilder::new(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, next_attempt_at, \
             created_at, updated_at) ",
        );
        qb.push_values(&matching, |mut b, endpoint_id| {
            b.push_bind(message.id.as_str())
                .push_bind(endpoint_id.as_str())
                .push_bind(message.app_id.as_str())
                .push_bind(1_i64)
                .push_bind(created)
                .push_bind(created)
                .push_bind(created);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(message)
}

/// The id of the message's application, creating it first when the path names an unknown
/// uid and the request carried an inline application.
async fn resolve_app(conn: &mut SqliteConnection, new: &NewMessage) -> Result<AppId> {
    let (column, value) = match &new.app {
        ResourceKey::Id(id) => ("id", id.as_str()),
        ResourceKey::Uid(uid) => ("uid", uid.as_str()),
    };
    let sql = format!("SELECT id FROM application WHERE {column} = $1");
    let found: Option<String> = sqlx::query_scalar(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    match (found, &new.app, &new.create_app) {
        (Some(id), _, _) => Ok(AppId::from_stored(id)),
        (None, ResourceKey::Uid(uid), Some(inline)) => {
            create_inline_app(conn, uid.as_str(), inline).await
        }
        (None, _, _) => Err(StoreError::NotFound),
    }
}

async fn create_inline_app(
    conn: &mut SqliteConnection,
    uid: &str,
    app: &InlineApplication,
) -> Result<AppId> {
    let id = AppId::generate();
    let now = to_micros(now());
    sqlx::query(
        "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.as_str())
    .bind(uid)
    .bind(&app.name)
    .bind(app.rate_limit.map(i64::from))
    .bind(rows::to_json(&app.metadata))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(unique_as(Conflict::Uid))?;
    Ok(id)
}
