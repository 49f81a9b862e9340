use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::domain::Timestamp;
use crate::domain::time::{now, to_micros};
use crate::store::{AdminStore, IdempotencyClaim, Result, StoredResponse};

#[async_trait]
impl AdminStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn insert_api_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO api_token (token_hash, created_at) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(to_micros(now()))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn api_token_exists(&self, token_hash: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM api_token WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        lock_expired_before: Timestamp,
    ) -> Result<IdempotencyClaim> {
        let mut tx = self.writer.begin().await?;
        let existing = sqlx::query(
            "SELECT state, status, body, started_at FROM idempotency_key WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let claim = match existing {
            Some(row) if row.try_get::<i64, _>("state")? == 1 => {
                let status: i64 = row.try_get("status")?;
                IdempotencyClaim::Completed(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    body: row.try_get("body")?,
                })
            }
            Some(row) if row.try_get::<i64, _>("started_at")? >= to_micros(lock_expired_before) => {
                IdempotencyClaim::InProgress
            }
            // Unknown, or held by a request that died without finishing: take it.
            _ => {
                sqlx::query(
                    "INSERT INTO idempotency_key (key, state, started_at) VALUES ($1, 0, $2)
                     ON CONFLICT (key) DO UPDATE SET state = 0, started_at = excluded.started_at",
                )
                .bind(key)
                .bind(to_micros(now()))
                .execute(&mut *tx)
                .await?;
                IdempotencyClaim::Claimed
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn complete_idempotency_key(&self, key: &str, response: &StoredResponse) -> Result<()> {
        sqlx::query("UPDATE idempotency_key SET state = 1, status = $2, body = $3 WHERE key = $1")
            .bind(key)
            .bind(i64::from(response.status))
            .bind(&response.body)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_key WHERE key = $1 AND state = 0")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_key WHERE started_at < $1")
            .bind(to_micros(before))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_messages(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM message WHERE id IN (
                SELECT m.id FROM message m WHERE m.created_at < $1
                  AND NOT EXISTS (SELECT 1 FROM delivery d
                                  WHERE d.msg_id = m.id AND d.status IN (1, 3))
                ORDER BY m.created_at LIMIT $2)",
        )
        .bind(to_micros(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
