//! Group commit for the hot writes: accepting messages, recording attempts, claiming due
//! deliveries, and the idempotency keys of requests that carry one (`idempotency`).
//!
//! All three queue here; one task takes everything that is waiting (up to [`MAX_BATCH`])
//! and hands it, as one batch, to a dedicated OS thread that owns its own SQLite connection
//! (`rusqlite`, see `connection`). The thread writes the batch in one `BEGIN IMMEDIATE`
//! transaction and commits once. While a batch is written, new jobs queue up and form the
//! next one, which the thread takes from the queue itself (up to [`MAX_CHAINED`] in a
//! row, see [`serve`]): under load many messages share one commit, and a lone message is
//! written at once.
//!
//! Callers are answered only once their batch is durable, but the writer thread does not
//! wait for the disk: its connection commits without syncing (`synchronous = NORMAL`) and
//! hands the batch to a second thread, which fsyncs the WAL file and then answers everyone
//! in the batch. One fsync covers every batch committed before it, so while the disk syncs
//! one batch the writer already runs the next, and batches that committed during a sync
//! share the next one. This is the group commit of a database's WAL writer. Until the
//! fsync returns, a power failure can lose the batch (a crash of hookd cannot: the frames
//! are already in the operating system's cache), but nobody has been told it was written:
//! readers on other connections may see such rows a moment early (a listing may show a
//! message whose 202 has not been sent yet), nothing more.
//!
//! Idempotency keys are the exception: their callers are answered at commit, without
//! waiting for the fsync ([`answer_keys`]). What a key's claim lets run is written by a
//! later batch, whose 202 waits for its own fsync, and that fsync covers the claim's commit
//! too: a power failure before it loses the claim together with everything that depended on
//! it. A stored response (a key's completion) that a power failure loses leaves the key
//! held, as a crash between the request's own write and its completion always could (see
//! `api::idempotency`); its request has answered already. With the Svix SDKs, which send a
//! key with every message, that is two of every message's three trips to the writer that
//! no longer wait for the disk.
//!
//! A failed fsync is fatal: the sync thread logs it and exits the process with
//! [`EXIT_WAL_SYNC_FAILED`], without answering anyone in the batches it covered. After a
//! failed fsync nobody knows what is on disk: the kernel may have dropped the pages it could
//! not write and report the next fsync as a success, while this process's connections go on
//! reading the rows from memory and would deliver messages that a restart may not find.
//! Answering 503 would be wrong too, as the rows are committed and usually survive: a client
//! retrying without a key would create a second message. So hookd stops, as PostgreSQL does
//! on a failed fsync; its supervisor restarts it, SQLite recovers whatever the WAL on disk
//! holds, and the callers, whose connections closed without an answer, retry: with the same
//! `eventId` (or `Idempotency-Key`) the retry either finds the message (409) or writes it
//! (see the README's "Reliability" section). One case is not fatal: a WAL that no longer
//! exists was deleted under hookd (its data directory removed), so what it held is lost for
//! certain when hookd ends; the callers are told the store is unavailable, which is true.
//!
//! Why a thread of its own: sqlx runs each SQLite connection on a worker thread, so every
//! statement and every row it returns crosses a channel with a thread wakeup. On the writer
//! thread a statement is a plain function call, so the batch runs simple per-row statements,
//! each prepared once and kept in the connection's statement cache, instead of building
//! multi-row statements to save round trips.
//!
//! The sqlx write pool (one connection) still serves the rarer management writes (endpoints,
//! resends, releasing claims). Two connections writing would fight over SQLite's write lock
//! by busy polling, which is unfair and can starve either side, so the task first acquires
//! the pool's connection and holds it until the batch has committed or failed: the pool's
//! queue, which is first come first served, decides who writes next.
//!
//! Expected failures of a single job (a repeated `eventId`, an unknown application) are
//! detected without failing a statement (`ON CONFLICT DO NOTHING`, a lookup), so they never
//! affect the rest of the batch. An unexpected database error rolls the batch back, and
//! every caller in it gets [`StoreError::BatchFailed`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::idempotency::KeyJob;
use super::{claims, enqueue, idempotency, records};
use crate::domain::Timestamp;
use crate::domain::sealed::SecretsAtRest;
use crate::store::{
    AttemptRecord, BatchMetrics, ClaimLimits, ClaimedDelivery, Enqueued, IdempotencyClaim,
    NewMessage, Result, StoreError,
};

