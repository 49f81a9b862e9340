//! Accepting messages, inside a write batch: per message, its application (created from its
//! inline definition if need be), the message row, and one delivery per endpoint that
//! accepts it.
//!
//! Each step is one cached statement run for one row; the statements run for every message
//! are taken from the cache once per batch ([`Writes`]). An application and the endpoints of
//! an application are read once per batch, however many of its messages the batch holds.
//!
//! A FIFO endpoint's delivery is written parked in its line, which is given a head if it
//! has none (`store::fifo`).
//!
//! A delivery the message's [`DirectClaims`] reserves is written claimed (`sending` under its
//! lease, due again when the lease runs out, as a claim leaves it) and returned with its
//! endpoint, read in full once per batch.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use super::connection::is_unique_violation;
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::{now, to_micros};
use crate::domain::{
    AppId, Endpoint, EndpointId, Message, MessageId, ResourceKey, Subscription, Timestamp, Trigger,
};
use crate::store::fifo;
use crate::store::rows::{self, ENDPOINT_COLUMNS};
use crate::store::{
    ClaimedDelivery, Conflict, DirectClaims, Enqueued, NewMessage, Result, StoreError,
};

const APP_BY_ID: &str = "SELECT id FROM application WHERE id = ?1";
const APP_BY_UID: &str = "SELECT id FROM application WHERE uid = ?1";
const INSERT_APP: &str =
    "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
/// A repeated `eventId` changes no row rather than failing the statement.
const INSERT_MESSAGE: &str =
    "INSERT INTO message (id, app_id, event_type, event_id, channels, payload, created_at,
       payload_expires_at, deliver_at, priority) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
     ON CONFLICT DO NOTHING";
/// With whether the endpoint is throttled (its `throttleRate` or its application's) and
/// whether it is FIFO.
const ENDPOINTS_OF_APP: &str = "SELECT id, event_types, channels,
       coalesce(rate_limit, 0) > 0
         OR coalesce((SELECT a.rate_limit FROM application a WHERE a.id = ?1), 0) > 0 AS throttled,
       ordering = 1 AS fifo
     FROM endpoint WHERE NOT disabled AND app_id = ?1";
/// Due at `?5`: the message's first due time (later than its creation if it is scheduled);
/// NULL for a delivery parked in a FIFO endpoint's line (`store::fifo`).
const INSERT_DELIVERY: &str = "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, \
     next_attempt_at, created_at, updated_at) VALUES (?1, ?2, ?3, 1, ?5, ?4, ?4)";
/// Claimed as `claims::MARK` leaves a delivery: due again once the lease runs out.
const INSERT_CLAIMED: &str = "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, \
     next_attempt_at, lease_until, created_at, updated_at) VALUES (?1, ?2, ?3, 3, ?4, ?4, ?5, ?5)";
static ENDPOINT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id = ?1"));

/// An enabled endpoint a message may fan out to.
struct Target {
    id: EndpointId,
    subscription: Subscription,
    /// Its `throttleRate` or its application's is set: claimed within their buckets.
    throttled: bool,
    /// FIFO: its deliveries join its line, parked (`store::fifo`).
    fifo: bool,
}

/// What the batch has read so far, so each application and endpoint list is read once.
#[derive(Default)]
struct Seen {
    /// By `id:…` or `uid:…`: the application, or `None` when there is none.
    apps: HashMap<String, Option<AppId>>,
    /// The enabled endpoints of each application, by application id.
    endpoints: HashMap<String, Vec<Target>>,
    /// Endpoints read in full, to hand over with a delivery claimed at once; `None` if their
    /// secrets cannot be read (`rows::claimable_endpoint`).
    full: HashMap<EndpointId, Option<Endpoint>>,
}

/// The statements that write every message and delivery, taken from the connection's
/// statement cache once per batch: a cache lookup hashes the statement's whole text (per
/// row, with the records' and claims' lookups, 2.5 % of hookd's instructions per message).
struct Writes<'c> {
    /// Opens the endpoints read in full.
    secrets: &'c dyn SecretsAtRest,
    message: CachedStatement<'c>,
    pending: CachedStatement<'c>,
    claimed: CachedStatement<'c>,
}

