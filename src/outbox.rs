//! Draining an outbox: rows written in the transaction of the fact they report, turned into
//! messages afterwards (the operational events, `crate::events`; the entity events,
//! `crate::entities`). Both drain the same way, here: on every node, at once when woken and
//! every [`POLL`] otherwise, a batch at a time under a job lock other nodes skip their turn
//! for; a batch's rows are deleted once its messages are written, and left for the next
//! drain if writing them failed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{OutboxBatch, OutboxEvent, Store, StoreError};

/// How often a node looks for rows it was not told about.
pub const POLL: Duration = Duration::from_secs(1);

/// One outbox: where its rows are taken from and how they become messages.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// What the rows are, for logs ("operational events").
    const WHAT: &'static str;
    /// Rows per batch.
    const BATCH: usize;
    /// Takes the drain job with its oldest `limit` rows; `None` while another node holds it.
    async fn take(
        &self,
        store: &dyn Store,
        limit: usize,
    ) -> Result<Option<Box<dyn OutboxBatch>>, StoreError>;
    /// Writes the messages of `events`; returns how many were written (not counting those
    /// written by an earlier drain).
    async fn send(&self, store: &dyn Store, events: &[OutboxEvent]) -> Result<usize, StoreError>;
}

/// Drains `outbox` until `shutdown`: now, whenever `wake` is notified, and every [`POLL`].
/// `dispatcher` is woken when messages were written.
pub async fn run<O: Outbox>(
    outbox: O,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    dispatcher: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let drained = tokio::select! {
            _ = shutdown.cancelled() => return,
            drained = drain(&outbox, &*store, &dispatcher) => drained,
        };
        match drained {
            Ok(0) => {}
            Ok(n) => tracing::debug!(messages = n, "{} sent", O::WHAT),
            Err(e) => tracing::warn!(error = %e, "draining {} failed; will retry", O::WHAT),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Drains every row there is, batch by batch, unless another node holds the job; returns
/// how many messages were written.
pub async fn drain<O: Outbox>(
    outbox: &O,
    store: &dyn Store,
    dispatcher: &Notify,
) -> Result<usize, StoreError> {
    let mut written = 0;
    loop {
        let Some(batch) = outbox.take(store, O::BATCH).await? else {
            return Ok(written);
        };
        let taken = batch.events().len();
        if taken == 0 {
            batch.finish().await?;
            return Ok(written);
        }
        match outbox.send(store, batch.events()).await {
            Ok(n) => {
                batch.finish().await?;
                written += n;
                if n > 0 {
                    dispatcher.notify_one();
                }
            }
            Err(e) => {
                if let Err(released) = batch.release().await {
                    tracing::warn!(error = %released, "cannot release the {} job", O::WHAT);
                }
                return Err(e);
            }
        }
        if taken < O::BATCH {
            return Ok(written);
        }
    }
}