/// The most jobs one transaction holds.
const MAX_BATCH: usize = 512;

/// The most transactions the writer thread writes in a row, taking the jobs that queued
/// during each as the next, before it lets go of the write lock (see [`serve`]).
const MAX_CHAINED: usize = 8;

/// The queue of jobs, shared by the async side (which waits on it when the writer is idle)
/// and the writer thread (which takes what queued while it wrote).
type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<WriteJob>>>;

/// hookd's exit status when an fsync of the SQLite WAL fails (`EX_IOERR` of sysexits.h).
pub const EXIT_WAL_SYNC_FAILED: i32 = 74;

/// What the sync thread does when an fsync fails; in hookd it never returns.
type OnFailedSync = fn(&Path, &std::io::Error);

/// Ends the process: see the module docs for why.
fn exit_on_failed_sync(wal: &Path, e: &std::io::Error) {
    tracing::error!(
        error = %e,
        wal = %wal.display(),
        "syncing the SQLite WAL failed; what is on disk is unknown, so hookd exits \
         (its requests in flight were not answered) and SQLite recovers from the WAL at restart"
    );
    std::process::exit(EXIT_WAL_SYNC_FAILED);
}

pub enum WriteJob {
    Enqueue {
        new: NewMessage,
        reply: oneshot::Sender<Result<Enqueued>>,
    },
    /// A batch ingest request's messages, in a savepoint of their own: with `atomic`, rolled
    /// back if any is refused (the `Ok`s are then what would have been written).
    EnqueueBatch {
        news: Vec<NewMessage>,
        atomic: bool,
        reply: BatchReply,
    },
    Record {
        record: AttemptRecord,
        reply: oneshot::Sender<Result<()>>,
    },
    Claim {
        now: Timestamp,
        lease: Timestamp,
        limits: ClaimLimits,
        reply: oneshot::Sender<Result<Vec<ClaimedDelivery>>>,
    },
    Key(KeyJob),
}

/// The writer thread, as the async side sees it.
pub struct WriterThread {
    batches: std_mpsc::Sender<Batch>,
    /// Resolves once the thread has closed its connection and ended.
    finished: oneshot::Receiver<()>,
}

/// The jobs of one transaction, whom to tell once the thread lets go of the write lock,
/// and where to find the jobs that queue meanwhile.
struct Batch {
    jobs: Vec<WriteJob>,
    ended: oneshot::Sender<()>,
    queue: Queue,
}

impl WriterThread {
    /// Starts the thread that owns `conn`, and the one that makes its commits durable. They
    /// end, closing `conn`, when the returned value is finished or dropped.
    pub fn spawn(
        conn: Connection,
        metrics: BatchMetrics,
        secrets: Arc<dyn SecretsAtRest>,
    ) -> std::io::Result<Self> {
        let wal = wal_file(&conn)?;
        let (batches, incoming) = std_mpsc::channel();
        let (committed, to_sync) = std_mpsc::channel();
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name("hookd-sqlite-sync".into())
            .spawn(move || {
                sync_and_answer(&wal, &to_sync, exit_on_failed_sync);
                let _ = done.send(());
            })?;
        // If this fails, `committed` is dropped with the closure and the sync thread ends.
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || serve(conn, &incoming, committed, &metrics, &*secrets))?;
        Ok(Self { batches, finished })
    }

    /// Writes one batch on the thread, and those it chains from `queue`, holding the pool's
    /// write connection until the thread lets go of it. `false`: the thread is gone (the
    /// batch's callers see their replies dropped, which they report as unavailable).
    async fn write(&self, pool: &SqlitePool, jobs: Vec<WriteJob>, queue: &Queue) -> bool {
        let write_lock = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                Jobs::sort(jobs).fail(e.into());
                return true;
            }
        };
        let (ended, end) = oneshot::channel();
        let queue = Arc::clone(queue);
        if self.batches.send(Batch { jobs, ended, queue }).is_err() {
            return false;
        }
        let alive = end.await.is_ok();
        drop(write_lock);
        alive
    }

    /// Lets the thread end and waits until its connection is closed.
    async fn finish(self) {
        drop(self.batches);
        let _ = self.finished.await;
    }
}

