//! Retention (pruning messages, expiring payloads, idempotency keys). The keys themselves are
//! written by each engine's `idempotency` module.

use async_trait::async_trait;

use crate::domain::Timestamp;
use crate::store::engine::Engine;
use crate::store::queries::EXPUNGE_PAYLOAD;
use crate::store::rows::StoredRow;
use crate::store::sql::{Conn, Sql};
use crate::store::{AdminStore, Result};

#[async_trait]
impl<E: Engine> AdminStore for E {
    async fn ping(&self) -> Result<()> {
        self.reads()
            .acquire()
            .await?
            .exec(&Sql::new("SELECT 1"))
            .await?;
        Ok(())
    }

    async fn prune_idempotency_keys(&self, before: Timestamp) -> Result<u64> {
        let prune = Sql::new("DELETE FROM idempotency_key WHERE started_at < $1").bind(before);
        Ok(self.writes().acquire().await?.exec(&prune).await?)
    }

    /// The messages are chosen and locked first (a message a dispatcher is reading right
    /// now is left for the next call), then their attempts, deliveries and the messages
    /// themselves are deleted by id: PostgreSQL has no foreign key from those to the
    /// message to cascade along (see its migration 0004).
    async fn prune_messages(&self, before: Timestamp, limit: usize) -> Result<Option<u64>> {
        let mut tx = self.writes().begin().await?;
        if !E::try_lock_job(&mut tx, "prune-messages").await? {
            tx.commit().await?;
            return Ok(None);
        }
        let oldest = Sql::new(format!(
            "SELECT m.id FROM message m WHERE m.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM delivery d
                               WHERE d.msg_id = m.id AND d.status IN (1, 3))
             ORDER BY m.created_at LIMIT $2{}",
            E::SKIP_LOCKED
        ))
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let ids = tx
            .rows(&oldest)
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Some(0));
        }
        let mut pruned = 0;
        for (table, column) in [
            ("attempt", "msg_id"),
            ("delivery", "msg_id"),
            ("message", "id"),
        ] {
            let mut delete = Sql::new(format!("DELETE FROM {table} WHERE {column} IN ("));
            delete.push_list(ids.iter().map(String::as_str)).push(")");
            pruned = tx.exec(&delete).await?;
        }
        tx.commit().await?;
        Ok(Some(pruned))
    }

    /// Every way out of these transactions ends them explicitly: a dropped transaction is
    /// rolled back only when its connection is next used, and until then it would keep the
    /// job's lock (PostgreSQL) from the next batch.
    ///
    /// Walks the partial index of payloads still to expire, oldest expiry first; the
    /// payloads removed leave that index, so each call starts where the last one ended.
    async fn expire_payloads(&self, now: Timestamp, limit: usize) -> Result<Option<u64>> {
        let mut tx = self.writes().begin().await?;
        if !E::try_lock_job(&mut tx, "payload-expiry").await? {
            tx.commit().await?;
            return Ok(None);
        }
        let due = Sql::new(format!(
            "SELECT id FROM message
             WHERE payload_expires_at IS NOT NULL AND payload_expires_at <= $1
             ORDER BY payload_expires_at LIMIT $2{}",
            E::SKIP_LOCKED
        ))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let ids = tx
            .rows(&due)
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Some(0));
        }
        let mut expire = Sql::new(format!("{EXPUNGE_PAYLOAD} WHERE id IN ("));
        expire.push_list(ids.iter().map(String::as_str)).push(")");
        let expired = tx.exec(&expire).await?;
        tx.commit().await?;
        Ok(Some(expired))
    }
}
