//! Claiming due deliveries, inside a write batch.
//!
//! A claim reads the head of the due queue (as many rows as it may take) and picks from it in
//! due order, within each endpoint's room. When the head was full yet did not fill the claim,
//! endpoints in it had no more room (one slow endpoint's backlog, or one endpoint holding the
//! whole head): it then looks past them endpoint by endpoint, through the per-endpoint due
//! index, so their backlog is never scanned and other endpoints' deliveries are not held up
//! behind it.
//!
//! Deliveries of throttled endpoints and applications are taken within their token buckets
//! (`store::throttle`); those without a token are deferred. Buckets are read and written in
//! the claim's transaction: SQLite's one writer makes claims take turns.
//!
//! The chosen deliveries are marked one statement each; each distinct message and endpoint
//! is read once per claim, however many of the claimed deliveries share it. The three
//! statements are taken from the statement cache once per claim, not per delivery (a
//! lookup hashes the statement's whole text).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use rusqlite::{CachedStatement, Connection, OptionalExtension, params};

use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::to_micros;
use crate::domain::{AppId, DeliveryOrder, Endpoint, EndpointId, Message, Timestamp, Trigger};
use crate::store::fifo;
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, to_json};
use crate::store::throttle::{self, Buckets, Candidate, bucket_keys};
use crate::store::{ClaimLimits, ClaimedDelivery, Result, StoreError};

/// Both return what [`Candidate`] holds: the delivery, its endpoint and application, their
/// rates, and the endpoint's ordering and FIFO head.
const HEAD_OF_QUEUE: &str = "SELECT d.id, d.endpoint_id, d.app_id, e.rate_limit,
       (SELECT a.rate_limit FROM application a WHERE a.id = d.app_id) AS app_rate,
       e.ordering, e.fifo_head
     FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
     WHERE d.status IN (1, 3) AND NOT e.disabled AND d.next_attempt_at <= ?1
     ORDER BY d.next_attempt_at LIMIT ?2";
const PAST_THE_HEAD: &str = "SELECT (SELECT d.id FROM delivery d
             WHERE d.endpoint_id = e.id AND d.status IN (1, 3) AND d.next_attempt_at <= ?1
             ORDER BY d.next_attempt_at LIMIT 1) AS due_id,
       e.id, e.app_id, e.rate_limit,
       (SELECT a.rate_limit FROM application a WHERE a.id = e.app_id) AS app_rate,
       e.ordering, e.fifo_head
     FROM endpoint e
     WHERE NOT e.disabled AND e.id NOT IN (SELECT value FROM json_each(?2))
       AND due_id IS NOT NULL
     LIMIT ?3";
const BUCKET: &str = "SELECT next_at FROM throttle WHERE key = ?1";
const SAVE_BUCKET: &str = "INSERT INTO throttle (key, next_at) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET next_at = excluded.next_at";
/// A throttled delivery without a token: pending (a claim whose lease ran out is given up),
/// due again when its turn comes.
const DEFER: &str = "UPDATE delivery SET status = 1, lease_until = NULL, next_attempt_at = ?1
     WHERE id = ?2";
const MARK: &str = "UPDATE delivery SET status = 3, lease_until = ?1, next_attempt_at = ?1,
     updated_at = ?2 WHERE id = ?3
     RETURNING msg_id, endpoint_id, attempts, trigger_type";
static MESSAGE_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {MESSAGE_COLUMNS} FROM message WHERE id = ?1"));
static ENDPOINT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id = ?1"));

