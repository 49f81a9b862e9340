//! Group commit for the hot writes: accepting messages, recording attempts, claiming due
//! deliveries.
//!
//! All three queue here; one task takes everything that is waiting (up to [`MAX_BATCH`])
//! and writes it in one transaction, with a constant number of set-based statements per kind
//! of job (multi-row inserts, `UPDATE … FROM (VALUES …)`), whatever the batch size; then it
//! commits once. While that commit's fsync runs, new jobs queue up and form the next batch:
//! under load many messages share one fsync and one round trip per statement, and a lone
//! message is written at once. Callers are answered only after the commit.
//!
//! Expected failures of a single job (a repeated `eventId`, an unknown application) are
//! detected without failing a statement (`ON CONFLICT DO NOTHING … RETURNING`), so they never
//! affect the rest of the batch. An unexpected database error fails the whole batch, and
//! every caller in it gets [`StoreError::BatchFailed`].

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{claims, records};
use crate::domain::Timestamp;
use crate::domain::time::{now, to_micros};
use crate::domain::{AppId, EndpointId, Message, MessageId, ResourceKey, Subscription};
use crate::store::error::unique_as;
use crate::store::rows;
use crate::store::{
    AttemptRecord, ClaimLimits, ClaimedDelivery, Conflict, NewMessage, Result, StoreError,
};

/// The most jobs one transaction holds.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement, within SQLite's limit of 32766 bound parameters.
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

pub enum WriteJob {
    Enqueue {
        new: NewMessage,
        reply: oneshot::Sender<Result<Message>>,
    },
    Record {
        record: AttemptRecord,
        reply: oneshot::Sender<Result<()>>,
    },
    Claim {
        now: Timestamp,
        lease: Timestamp,
        limits: ClaimLimits,
        reply: oneshot::Sender<Result<Vec<ClaimedDelivery>>>,
    },
}

/// Runs until every sender is dropped.
pub async fn run(pool: SqlitePool, mut jobs: mpsc::Receiver<WriteJob>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if let Err((e, jobs)) = write_batch(&pool, jobs).await {
            tracing::error!(error = %e, jobs = jobs.len(), "write batch failed to commit");
            let shared = Arc::new(e);
            for job in jobs {
                let err = StoreError::BatchFailed(shared.clone());
                // A caller that went away does not need the answer.
                let _ = match job {
                    WriteJob::Enqueue { reply, .. } => reply.send(Err(err)).map_err(drop),
                    WriteJob::Record { reply, .. } => reply.send(Err(err)).map_err(drop),
                    WriteJob::Claim { reply, .. } => reply.send(Err(err)).map_err(drop),
                };
            }
        }
    }
}

/// Writes and commits the batch, then answers every job. On failure, hands the jobs back
/// unanswered.
async fn write_batch(
    pool: &SqlitePool,
    jobs: Vec<WriteJob>,
) -> std::result::Result<(), (StoreError, Vec<WriteJob>)> {
    let mut enqueues = Vec::new();
    let mut records = Vec::new();
    let mut claim_jobs = Vec::new();
    for job in jobs {
        match job {
            WriteJob::Enqueue { new, reply } => enqueues.push((new, reply)),
            WriteJob::Record { record, reply } => records.push((record, reply)),
            WriteJob::Claim {
                now,
                lease,
                limits,
                reply,
            } => claim_jobs.push((now, lease, limits, reply)),
        }
    }
    let outcome = async {
        let mut tx = pool.begin().await?;
        let news: Vec<&NewMessage> = enqueues.iter().map(|(n, _)| n).collect();
        let enqueued = enqueue_all(&mut tx, &news).await?;
        let recs: Vec<&AttemptRecord> = records.iter().map(|(r, _)| r).collect();
        records::record_all(&mut tx, &recs).await?;
        // Claims come last, so messages accepted in this batch can be claimed by it.
        let mut claimed = Vec::with_capacity(claim_jobs.len());
        for (now, lease, limits, _) in &claim_jobs {
            claimed.push(claims::claim(&mut tx, *now, *lease, limits).await?);
        }
        tx.commit().await?;
        Ok::<_, StoreError>((enqueued, claimed))
    }
    .await;
    match outcome {
        Ok((enqueued, claimed)) => {
            for ((_, reply), result) in enqueues.into_iter().zip(enqueued) {
                let _ = reply.send(result);
            }
            for (_, reply) in records {
                let _ = reply.send(Ok(()));
            }
            for ((.., reply), result) in claim_jobs.into_iter().zip(claimed) {
                let _ = reply.send(Ok(result));
            }
            Ok(())
        }
        Err(e) => {
            let mut back = Vec::new();
            back.extend(
                enqueues
                    .into_iter()
                    .map(|(new, reply)| WriteJob::Enqueue { new, reply }),
            );
            back.extend(
                records
                    .into_iter()
                    .map(|(record, reply)| WriteJob::Record { record, reply }),
            );
            back.extend(claim_jobs.into_iter().map(|(now, lease, limits, reply)| {
                WriteJob::Claim {
                    now,
                    lease,
                    limits,
                    reply,
                }
            }));
            Err((e, back))
        }
    }
}

