//! Idempotency keys on PostgreSQL: statements of their own, outside the batchers, so a
//! claim is decided by the database whichever node the request reached. (SQLite's go
//! through its batching writer: `store::sqlite::idempotency`.)

use async_trait::async_trait;

use super::PgStore;
use crate::domain::Timestamp;
use crate::domain::time::{now, to_micros};
use crate::store::engine::Engine;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{IdempotencyClaim, IdempotencyStore, Result, StoredResponse};

#[async_trait]
impl IdempotencyStore for PgStore {
    /// Requests (on several nodes, with PostgreSQL) may race for one key: the insert decides
    /// who holds a new key, and a row lock who takes over a key whose holder died.
    async fn claim_idempotency_key(
        &self,
        key: &str,
        lock_expired_before: Timestamp,
    ) -> Result<IdempotencyClaim> {
        let mut tx = self.writes().begin().await?;
        let claim = loop {
            let insert = Sql::new(
                "INSERT INTO idempotency_key (key, state, started_at) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(now());
            if tx.exec(&insert).await? == 1 {
                break IdempotencyClaim::Claimed;
            }
            let existing = Sql::new(format!(
                "SELECT state, status, body, started_at FROM idempotency_key WHERE key = $1{}",
                PgStore::FOR_UPDATE
            ))
            .bind(key);
            // Released (deleted) since the insert saw it: try to insert again.
            let Some(row) = tx.row(&existing).await? else {
                continue;
            };
            if row.int("state")? == 1 {
                let status = row.opt_int("status")?.unwrap_or(500);
                break IdempotencyClaim::Completed(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    body: row.opt_bytes("body")?.unwrap_or_default(),
                });
            }
            if row.int("started_at")? >= to_micros(lock_expired_before) {
                break IdempotencyClaim::InProgress;
            }
            // Held by a request that died without finishing: take it over.
            let take_over = Sql::new("UPDATE idempotency_key SET started_at = $2 WHERE key = $1")
                .bind(key)
                .bind(now());
            tx.exec(&take_over).await?;
            break IdempotencyClaim::Claimed;
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn complete_idempotency_key(&self, key: &str, response: &StoredResponse) -> Result<()> {
        let complete =
            Sql::new("UPDATE idempotency_key SET state = 1, status = $2, body = $3 WHERE key = $1")
                .bind(key)
                .bind(i64::from(response.status))
                .bind(response.body.as_slice());
        self.writes().acquire().await?.exec(&complete).await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, key: &str) -> Result<()> {
        let release =
            Sql::new("DELETE FROM idempotency_key WHERE key = $1 AND state = 0").bind(key);
        self.writes().acquire().await?.exec(&release).await?;
        Ok(())
    }
}
