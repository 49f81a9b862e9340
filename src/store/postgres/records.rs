//! Recording attempts on PostgreSQL: a batch of outcomes in one transaction that locks the
//! batch's endpoints, inserts the attempts and moves their deliveries on (one statement, see
//! [`super::batch`]), then writes each endpoint's health counters, disables the endpoints
//! that must be (410 Gone, auto-disable) and writes the operational events.
//!
//! Every attempt is kept in the log, but a delivery moves on only while it still carries the
//! lease of the claim that made the attempt (`lease_until = lease`): a claim that outlived
//! its lease (another node took the delivery over) cannot undo the newer claim's work.
//!
//! Nodes recording for the same endpoint take turns: the transaction first locks the
//! batch's endpoint rows `FOR NO KEY UPDATE`, in id order (so two batches never wait for each
//! other in a cycle), then reads their counters in a statement of its own, which sees what
//! the transaction it may have waited for wrote; so each alert threshold is crossed, and
//! reported, by exactly one transaction. The lock does not conflict with the
//! `FOR KEY SHARE` that accepting messages takes on the endpoints of the applications it
//! writes to. It is also what keeps the endpoint from being deleted before the attempts are
//! in: the attempt table holds no foreign key to it (migration 0024).

use std::collections::HashSet;
use std::sync::LazyLock;

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use super::batch::Target;
use super::micros;
use crate::domain::time::{now, to_micros};
use crate::store::fifo;
use crate::store::health::{EndpointHealthRow, Judged, READ_FOR_RECORD, judge_group};
use crate::store::rows::to_json;
use crate::store::{AttemptRecord, Result};

/// Locks the batch's endpoints, in id order.
const LOCK_ENDPOINTS: &str =
    "SELECT id FROM endpoint WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

/// The batch's endpoints with their counters. A statement of its own, after the lock: a
/// locking read that waited re-reads only the rows it locks, and would see the counters
/// as they were before the transaction it waited for committed.
static READ_ENDPOINTS: LazyLock<String> =
    LazyLock::new(|| format!("{READ_FOR_RECORD} WHERE e.id = ANY($1) ORDER BY e.id"));

pub fn write<'a>(
    target: &'a Target,
    batch: &'a [AttemptRecord],
) -> BoxFuture<'a, Result<Vec<Result<()>>>> {
    Box::pin(write_batch(&target.pool, batch))
}

