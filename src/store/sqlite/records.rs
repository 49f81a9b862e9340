//! Recording attempt outcomes, inside a write batch: three statements per record (taken
//! from the statement cache once per batch), then per endpoint of the batch one read and one
//! write of its health counters, and, rarely, a pair to disable it and its operational events.

use std::sync::LazyLock;

use rusqlite::{CachedStatement, Connection, named_params, params};

use crate::domain::time::to_micros;
use crate::domain::{EndpointId, Timestamp};
use crate::store::fifo;
use crate::store::health::{
    EndpointHealthRow, INSERT_EVENT, READ_FOR_RECORD, UPSERT_HEALTH, judge_group,
};
use crate::store::queries::PARK_OR_UNPARK;
use crate::store::rows::to_json;
use crate::store::{AttemptRecord, Result};

/// An attempt is inserted only while its delivery exists; the check and the insert run in
/// the writer's one transaction, so nothing deletes the delivery in between.
///
/// The two are separate statements on purpose: SQLite gives an `INSERT … SELECT` into a
/// table with foreign keys a statement journal, a copy of every page it changes (about
/// 4 % of hookd's instructions per delivered message, measured with callgrind), which a
/// one-row `INSERT … VALUES` does not need.
const DELIVERY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM delivery WHERE id = ?1)";
const INSERT_ATTEMPT: &str = "INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, \
     response_status_code, response, response_headers, duration_ms, trigger_type, error_class, \
     error, created_at, policy, timeout_ms, request_headers) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
/// Fenced by the claim's lease.
const MOVE_ON: &str = "UPDATE delivery SET status = ?3, next_attempt_at = ?4, \
     lease_until = NULL, attempts = attempts + 1, trigger_type = 0, updated_at = ?5 \
     WHERE delivery.id = ?1 AND lease_until = ?2";
const DISABLE_ENDPOINT: &str = "UPDATE endpoint SET disabled = 1, updated_at = ?2 WHERE id = ?1";
/// [`READ_FOR_RECORD`] for one endpoint.
static READ_HEALTH: LazyLock<String> =
    LazyLock::new(|| format!("{READ_FOR_RECORD} WHERE e.id = ?1"));

/// Writes the attempts, moves their deliveries on, and updates their endpoints' health.
///
/// A delivery moves only while its claim still holds the lease (a resend or a newer claim
/// wins). An attempt whose delivery is gone (its message, endpoint or application was deleted
/// while the attempt was in flight) has nothing left to be recorded against and is dropped,
/// and does not count for health. Endpoints are judged (and disabled) after every delivery
/// has moved on, so a retry recorded in the same batch is parked with the rest.
pub(super) fn record_all(conn: &Connection, records: &[&AttemptRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    // Once per batch, not per record: a cache lookup hashes the statement's whole text.
    let mut exists = conn.prepare_cached(DELIVERY_EXISTS)?;
    let mut insert = conn.prepare_cached(INSERT_ATTEMPT)?;
    let mut update = conn.prepare_cached(MOVE_ON)?;
    let mut recorded = Vec::with_capacity(records.len());
    for &record in records {
        if insert_attempt(&mut exists, &mut insert, record)? {
            recorded.push(record);
        }
        move_on(&mut update, record)?;
    }
    // A FIFO line whose head is done: the next one goes (a no-op if the head moved on
    // under another claim, see `store::fifo`).
    for record in records.iter().filter(|r| r.frees_line()) {
        fifo::promote_sqlite(
            conn,
            record.attempt.endpoint_id.as_str(),
            record.attempt.created_at,
        )?;
    }
    // By endpoint, each endpoint's records in the order they came (a stable sort).
    recorded.sort_by(|a, b| {
        a.attempt
            .endpoint_id
            .as_str()
            .cmp(b.attempt.endpoint_id.as_str())
    });
    for group in recorded.chunk_by(|a, b| a.attempt.endpoint_id == b.attempt.endpoint_id) {
        update_health(conn, group)?;
    }
    Ok(())
}

/// Judges one endpoint's records and writes what follows: its counters, its disabling, its
/// operational events.
fn update_health(conn: &Connection, group: &[&AttemptRecord]) -> Result<()> {
    let endpoint = &group[0].attempt.endpoint_id;
    let mut read = conn.prepare_cached(&READ_HEALTH)?;
    let mut rows = read.query([endpoint.as_str()])?;
    let Some(row) = rows.next()? else {
        // Deleted since: its attempts went with it.
        return Ok(());
    };
    let judged = judge_group(EndpointHealthRow::decode(row)?, group);
    drop(rows);
    let c = &judged.judgement.counters;
    conn.prepare_cached(UPSERT_HEALTH)?.execute(named_params! {
        "$1": endpoint.as_str(),
        "$2": c.consecutive_failures,
        "$3": c.failing_since.map(to_micros),
        "$4": c.window.as_str(),
        "$5": c.last_success_at.map(to_micros),
        "$6": c.last_failure_at.map(to_micros),
        "$7": c.alerted,
        "$8": c.state.as_str(),
        "$9": to_micros(judged.at),
    })?;
    if judged.judgement.disable.is_some() {
        disable_endpoint(conn, endpoint, judged.at)?;
    }
    for (event, at) in &judged.events {
        conn.prepare_cached(INSERT_EVENT)?.execute(named_params! {
            "$1": event.event_type(),
            "$2": event.payload(),
            "$3": to_micros(*at),
        })?;
    }
    Ok(())
}

/// Inserts the attempt if its delivery still exists; `false` if it does not.
fn insert_attempt(
    exists: &mut CachedStatement<'_>,
    insert: &mut CachedStatement<'_>,
    r: &AttemptRecord,
) -> Result<bool> {
    let exists: bool = exists.query_row([r.delivery_id], |row| row.get(0))?;
    if !exists {
        return Ok(false);
    }
    let a = &r.attempt;
    insert.execute(params![
        a.id.as_str(),
        a.msg_id.as_str(),
        a.endpoint_id.as_str(),
        a.app_id.as_str(),
        a.url.as_str(),
        a.status.code(),
        i64::from(a.response_status_code),
        a.response_body.as_str(),
        to_json(&a.response_headers),
        i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
        a.trigger.code(),
        a.error.as_ref().map(|e| e.class.as_str()),
        a.error.as_ref().map(|e| e.message.as_str()),
        to_micros(a.created_at),
        a.policy.map(|p| p.as_str()),
        a.timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        to_json(&a.request_headers),
    ])?;
    Ok(true)
}

fn move_on(update: &mut CachedStatement<'_>, r: &AttemptRecord) -> Result<()> {
    let (status, next_at) = r.next.delivery_state();
    let next_at = next_at.map(to_micros);
    update.execute(params![
        r.delivery_id,
        to_micros(r.lease),
        status.code(),
        next_at,
        to_micros(r.attempt.created_at),
    ])?;
    Ok(())
}

/// Disables the endpoint (it answered 410 Gone, or failed long enough for auto-disable) and
/// parks its pending deliveries.
fn disable_endpoint(conn: &Connection, endpoint: &EndpointId, at: Timestamp) -> Result<()> {
    conn.prepare_cached(DISABLE_ENDPOINT)?
        .execute(params![endpoint.as_str(), to_micros(at)])?;
    // The management queries' statement, its `$n` parameters bound by name.
    conn.prepare_cached(PARK_OR_UNPARK)?
        .execute(named_params! {
            "$1": endpoint.as_str(),
            "$2": true,
            "$3": to_micros(at),
        })?;
    Ok(())
}