/// Runs until every sender is dropped or `stop` is cancelled, then ends the writer thread.
/// A batch being written when `stop` comes still commits; jobs still queued are refused.
pub async fn run(
    pool: SqlitePool,
    thread: WriterThread,
    jobs: mpsc::Receiver<WriteJob>,
    stop: CancellationToken,
) {
    let queue: Queue = Arc::new(tokio::sync::Mutex::new(jobs));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = {
            let mut jobs = queue.lock().await;
            tokio::select! {
                biased;
                () = stop.cancelled() => 0,
                n = jobs.recv_many(&mut batch, MAX_BATCH) => n,
            }
        };
        if received == 0 {
            break;
        }
        if !thread
            .write(&pool, std::mem::take(&mut batch), &queue)
            .await
        {
            tracing::error!("the SQLite writer thread ended unexpectedly");
            break;
        }
    }
    // Queued and later writes fail at once as unavailable rather than wait for nothing.
    drop(queue);
    thread.finish().await;
}

/// The writer thread: writes each batch it is handed, until the async side is gone, and
/// passes it on to be synced and answered.
///
/// The jobs that queued while a batch was written are written next, at once, under the
/// same write lock, up to [`MAX_CHAINED`] transactions in a row. Handing the lock back to
/// the async side between them cost a round trip through the runtime, where its task waits
/// its turn behind the requests: under load the thread stood idle about as long as it wrote
/// (0.7 ms between batches of 0.7 ms), with jobs waiting. After `MAX_CHAINED` the lock goes
/// back, so a management write waits for at most that many transactions.
fn serve(
    mut conn: Connection,
    batches: &std_mpsc::Receiver<Batch>,
    committed: std_mpsc::Sender<(Jobs, Result<Outcome>)>,
    metrics: &BatchMetrics,
    secrets: &dyn SecretsAtRest,
) {
    while let Ok(Batch { jobs, ended, queue }) = batches.recv() {
        let mut next = jobs;
        for chained in 1..=MAX_CHAINED {
            let started = Instant::now();
            let mut jobs = Jobs::sort(next);
            let mut outcome = commit(&mut conn, &jobs, secrets);
            // The WAL's fsync, shared by the batches committed meanwhile, is the sync
            // thread's.
            metrics.batch(jobs.len(), started);
            answer_keys(&mut jobs, &mut outcome);
            if let Err(std_mpsc::SendError((jobs, _))) = committed.send((jobs, outcome)) {
                jobs.fail(StoreError::Unavailable(sqlx::Error::WorkerCrashed));
            }
            if chained == MAX_CHAINED {
                break;
            }
            next = queued(&queue);
            if next.is_empty() {
                break;
            }
        }
        // The transactions are over: let management writes have the lock while they sync.
        let _ = ended.send(());
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
}

/// The jobs waiting in `queue`, up to [`MAX_BATCH`]; none if the async side is waiting on
/// it (it is then empty).
fn queued(queue: &Queue) -> Vec<WriteJob> {
    let mut jobs = Vec::new();
    if let Ok(mut receiver) = queue.try_lock() {
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
    }
    jobs
}

/// Answers the idempotency key jobs of a committed batch now, before the WAL's fsync (see
/// the module docs). Those of a batch that rolled back are told with the rest of it.
fn answer_keys(jobs: &mut Jobs, outcome: &mut Result<Outcome>) {
    let Ok(outcome) = outcome else {
        return;
    };
    let keys = std::mem::take(&mut jobs.keys);
    for (job, claim) in keys.into_iter().zip(std::mem::take(&mut outcome.keys)) {
        job.answer(claim);
    }
}

/// The sync thread: fsyncs the WAL once for every committed batch waiting, then answers
/// their callers; until the writer thread is gone, or an fsync fails (`on_failure`, which
/// in hookd exits; if it returns, the thread ends without answering anyone).
fn sync_and_answer(
    wal: &Path,
    committed: &std_mpsc::Receiver<(Jobs, Result<Outcome>)>,
    on_failure: OnFailedSync,
) {
    while let Ok(first) = committed.recv() {
        let mut ready = vec![first];
        ready.extend(committed.try_iter());
        // A batch that rolled back wrote nothing to wait for.
        let synced = if ready.iter().any(|(_, outcome)| outcome.is_ok()) {
            std::fs::File::open(wal).and_then(|f| f.sync_data())
        } else {
            Ok(())
        };
        let deleted = match synced {
            Ok(()) => None,
            // The WAL was deleted under hookd (its data directory removed): what it held is
            // lost for certain when hookd ends, so "not written" is the truth.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(e),
            Err(e) => {
                on_failure(wal, &e);
                // Not answered: the callers must not hear "done", nor "not done".
                std::mem::forget(ready);
                return;
            }
        };
        for (jobs, outcome) in ready {
            match (&deleted, outcome) {
                (Some(e), Ok(_)) => jobs.fail(StoreError::Unavailable(sqlx::Error::Io(
                    std::io::Error::new(e.kind(), e.to_string()),
                ))),
                (_, outcome) => jobs.answer(outcome),
            }
        }
    }
}

/// The WAL file of `conn`'s database, which its commits append to. It is opened for each
/// sync rather than kept open, so a WAL that SQLite deletes and creates anew is still the
/// one synced.
fn wal_file(conn: &Connection) -> std::io::Result<PathBuf> {
    match conn.path() {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(format!("{path}-wal"))),
        _ => Err(std::io::Error::other(
            "the SQLite writer needs a database file, not an in-memory database",
        )),
    }
}

