//! Accepting messages on PostgreSQL: a batch of messages and their deliveries in one
//! transaction (see [`super::batch`]).
//!
//! The steps, each one statement for the whole batch:
//! 1. resolve the applications the messages name, with their enabled endpoints (before
//!    taking any list lock); create the inline applications of unknown uids (under the
//!    `application` list lock, re-checking after taking it: they have no endpoints yet);
//! 2. lock each application's message list (all in one statement, in lock-key order, so
//!    batches on different nodes never deadlock); then, in a statement of its own (it must
//!    see what the previous holder committed), lock the applications and their endpoints
//!    against deletion and read the greatest stored message id of each, to draw the new
//!    ids after it ([`LOCK_AND_READ_LAST_IDS`]);
//! 3. insert the messages, `ON CONFLICT DO NOTHING` on `(app_id, event_id)` (a message not
//!    inserted is a duplicate `eventId`, answered 409 without failing the batch), and in the
//!    same statement one delivery per enabled endpoint that accepts each inserted message:
//!    claimed if the message's [`crate::store::DirectClaims`] reserves it (and returned, to
//!    send at once), pending otherwise (due at the message's `deliverAt` if it is scheduled),
//!    notifying the worker nodes if any is pending, so that each sets its timer.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use futures::future::BoxFuture;
use sqlx::{PgConnection, Row};

use super::batch::Target;
use super::{CHANNEL, lock_lists, micros};
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::now;
use crate::domain::{
    AppId, DeliveryOrder, Endpoint, EndpointId, Message, MessageId, ResourceKey, Subscription,
    Timestamp, Trigger,
};
use crate::store::fifo;
use crate::store::rows::{self, ENDPOINT_COLUMNS, StoredRow, to_json};
use crate::store::throttle;
use crate::store::{ClaimedDelivery, Conflict, Enqueued, NewMessage, Result, StoreError};

pub fn write<'a>(
    target: &'a Target,
    batch: &'a [NewMessage],
) -> BoxFuture<'a, Result<Vec<Result<Enqueued>>>> {
    Box::pin(write_batch(target, batch))
}

async fn write_batch(target: &Target, batch: &[NewMessage]) -> Result<Vec<Result<Enqueued>>> {
    let mut tx = target.pool.begin().await?;
    let results = write_in(&mut tx, target, batch).await?;
    tx.commit().await?;
    Ok(results)
}

/// A batch ingest request (`POST …/msg/batch`): its messages in one transaction of their
/// own, outside the group commit. `atomic`: if any message is refused, the transaction is
/// rolled back and nothing is written (the `Ok`s are then what would have been written).
pub async fn write_request(
    target: &Target,
    batch: &[NewMessage],
    atomic: bool,
) -> Result<Vec<Result<Enqueued>>> {
    let mut tx = target.pool.begin().await?;
    let results = write_in(&mut tx, target, batch).await?;
    if atomic && results.iter().any(Result::is_err) {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(results)
}

/// Writes the batch in `tx`, which the caller commits; deliveries written claimed are
/// marked as `target`'s node's.
async fn write_in(
    tx: &mut PgConnection,
    target: &Target,
    batch: &[NewMessage],
) -> Result<Vec<Result<Enqueued>>> {
    let node = &*target.node;
    // Read before taking the lists' locks, so as not to hold them for it.
    let (apps, mut endpoints) = resolve_apps(tx, batch, &*target.secrets).await?;
    let mut app_ids: Vec<String> = apps
        .iter()
        .flatten()
        .map(|a| a.as_str().to_owned())
        .collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let lists: Vec<String> = app_ids.iter().map(|id| format!("message:{id}")).collect();
    lock_lists(tx, &lists).await?;
    let endpoint_ids: Vec<&str> = endpoints
        .values()
        .flatten()
        .map(|e| e.id.as_str())
        .collect();
    let Locked {
        mut last,
        apps: present,
        endpoints: reachable,
    } = lock_and_read_last_ids(tx, &app_ids, &endpoint_ids).await?;
    // What was deleted since it was read gets nothing: a message to a deleted application
    // is not found, a deleted endpoint no delivery (its delete's cascade would have taken it).
    let apps = apps.into_iter().map(|app| {
        app.and_then(|id| match present.contains(id.as_str()) {
            true => Ok(id),
            false => Err(StoreError::NotFound),
        })
    });
    for planned in endpoints.values_mut() {
        planned.retain(|e| reachable.contains(e.id.as_str()));
    }

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
                deliver_at: new.deliver_at,
                priority: new.priority,
            }
        }));
    }
    let plan = plan_deliveries(batch, &messages, &endpoints);
    let written = insert(tx, node, batch, &messages, &plan).await?;
    promote_lines(tx, &plan.lines, created).await?;
    let deliveries: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| match m {
            Ok(m) => (plan.claimed(i, m, &written.claimed), plan.pending(i)),
            Err(_) => (Vec::new(), 0),
        })
        .collect();
    drop(plan);
    Ok(messages
        .into_iter()
        .zip(deliveries)
        .map(|(message, (claimed, pending))| match message {
            Ok(m) if written.messages.contains(m.id.as_str()) => Ok(Enqueued {
                message: m,
                claimed,
                pending,
                response: None,
            }),
            Ok(_) => Err(StoreError::Conflict(Conflict::EventId)),
            Err(e) => Err(e),
        })
        .collect())
}

