//! Recording attempts on PostgreSQL: a batch of outcomes in one statement (see
//! [`super::batch`]), or one transaction when an endpoint answered 410 Gone and must be
//! disabled with it.
//!
//! Every attempt is kept in the log, but a delivery moves on only while it still carries the
//! lease of the claim that made the attempt (`lease_until = lease`): a claim that outlived
//! its lease (another node took the delivery over) cannot undo the newer claim's work.

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

use super::micros;
use super::sql::batch_query;
use crate::store::rows::to_json;
use crate::store::{AttemptRecord, NextStep, Result};

pub fn write<'a>(
    pool: &'a PgPool,
    batch: &'a [AttemptRecord],
) -> BoxFuture<'a, Result<Vec<Result<()>>>> {
    Box::pin(write_batch(pool, batch))
}

async fn write_batch(pool: &PgPool, batch: &[AttemptRecord]) -> Result<Vec<Result<()>>> {
    if !batch.iter().any(|r| r.next == NextStep::DisableEndpoint) {
        // One statement is atomic on its own: no BEGIN and COMMIT round trips.
        let mut conn = pool.acquire().await?;
        record(&mut conn, batch).await?;
    } else {
        let mut tx = pool.begin().await?;
        record(&mut tx, batch).await?;
        disable_gone(&mut tx, batch).await?;
        tx.commit().await?;
    }
    Ok(batch.iter().map(|_| Ok(())).collect())
}

/// Inserts the attempts and moves their deliveries on, in one statement.
async fn record(conn: &mut PgConnection, batch: &[AttemptRecord]) -> Result<()> {
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
    // Both parts see the deliveries as they were before the statement: an attempt is kept
    // for every delivery that still exists, and a delivery moves on only while it carries
    // the lease of the claim that made the attempt.
    batch_query(
        "WITH moved AS (
           UPDATE delivery d SET status = u.status, next_attempt_at = u.next_at,
             lease_until = NULL, attempts = d.attempts + 1, trigger_type = 0,
             updated_at = u.at
           FROM unnest($15::int8[], $16::int8[], $17::int8[], $18::int8[], $14::int8[])
             AS u(id, lease, status, next_at, at)
           WHERE d.id = u.id AND d.lease_until = u.lease)
         INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, response_status_code,
           response, response_headers, duration_ms, trigger_type, error_class, error, created_at)
         SELECT a.id, a.msg_id, a.endpoint_id, a.app_id, a.url, a.status, a.code, a.response,
           a.headers, a.duration, a.trigger_type, a.error_class, a.error, a.created_at
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
           $6::int8[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[],
           $13::text[], $14::int8[], $15::int8[])
           AS a(id, msg_id, endpoint_id, app_id, url, status, code, response, headers, duration,
                trigger_type, error_class, error, created_at, delivery_id)
         -- A delivery deleted while its attempt was in flight has nothing to record against.
         WHERE EXISTS (SELECT 1 FROM delivery d WHERE d.id = a.delivery_id)
         ON CONFLICT (id) DO NOTHING",
    )
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
    .execute(conn)
    .await?;
    Ok(())
}

/// 410 Gone: disables the endpoints that answered it in this batch and parks their pending
/// deliveries.
async fn disable_gone(conn: &mut PgConnection, batch: &[AttemptRecord]) -> Result<()> {
    let gone_records = || batch.iter().filter(|r| r.next == NextStep::DisableEndpoint);
    let mut gone: Vec<&str> = gone_records()
        .map(|r| r.attempt.endpoint_id.as_str())
        .collect();
    gone.sort_unstable();
    gone.dedup();
    let now = gone_records()
        .next()
        .map_or(0, |r| micros(r.attempt.created_at));
    sqlx::query("UPDATE endpoint SET disabled = true, updated_at = $2 WHERE id = ANY($1)")
        .bind(&gone)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE delivery SET next_attempt_at = NULL WHERE endpoint_id = ANY($1) AND status = 1",
    )
    .bind(&gone)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