/// A batch's jobs by kind, in the order they arrived.
struct Jobs {
    enqueues: Vec<(NewMessage, oneshot::Sender<Result<Enqueued>>)>,
    batches: Vec<(BatchJob, BatchReply)>,
    records: Vec<(AttemptRecord, oneshot::Sender<Result<()>>)>,
    claims: Vec<(Claim, oneshot::Sender<Result<Vec<ClaimedDelivery>>>)>,
    keys: Vec<KeyJob>,
}

/// Where a batch ingest request hears, per message, how it went.
pub type BatchReply = oneshot::Sender<Result<Vec<Result<Enqueued>>>>;

struct BatchJob {
    news: Vec<NewMessage>,
    atomic: bool,
}

struct Claim {
    now: Timestamp,
    lease: Timestamp,
    limits: ClaimLimits,
}

/// What a committed batch produced: per enqueue, the message or why it was refused; per
/// batch ingest request, the same for each of its messages; per claim, the deliveries
/// claimed; per key job, the claim's outcome.
struct Outcome {
    enqueued: Vec<Result<Enqueued>>,
    batches: Vec<Vec<Result<Enqueued>>>,
    claimed: Vec<Vec<ClaimedDelivery>>,
    keys: Vec<Option<IdempotencyClaim>>,
}