/// The applications the messages name, with the enabled endpoints of each, in one statement:
/// application columns under `found_*` names, endpoint columns as [`ENDPOINT_COLUMNS`] names
/// (NULL for an application without any).
static APPS_AND_ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    let endpoint_columns: Vec<String> = ENDPOINT_COLUMNS
        .split(", ")
        .map(|c| format!("e.{c}"))
        .collect();
    format!(
        "SELECT a.id AS found_id, a.uid AS found_uid, a.rate_limit AS found_rate_limit, {}
         FROM application a LEFT JOIN endpoint e ON e.app_id = a.id AND NOT e.disabled
         WHERE a.id = ANY($1) OR a.uid = ANY($2)",
        endpoint_columns.join(", ")
    )
});

/// The enabled endpoints of the applications a batch names, by application id.
type Endpoints = HashMap<String, Vec<Planned>>;

/// An endpoint deliveries may be planned for.
struct Planned {
    id: EndpointId,
    subscription: Subscription,
    /// Its `throttleRate` or its application's is set.
    throttled: bool,
    /// FIFO: its deliveries join its line, parked (`store::fifo`).
    ordering: DeliveryOrder,
    /// The endpoint in full, to hand over with a delivery written claimed: read only when
    /// the batch has direct claims (its secrets are decrypted then, and only then), and
    /// `None` if they cannot be read (its deliveries are then written pending).
    full: Option<Endpoint>,
}

