//! Group commit on PostgreSQL: one task per kind of write takes every job waiting (up to a
//! maximum), writes them in one transaction, and answers each caller after the commit.
//!
//! While one batch commits, the next one queues, so under load many requests share a commit
//! (and the locks it takes), and a lone request is written at once. A batch is written with
//! set-based statements and no savepoints (many subtransactions slow down every session of
//! a PostgreSQL server); the expected per-job failures (a duplicate `eventId`, an unknown
//! application) are answered without failing the transaction. If a batch fails anyway, its
//! jobs are written again one per transaction, so only the job at fault fails; when the
//! database is unreachable every job fails as unavailable at once.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::{BatchMetrics, Result, StoreError};

/// How many jobs may wait for the writer before callers wait too.
const QUEUE: usize = 8192;

/// What a batch is written with: the pool, and the node it is written for (whose id marks
/// the deliveries it writes claimed).
pub struct Target {
    pub pool: PgPool,
    pub node: Arc<str>,
    /// Opens the endpoints read in full (those handed over with a delivery claimed at once).
    pub secrets: Arc<dyn crate::domain::sealed::SecretsAtRest>,
}

/// Writes a batch in one transaction: one result per input, in order, or an error that
/// failed the transaction.
pub type WriteBatch<I, O> =
    for<'a> fn(&'a Target, &'a [I]) -> BoxFuture<'a, Result<Vec<Result<O>>>>;

type Job<I, O> = (I, oneshot::Sender<Result<O>>);

pub struct Batcher<I, O> {
    jobs: mpsc::Sender<Job<I, O>>,
}

fn closed() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

impl<I, O> Batcher<I, O>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts the writer task on `runtime` (the writer thread's); it ends when the batcher
    /// is dropped.
    pub fn spawn(
        runtime: &tokio::runtime::Handle,
        target: Target,
        write: WriteBatch<I, O>,
        max_batch: usize,
        metrics: BatchMetrics,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        runtime.spawn(run(target, queue, write, max_batch.max(1), metrics));
        Self { jobs }
    }

    /// Queues `input` and waits until the batch holding it has committed (or failed).
    pub async fn submit(&self, input: I) -> Result<O> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send((input, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn run<I, O>(
    target: Target,
    mut queue: mpsc::Receiver<Job<I, O>>,
    write: WriteBatch<I, O>,
    max_batch: usize,
    metrics: BatchMetrics,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    while queue.recv_many(&mut jobs, max_batch).await > 0 {
        let (inputs, replies): (Vec<I>, Vec<_>) = jobs.drain(..).unzip();
        let started = Instant::now();
        let written = write(&target, &inputs).await;
        metrics.batch(inputs.len(), started);
        match written {
            Ok(results) => answer(replies, results),
            Err(e) if inputs.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, jobs = inputs.len(), "write batch failed; writing its jobs one by one");
                for (input, reply) in inputs.iter().zip(replies) {
                    let result = match write(&target, std::slice::from_ref(input)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(missing())),
                        Err(e) => Err(e),
                    };
                    // A caller that went away (client disconnected) does not undo the write.
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = inputs.len(), "write batch failed");
                let shared = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::BatchFailed(shared.clone())));
                }
            }
        }
    }
}

fn answer<O>(replies: Vec<oneshot::Sender<Result<O>>>, results: Vec<Result<O>>) {
    let mut results = results.into_iter();
    for reply in replies {
        let _ = reply.send(results.next().unwrap_or_else(|| Err(missing())));
    }
}

fn missing() -> StoreError {
    StoreError::Corrupt("a write batch returned fewer results than jobs".into())
}