async fn write_batch(pool: &PgPool, batch: &[AttemptRecord]) -> Result<Vec<Result<()>>> {
    let mut ids: Vec<&str> = batch
        .iter()
        .map(|r| r.attempt.endpoint_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_ENDPOINTS)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(&READ_ENDPOINTS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let recorded = record(&mut tx, batch).await?;
    // FIFO lines whose head is done: the next one goes. Their rows are locked above, so
    // each promotion sees every delivery parked before it (`store::fifo`).
    let mut lines: Vec<&str> = batch
        .iter()
        .filter(|r| r.frees_line())
        .map(|r| r.attempt.endpoint_id.as_str())
        .collect();
    lines.sort_unstable();
    lines.dedup();
    for endpoint in lines {
        fifo::promote(&mut *tx, endpoint, now()).await?;
    }
    let mut kept: Vec<&AttemptRecord> = batch
        .iter()
        .filter(|r| recorded.contains(r.attempt.id.as_str()))
        .collect();
    kept.sort_by(|a, b| {
        a.attempt
            .endpoint_id
            .as_str()
            .cmp(b.attempt.endpoint_id.as_str())
    });
    let mut judged = Vec::with_capacity(rows.len());
    for row in &rows {
        let row = EndpointHealthRow::decode(row)?;
        let id = row.endpoint.endpoint_id.as_str();
        let start = kept.partition_point(|r| r.attempt.endpoint_id.as_str() < id);
        let end = kept.partition_point(|r| r.attempt.endpoint_id.as_str() <= id);
        if start < end {
            let endpoint = row.endpoint.endpoint_id.clone();
            judged.push((endpoint, judge_group(row, &kept[start..end])));
        }
    }
    write_health(&mut tx, &judged).await?;
    tx.commit().await?;
    Ok(batch.iter().map(|_| Ok(())).collect())
}

/// Inserts the attempts and moves their deliveries on: `$1`…`$14` and `$19`…`$21` the
/// attempts' columns, `$15` their deliveries, `$16` the leases of the claims that made them,
/// `$17` and `$18` the deliveries' next status and due time. Returns the ids of the attempts
/// inserted (those whose delivery still existed, not written before). Public for the plan
/// test (`tests/it/postgres.rs`).
///
/// Both parts see the deliveries as they were before the statement: an attempt is kept for
/// every delivery that still exists, and a delivery moves on only while it carries the
/// lease of the claim that made the attempt.
pub const RECORD: &str = "WITH moved AS (
       UPDATE delivery d SET status = u.status, next_attempt_at = u.next_at,
         lease_until = NULL, attempts = d.attempts + 1, trigger_type = 0, updated_at = u.at
       FROM unnest($15::int8[], $16::int8[], $17::int8[], $18::int8[], $14::int8[])
         AS u(id, lease, status, next_at, at)
       WHERE d.id = u.id AND d.lease_until = u.lease)
     INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, response_status_code,
       response, response_headers, duration_ms, trigger_type, error_class, error, created_at,
       policy, timeout_ms, request_headers)
     SELECT a.id, a.msg_id, a.endpoint_id, a.app_id, a.url, a.status, a.code, a.response,
       a.headers, a.duration, a.trigger_type, a.error_class, a.error, a.created_at,
       a.policy, a.timeout_ms, a.request_headers
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
       $6::int8[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[],
       $13::text[], $14::int8[], $15::int8[], $19::text[], $20::int8[], $21::text[])
       AS a(id, msg_id, endpoint_id, app_id, url, status, code, response, headers, duration,
            trigger_type, error_class, error, created_at, delivery_id, policy, timeout_ms,
            request_headers)
     -- A delivery deleted while its attempt was in flight has nothing to record against.
     WHERE EXISTS (SELECT 1 FROM delivery d WHERE d.id = a.delivery_id)
     ON CONFLICT (id) DO NOTHING
     RETURNING id";

