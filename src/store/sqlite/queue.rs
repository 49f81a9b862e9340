//! The hot path on SQLite: accepting messages, claiming due deliveries and recording
//! attempts all go through the batching writer (`writer`), many to a commit.
//!
//! A claimed delivery is `sending` with `lease_until` set and `next_attempt_at` moved to
//! the same instant, so a claim whose dispatcher died becomes due again when its lease
//! expires, with no separate sweep. Deliveries of a disabled endpoint are parked with a NULL
//! `next_attempt_at` and never scanned.

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::SqliteStore;
use super::writer::WriteJob;
use crate::domain::Timestamp;
use crate::store::{
    AttemptRecord, ClaimLimits, ClaimedDelivery, Enqueued, NewMessage, QueueStore, Result,
    StoreError,
};

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue_message(&self, new: NewMessage) -> Result<Enqueued> {
        let (reply, answer) = oneshot::channel();
        self.write(WriteJob::Enqueue { new, reply }).await?;
        answered(answer).await
    }

    async fn enqueue_batch(
        &self,
        news: Vec<NewMessage>,
        atomic: bool,
    ) -> Result<Vec<Result<Enqueued>>> {
        let (reply, answer) = oneshot::channel();
        self.write(WriteJob::EnqueueBatch {
            news,
            atomic,
            reply,
        })
        .await?;
        answered(answer).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        let (reply, answer) = oneshot::channel();
        let limits = limits.clone();
        self.write(WriteJob::Claim {
            now,
            lease,
            limits,
            reply,
        })
        .await?;
        answered(answer).await
    }

    async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.write(WriteJob::Record { record, reply }).await?;
        answered(answer).await
    }
}

/// The writer's answer; a writer that went away without one was shut down.
pub(super) async fn answered<T>(answer: oneshot::Receiver<Result<T>>) -> Result<T> {
    answer
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
}