/// Writes the batch in one transaction and commits it; on any error, rolls it back.
fn commit(conn: &mut Connection, jobs: &Jobs, secrets: &dyn SecretsAtRest) -> Result<Outcome> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let keys = jobs
        .keys
        .iter()
        .map(|job| idempotency::run(&tx, job))
        .collect::<Result<Vec<_>>>()?;
    let news: Vec<&NewMessage> = jobs.enqueues.iter().map(|(new, _)| new).collect();
    let enqueued = idempotency::enqueue_keyed(&tx, &news, secrets)?;
    let mut batches = Vec::with_capacity(jobs.batches.len());
    for (job, _) in &jobs.batches {
        let savepoint = tx.savepoint()?;
        let news: Vec<&NewMessage> = job.news.iter().collect();
        let results = enqueue::enqueue_all(&savepoint, &news, secrets)?;
        if job.atomic && results.iter().any(Result::is_err) {
            // A savepoint ends rolled back unless committed.
            savepoint.finish()?;
        } else {
            savepoint.commit()?;
        }
        batches.push(results);
    }
    let recs: Vec<&AttemptRecord> = jobs.records.iter().map(|(r, _)| r).collect();
    records::record_all(&tx, &recs)?;
    // Claims come last, so messages accepted in this batch can be claimed by it.
    let claimed = jobs
        .claims
        .iter()
        .map(|(c, _)| claims::claim(&tx, c.now, c.lease, &c.limits, secrets))
        .collect::<Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(Outcome {
        enqueued,
        batches,
        claimed,
        keys,
    })
}

impl Jobs {
    fn sort(jobs: Vec<WriteJob>) -> Self {
        let mut sorted = Jobs {
            enqueues: Vec::new(),
            batches: Vec::new(),
            records: Vec::new(),
            claims: Vec::new(),
            keys: Vec::new(),
        };
        for job in jobs {
            match job {
                WriteJob::Enqueue { new, reply } => sorted.enqueues.push((new, reply)),
                WriteJob::EnqueueBatch {
                    news,
                    atomic,
                    reply,
                } => sorted.batches.push((BatchJob { news, atomic }, reply)),
                WriteJob::Record { record, reply } => sorted.records.push((record, reply)),
                WriteJob::Claim {
                    now,
                    lease,
                    limits,
                    reply,
                } => sorted.claims.push((Claim { now, lease, limits }, reply)),
                WriteJob::Key(job) => sorted.keys.push(job),
            }
        }
        sorted
    }

    fn len(&self) -> usize {
        self.enqueues.len()
            + self.batches.len()
            + self.records.len()
            + self.claims.len()
            + self.keys.len()
    }