/// Marks the chosen due deliveries `sending` under a lease and loads what sending needs.
pub(super) fn claim(
    conn: &Connection,
    now: Timestamp,
    lease: Timestamp,
    limits: &ClaimLimits,
    secrets: &dyn SecretsAtRest,
) -> Result<Vec<ClaimedDelivery>> {
    let candidates = head_of_queue(conn, now, limits.total)?;
    let head_len = candidates.len();
    let candidates = fifo_gate(conn, candidates, now)?;
    let mut buckets = Buckets::default();
    load_buckets(conn, &candidates, &mut buckets)?;
    let mut picked = buckets.pick(&candidates, limits, 0, now);
    if limits.crowded_out(picked.ids.len(), head_len) {
        let seen: HashSet<&EndpointId> = candidates.iter().map(|c| &c.endpoint).collect();
        let more = past_the_head(conn, now, limits, &seen, limits.total - picked.ids.len())?;
        let more = fifo_gate(conn, more, now)?;
        load_buckets(conn, &more, &mut buckets)?;
        let behind = buckets.pick(&more, limits, picked.ids.len(), now);
        picked.ids.extend(behind.ids);
        picked.deferred.extend(behind.deferred);
    }
    save_buckets(conn, &buckets, &picked.deferred)?;
    let picked = picked.ids;
    let mut claimed = Vec::with_capacity(picked.len());
    if picked.is_empty() {
        return Ok(claimed);
    }
    let mut loaded = Loaded {
        mark: conn.prepare_cached(MARK)?,
        message_by_id: conn.prepare_cached(&MESSAGE_BY_ID)?,
        endpoint_by_id: conn.prepare_cached(&ENDPOINT_BY_ID)?,
        messages: HashMap::new(),
        endpoints: HashMap::new(),
    };
    for id in picked {
        if let Some(delivery) = mark_and_load(&mut loaded, id, now, lease, secrets)? {
            claimed.push(delivery);
        }
    }
    Ok(claimed)
}

/// The first `n` due deliveries, oldest due first.
fn head_of_queue(conn: &Connection, now: Timestamp, n: usize) -> Result<Vec<Candidate>> {
    let mut select = conn.prepare_cached(HEAD_OF_QUEUE)?;
    let mut found = select.query(params![to_micros(now), sql_limit(n)])?;
    let mut head = Vec::with_capacity(n);
    while let Some(row) = found.next()? {
        head.push(candidate(row)?);
    }
    Ok(head)
}

/// A candidate from its columns: delivery id, endpoint id, application id, their rates,
/// the endpoint's ordering and FIFO head.
fn candidate(row: &rusqlite::Row<'_>) -> Result<Candidate> {
    let rate = |i: usize| -> Result<Option<u16>> { Ok(throttle::rate(row.get(i)?)) };
    let id = row.get(0)?;
    let fifo = row.get::<_, i64>(5)? == DeliveryOrder::Fifo.code();
    Ok(Candidate {
        id,
        endpoint: EndpointId::from_stored(row.get(1)?),
        app: AppId::from_stored(row.get(2)?),
        endpoint_rate: rate(3)?,
        app_rate: rate(4)?,
        behind: fifo && row.get::<_, Option<i64>>(6)? != Some(id),
    })
}

/// The candidates a claim may take: those behind their FIFO line's head are parked, and
/// the heads their lines' promotions made due take their place.
fn fifo_gate(
    conn: &Connection,
    candidates: Vec<Candidate>,
    now: Timestamp,
) -> Result<Vec<Candidate>> {
    let (mut free, behind) = fifo::split(candidates);
    free.extend(fifo::park_behind_sqlite(conn, &behind, now)?);
    Ok(free)
}

/// Reads the token buckets of the throttled candidates not read yet.
fn load_buckets(conn: &Connection, candidates: &[Candidate], buckets: &mut Buckets) -> Result<()> {
    let keys = bucket_keys(candidates);
    if keys.is_empty() {
        return Ok(());
    }
    let mut select = conn.prepare_cached(BUCKET)?;
    for key in keys {
        let time: Option<Option<i64>> = select.query_row([&key], |row| row.get(0)).optional()?;
        buckets.load(key, time.flatten());
    }
    Ok(())
}

