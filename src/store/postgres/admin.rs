//! API tokens, idempotency keys and retention on PostgreSQL. Idempotency claims may race
//! across nodes, so they are decided by an insert and a row lock, not by a read.

use async_trait::async_trait;
use sqlx::Row;

use super::{PgStore, micros};
use crate::domain::Timestamp;
use crate::domain::time::now;
use crate::store::{AdminStore, IdempotencyClaim, Result, StoredResponse};

#[async_trait]
impl AdminStore for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_api_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO api_token (token_hash, created_at) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(micros(now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn api_token_exists(&self, token_hash: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM api_token WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Requests on several nodes may race for one key: the insert decides who holds a new
    /// key, and a row lock decides who takes over a key whose holder died.
    async fn claim_idempotency_key(
        &self,
        key: &str,
        lock_expired_before: Timestamp,
    ) -> Result<IdempotencyClaim> {
        let mut tx = self.pool.begin().await?;
        let claim = loop {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_key (key, state, started_at) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(micros(now()))
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                break IdempotencyClaim::Claimed;
            }
            let existing = sqlx::query(
                "SELECT state, status, body, started_at FROM idempotency_key WHERE key = $1
                 FOR UPDATE",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            // Released (deleted) since the insert saw it: try to insert again.
            let Some(row) = existing else { continue };
            if row.try_get::<i16, _>("state")? == 1 {
                let status: i32 = row.try_get::<Option<i32>, _>("status")?.unwrap_or(500);
                break IdempotencyClaim::Completed(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    body: row
                        .try_get::<Option<Vec<u8>>, _>("body")?
                        .unwrap_or_default(),
                });
            }
            if row.try_get::<i64, _>("started_at")? >= micros(lock_expired_before) {
                break IdempotencyClaim::InProgress;
            }
            // Held by a request that died without finishing: take it over.
            sqlx::query("UPDATE idempotency_key SET started_at = $2 WHERE key = $1")
                .bind(key)
                .bind(micros(now()))
                .execute(&mut *tx)
                .await?;
            break IdempotencyClaim::Claimed;
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn complete_idempotency_key(&self, key: &str, response: &StoredResponse) -> Result<()> {
        sqlx::query("UPDATE idempotency_key SET state = 1, status = $2, body = $3 WHERE key = $1")
            .bind(key)
            .bind(i32::from(response.status))
            .bind(&response.body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_key WHERE key = $1 AND state = 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_key WHERE started_at < $1")
            .bind(micros(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_messages(&self, before: Timestamp, limit: usize) -> Result<u64> {
        // SKIP LOCKED: a message a dispatcher is reading right now is left for the next call.
        // The deliveries and attempts go in the same statement (migration 0004).
        let pruned: i64 = sqlx::query_scalar(
            "WITH gone AS (
               DELETE FROM message WHERE id IN (
                 SELECT m.id FROM message m WHERE m.created_at < $1
                   AND NOT EXISTS (SELECT 1 FROM delivery d
                                   WHERE d.msg_id = m.id AND d.status IN (1, 3))
                 ORDER BY m.created_at LIMIT $2
                 FOR UPDATE SKIP LOCKED)
               RETURNING id),
             deliveries AS (DELETE FROM delivery WHERE msg_id IN (SELECT id FROM gone)),
             attempts AS (DELETE FROM attempt WHERE msg_id IN (SELECT id FROM gone))
             SELECT count(*) FROM gone",
        )
        .bind(micros(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }
}