/// Accepts every message it can. Per message: the stored message, or why it was refused (a
/// refusal never fails the batch; an `Err` of the whole does).
pub(super) fn enqueue_all<'c>(
    conn: &'c Connection,
    news: &[&NewMessage],
    secrets: &'c dyn SecretsAtRest,
) -> Result<Vec<Result<Enqueued>>> {
    let mut seen = Seen::default();
    let mut writes = Writes {
        secrets,
        message: conn.prepare_cached(INSERT_MESSAGE)?,
        pending: conn.prepare_cached(INSERT_DELIVERY)?,
        claimed: conn.prepare_cached(INSERT_CLAIMED)?,
    };
    news.iter()
        .map(|new| enqueue(conn, &mut writes, &mut seen, new))
        .collect()
}

fn enqueue(
    conn: &Connection,
    writes: &mut Writes<'_>,
    seen: &mut Seen,
    new: &NewMessage,
) -> Result<Result<Enqueued>> {
    let app_id = match app_for(conn, &mut seen.apps, new)? {
        Ok(id) => id,
        Err(refused) => return Ok(Err(refused)),
    };
    // Made here, in batch order while holding the write lock: id order is commit order.
    let message = Message {
        id: MessageId::generate(),
        app_id,
        event_type: new.event_type.clone(),
        event_id: new.event_id.clone(),
        channels: new.channels.clone(),
        payload: Some(new.payload.clone()),
        created_at: now(),
        deliver_at: new.deliver_at,
        priority: new.priority,
    };
    let expires = new.payload_retention.map(|keep| message.created_at + keep);
    if !insert_message(&mut writes.message, &message, expires)? {
        return Ok(Err(StoreError::Conflict(Conflict::EventId)));
    }
    // A scheduled message's deliveries are not due yet: none is written claimed.
    let direct = new
        .direct
        .as_ref()
        .filter(|_| !message.is_scheduled())
        .map(|d| &*d.0);
    let (claimed, pending) = insert_deliveries(
        conn,
        writes,
        seen,
        &message,
        new.only_endpoint.as_ref(),
        direct,
    )?;
    Ok(Ok(Enqueued {
        message,
        claimed,
        pending,
        response: None,
    }))
}

