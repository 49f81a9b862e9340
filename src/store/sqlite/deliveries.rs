//! The delivery queue on SQLite: claim with a lease, record outcomes, release, re-queue.
//!
//! A claimed delivery is `sending` with `lease_until` set and `next_attempt_at` moved to
//! the same instant, so a claim whose dispatcher died becomes due again when its lease
//! expires, with no separate sweep. Deliveries of a disabled endpoint are parked with a NULL
//! `next_attempt_at` and never scanned.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::sql::id_list;
use super::writer::WriteJob;
use crate::domain::time::{from_micros, to_micros};
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryCounts, DeliveryStatus, Endpoint, EndpointId, Message,
    MessageId, Timestamp, Trigger,
};
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, counts, to_json};
use crate::store::{
    AttemptFilter, AttemptRecord, ClaimedDelivery, DeliveryState, DeliveryStore, MessageFilter,
    NextStep, PageQuery, Result, StoreError,
};

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limit: usize,
        skip: &[EndpointId],
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.writer.begin().await?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE delivery SET status = 3, lease_until = ");
        qb.push_bind(to_micros(lease))
            .push(", next_attempt_at = ")
            .push_bind(to_micros(lease))
            .push(", updated_at = ")
            .push_bind(to_micros(now))
            .push(
                " WHERE id IN (SELECT d.id FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
                 WHERE d.status IN (1, 3) AND e.disabled = 0 AND d.next_attempt_at <= ",
            )
            .push_bind(to_micros(now));
        push_skip(&mut qb, skip);
        qb.push(" ORDER BY d.next_attempt_at LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .push(") RETURNING id, msg_id, endpoint_id, attempts, trigger_type");
        let claimed = qb.build().fetch_all(&mut *tx).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }

        let msg_ids = id_list(claimed.iter().filter_map(|r| r.try_get("msg_id").ok()));
        let endpoint_ids = id_list(claimed.iter().filter_map(|r| r.try_get("endpoint_id").ok()));
        let messages = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(msg_ids)
        .fetch_all(&mut *tx)
        .await?;
        let endpoints = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(endpoint_ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let messages: Vec<Message> = rows::all(&messages, rows::message)?;
        let endpoints: Vec<Endpoint> = rows::all(&endpoints, rows::endpoint)?;
        let mut out = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let msg_id: String = row.try_get("msg_id")?;
            let endpoint_id: String = row.try_get("endpoint_id")?;
            // Both are referenced with ON DELETE CASCADE, so they exist in this snapshot.
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

    async fn next_due(&self, skip: &[EndpointId]) -> Result<Option<Timestamp>> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT d.next_attempt_at FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
             WHERE d.status IN (1, 3) AND e.disabled = 0 AND d.next_attempt_at IS NOT NULL",
        );
        push_skip(&mut qb, skip);
        qb.push(" ORDER BY d.next_attempt_at LIMIT 1");
        let next: Option<i64> = qb.build_query_scalar().fetch_optional(&self.reader).await?;
        Ok(next.map(from_micros))
    }

    async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.write(WriteJob::Record { record, reply }).await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }

    async fn release_claims(&self, claims: &[(i64, Timestamp)], now: Timestamp) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for (id, lease) in claims {
            sqlx::query(
                "UPDATE delivery SET status = 1, next_attempt_at = $3, lease_until = NULL,
                 updated_at = $3 WHERE id = $1 AND status = 3 AND lease_until = $2",
            )
            .bind(id)
            .bind(to_micros(*lease))
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
        }
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
        .execute(&self.writer)
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
        .bind(to_micros(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn recover(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE delivery SET status = 1, attempts = 0, next_attempt_at = $4, trigger_type = 1,
             updated_at = $4
             WHERE endpoint_id = $1 AND status = 2 AND created_at >= $2 AND created_at < $3",
        )
        .bind(endpoint.as_str())
        .bind(to_micros(since))
        .bind(until.map(to_micros).unwrap_or(i64::MAX))
        .bind(to_micros(now))
        .execute(&self.writer)
        .await?;
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
        .bind(since.map(to_micros).unwrap_or(i64::MIN))
        .bind(until.map(to_micros).unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        counts(&found)
    }

    async fn message_delivery_counts(&self, msg: &MessageId) -> Result<DeliveryCounts> {
        let found = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM delivery WHERE msg_id = $1 GROUP BY status",
        )
        .bind(msg.as_str())
        .fetch_all(&self.reader)
        .await?;
        counts(&found)
    }
}

fn push_skip(qb: &mut QueryBuilder<'_, Sqlite>, skip: &[EndpointId]) {
    if !skip.is_empty() {
        qb.push(" AND d.endpoint_id NOT IN (SELECT value FROM json_each(")
            .push_bind(id_list(skip.iter().map(|e| e.as_str())))
            .push("))");
    }
}

/// Writes one attempt and moves its delivery on; runs inside a write batch.
pub(super) async fn apply_record(
    conn: &mut SqliteConnection,
    record: &AttemptRecord,
) -> Result<()> {
    let a = &record.attempt;
    sqlx::query(
        "INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, response_status_code,
         response, response_headers, duration_ms, trigger_type, error_class, error, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(a.id.as_str())
    .bind(a.msg_id.as_str())
    .bind(a.endpoint_id.as_str())
    .bind(a.app_id.as_str())
    .bind(&a.url)
    .bind(a.status.code())
    .bind(i64::from(a.response_status_code))
    .bind(&a.response_body)
    .bind(to_json(&a.response_headers))
    .bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
    .bind(a.trigger.code())
    .bind(a.error.as_ref().map(|e| e.class.as_str()))
    .bind(a.error.as_ref().map(|e| e.message.as_str()))
    .bind(to_micros(a.created_at))
    .execute(&mut *conn)
    .await?;

    let (status, next_at) = match record.next {
        NextStep::Delivered => (DeliveryStatus::Success, None),
        NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(to_micros(at))),
        NextStep::Failed | NextStep::DisableEndpoint => (DeliveryStatus::Fail, None),
    };
    // Applied only while the claim still holds its lease: a resend or a newer claim wins.
    sqlx::query(
        "UPDATE delivery SET status = $3, next_attempt_at = $4, lease_until = NULL,
         attempts = attempts + 1, trigger_type = 0, updated_at = $5
         WHERE id = $1 AND lease_until = $2",
    )
    .bind(record.delivery_id)
    .bind(to_micros(record.lease))
    .bind(status.code())
    .bind(next_at)
    .bind(to_micros(a.created_at))
    .execute(&mut *conn)
    .await?;

    if record.next == NextStep::DisableEndpoint {
        sqlx::query("UPDATE endpoint SET disabled = 1, updated_at = $2 WHERE id = $1")
            .bind(a.endpoint_id.as_str())
            .bind(to_micros(a.created_at))
            .execute(&mut *conn)
            .await?;
        park_or_unpark(conn, &a.endpoint_id, true, a.created_at).await?;
    }
    Ok(())
}

/// Parks the endpoint's pending deliveries (disabled) or makes parked ones due now (enabled).
pub(super) async fn park_or_unpark(
    conn: &mut SqliteConnection,
    endpoint: &EndpointId,
    disabled: bool,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE delivery SET next_attempt_at =
         CASE WHEN $2 THEN NULL ELSE COALESCE(next_attempt_at, $3) END
         WHERE endpoint_id = $1 AND status = 1",
    )
    .bind(endpoint.as_str())
    .bind(disabled)
    .bind(to_micros(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