/// Inserts the attempts and moves their deliveries on ([`RECORD`]); returns the ids of the
/// attempts inserted.
async fn record(conn: &mut PgConnection, batch: &[AttemptRecord]) -> Result<HashSet<String>> {
    let attempts: Vec<_> = batch.iter().map(|r| &r.attempt).collect();
    let text = |f: fn(&crate::domain::Attempt) -> String| {
        attempts.iter().map(|a| f(a)).collect::<Vec<_>>()
    };
    let opt_text = |f: fn(&crate::domain::Attempt) -> Option<String>| {
        attempts.iter().map(|a| f(a)).collect::<Vec<_>>()
    };
    let int =
        |f: fn(&crate::domain::Attempt) -> i64| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
    let (mut leases, mut statuses, mut next_at) = (Vec::new(), Vec::new(), Vec::new());
    for record in batch {
        let (status, next) = record.next.delivery_state();
        leases.push(micros(record.lease));
        statuses.push(status.code());
        next_at.push(next.map(micros));
    }
    let inserted = sqlx::query(RECORD)
        .bind(text(|a| a.id.as_str().to_owned()))
        .bind(text(|a| a.msg_id.as_str().to_owned()))
        .bind(text(|a| a.endpoint_id.as_str().to_owned()))
        .bind(text(|a| a.app_id.as_str().to_owned()))
        .bind(text(|a| a.url.clone()))
        .bind(int(|a| a.status.code()))
        .bind(int(|a| i64::from(a.response_status_code)))
        .bind(text(|a| a.response_body.clone()))
        .bind(text(|a| to_json(&a.response_headers)))
        .bind(int(|a| i64::try_from(a.duration_ms).unwrap_or(i64::MAX)))
        .bind(int(|a| a.trigger.code()))
        .bind(opt_text(|a| {
            a.error.as_ref().map(|e| e.class.as_str().to_owned())
        }))
        .bind(opt_text(|a| a.error.as_ref().map(|e| e.message.clone())))
        .bind(int(|a| micros(a.created_at)))
        .bind(batch.iter().map(|r| r.delivery_id).collect::<Vec<i64>>())
        .bind(&leases)
        .bind(&statuses)
        .bind(&next_at)
        .bind(opt_text(|a| a.policy.map(|p| p.as_str().to_owned())))
        .bind(
            attempts
                .iter()
                .map(|a| a.timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
                .collect::<Vec<_>>(),
        )
        .bind(text(|a| to_json(&a.request_headers)))
        .fetch_all(conn)
        .await?;
    inserted
        .iter()
        .map(|row| Ok(sqlx::Row::try_get::<String, _>(row, "id")?))
        .collect()
}

/// Writes the judged endpoints' counters, disables those that must be (parking their
/// pending deliveries), and writes the operational events: one statement each.
async fn write_health(
    conn: &mut PgConnection,
    judged: &[(crate::domain::EndpointId, Judged)],
) -> Result<()> {
    if judged.is_empty() {
        return Ok(());
    }
    let counters = || judged.iter().map(|(_, j)| &j.judgement.counters);
    let ids: Vec<&str> = judged.iter().map(|(id, _)| id.as_str()).collect();
    let streaks: Vec<i64> = counters()
        .map(|c| i64::from(c.consecutive_failures))
        .collect();
    let since: Vec<Option<i64>> = counters().map(|c| c.failing_since.map(to_micros)).collect();
    let windows: Vec<&str> = counters().map(|c| c.window.as_str()).collect();
    let success: Vec<Option<i64>> = counters()
        .map(|c| c.last_success_at.map(to_micros))
        .collect();
    let failure: Vec<Option<i64>> = counters()
        .map(|c| c.last_failure_at.map(to_micros))
        .collect();
    let alerted: Vec<i64> = counters().map(|c| i64::from(c.alerted)).collect();
    let states: Vec<&str> = counters().map(|c| c.state.as_str()).collect();
    let at: Vec<i64> = judged.iter().map(|(_, j)| to_micros(j.at)).collect();
    sqlx::query(
        "INSERT INTO endpoint_health (endpoint_id, consecutive_failures, failing_since, outcomes,
           last_success_at, last_failure_at, alerted, state, updated_at)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
           $6::int8[], $7::int8[], $8::text[], $9::int8[])
         ON CONFLICT (endpoint_id) DO UPDATE SET
           consecutive_failures = excluded.consecutive_failures,
           failing_since = excluded.failing_since, outcomes = excluded.outcomes,
           last_success_at = excluded.last_success_at, last_failure_at = excluded.last_failure_at,
           alerted = excluded.alerted, state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(&ids)
    .bind(&streaks)
    .bind(&since)
    .bind(&windows)
    .bind(&success)
    .bind(&failure)
    .bind(&alerted)
    .bind(&states)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    let (disabled, disabled_at): (Vec<&str>, Vec<i64>) = judged
        .iter()
        .filter(|(_, j)| j.judgement.disable.is_some())
        .map(|(id, j)| (id.as_str(), to_micros(j.at)))
        .unzip();
    if !disabled.is_empty() {
        disable(conn, &disabled, &disabled_at).await?;
    }
    let events = || judged.iter().flat_map(|(_, j)| &j.events);
    if events().next().is_some() {
        let types: Vec<&str> = events().map(|(e, _)| e.event_type()).collect();
        let payloads: Vec<String> = events().map(|(e, _)| e.payload()).collect();
        let times: Vec<i64> = events().map(|(_, at)| to_micros(*at)).collect();
        // In the order the events happened: the outbox is drained in id order.
        sqlx::query(
            "INSERT INTO operational_event (event_type, payload, created_at)
             SELECT event_type, payload, created_at FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY
               AS e(event_type, payload, created_at, n)
             ORDER BY n",
        )
        .bind(&types)
        .bind(&payloads)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Disables endpoints (410 Gone, auto-disable) and parks their pending deliveries.
async fn disable(conn: &mut PgConnection, ids: &[&str], at: &[i64]) -> Result<()> {
    sqlx::query(
        "UPDATE endpoint SET disabled = true, updated_at = t.at
         FROM unnest($1::text[], $2::int8[]) AS t(id, at) WHERE endpoint.id = t.id",
    )
    .bind(ids)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE delivery SET next_attempt_at = NULL WHERE endpoint_id = ANY($1) AND status = 1",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
