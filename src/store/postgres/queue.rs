//! The hot path on PostgreSQL: accepting messages and recording attempts go through the
//! batchers (`ingest`, `records`); claims are here.
//!
//! A claim is one statement: a CTE picks the due deliveries oldest first and locks them
//! with `FOR UPDATE SKIP LOCKED` (rows another node is claiming right now are passed over,
//! not waited for), and the UPDATE marks them `sending` with `lease_until` and
//! `next_attempt_at` set to the lease's end, so a claim whose node died comes due again when
//! its lease expires, with no separate sweep. It commits before the claims are returned:
//! no transaction is open while they are sent. Deliveries of a disabled endpoint are parked
//! with a NULL `next_attempt_at` and never scanned.

use std::collections::HashMap;

use async_trait::async_trait;

use super::sql::{batch_query, id_array};
use super::{PgStore, micros};
use crate::domain::{Endpoint, EndpointId, Message, Timestamp, Trigger};
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, StoredRow};
use crate::store::{
    AttemptRecord, ClaimLimits, ClaimedDelivery, Enqueued, NewMessage, QueueStore, Result,
};

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue_message(&self, new: NewMessage) -> Result<Enqueued> {
        self.ingest.submit(new).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.pool.begin().await?;
        // The head of the due queue, locked; rows other nodes are claiming are passed over.
        let scan = limits.total.saturating_mul(4).max(64);
        let head = sqlx::query(
            "SELECT d.id, d.endpoint_id FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
             WHERE d.status IN (1, 3) AND d.next_attempt_at <= $1 AND NOT e.disabled
             ORDER BY d.next_attempt_at
             LIMIT $2
             FOR UPDATE OF d SKIP LOCKED",
        )
        .bind(micros(now))
        .bind(i64::try_from(scan).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let candidates: Vec<(i64, EndpointId)> = head
            .iter()
            .map(|r| {
                Ok((
                    r.int("id")?,
                    EndpointId::from_stored(r.text("endpoint_id")?),
                ))
            })
            .collect::<Result<_>>()?;
        let mut picked: Vec<i64> = limits.pick(&candidates).into_iter().copied().collect();
        let crowded_out = picked.len() < limits.total
            && candidates
                .iter()
                .any(|(_, ep)| limits.room.get(ep).is_some_and(|room| *room == 0));
        if crowded_out {
            // Look past endpoints without room, one due delivery per other endpoint, through
            // the per-endpoint due index: their backlog is never scanned.
            let excluded: Vec<EndpointId> = candidates
                .iter()
                .map(|(_, ep)| ep.clone())
                .chain(limits.full())
                .collect();
            let more: Vec<i64> = sqlx::query_scalar(
                "SELECT due.id FROM endpoint e CROSS JOIN LATERAL (
                    SELECT d.id FROM delivery d
                    WHERE d.endpoint_id = e.id AND d.status IN (1, 3) AND d.next_attempt_at <= $1
                    ORDER BY d.next_attempt_at LIMIT 1
                    FOR UPDATE OF d SKIP LOCKED) due
                 WHERE NOT e.disabled AND NOT (e.id = ANY($2::text[]))
                 LIMIT $3",
            )
            .bind(micros(now))
            .bind(id_array(&excluded))
            .bind(i64::try_from(limits.total - picked.len()).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            picked.extend(more);
        }
        if picked.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let claimed = batch_query(
            "UPDATE delivery SET status = 3, lease_until = $2, next_attempt_at = $2,
                updated_at = $1
             WHERE id = ANY($3)
             RETURNING id, msg_id, endpoint_id, attempts, trigger_type",
        )
        .bind(micros(now))
        .bind(micros(lease))
        .bind(&picked)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut msg_ids: Vec<String> = claimed
            .iter()
            .map(|r| r.text("msg_id"))
            .collect::<Result<_>>()?;
        let mut endpoint_ids: Vec<String> = claimed
            .iter()
            .map(|r| r.text("endpoint_id"))
            .collect::<Result<_>>()?;
        msg_ids.sort_unstable();
        msg_ids.dedup();
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        let messages = batch_query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE id = ANY($1)"
        ))
        .bind(&msg_ids)
        .fetch_all(&self.pool)
        .await?;
        let endpoints = batch_query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id = ANY($1)"
        ))
        .bind(&endpoint_ids)
        .fetch_all(&self.pool)
        .await?;
        let messages: HashMap<String, Message> = rows::all(&messages, rows::message)?
            .into_iter()
            .map(|m| (m.id.as_str().to_owned(), m))
            .collect();
        let endpoints: HashMap<String, Endpoint> = rows::all(&endpoints, rows::endpoint)?
            .into_iter()
            .map(|e| (e.id.as_str().to_owned(), e))
            .collect();
        let mut out = Vec::with_capacity(claimed.len());
        for row in &claimed {
            // Missing only if deleted since the claim, and then the delivery went with it
            // (pruned with its message, or by ON DELETE CASCADE from its endpoint): nothing
            // to send.
            let (Some(message), Some(endpoint)) = (
                messages.get(&row.text("msg_id")?),
                endpoints.get(&row.text("endpoint_id")?),
            ) else {
                continue;
            };
            out.push(ClaimedDelivery {
                id: row.int("id")?,
                lease,
                attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
                trigger: Trigger::from_code(row.int("trigger_type")?),
                message: message.clone(),
                endpoint: endpoint.clone(),
            });
        }
        Ok(out)
    }

    async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        self.records.submit(record).await
    }
}