    /// Tells every caller how its job went. A caller that went away does not need to know.
    fn answer(self, outcome: Result<Outcome>) {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => return self.fail(e),
        };
        for ((_, reply), result) in self.enqueues.into_iter().zip(outcome.enqueued) {
            let _ = reply.send(result);
        }
        for ((_, reply), results) in self.batches.into_iter().zip(outcome.batches) {
            let _ = reply.send(Ok(results));
        }
        for (_, reply) in self.records {
            let _ = reply.send(Ok(()));
        }
        for ((_, reply), result) in self.claims.into_iter().zip(outcome.claimed) {
            let _ = reply.send(Ok(result));
        }
        for (job, claim) in self.keys.into_iter().zip(outcome.keys) {
            job.answer(claim);
        }
    }

    /// Tells every caller that the batch failed with `e`.
    fn fail(self, e: StoreError) {
        tracing::error!(error = ?e, jobs = self.len(), "write batch failed to commit");
        let shared = Arc::new(e);
        let failed = || StoreError::BatchFailed(shared.clone());
        for (_, reply) in self.enqueues {
            let _ = reply.send(Err(failed()));
        }
        for (_, reply) in self.batches {
            let _ = reply.send(Err(failed()));
        }
        for (_, reply) in self.records {
            let _ = reply.send(Err(failed()));
        }
        for (_, reply) in self.claims {
            let _ = reply.send(Err(failed()));
        }
        for job in self.keys {
            job.fail(failed());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use super::*;
    use crate::domain::time::now;

    type ClaimReply = oneshot::Receiver<Result<Vec<ClaimedDelivery>>>;

    /// A batch of one claim, and where its caller hears the answer.
    fn one_claim() -> (Jobs, ClaimReply) {
        let (reply, answer) = oneshot::channel();
        let claim = Claim {
            now: now(),
            lease: now(),
            limits: ClaimLimits {
                total: 1,
                per_endpoint: 1,
                room: HashMap::new(),
            },
        };
        let jobs = Jobs {
            enqueues: Vec::new(),
            batches: Vec::new(),
            records: Vec::new(),
            claims: vec![(claim, reply)],
            keys: Vec::new(),
        };
        (jobs, answer)
    }

    /// Runs the sync thread's loop over `batches` and returns what their callers heard
    /// (`None`: nothing yet), and whether the sync failed.
    fn sync(
        wal: &Path,
        batches: Vec<(Result<Outcome>, ClaimReply, Jobs)>,
    ) -> (Vec<Option<Result<usize>>>, bool) {
        thread_local! {
            // The loop runs on the test's own thread, so tests in parallel do not mix.
            static FAILED: Cell<bool> = const { Cell::new(false) };
        }
        fn record(_: &Path, _: &std::io::Error) {
            FAILED.set(true);
        }
        FAILED.set(false);
        let (committed, to_sync) = std_mpsc::channel();
        let mut answers = Vec::new();
        for (outcome, answer, jobs) in batches {
            committed.send((jobs, outcome)).unwrap();
            answers.push(answer);
        }
        drop(committed);
        sync_and_answer(wal, &to_sync, record);
        let heard = answers
            .into_iter()
            .map(|mut a| a.try_recv().ok().map(|r| r.map(|claimed| claimed.len())))
            .collect();
        (heard, FAILED.get())
    }

    fn committed() -> Result<Outcome> {
        Ok(Outcome {
            enqueued: Vec::new(),
            batches: Vec::new(),
            claimed: vec![Vec::new()],
            keys: Vec::new(),
        })
    }

    #[test]
    fn callers_hear_once_the_wal_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("hookd.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let (a, answer_a) = one_claim();
        let (b, answer_b) = one_claim();
        let (heard, failed) = sync(
            &wal,
            vec![(committed(), answer_a, a), (committed(), answer_b, b)],
        );
        assert!(!failed);
        assert!(heard.iter().all(|h| matches!(h, Some(Ok(0)))), "{heard:?}");
    }

    #[test]
    fn a_failed_sync_is_fatal_and_answers_nobody() {
        // fsync of a character device fails (EINVAL), as of a disk that has failed.
        let (jobs, answer) = one_claim();
        let (heard, failed) = sync(Path::new("/dev/null"), vec![(committed(), answer, jobs)]);
        assert!(
            failed,
            "the failure handler (exit, in hookd) was not called"
        );
        assert!(heard[0].is_none(), "a caller heard {:?}", heard[0]);
    }

    #[test]
    fn a_deleted_wal_tells_callers_the_store_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.db-wal");
        let (jobs, answer) = one_claim();
        let (heard, failed) = sync(&missing, vec![(committed(), answer, jobs)]);
        assert!(!failed);
        assert!(
            matches!(&heard[0], Some(Err(StoreError::BatchFailed(e))) if matches!(**e, StoreError::Unavailable(_))),
            "{heard:?}"
        );
    }

    /// A claim job, as the store queues one, and where its caller hears.
    fn claim_job() -> (WriteJob, ClaimReply) {
        let (reply, answer) = oneshot::channel();
        let limits = ClaimLimits {
            total: 1,
            per_endpoint: 1,
            room: HashMap::new(),
        };
        let job = WriteJob::Claim {
            now: now(),
            lease: now(),
            limits,
            reply,
        };
        (job, answer)
    }

    #[tokio::test]
    async fn the_thread_writes_what_queued_meanwhile_and_lets_go_after_max_chained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        super::super::SqliteStore::open_path(&path, 1)
            .await
            .unwrap()
            .close()
            .await;
        let conn = super::super::connection::open(&path).unwrap();

        // Far more jobs waiting than MAX_CHAINED transactions take.
        let waiting = (MAX_CHAINED + 2) * MAX_BATCH;
        let (jobs, receiver) = mpsc::channel(waiting);
        let mut answers = Vec::new();
        for _ in 0..waiting {
            let (job, answer) = claim_job();
            jobs.try_send(job).unwrap();
            answers.push(answer);
        }
        let queue: Queue = Arc::new(tokio::sync::Mutex::new(receiver));
        let (batches, incoming) = std_mpsc::channel();
        let (committed, to_sync) = std_mpsc::channel();
        let writer = std::thread::spawn(move || {
            let metrics = BatchMetrics::noop();
            serve(
                conn,
                &incoming,
                committed,
                &metrics,
                &crate::domain::sealed::Plaintext,
            );
        });
        let (first, first_answer) = claim_job();
        let (ended, end) = oneshot::channel();
        let batch = Batch {
            jobs: vec![first],
            ended,
            queue: Arc::clone(&queue),
        };
        batches.send(batch).unwrap();
        end.await.expect("the thread let go of the write lock");

        // It wrote its batch and MAX_CHAINED - 1 more of what was waiting, each a
        // transaction of its own, and left the rest for the async side.
        let written: Vec<usize> = to_sync.try_iter().map(|(jobs, _)| jobs.len()).collect();
        assert_eq!(written.len(), MAX_CHAINED);
        assert_eq!(written[0], 1);
        assert!(written[1..].iter().all(|&n| n == MAX_BATCH), "{written:?}");
        let left = queue.lock().await.len();
        assert_eq!(left, waiting - (MAX_CHAINED - 1) * MAX_BATCH);
        drop((batches, first_answer, answers));
        writer.join().unwrap();
    }

    /// A batch of one claim and one idempotency key claim, and where the key's caller hears.
    fn claim_and_key() -> (
        Jobs,
        ClaimReply,
        oneshot::Receiver<Result<IdempotencyClaim>>,
    ) {
        let (mut jobs, answer) = one_claim();
        let (reply, key_answer) = oneshot::channel();
        jobs.keys.push(KeyJob::Claim {
            key: "k".into(),
            now: now(),
            expired_before: now(),
            reply,
        });
        (jobs, answer, key_answer)
    }

    #[test]
    fn keys_are_answered_at_commit_before_the_sync() {
        let (mut jobs, answer, mut key_answer) = claim_and_key();
        let mut outcome = committed();
        if let Ok(o) = &mut outcome {
            o.keys.push(Some(IdempotencyClaim::Claimed));
        }
        answer_keys(&mut jobs, &mut outcome);
        assert!(matches!(
            key_answer.try_recv(),
            Ok(Ok(IdempotencyClaim::Claimed))
        ));
        // The rest of the batch waits for the fsync, which here fails.
        let (heard, failed) = sync(Path::new("/dev/null"), vec![(outcome, answer, jobs)]);
        assert!(failed);
        assert!(heard[0].is_none(), "a caller heard {:?}", heard[0]);
    }

    #[test]
    fn keys_of_a_rolled_back_batch_hear_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut jobs, answer, mut key_answer) = claim_and_key();
        let mut outcome = Err(StoreError::Corrupt("test".into()));
        answer_keys(&mut jobs, &mut outcome);
        assert!(key_answer.try_recv().is_err(), "not answered at commit");
        sync(
            &dir.path().join("gone.db-wal"),
            vec![(outcome, answer, jobs)],
        );
        assert!(matches!(
            key_answer.try_recv(),
            Ok(Err(StoreError::BatchFailed(e))) if matches!(*e, StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_rolled_back_batch_keeps_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.db-wal");
        let (jobs, answer) = one_claim();
        let failed = Err(StoreError::Corrupt("test".into()));
        let (heard, sync_failed) = sync(&missing, vec![(failed, answer, jobs)]);
        assert!(!sync_failed, "nothing to sync after a rollback");
        assert!(
            matches!(&heard[0], Some(Err(StoreError::BatchFailed(e))) if matches!(**e, StoreError::Corrupt(_))),
            "{heard:?}"
        );
    }
}