/// Accepts every message it can: resolves applications (creating inline ones), inserts the
/// messages, and one delivery per accepting endpoint. Per message: the stored message, or why
/// it was refused.
async fn enqueue_all(
    conn: &mut SqliteConnection,
    news: &[&NewMessage],
) -> Result<Vec<Result<Message>>> {
    if news.is_empty() {
        return Ok(Vec::new());
    }
    let mut apps = resolve_apps(conn, news).await?;
    let mut results: Vec<Result<Message>> = Vec::with_capacity(news.len());
    for new in news {
        let app_id = match app_for(conn, &mut apps, new).await {
            Ok(id) => id,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        // Made here, in batch order while holding the write lock: id order is commit order.
        results.push(Ok(Message {
            id: MessageId::generate(),
            app_id,
            event_type: new.event_type.clone(),
            event_id: new.event_id.clone(),
            channels: new.channels.clone(),
            payload: Some(new.payload.clone()),
            created_at: now(),
        }));
    }
    let candidates: Vec<&Message> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let inserted = insert_messages(conn, &candidates).await?;
    for result in &mut results {
        if let Ok(m) = result {
            if !inserted.contains(m.id.as_str()) {
                *result = Err(StoreError::Conflict(Conflict::EventId));
            }
        }
    }
    let accepted: Vec<(&Message, Option<&EndpointId>)> = results
        .iter()
        .zip(news)
        .filter_map(|(r, new)| r.as_ref().ok().map(|m| (m, new.only_endpoint.as_ref())))
        .collect();
    insert_deliveries(conn, &accepted).await?;
    Ok(results)
}

/// Application ids by id and by uid, for every application the batch names.
async fn resolve_apps(
    conn: &mut SqliteConnection,
    news: &[&NewMessage],
) -> Result<HashMap<String, AppId>> {
    let (mut ids, mut uids) = (Vec::new(), Vec::new());
    for new in news {
        match &new.app {
            ResourceKey::Id(id) => ids.push(id.as_str()),
            ResourceKey::Uid(uid) => uids.push(uid.as_str()),
        }
    }
    let found = sqlx::query(
        "SELECT id, uid FROM application
         WHERE id IN (SELECT value FROM json_each($1)) OR uid IN (SELECT value FROM json_each($2))",
    )
    .bind(rows::to_json(&ids))
    .bind(rows::to_json(&uids))
    .fetch_all(&mut *conn)
    .await?;
    let mut apps = HashMap::new();
    for row in &found {
        let id = AppId::from_stored(row.try_get("id")?);
        if let Some(uid) = row.try_get::<Option<String>, _>("uid")? {
            apps.insert(format!("uid:{uid}"), id.clone());
        }
        apps.insert(format!("id:{id}"), id);
    }
    Ok(apps)
}

/// The message's application: found, or created from its inline definition (once per
/// batch, however many messages name it).
async fn app_for(
    conn: &mut SqliteConnection,
    apps: &mut HashMap<String, AppId>,
    new: &NewMessage,
) -> Result<AppId> {
    let key = match &new.app {
        ResourceKey::Id(id) => format!("id:{id}"),
        ResourceKey::Uid(uid) => format!("uid:{uid}"),
    };
    if let Some(id) = apps.get(&key) {
        return Ok(id.clone());
    }
    let (ResourceKey::Uid(uid), Some(inline)) = (&new.app, &new.create_app) else {
        return Err(StoreError::NotFound);
    };
    let id = AppId::generate();
    let created = to_micros(now());
    sqlx::query(
        "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id.as_str())
    .bind(uid.as_str())
    .bind(&inline.name)
    .bind(inline.rate_limit.map(i64::from))
    .bind(rows::to_json(&inline.metadata))
    .bind(created)
    .execute(&mut *conn)
    .await
    .map_err(unique_as(Conflict::Uid))?;
    apps.insert(key, id.clone());
    Ok(id)
}

/// Inserts the messages; returns the ids actually inserted (a repeated `eventId` is not).
async fn insert_messages(
    conn: &mut SqliteConnection,
    messages: &[&Message],
) -> Result<std::collections::HashSet<String>> {
    let mut inserted = std::collections::HashSet::with_capacity(messages.len());
    for chunk in messages.chunks(ROWS_PER_STATEMENT / 7) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO message (id, app_id, event_type, event_id, channels, payload, created_at) ",
        );
        qb.push_values(chunk, |mut b, m| {
            b.push_bind(m.id.as_str())
                .push_bind(m.app_id.as_str())
                .push_bind(m.event_type.as_str())
                .push_bind(m.event_id.as_ref().map(|e| e.as_str()))
                .push_bind(rows::opt_to_json(m.channels.as_ref()))
                .push_bind(m.payload.as_ref().map(|p| p.as_str()))
                .push_bind(to_micros(m.created_at));
        });
        qb.push(" ON CONFLICT DO NOTHING RETURNING id");
        let ids = qb.build().fetch_all(&mut *conn).await?;
        for row in &ids {
            inserted.insert(row.try_get::<String, _>("id")?);
        }
    }
    Ok(inserted)
}