/// The application of each message, creating inline applications for unknown uids, and the
/// enabled endpoints of the applications found.
async fn resolve_apps(
    conn: &mut PgConnection,
    batch: &[NewMessage],
    secrets: &dyn SecretsAtRest,
) -> Result<(Vec<Result<AppId>>, Endpoints)> {
    let (mut ids, mut uids) = (Vec::new(), Vec::new());
    for new in batch {
        match &new.app {
            ResourceKey::Id(id) => ids.push(id.as_str().to_owned()),
            ResourceKey::Uid(uid) => uids.push(uid.as_str().to_owned()),
        }
    }
    let found = sqlx::query(&APPS_AND_ENDPOINTS)
        .bind(&ids)
        .bind(&uids)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_id = HashSet::new();
    let mut by_uid: HashMap<String, Result<String>> = HashMap::new();
    let mut endpoints: Endpoints = HashMap::new();
    let direct = batch.iter().any(|new| new.direct.is_some());
    for row in &found {
        let id: String = row.try_get("found_id")?;
        if let Some(uid) = row.try_get::<Option<String>, _>("found_uid")? {
            by_uid.insert(uid, Ok(id.clone()));
        }
        if let Some(endpoint_id) = row.try_get::<Option<String>, _>("id")? {
            let app_rate = row.try_get::<Option<i32>, _>("found_rate_limit")?;
            let throttled = throttle::rate(app_rate.map(i64::from)).is_some()
                || throttle::rate(row.opt_int("rate_limit")?).is_some();
            let full = match direct {
                true => rows::claimable_endpoint(row, secrets)?,
                false => None,
            };
            endpoints.entry(id.clone()).or_default().push(Planned {
                id: EndpointId::from_stored(endpoint_id),
                subscription: rows::subscription(row)?,
                throttled,
                ordering: DeliveryOrder::from_code(row.int("ordering")?)
                    .ok_or_else(|| StoreError::Corrupt("ordering: not 0 or 1".into()))?,
                full,
            });
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
    let apps = batch
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
        .collect();
    Ok((apps, endpoints))
}

/// Creates the applications of the first message naming each unknown uid, under the
/// `application` list lock; a uid created meanwhile by another node is used as it is.
async fn create_inline_apps(
    conn: &mut PgConnection,
    to_create: &[&NewMessage],
    by_uid: &mut HashMap<String, Result<String>>,
) -> Result<()> {
    lock_lists(conn, &["application".to_owned()]).await?;
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

/// Locks the applications of `$1` and their endpoints of `$2` `FOR KEY SHARE`, in that
/// order, and reads the greatest message id of each application: rows with `app_id` and
/// `last` for the applications still there, rows with `endpoint_id` for the endpoints.
/// Public for the plan test (`tests/it/postgres.rs`).
///
/// The tables hold no foreign keys to the applications and endpoints (migration 0024): these
/// locks are what keeps a delete from orphaning what the batch writes. A delete that began
/// first is waited for, and what it deleted is not returned; one that begins later waits
/// for the batch's commit, and its triggers then see the batch's rows. Applications are
/// locked before endpoints, as a delete of an application locks its row before its
/// endpoints', so the two never wait for each other in a cycle.
///
/// The planner cannot tell which application each row of `$1` is, so it takes each to hold
/// the average share of the messages; with few applications it walked the primary key down
/// from the newest message, filtering by application, rather than `message_by_app`: the
/// whole table for an application whose last message is older than another's many
/// (`hookd-bench h --database-url …`: 2.5 s for the first messages after a start on a
/// backlog of a million, all newer than the other applications' messages). As in
/// `LOOK_PAST`, a redundant range on the application makes the planner expect few of its
/// rows, so that walking the primary key to find one looks dear, and takes
/// `message_by_app`; the plan is checked for custom and generic plans.
pub const LOCK_AND_READ_LAST_IDS: &str = "WITH apps AS MATERIALIZED (
       SELECT id FROM application WHERE id = ANY($1) FOR KEY SHARE),
     endpoints AS MATERIALIZED (
       SELECT e.id FROM apps a JOIN endpoint e ON e.app_id = a.id
       WHERE e.id = ANY($2) FOR KEY SHARE OF e)
     SELECT a.id AS app_id,
        (SELECT max(m.id) FROM message m
         WHERE m.app_id = a.id AND m.app_id >= a.id AND m.app_id <= a.id) AS last,
        NULL AS endpoint_id
     FROM apps a
     UNION ALL
     SELECT NULL, NULL, id FROM endpoints";

/// What [`LOCK_AND_READ_LAST_IDS`] found: the greatest message id of each application that
/// has one, and the applications and endpoints locked.
struct Locked {
    last: HashMap<String, String>,
    apps: HashSet<String>,
    endpoints: HashSet<String>,
}

/// Locks the applications and endpoints (see [`LOCK_AND_READ_LAST_IDS`]) and reads the
/// greatest message id of each application (whose list the caller has locked).
async fn lock_and_read_last_ids(
    conn: &mut PgConnection,
    app_ids: &[String],
    endpoint_ids: &[&str],
) -> Result<Locked> {
    let rows = sqlx::query(LOCK_AND_READ_LAST_IDS)
        .bind(app_ids)
        .bind(endpoint_ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut locked = Locked {
        last: HashMap::new(),
        apps: HashSet::new(),
        endpoints: HashSet::new(),
    };
    for row in &rows {
        if let Some(id) = row.try_get::<Option<String>, _>("endpoint_id")? {
            locked.endpoints.insert(id);
            continue;
        }
        let app: String = row.try_get("app_id")?;
        if let Some(id) = row.try_get::<Option<String>, _>("last")? {
            locked.last.insert(app.clone(), id);
        }
        locked.apps.insert(app);
    }
    Ok(locked)
}

/// The deliveries to write: one per enabled endpoint accepting each message, claimed for
/// the message's direct claims if they reserve it, pending otherwise.
#[derive(Default)]
struct Plan<'a> {
    msg_ids: Vec<&'a str>,
    endpoint_ids: Vec<&'a str>,
    app_ids: Vec<&'a str>,
    /// The lease of a delivery written claimed; `None` for a pending one.
    leases: Vec<Option<i64>>,
    /// When a pending delivery is due: its message's first due time; `None` for one
    /// parked in a FIFO endpoint's line.
    dues: Vec<Option<i64>>,
    /// The FIFO endpoints given parked deliveries, whose lines may need a head.
    lines: Vec<&'a str>,
    /// The deliveries to write claimed, per message (by its index in the batch): their
    /// endpoint and lease.
    to_claim: HashMap<usize, Vec<(&'a Endpoint, Timestamp)>>,
    /// Pending deliveries per message, by its index in the batch.
    pending: HashMap<usize, usize>,
}

fn plan_deliveries<'a>(
    batch: &'a [NewMessage],
    messages: &'a [Result<Message>],
    endpoints: &'a Endpoints,
) -> Plan<'a> {
    let mut plan = Plan::default();
    for (i, (new, message)) in batch.iter().zip(messages).enumerate() {
        let Ok(message) = message else { continue };
        for target in endpoints.get(message.app_id.as_str()).into_iter().flatten() {
            let wanted = match &new.only_endpoint {
                Some(only) => only == &target.id,
                None => target
                    .subscription
                    .accepts(&message.event_type, message.channels.as_deref()),
            };
            if !wanted {
                continue;
            }
            // Reserved before the message is known to be new: the reservation of a
            // duplicate is given back with the rest of its direct claims. A scheduled
            // message's deliveries are not due yet, a throttled endpoint's are claimed
            // within its token bucket, a FIFO endpoint's join its line, parked (a scheduled
            // message's when it comes due), and one whose secrets cannot be read waits for a
            // claim: none of them is written claimed.
            let fifo = target.ordering.is_fifo();
            let claimable = target.full.as_ref().filter(|_| !target.throttled && !fifo);
            let lease = new
                .direct
                .as_ref()
                .zip(claimable)
                .filter(|(d, _)| !message.is_scheduled() && d.0.reserve(&target.id));
            let parked = fifo && !message.is_scheduled();
            if parked && !plan.lines.contains(&target.id.as_str()) {
                plan.lines.push(target.id.as_str());
            }
            plan.msg_ids.push(message.id.as_str());
            plan.endpoint_ids.push(target.id.as_str());
            plan.app_ids.push(message.app_id.as_str());
            plan.leases.push(lease.map(|(d, _)| micros(d.0.lease())));
            plan.dues
                .push((!parked).then(|| micros(message.first_due())));
            match lease {
                Some((d, endpoint)) => {
                    plan.to_claim
                        .entry(i)
                        .or_default()
                        .push((endpoint, d.0.lease()));
                }
                None => *plan.pending.entry(i).or_default() += 1,
            }
        }
    }
    plan
}

impl Plan<'_> {
    /// The deliveries of `message` (the batch's `i`th) written claimed, with the ids the
    /// insert returned by (message id, endpoint id).
    fn claimed(
        &self,
        i: usize,
        message: &Message,
        ids: &HashMap<(String, String), i64>,
    ) -> Vec<ClaimedDelivery> {
        let Some(to_claim) = self.to_claim.get(&i) else {
            return Vec::new();
        };
        to_claim
            .iter()
            .filter_map(|(endpoint, lease)| {
                let key = (
                    message.id.as_str().to_owned(),
                    endpoint.id.as_str().to_owned(),
                );
                Some(ClaimedDelivery {
                    id: *ids.get(&key)?,
                    lease: *lease,
                    attempts: 0,
                    trigger: Trigger::Scheduled,
                    message: message.clone(),
                    endpoint: (*endpoint).clone(),
                    direct: true,
                })
            })
            .collect()
    }

    fn pending(&self, i: usize) -> usize {
        self.pending.get(&i).copied().unwrap_or(0)
    }
}

