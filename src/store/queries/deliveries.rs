//! The attempt log and the delivery queue's management side: reading attempts and delivery
//! states, resending, counting, giving claims back (recovering is in `replays`). Claiming
//! and recording are the hot path, in each engine's [`QueueStore`].
//!
//! [`QueueStore`]: crate::store::QueueStore

use async_trait::async_trait;

use super::{changed_one, push_message_filter};
use crate::domain::time::from_micros;
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryCounts, DeliveryStatus, Endpoint, EndpointId, Message,
    MessageId, Timestamp,
};
use crate::store::engine::Engine;
use crate::store::fifo;
use crate::store::page::push_page;
use crate::store::rows::{self, ATTEMPT_COLUMNS, DELIVERY_STATE, StoredRow, counts, prefixed};
use crate::store::sql::{Conn, Sql};
use crate::store::{
    AttemptFilter, DeliveryState, DeliveryStore, MessageFilter, PageQuery, Result, StoreError,
};

/// Claims given back per statement: well within both engines' parameter limits.
const RELEASE_CHUNK: usize = 500;

#[async_trait]
impl<E: Engine> DeliveryStore for E {
    async fn next_due(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        let next = Sql::new(
            "SELECT MIN(next_attempt_at) AS next FROM delivery
             WHERE status IN (1, 3) AND next_attempt_at > $1",
        )
        .bind(after);
        let row = self.reads().acquire().await?.row(&next).await?;
        Ok(row
            .map(|r| r.opt_int("next"))
            .transpose()?
            .flatten()
            .map(from_micros))
    }

    async fn release_claims(&self, claims: &[(i64, Timestamp)], now: Timestamp) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        // A few hundred claims at most (those held at shutdown), each pair two parameters.
        for chunk in claims.chunks(RELEASE_CHUNK) {
            let mut release = Sql::new(
                "UPDATE delivery SET status = 1, next_attempt_at = $1, lease_until = NULL,
                 updated_at = $1 WHERE status = 3 AND (id, lease_until) IN (VALUES ",
            )
            .bind(now);
            for (i, (id, lease)) in chunk.iter().enumerate() {
                release.push(if i == 0 { "(" } else { ", (" });
                release
                    .push_bind(*id)
                    .push(", ")
                    .push_bind(*lease)
                    .push(")");
            }
            release.push(")");
            tx.exec(&release).await?;
        }
        E::notify_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn repair_fifo_lines(&self, now: Timestamp) -> Result<u64> {
        let lines = Sql::new(fifo::LINES_WITHOUT_HEAD);
        let found = self.reads().acquire().await?.rows(&lines).await?;
        let mut moved = 0;
        for row in &found {
            let id = row.text("id")?;
            let mut tx = self.writes().begin().await?;
            let lock = Sql::new(format!(
                "SELECT id FROM endpoint WHERE id = $1{}",
                E::FOR_UPDATE
            ))
            .bind(id.as_str());
            tx.row(&lock).await?;
            if fifo::promote(&mut *tx, &id, now).await?.is_some() {
                E::notify_due(&mut tx).await?;
                moved += 1;
            }
            tx.commit().await?;
        }
        Ok(moved)
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageQuery,
    ) -> Result<Vec<Attempt>> {
        let list = attempts(app, filter, page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::attempt)
    }

    async fn get_attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>> {
        let get = Sql::new(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE app_id = $1 AND id = $2"
        ))
        .bind(app.as_str())
        .bind(id.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::attempt).transpose()
    }

    async fn expunge_attempt_content(&self, app: &AppId, id: &AttemptId) -> Result<()> {
        let expunge = Sql::new(
            "UPDATE attempt SET response = '', response_headers = '{}'
             WHERE app_id = $1 AND id = $2",
        )
        .bind(app.as_str())
        .bind(id.as_str());
        changed_one(self.writes().acquire().await?.exec(&expunge).await?)
    }