/// Writes the buckets that gave tokens, and defers the deliveries they had none for.
fn save_buckets(conn: &Connection, buckets: &Buckets, deferred: &[(i64, i64)]) -> Result<()> {
    let changed = buckets.changed();
    if !changed.is_empty() {
        let mut save = conn.prepare_cached(SAVE_BUCKET)?;
        for (key, time) in changed {
            save.execute(params![key, time])?;
        }
    }
    if !deferred.is_empty() {
        let mut defer = conn.prepare_cached(DEFER)?;
        for (id, at) in deferred {
            defer.execute(params![at, id])?;
        }
    }
    Ok(())
}

/// The oldest due delivery of each other enabled endpoint with room, up to `n` of them.
fn past_the_head(
    conn: &Connection,
    now: Timestamp,
    limits: &ClaimLimits,
    seen: &HashSet<&EndpointId>,
    n: usize,
) -> Result<Vec<Candidate>> {
    let full = limits.full();
    let excluded = id_list(
        seen.iter()
            .map(|e| e.as_str())
            .chain(full.iter().map(|e| e.as_str())),
    );
    let mut select = conn.prepare_cached(PAST_THE_HEAD)?;
    let mut found = select.query(params![to_micros(now), excluded, sql_limit(n)])?;
    let mut more = Vec::new();
    while let Some(row) = found.next()? {
        more.push(candidate(row)?);
    }
    Ok(more)
}

/// A JSON array of ids, bound as one parameter and read back with `json_each`.
fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    to_json(&ids.into_iter().collect::<Vec<_>>())
}

fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The statements a claim runs per delivery, and the messages and endpoints it has read, by
/// id.
struct Loaded<'c> {
    mark: CachedStatement<'c>,
    message_by_id: CachedStatement<'c>,
    endpoint_by_id: CachedStatement<'c>,
    messages: HashMap<String, Message>,
    /// `None` for an endpoint whose secrets cannot be read (`rows::claimable_endpoint`).
    endpoints: HashMap<String, Option<Endpoint>>,
}

/// Marks one delivery `sending` until `lease`, with its message and endpoint; `None` if it
/// is gone (it was read in this transaction, so it is not).
fn mark_and_load(
    loaded: &mut Loaded<'_>,
    id: i64,
    now: Timestamp,
    lease: Timestamp,
    secrets: &dyn SecretsAtRest,
) -> Result<Option<ClaimedDelivery>> {
    let marked = loaded
        .mark
        .query_row(params![to_micros(lease), to_micros(now), id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((msg_id, endpoint_id, attempts, trigger)) = marked else {
        return Ok(None);
    };
    let message = load(
        &mut loaded.message_by_id,
        &mut loaded.messages,
        msg_id,
        |row| rows::message(row),
    )?;
    let endpoint = load(
        &mut loaded.endpoint_by_id,
        &mut loaded.endpoints,
        endpoint_id,
        // Opened once per endpoint per claim (the cache), however many of its deliveries
        // the claim takes.
        |row| rows::claimable_endpoint(row, secrets),
    )?;
    // Its secrets cannot be read: the delivery stays claimed until its lease runs out.
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    Ok(Some(ClaimedDelivery {
        id,
        lease,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        trigger: Trigger::from_code(trigger),
        message,
        endpoint,
        direct: false,
    }))
}

/// The row with `id` selected by `select`, decoded; read once per claim.
fn load<T: Clone>(
    select: &mut CachedStatement<'_>,
    cache: &mut HashMap<String, T>,
    id: String,
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<T> {
    let slot = match cache.entry(id) {
        Entry::Occupied(found) => return Ok(found.get().clone()),
        Entry::Vacant(slot) => slot,
    };
    let mut found = select.query([slot.key()])?;
    // Both are referenced with ON DELETE CASCADE, so they exist in this transaction.
    let Some(row) = found.next()? else {
        return Err(StoreError::Corrupt(format!(
            "a claimed delivery refers to {}, which does not exist",
            slot.key()
        )));
    };
    Ok(slot.insert(decode(row)?).clone())
}