/// Gives each FIFO line that was given parked deliveries a head if it has none: the
/// endpoints' rows locked in id order, then promoted one by one (`store::fifo`).
async fn promote_lines(conn: &mut PgConnection, lines: &[&str], now: Timestamp) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut lines = lines.to_vec();
    lines.sort_unstable();
    sqlx::query("SELECT id FROM endpoint WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&lines)
        .execute(&mut *conn)
        .await?;
    for endpoint in lines {
        fifo::promote(&mut *conn, endpoint, now).await?;
    }
    Ok(())
}

/// What one insert wrote: the ids of the messages inserted (the others repeat an `eventId`),
/// and the ids of the deliveries written claimed.
struct Written {
    messages: HashSet<String>,
    claimed: HashMap<(String, String), i64>,
}

/// Inserts the messages and, for those inserted, the planned deliveries, in one statement;
/// notifies the workers if any delivery is pending. The notification goes out with the
/// commit; sent from this statement, it costs no round trip of its own while the batch
/// holds its locks.
async fn insert(
    conn: &mut PgConnection,
    node: &str,
    batch: &[NewMessage],
    messages: &[Result<Message>],
    plan: &Plan<'_>,
) -> Result<Written> {
    // How long each message to insert keeps its payload, in microseconds.
    let keep: Vec<Option<i64>> = batch
        .iter()
        .zip(messages)
        .filter(|(_, m)| m.is_ok())
        .map(|(new, _)| {
            new.payload_retention
                .map(|k| k.num_microseconds().unwrap_or(i64::MAX))
        })
        .collect();
    let messages: Vec<&Message> = messages.iter().flatten().collect();
    let mut written = Written {
        messages: HashSet::new(),
        claimed: HashMap::new(),
    };
    let Some(first) = messages.first() else {
        return Ok(written);
    };
    let column =
        |f: fn(&Message) -> Option<String>| messages.iter().map(|m| f(m)).collect::<Vec<_>>();
    let found = sqlx::query(
        "WITH m AS (
           INSERT INTO message (id, app_id, event_type, event_id, channels, payload, created_at,
             payload_expires_at, deliver_at, priority)
           SELECT id, app_id, event_type, event_id, channels, payload, $7, $7 + keep, deliver_at,
             priority
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
             $13::bigint[], $14::bigint[], $17::smallint[])
             AS t(id, app_id, event_type, event_id, channels, payload, keep, deliver_at, priority)
           ON CONFLICT (app_id, event_id) WHERE event_id IS NOT NULL DO NOTHING
           RETURNING id),
         d AS (
           INSERT INTO delivery (msg_id, endpoint_id, app_id, status, next_attempt_at,
             lease_until, claimed_by, created_at, updated_at)
           SELECT msg_id, endpoint_id, app_id, CASE WHEN lease IS NULL THEN 1 ELSE 3 END,
             coalesce(lease, due), lease, CASE WHEN lease IS NULL THEN NULL ELSE $16 END,
             $7, $7
           FROM unnest($8::text[], $9::text[], $10::text[], $11::bigint[], $15::bigint[])
             AS t(msg_id, endpoint_id, app_id, lease, due)
           WHERE msg_id IN (SELECT id FROM m)
           RETURNING id, msg_id, endpoint_id, status)
         SELECT m.id AS msg_id, NULL AS endpoint_id, NULL::bigint AS delivery_id FROM m
         UNION ALL
         SELECT msg_id, endpoint_id, id FROM d WHERE status = 3
         UNION ALL
         SELECT NULL, NULL, NULL FROM (SELECT pg_notify($12, '')
           WHERE EXISTS (SELECT 1 FROM d WHERE status = 1)) AS notified",
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
    .bind(micros(first.created_at))
    .bind(&plan.msg_ids)
    .bind(&plan.endpoint_ids)
    .bind(&plan.app_ids)
    .bind(&plan.leases)
    .bind(CHANNEL)
    .bind(&keep)
    .bind(
        messages
            .iter()
            .map(|m| m.deliver_at.map(micros))
            .collect::<Vec<_>>(),
    )
    .bind(&plan.dues)
    .bind(node)
    .bind(
        messages
            .iter()
            .map(|m| m.priority.map(|p| p.code() as i16))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in &found {
        let Some(msg_id) = row.try_get::<Option<String>, _>("msg_id")? else {
            continue;
        };
        match row.try_get::<Option<i64>, _>("delivery_id")? {
            Some(id) => {
                let endpoint_id: String = row.try_get("endpoint_id")?;
                written.claimed.insert((msg_id, endpoint_id), id);
            }
            None => {
                written.messages.insert(msg_id);
            }
        }
    }
    Ok(written)
}