    async fn list_endpoint_messages(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<(Message, DeliveryState)>> {
        let mut list = Sql::new(format!(
            "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN message m ON m.id = d.msg_id \
             WHERE d.endpoint_id = ",
            prefixed(rows::MESSAGE_COLUMNS, "m")
        ));
        list.push_bind(endpoint.as_str());
        if let Some(status) = status {
            list.push(" AND d.status = ").push_bind(status.code());
        }
        push_message_filter::<E>(&mut list, filter, "m");
        push_page(&mut list, "d.msg_id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        found
            .iter()
            .map(|row| Ok((rows::message(row)?, rows::delivery_state(row)?)))
            .collect()
    }

    async fn list_message_endpoints(
        &self,
        msg: &MessageId,
        page: &PageQuery,
    ) -> Result<Vec<(Endpoint, DeliveryState)>> {
        let mut list = Sql::new(format!(
            "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
             WHERE d.msg_id = ",
            prefixed(rows::ENDPOINT_COLUMNS, "e")
        ));
        list.push_bind(msg.as_str());
        push_page(&mut list, "d.endpoint_id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        found
            .iter()
            .map(|row| {
                Ok((
                    rows::endpoint(row, self.secrets())?,
                    rows::delivery_state(row)?,
                ))
            })
            .collect()
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: Timestamp,
    ) -> Result<()> {
        let resend = Sql::new(
            "INSERT INTO delivery (msg_id, endpoint_id, app_id, status, attempts, next_attempt_at,
             trigger_type, created_at, updated_at)
             VALUES ($1, $2, $3, 1, 0, $4, 1, $4, $4)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, attempts = 0,
             next_attempt_at = $4, lease_until = NULL, trigger_type = 1, updated_at = $4",
        )
        .bind(msg.as_str())
        .bind(endpoint.as_str())
        .bind(app.as_str())
        .bind(now);
        let mut tx = self.writes().begin().await?;
        // Neither may be deleted before this commits (`Engine::KEY_SHARE`).
        let both = Sql::new(format!(
            "SELECT 1 AS found FROM endpoint e, message m
             WHERE e.id = $1 AND e.app_id = $3 AND m.id = $2 AND m.app_id = $3{}",
            E::KEY_SHARE
        ))
        .bind(endpoint.as_str())
        .bind(msg.as_str())
        .bind(app.as_str());
        if tx.row(&both).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        tx.exec(&resend).await?;
        E::notify_due(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn endpoint_stats(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryCounts> {
        let stats = Sql::new(
            "SELECT status, COUNT(*) AS n FROM delivery
             WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY status",
        )
        .bind(endpoint.as_str())
        .bind(since.map_or(i64::MIN, crate::domain::time::to_micros))
        .bind(until.map_or(i64::MAX, crate::domain::time::to_micros));
        counts(&self.reads().acquire().await?.rows(&stats).await?)
    }

    async fn endpoint_attempt_counts(
        &self,
        endpoint: &EndpointId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<DeliveryCounts> {
        // The endpoint's attempts by `attempt_by_endpoint`, then filtered by time.
        let stats = Sql::new(
            "SELECT status, COUNT(*) AS n FROM attempt
             WHERE endpoint_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY status",
        )
        .bind(endpoint.as_str())
        .bind(since.map_or(i64::MIN, crate::domain::time::to_micros))
        .bind(until.map_or(i64::MAX, crate::domain::time::to_micros));
        counts(&self.reads().acquire().await?.rows(&stats).await?)
    }

    async fn message_delivery_counts(&self, msg: &MessageId) -> Result<DeliveryCounts> {
        let counted = Sql::new(
            "SELECT status, COUNT(*) AS n FROM delivery WHERE msg_id = $1 GROUP BY status",
        )
        .bind(msg.as_str());
        counts(&self.reads().acquire().await?.rows(&counted).await?)
    }
}

/// Attempts of an application matching `filter`, one page.
fn attempts(app: &AppId, filter: &AttemptFilter, page: &PageQuery) -> Sql {
    let mut sql = Sql::new(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE app_id = "
    ));
    sql.push_bind(app.as_str());
    if let Some(msg) = &filter.msg_id {
        sql.push(" AND msg_id = ").push_bind(msg.as_str());
    }
    if let Some(endpoint) = &filter.endpoint_id {
        sql.push(" AND endpoint_id = ").push_bind(endpoint.as_str());
    }
    if let Some(status) = filter.status {
        sql.push(" AND status = ").push_bind(status.code());
    }
    if let Some(class) = filter.status_code_class {
        let low = i64::from(class);
        let high = if class == 0 { 1 } else { low + 100 };
        sql.push(" AND response_status_code >= ")
            .push_bind(low)
            .push(" AND response_status_code < ")
            .push_bind(high);
    }
    if let Some(before) = filter.before {
        sql.push(" AND created_at < ").push_bind(before);
    }
    if let Some(after) = filter.after {
        sql.push(" AND created_at > ").push_bind(after);
    }
    push_page(&mut sql, "id", page);
    sql
}
