//! Accepting messages on PostgreSQL: a batch of messages and their deliveries in one
//! transaction (see [`super::batch`]).
//!
//! The steps, each one statement for the whole batch where it can be:
//! 1. resolve the applications the messages name; create the inline applications of unknown
//!    uids (under the `application` list lock, re-checking after taking it);
//! 2. lock each application's message list (all in one statement, in lock-key order, so
//!    batches on different nodes never deadlock) and draw message ids after the greatest
//!    stored one;
//! 3. insert the messages, `ON CONFLICT DO NOTHING` on `(app_id, event_id)`: a message that
//!    was not inserted is a duplicate `eventId`, answered 409 without failing the batch;
//! 4. insert one delivery per enabled endpoint that accepts each message: claimed if the
//!    message's [`crate::store::DirectClaims`] reserves it (and returned, to send at once),
//!    pending otherwise, and then notify the worker nodes.

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool, Row};

use super::{CHANNEL, lock_list, lock_lists, micros};
use crate::domain::time::now;
use crate::domain::{AppId, Endpoint, Message, MessageId, ResourceKey, Timestamp, Trigger};
use crate::store::rows::{self, ENDPOINT_COLUMNS, to_json};
use crate::store::{ClaimedDelivery, Conflict, Enqueued, NewMessage, Result, StoreError};

pub fn write<'a>(
    pool: &'a PgPool,
    batch: &'a [NewMessage],
) -> BoxFuture<'a, Result<Vec<Result<Enqueued>>>> {
    Box::pin(write_batch(pool, batch))
}

async fn write_batch(pool: &PgPool, batch: &[NewMessage]) -> Result<Vec<Result<Enqueued>>> {
    let mut tx = pool.begin().await?;
    let apps = resolve_apps(&mut tx, batch).await?;
    let mut app_ids: Vec<String> = apps
        .iter()
        .flatten()
        .map(|a| a.as_str().to_owned())
        .collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let lists: Vec<String> = app_ids.iter().map(|id| format!("message:{id}")).collect();
    lock_lists(&mut tx, &lists).await?;
    let mut last = last_message_ids(&mut tx, &app_ids).await?;

    let created = now();
    let mut messages = Vec::with_capacity(batch.len());
    for (new, app) in batch.iter().zip(apps) {
        messages.push(app.map(|app_id| {
            let id = MessageId::generate_after(last.get(app_id.as_str()).map(String::as_str));
            last.insert(app_id.as_str().to_owned(), id.as_str().to_owned());
            Message {
                id,
                app_id,
                event_type: new.event_type.clone(),
                event_id: new.event_id.clone(),
                channels: new.channels.clone(),
                payload: Some(new.payload.clone()),
                created_at: created,
            }
        }));
    }
    let inserted = insert_messages(&mut tx, &messages).await?;
    let results: Vec<Result<Message>> = messages
        .into_iter()
        .map(|m| match m {
            Ok(m) if inserted.contains(m.id.as_str()) => Ok(m),
            Ok(_) => Err(StoreError::Conflict(Conflict::EventId)),
            Err(e) => Err(e),
        })
        .collect();
    let mut deliveries = insert_deliveries(&mut tx, batch, &results).await?;
    tx.commit().await?;
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let (claimed, pending) = deliveries.remove(&i).unwrap_or_default();
            message.map(|message| Enqueued {
                message,
                claimed,
                pending,
            })
        })
        .collect())
}

/// The application of each message, creating inline applications for unknown uids.
async fn resolve_apps(conn: &mut PgConnection, batch: &[NewMessage]) -> Result<Vec<Result<AppId>>> {
    let (mut ids, mut uids) = (Vec::new(), Vec::new());
    for new in batch {
        match &new.app {
            ResourceKey::Id(id) => ids.push(id.as_str().to_owned()),
            ResourceKey::Uid(uid) => uids.push(uid.as_str().to_owned()),
        }
    }
    let found = sqlx::query("SELECT id, uid FROM application WHERE id = ANY($1) OR uid = ANY($2)")
        .bind(&ids)
        .bind(&uids)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_id = HashSet::new();
    let mut by_uid: HashMap<String, Result<String>> = HashMap::new();
    for row in &found {
        let id: String = row.try_get("id")?;
        if let Some(uid) = row.try_get::<Option<String>, _>("uid")? {
            by_uid.insert(uid, Ok(id.clone()));
        }
        by_id.insert(id);
    }
    let to_create: Vec<&NewMessage> = batch
        .iter()
        .filter(|new| match &new.app {
            ResourceKey::Uid(uid) => new.create_app.is_some() && !by_uid.contains_key(uid.as_str()),
            ResourceKey::Id(_) => false,
        })
        .collect();
    if !to_create.is_empty() {
        create_inline_apps(conn, &to_create, &mut by_uid).await?;
    }
    Ok(batch
        .iter()
        .map(|new| match &new.app {
            ResourceKey::Id(id) if by_id.contains(id.as_str()) => Ok(id.clone()),
            ResourceKey::Uid(uid) => match by_uid.get(uid.as_str()) {
                Some(Ok(id)) => Ok(AppId::from_stored(id.clone())),
                Some(Err(_)) => Err(StoreError::Conflict(Conflict::Uid)),
                None => Err(StoreError::NotFound),
            },
            ResourceKey::Id(_) => Err(StoreError::NotFound),
        })
        .collect())
}