/// The message's application: found, or created from its inline definition (once per
/// batch, however many messages name it). `Ok(Err(_))`: the message is refused.
fn app_for(
    conn: &Connection,
    apps: &mut HashMap<String, Option<AppId>>,
    new: &NewMessage,
) -> Result<Result<AppId>> {
    let key = match &new.app {
        ResourceKey::Id(id) => format!("id:{id}"),
        ResourceKey::Uid(uid) => format!("uid:{uid}"),
    };
    let found = match apps.get(&key) {
        Some(found) => found.clone(),
        None => {
            let found = find_app(conn, &new.app)?;
            apps.insert(key.clone(), found.clone());
            found
        }
    };
    if let Some(id) = found {
        return Ok(Ok(id));
    }
    let (ResourceKey::Uid(uid), Some(inline)) = (&new.app, &new.create_app) else {
        return Ok(Err(StoreError::NotFound));
    };
    let id = AppId::generate();
    let inserted = conn.prepare_cached(INSERT_APP)?.execute(params![
        id.as_str(),
        uid.as_str(),
        inline.name,
        inline.rate_limit.map(i64::from),
        rows::to_json(&inline.metadata),
        to_micros(now()),
    ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(Err(StoreError::Conflict(Conflict::Uid))),
        Err(e) => return Err(e.into()),
    }
    apps.insert(key, Some(id.clone()));
    Ok(Ok(id))
}

fn find_app(conn: &Connection, app: &ResourceKey<AppId>) -> Result<Option<AppId>> {
    let (sql, key) = match app {
        ResourceKey::Id(id) => (APP_BY_ID, id.as_str()),
        ResourceKey::Uid(uid) => (APP_BY_UID, uid.as_str()),
    };
    let id: Option<String> = conn
        .prepare_cached(sql)?
        .query_row([key], |row| row.get(0))
        .optional()?;
    Ok(id.map(AppId::from_stored))
}

/// Inserts the message; `false` if the application already has one with its `eventId`.
fn insert_message(
    insert: &mut CachedStatement<'_>,
    m: &Message,
    payload_expires_at: Option<Timestamp>,
) -> Result<bool> {
    let changed = insert.execute(params![
        m.id.as_str(),
        m.app_id.as_str(),
        m.event_type.as_str(),
        m.event_id.as_ref().map(|e| e.as_str()),
        rows::opt_to_json(m.channels.as_ref()),
        m.payload.as_ref().map(|p| p.as_str()),
        to_micros(m.created_at),
        payload_expires_at.map(to_micros),
        m.deliver_at.map(to_micros),
        m.priority.map(|p| p.code()),
    ])?;
    Ok(changed == 1)
}

/// One delivery per endpoint that accepts the message (or only to `only`): claimed if
/// `direct` reserves it, pending otherwise. Returns the claimed ones and how many are pending.
fn insert_deliveries(
    conn: &Connection,
    writes: &mut Writes<'_>,
    seen: &mut Seen,
    message: &Message,
    only: Option<&EndpointId>,
    direct: Option<&dyn DirectClaims>,
) -> Result<(Vec<ClaimedDelivery>, usize)> {
    let app_id = message.app_id.as_str();
    if !seen.endpoints.contains_key(app_id) {
        let endpoints = endpoints_of(conn, app_id)?;
        seen.endpoints.insert(app_id.to_owned(), endpoints);
    }
    let created = to_micros(message.created_at);
    let due = to_micros(message.first_due());
    let (mut claimed, mut pending) = (Vec::new(), 0);
    for target in &seen.endpoints[app_id] {
        let endpoint_id = &target.id;
        let wanted = match only {
            Some(only) => only == endpoint_id,
            None => target
                .subscription
                .accepts(&message.event_type, message.channels.as_deref()),
        };
        if !wanted {
            continue;
        }
        let (msg_id, ep_id) = (message.id.as_str(), endpoint_id.as_str());
        if target.fifo && !message.is_scheduled() {
            // Into the line, parked; the head, if the line had none. A scheduled message
            // joins the line when it comes due (a claim parks it then).
            writes
                .pending
                .execute(params![msg_id, ep_id, app_id, created, None::<i64>])?;
            fifo::promote_sqlite(conn, ep_id, message.created_at)?;
            pending += 1;
            continue;
        }
        // A throttled endpoint's deliveries are claimed within its token bucket, a FIFO
        // one's in its line. One whose secrets cannot be read is written pending (its
        // reservation is given back when the direct claims are dropped), for a claim to find
        // once they can be.
        let reserved =
            direct.filter(|d| !target.throttled && !target.fifo && d.reserve(endpoint_id));
        let full = match reserved {
            None => None,
            Some(direct) => {
                if !seen.full.contains_key(endpoint_id) {
                    let endpoint = endpoint_by_id(conn, endpoint_id, writes.secrets)?;
                    seen.full.insert(endpoint_id.clone(), endpoint);
                }
                seen.full[endpoint_id].clone().map(|e| (direct, e))
            }
        };
        let Some((direct, endpoint)) = full else {
            writes
                .pending
                .execute(params![msg_id, ep_id, app_id, created, due])?;
            pending += 1;
            continue;
        };
        let lease = direct.lease();
        writes
            .claimed
            .execute(params![msg_id, ep_id, app_id, to_micros(lease), created])?;
        claimed.push(ClaimedDelivery {
            id: conn.last_insert_rowid(),
            lease,
            attempts: 0,
            trigger: Trigger::Scheduled,
            message: message.clone(),
            endpoint,
            direct: true,
        });
    }
    Ok((claimed, pending))
}

fn endpoint_by_id(
    conn: &Connection,
    id: &EndpointId,
    secrets: &dyn SecretsAtRest,
) -> Result<Option<Endpoint>> {
    let mut select = conn.prepare_cached(&ENDPOINT_BY_ID)?;
    let mut found = select.query([id.as_str()])?;
    match found.next()? {
        Some(row) => rows::claimable_endpoint(row, secrets),
        None => Err(StoreError::Corrupt(format!(
            "endpoint {id} was listed for its application and then not found"
        ))),
    }
}

/// The application's enabled endpoints, with what each subscribes to, whether it is
/// throttled and whether it is FIFO.
fn endpoints_of(conn: &Connection, app_id: &str) -> Result<Vec<Target>> {
    let mut select = conn.prepare_cached(ENDPOINTS_OF_APP)?;
    let mut found = select.query([app_id])?;
    let mut endpoints = Vec::new();
    while let Some(row) = found.next()? {
        endpoints.push(Target {
            id: EndpointId::from_stored(row.get::<_, String>("id")?),
            subscription: rows::subscription(row)?,
            throttled: row.get("throttled")?,
            fifo: row.get("fifo")?,
        });
    }
    Ok(endpoints)
}
