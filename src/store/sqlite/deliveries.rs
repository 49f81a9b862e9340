//! The delivery queue on SQLite: claim with a lease, record outcomes, release, re-queue.
//!
//! A claimed delivery is `sending` with `lease_until` set and `next_attempt_at` moved to
//! the same instant, so a claim whose dispatcher died becomes due again when its lease
//! expires, with no separate sweep. Deliveries of a disabled endpoint are parked with a NULL
//! `next_attempt_at` and never scanned.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::SqliteStore;
use super::writer::WriteJob;
use crate::domain::time::{from_micros, to_micros};
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryCounts, DeliveryStatus, Endpoint, EndpointId, Message,
    MessageId, Timestamp,
};
use crate::store::rows::counts;
use crate::store::{
    AttemptFilter, AttemptRecord, ClaimLimits, ClaimedDelivery, DeliveryState, DeliveryStore,
    MessageFilter, PageQuery, Result, StoreError,
};

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.write(WriteJob::Claim {
            now,
            lease,
            limits: limits.clone(),
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }

    async fn next_due(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM delivery
             WHERE status IN (1, 3) AND next_attempt_at > $1",
        )
        .bind(to_micros(after))
        .fetch_one(&self.reader)
        .await?;
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

/// Parks (`?2` true) or unparks at `?3` the pending deliveries of endpoint `?1`; also run by
/// the batch writer when an endpoint answers 410 Gone. `status IN (1, 3)` repeats
/// `delivery_due_by_endpoint`'s predicate so SQLite searches that index rather than every
/// delivery the endpoint ever had. Numbered `?N` parameters bind the same in sqlx and rusqlite.
pub(super) const PARK_OR_UNPARK: &str = "UPDATE delivery SET next_attempt_at =
     CASE WHEN ?2 THEN NULL ELSE COALESCE(next_attempt_at, ?3) END
     WHERE endpoint_id = ?1 AND status IN (1, 3) AND status = 1";

/// Parks the endpoint's pending deliveries (disabled) or makes parked ones due now (enabled).
pub(super) async fn park_or_unpark(
    conn: &mut SqliteConnection,
    endpoint: &EndpointId,
    disabled: bool,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(PARK_OR_UNPARK)
        .bind(endpoint.as_str())
        .bind(disabled)
        .bind(to_micros(now))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