/// One pending delivery per (message, endpoint that accepts it).
async fn insert_deliveries(
    conn: &mut SqliteConnection,
    messages: &[(&Message, Option<&EndpointId>)],
) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut app_ids: Vec<&str> = messages.iter().map(|(m, _)| m.app_id.as_str()).collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let endpoints = sqlx::query(
        "SELECT id, app_id, event_types, channels FROM endpoint
         WHERE NOT disabled AND app_id IN (SELECT value FROM json_each($1))",
    )
    .bind(rows::to_json(&app_ids))
    .fetch_all(&mut *conn)
    .await?;
    let mut by_app: HashMap<String, Vec<(String, Subscription)>> = HashMap::new();
    for row in &endpoints {
        by_app
            .entry(row.try_get("app_id")?)
            .or_default()
            .push((row.try_get("id")?, rows::subscription(row)?));
    }
    let mut deliveries: Vec<(&Message, &str)> = Vec::new();
    for (message, only) in messages {
        for (endpoint_id, subscription) in by_app.get(message.app_id.as_str()).into_iter().flatten()
        {
            let wanted = match only {
                Some(only) => only.as_str() == endpoint_id,
                None => subscription.accepts(&message.event_type, message.channels.as_deref()),
            };
            if wanted {
                deliveries.push((message, endpoint_id));
            }
        }
    }
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT / 6) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, next_attempt_at, \
             created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, (message, endpoint_id)| {
            let created = to_micros(message.created_at);
            b.push_bind(message.id.as_str())
                .push_bind(*endpoint_id)
                .push_bind(message.app_id.as_str())
                .push("1")
                .push_bind(created)
                .push_bind(created)
                .push_bind(created);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}