/// Creates the applications of the first message naming each unknown uid, under the
/// `application` list lock; a uid created meanwhile by another node is used as it is.
async fn create_inline_apps(
    conn: &mut PgConnection,
    to_create: &[&NewMessage],
    by_uid: &mut HashMap<String, Result<String>>,
) -> Result<()> {
    lock_list(conn, "application").await?;
    let uids: Vec<String> = to_create
        .iter()
        .map(|n| n.app.as_str().to_owned())
        .collect();
    let found = sqlx::query("SELECT id, uid FROM application WHERE uid = ANY($1)")
        .bind(&uids)
        .fetch_all(&mut *conn)
        .await?;
    for row in &found {
        by_uid.insert(row.try_get("uid")?, Ok(row.try_get("id")?));
    }
    let mut last: Option<String> = sqlx::query_scalar("SELECT max(id) FROM application")
        .fetch_one(&mut *conn)
        .await?;
    let now = micros(now());
    for new in to_create {
        let (uid, Some(inline)) = (new.app.as_str(), &new.create_app) else {
            continue;
        };
        if by_uid.contains_key(uid) {
            continue;
        }
        let id = AppId::generate_after(last.as_deref());
        let created: Option<String> = sqlx::query_scalar(
            "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(id.as_str())
        .bind(uid)
        .bind(&inline.name)
        .bind(inline.rate_limit.map(i32::from))
        .bind(to_json(&inline.metadata))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        // Nothing inserted: the uid was taken by an application renamed to it meanwhile.
        by_uid.insert(
            uid.to_owned(),
            created.ok_or(StoreError::Conflict(Conflict::Uid)),
        );
        last = Some(id.as_str().to_owned());
    }
    Ok(())
}

/// The greatest message id of each application (which the caller has locked).
async fn last_message_ids(
    conn: &mut PgConnection,
    app_ids: &[String],
) -> Result<HashMap<String, String>> {
    let rows = sqlx::query(
        "SELECT a.id AS app_id, (SELECT max(m.id) FROM message m WHERE m.app_id = a.id) AS last
         FROM unnest($1::text[]) AS a(id)",
    )
    .bind(app_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut last = HashMap::new();
    for row in &rows {
        if let Some(id) = row.try_get::<Option<String>, _>("last")? {
            last.insert(row.try_get("app_id")?, id);
        }
    }
    Ok(last)
}

/// Inserts the messages; returns the ids of those inserted (the others repeat an `eventId`).
async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[Result<Message>],
) -> Result<HashSet<String>> {
    let messages: Vec<&Message> = messages.iter().flatten().collect();
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    let column =
        |f: fn(&Message) -> Option<String>| messages.iter().map(|m| f(m)).collect::<Vec<_>>();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO message (id, app_id, event_type, event_id, channels, payload, created_at)
         SELECT id, app_id, event_type, event_id, channels, payload, $7
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           AS t(id, app_id, event_type, event_id, channels, payload)
         ON CONFLICT (app_id, event_id) DO NOTHING
         RETURNING id",
    )
    .bind(column(|m| Some(m.id.as_str().to_owned())))
    .bind(column(|m| Some(m.app_id.as_str().to_owned())))
    .bind(column(|m| Some(m.event_type.as_str().to_owned())))
    .bind(column(|m| {
        m.event_id.as_ref().map(|e| e.as_str().to_owned())
    }))
    .bind(column(|m| rows::opt_to_json(m.channels.as_ref())))
    .bind(column(|m| {
        m.payload.as_ref().map(|p| p.as_str().to_owned())
    }))
    .bind(micros(messages[0].created_at))
    .fetch_all(&mut *conn)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Per message (by its index in the batch), its deliveries written claimed and how many
/// were written pending.
type Written = HashMap<usize, (Vec<ClaimedDelivery>, usize)>;

/// Inserts a delivery per enabled endpoint accepting each inserted message, claimed for the
/// message's direct claims if they reserve it and pending otherwise, and notifies the workers
/// if any is pending.
async fn insert_deliveries(
    conn: &mut PgConnection,
    batch: &[NewMessage],
    results: &[Result<Message>],
) -> Result<Written> {
    let mut app_ids: Vec<&str> = results
        .iter()
        .flatten()
        .map(|m| m.app_id.as_str())
        .collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let mut written = Written::new();
    if app_ids.is_empty() {
        return Ok(written);
    }
    let endpoints = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = ANY($1) AND NOT disabled"
    ))
    .bind(&app_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_app: HashMap<String, Vec<Endpoint>> = HashMap::new();
    for row in &endpoints {
        let endpoint = rows::endpoint(row)?;
        by_app
            .entry(endpoint.app_id.as_str().to_owned())
            .or_default()
            .push(endpoint);
    }
    let mut rows = DeliveryRows::default();
    // Which message and endpoint each claimed row is for, by (message id, endpoint id).
    let mut to_claim: HashMap<(&str, &str), (usize, &Endpoint, Timestamp)> = HashMap::new();
    for (i, (new, message)) in batch.iter().zip(results).enumerate() {
        let Ok(message) = message else { continue };
        for endpoint in by_app.get(message.app_id.as_str()).into_iter().flatten() {
            let wanted = match &new.only_endpoint {
                Some(only) => only == &endpoint.id,
                None => endpoint
                    .subscription
                    .accepts(&message.event_type, message.channels.as_deref()),
            };
            if !wanted {
                continue;
            }
            let lease = new
                .direct
                .as_ref()
                .filter(|d| d.0.reserve(&endpoint.id))
                .map(|d| d.0.lease());
            rows.push(message, endpoint, lease.map(micros));
            match lease {
                Some(lease) => {
                    to_claim.insert(
                        (message.id.as_str(), endpoint.id.as_str()),
                        (i, endpoint, lease),
                    );
                }
                None => written.entry(i).or_default().1 += 1,
            }
        }
    }
    if rows.msg_ids.is_empty() {
        return Ok(written);
    }
    let created = results
        .iter()
        .flatten()
        .map(|m| micros(m.created_at))
        .next();
    // The notification goes out with the commit; sent from this statement, it costs no
    // round trip of its own while the batch holds its locks.
    let claimed = sqlx::query(
        "WITH inserted AS (
            INSERT INTO delivery (msg_id, endpoint_id, app_id, status, next_attempt_at,
              lease_until, created_at, updated_at)
            SELECT msg_id, endpoint_id, app_id, CASE WHEN lease IS NULL THEN 1 ELSE 3 END,
              coalesce(lease, $5), lease, $5, $5
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
              AS t(msg_id, endpoint_id, app_id, lease)
            RETURNING id, msg_id, endpoint_id, status)
         SELECT id, msg_id, endpoint_id FROM inserted WHERE status = 3
         UNION ALL
         SELECT NULL, NULL, NULL FROM (SELECT pg_notify($6, '') WHERE $7) AS notified",
    )
    .bind(&rows.msg_ids)
    .bind(&rows.endpoint_ids)
    .bind(&rows.app_ids)
    .bind(&rows.leases)
    .bind(created)
    .bind(CHANNEL)
    .bind(written.values().any(|(_, pending)| *pending > 0))
    .fetch_all(&mut *conn)
    .await?;
    for row in &claimed {
        let Some(id) = row.try_get::<Option<i64>, _>("id")? else {
            continue;
        };
        let msg_id: String = row.try_get("msg_id")?;
        let endpoint_id: String = row.try_get("endpoint_id")?;
        let Some((i, endpoint, lease)) = to_claim.get(&(msg_id.as_str(), endpoint_id.as_str()))
        else {
            return Err(StoreError::Corrupt(format!(
                "a delivery of {msg_id} to {endpoint_id} was written claimed but not asked for"
            )));
        };
        let Ok(message) = &results[*i] else { continue };
        written.entry(*i).or_default().0.push(ClaimedDelivery {
            id,
            lease: *lease,
            attempts: 0,
            trigger: Trigger::Scheduled,
            message: message.clone(),
            endpoint: (*endpoint).clone(),
        });
    }
    Ok(written)
}

/// The columns of the deliveries to insert, one array each.
#[derive(Default)]
struct DeliveryRows<'a> {
    msg_ids: Vec<&'a str>,
    endpoint_ids: Vec<&'a str>,
    app_ids: Vec<&'a str>,
    /// The lease of a delivery written claimed; `None` for a pending one.
    leases: Vec<Option<i64>>,
}

impl<'a> DeliveryRows<'a> {
    fn push(&mut self, message: &'a Message, endpoint: &'a Endpoint, lease: Option<i64>) {
        self.msg_ids.push(message.id.as_str());
        self.endpoint_ids.push(endpoint.id.as_str());
        self.app_ids.push(message.app_id.as_str());
        self.leases.push(lease);
    }
}
