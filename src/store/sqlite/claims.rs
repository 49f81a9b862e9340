//! Claiming due deliveries, inside a write batch.
//!
//! A claim reads the head of the due queue (a few times more rows than it may take) and picks
//! from it in due order, within each endpoint's room. When the head belongs to endpoints that
//! have no room (one slow endpoint's backlog), it then looks past them endpoint by endpoint,
//! through the per-endpoint due index, so their backlog is never scanned and other endpoints'
//! deliveries are not held up behind it.

use std::collections::HashSet;

use sqlx::{Row, SqliteConnection};

use super::sql::id_list;
use crate::domain::time::to_micros;
use crate::domain::{Endpoint, EndpointId, Message, Timestamp, Trigger};
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, to_json};
use crate::store::{ClaimLimits, ClaimedDelivery, Result, StoreError};

/// Marks the chosen due deliveries `sending` under a lease and loads what sending needs.
pub(super) async fn claim(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lease: Timestamp,
    limits: &ClaimLimits,
) -> Result<Vec<ClaimedDelivery>> {
    let candidates = head_of_queue(conn, now, limits.total).await?;
    let mut picked: Vec<i64> = limits.pick(&candidates).into_iter().copied().collect();
    let crowded_out = picked.len() < limits.total
        && candidates
            .iter()
            .any(|(_, ep)| limits.room.get(ep).is_some_and(|room| *room == 0));
    if crowded_out {
        let seen: HashSet<&EndpointId> = candidates.iter().map(|(_, ep)| ep).collect();
        let more = past_the_head(conn, now, limits, &seen, limits.total - picked.len()).await?;
        picked.extend(more);
    }
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    mark_and_load(conn, now, lease, &picked).await
}

/// The first `n` due deliveries, oldest due first.
async fn head_of_queue(
    conn: &mut SqliteConnection,
    now: Timestamp,
    n: usize,
) -> Result<Vec<(i64, EndpointId)>> {
    let rows = sqlx::query(
        "SELECT d.id, d.endpoint_id FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
         WHERE d.status IN (1, 3) AND NOT e.disabled AND d.next_attempt_at <= $1
         ORDER BY d.next_attempt_at LIMIT $2",
    )
    .bind(to_micros(now))
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                EndpointId::from_stored(row.try_get("endpoint_id")?),
            ))
        })
        .collect()
}

/// The oldest due delivery of each other enabled endpoint with room, up to `n` of them.
async fn past_the_head(
    conn: &mut SqliteConnection,
    now: Timestamp,
    limits: &ClaimLimits,
    seen: &HashSet<&EndpointId>,
    n: usize,
) -> Result<Vec<i64>> {
    let full = limits.full();
    let excluded: Vec<&str> = seen
        .iter()
        .map(|e| e.as_str())
        .chain(full.iter().map(|e| e.as_str()))
        .collect();
    let rows = sqlx::query(
        "SELECT (SELECT d.id FROM delivery d
                 WHERE d.endpoint_id = e.id AND d.status IN (1, 3) AND d.next_attempt_at <= $1
                 ORDER BY d.next_attempt_at LIMIT 1) AS due_id
         FROM endpoint e
         WHERE NOT e.disabled AND e.id NOT IN (SELECT value FROM json_each($2))
           AND due_id IS NOT NULL
         LIMIT $3",
    )
    .bind(to_micros(now))
    .bind(to_json(&excluded))
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| Ok(row.try_get("due_id")?)).collect()
}

async fn mark_and_load(
    conn: &mut SqliteConnection,
    now: Timestamp,
    lease: Timestamp,
    picked: &[i64],
) -> Result<Vec<ClaimedDelivery>> {
    let claimed = sqlx::query(
        "UPDATE delivery SET status = 3, lease_until = $1, next_attempt_at = $1,
         updated_at = $2 WHERE id IN (SELECT value FROM json_each($3))
         RETURNING id, msg_id, endpoint_id, attempts, trigger_type",
    )
    .bind(to_micros(lease))
    .bind(to_micros(now))
    .bind(to_json(&picked))
    .fetch_all(&mut *conn)
    .await?;
    let msg_ids = id_list(claimed.iter().filter_map(|r| r.try_get("msg_id").ok()));
    let endpoint_ids = id_list(claimed.iter().filter_map(|r| r.try_get("endpoint_id").ok()));
    let messages = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM message WHERE id IN (SELECT value FROM json_each($1))"
    ))
    .bind(msg_ids)
    .fetch_all(&mut *conn)
    .await?;
    let endpoints = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id IN (SELECT value FROM json_each($1))"
    ))
    .bind(endpoint_ids)
    .fetch_all(&mut *conn)
    .await?;
    let messages: Vec<Message> = rows::all(&messages, rows::message)?;
    let endpoints: Vec<Endpoint> = rows::all(&endpoints, rows::endpoint)?;
    let mut out = Vec::with_capacity(claimed.len());
    for row in &claimed {
        let msg_id: String = row.try_get("msg_id")?;
        let endpoint_id: String = row.try_get("endpoint_id")?;
        // Both are referenced with ON DELETE CASCADE, so they exist in this transaction.
        let (Some(message), Some(endpoint)) = (
            messages.iter().find(|m| m.id.as_str() == msg_id),
            endpoints.iter().find(|e| e.id.as_str() == endpoint_id),
        ) else {
            return Err(StoreError::Corrupt(format!(
                "claimed delivery of {msg_id} to {endpoint_id} has no message or endpoint"
            )));
        };
        out.push(ClaimedDelivery {
            id: row.try_get("id")?,
            lease,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            trigger: Trigger::from_code(row.try_get("trigger_type")?),
            message: message.clone(),
            endpoint: endpoint.clone(),
        });
    }
    Ok(out)
}
