//! The delivery queue on PostgreSQL: claim with a lease, release, re-queue, count.
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
use super::{PgStore, micros, notify_due};
use crate::domain::time::from_micros;
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryCounts, DeliveryStatus, Endpoint, EndpointId, Message,
    MessageId, Timestamp, Trigger,
};
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, StoredRow, counts};
use crate::store::{
    AttemptFilter, AttemptRecord, ClaimLimits, ClaimedDelivery, DeliveryState, DeliveryStore,
    MessageFilter, PageQuery, Result, StoreError,
};

#[async_trait]
impl DeliveryStore for PgStore {
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

    async fn next_due(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM delivery
             WHERE status IN (1, 3) AND next_attempt_at > $1",
        )
        .bind(micros(after))
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(from_micros))
    }

    async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        self.records.submit(record).await
    }

    async fn release_claims(&self, claims: &[(i64, Timestamp)], now: Timestamp) -> Result<()> {
        let ids: Vec<i64> = claims.iter().map(|(id, _)| *id).collect();
        let leases: Vec<i64> = claims.iter().map(|(_, lease)| micros(*lease)).collect();
        let mut tx = self.pool.begin().await?;
        batch_query(
            "UPDATE delivery d SET status = 1, next_attempt_at = $3, lease_until = NULL,
             updated_at = $3
             FROM unnest($1::int8[], $2::int8[]) AS c(id, lease)
             WHERE d.id = c.id AND d.status = 3 AND d.lease_until = c.lease",
        )
        .bind(&ids)
        .bind(&leases)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        notify_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageQuery,
    ) -> Result<Vec<Attempt>> {
        self.query_attempts(app, filter, page).await
    }

    async fn get_attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>> {
        self.query_attempt(app, id).await
    }

    async fn expunge_attempt_content(&self, app: &AppId, id: &AttemptId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE attempt SET response = '', response_headers = '{}'
             WHERE app_id = $1 AND id = $2",
        )
        .bind(app.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_endpoint_messages(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<(Message, DeliveryState)>> {
        self.query_endpoint_messages(endpoint, status, filter, page)
            .await
    }

    async fn list_message_endpoints(
        &self,
        msg: &MessageId,
        page: &PageQuery,
    ) -> Result<Vec<(Endpoint, DeliveryState)>> {
        self.query_message_endpoints(msg, page).await
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at,
             trigger_type, created_at, updated_at)
             VALUES ($1, $2, $3, 1, 0, $4, 1, $4, $4)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, attempts = 0,
             next_attempt_at = $4, lease_until = NULL, trigger_type = 1, updated_at = $4",
        )
        .bind(msg.as_str())
        .bind(endpoint.as_str())
        .bind(app.as_str())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        notify_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE delivery SET status = 1, attempts = 0, next_attempt_at = $4, trigger_type = 1,
             updated_at = $4
             WHERE endpoint_id = $1 AND status = 2 AND created_at >= $2 AND created_at < $3",
        )
        .bind(endpoint.as_str())
        .bind(micros(since))
        .bind(until.map(micros).unwrap_or(i64::MAX))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            notify_due(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryCounts> {
        let found = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM delivery
             WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY status",
        )
        .bind(endpoint.as_str())
        .bind(since.map(micros).unwrap_or(i64::MIN))
        .bind(until.map(micros).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        counts(&found)
    }

    async fn message_delivery_counts(&self, msg: &MessageId) -> Result<DeliveryCounts> {
        let found = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM delivery WHERE msg_id = $1 GROUP BY status",
        )
        .bind(msg.as_str())
        .fetch_all(&self.pool)
        .await?;
        counts(&found)
    }
}
