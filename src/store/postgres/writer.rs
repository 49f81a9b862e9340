//! The thread that writes the hot path's batches (`batch`): a runtime of its own, with
//! connections of its own.
//!
//! A batch is several round trips to the server (`ingest`: BEGIN, read, lock, last ids,
//! insert, COMMIT). On the runtime that serves the API, each of them waited for its turn
//! behind every request and delivery in flight: under `hookd-bench a` a batch took 6.3 ms,
//! of which the server spent 1.2 ms on its statements and the rest was the batch's task
//! waiting to be polled again. Batches are written one at a time per kind, so that wait
//! set the pace of ingest. On a thread of its own, the task runs as soon as the server
//! answers.
//!
//! The connections are opened on this thread, so that their sockets are driven by its
//! runtime; they come out of the node's `database_pool_max` ([`split`]).
//!
//! They plan with [`PLANNER`]: their statements are prepared once per connection, and
//! PostgreSQL soon runs them on a generic plan, made once and kept.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::store::{Result, StoreError};

/// The planner settings of the writer's connections.
///
/// Every statement a batch runs reads or writes rows by key: the batch's own rows, bound as
/// arrays, joined to a table by its primary key or another index. The right plan is always
/// a nested loop over the arrays with an index lookup per row. But a generic plan guesses
/// 10 rows for every array and is kept until the table's statistics next change; made while
/// a table is small (a new database, the first minute of a node), it joined a batch
/// against a sequential scan of the whole table (of `delivery`, growing by a row per
/// message), or a hash of it (`endpoint`). Statements were therefore sent unnamed, parsed
/// and planned again for every batch (`sql::batch_query`): under `hookd-bench a`, a tenth
/// of the server's CPU went to planning. With sequential scans, hash joins and merge joins
/// priced out, the plan made once is the one by key at any size, and is kept. A table
/// without a usable index is still scanned: the settings price plans, they forbid none.
pub const PLANNER: [(&str, &str); 3] = [
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// The writer thread: its runtime ends when this is dropped (with the store), dropping
/// whatever runs on it.
pub struct WriterThread {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    pub async fn start() -> anyhow::Result<Self> {
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hookd-pg-writer".into())
            .spawn(move || {
                match Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(runtime.handle().clone()));
                        // Until the store is dropped (the sender with it).
                        let _ = runtime.block_on(stopped);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?;
        let handle = started
            .await
            .map_err(|_| anyhow::anyhow!("the PostgreSQL writer thread ended at start"))??;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `work` on the writer thread and waits for it. Dropping the wait drops the work
    /// where it stands, as dropping it on the caller's runtime would (an open transaction is
    /// rolled back).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let mut running = AbortOnDrop(self.handle.spawn(work));
        (&mut running.0)
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a node's `max` connections are shared: `(writer, rest)`. The writer thread gets up
/// to four (one per kind of batch: messages, attempt records, idempotency key claims and
/// responses), about two fifths of the pool; the rest serve requests, claims and the
/// LISTEN connection, and are never fewer than two. `max` below 3 is taken as 3.
pub fn split(max: u32) -> (u32, u32) {
    let max = max.max(3);
    let writer = (max * 2 / 5).clamp(1, 4);
    (writer, max - writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_gets_up_to_four_connections_and_the_rest_at_least_two() {
        assert_eq!(split(2), (1, 2));
        assert_eq!(split(3), (1, 2));
        assert_eq!(split(5), (2, 3));
        assert_eq!(split(10), (4, 6));
        assert_eq!(split(100), (4, 96));
        for max in 3..200 {
            let (writer, rest) = split(max);
            assert_eq!(writer + rest, max);
            assert!((1..=4).contains(&writer) && rest >= 2, "{max}");
        }
    }

    #[tokio::test]
    async fn work_runs_on_the_writer_thread_and_ends_with_it() {
        let writer = WriterThread::start().await.unwrap();
        let name = writer
            .run(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("hookd-pg-writer"));
        let handle = writer.handle().clone();
        drop(writer);
        // The runtime shuts down once the thread sees the stop; new work is refused then.
        let mut refused = false;
        for _ in 0..100 {
            if handle.spawn(async {}).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            refused,
            "the writer's runtime still runs after the store is dropped"
        );
    }

    #[tokio::test]
    async fn work_whose_caller_went_away_is_dropped() {
        let writer = WriterThread::start().await.unwrap();
        let (held, released) = oneshot::channel::<()>();
        let waiting = writer.run(async move {
            let _held = held;
            std::future::pending::<()>().await
        });
        // Started, then given up by its caller.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), waiting).await;
        let dropped = tokio::time::timeout(std::time::Duration::from_secs(5), released).await;
        assert!(
            matches!(dropped, Ok(Err(_))),
            "the work outlived its caller"
        );
    }
}
