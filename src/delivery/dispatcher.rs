//! The dispatcher: claims due deliveries, sends them concurrently, records the outcomes.
//!
//! One loop per node claims batches of due deliveries under a lease (committed before any
//! request goes out) and sleeps until woken: by a new message (`wake`), by a slot freeing up
//! while more work was left waiting, by a retry being scheduled, by the next retry coming
//! due, or by a paused endpoint resuming. Each delivery that may start is sent by a task of
//! its own, which then records the attempt while the delivery is still leased.
//!
//! What the loop and its tasks rely on lives beside them:
//! - `board`: how many attempts may be in flight, per node and per endpoint, and so which
//!   endpoints a claim may take and how many; what is queued and reserved; pauses.
//! - `direct_claims`: a new message's deliveries taken without a claim, through a
//!   [`Ticket`].
//! - `outcome`: what becomes of a delivery after an attempt ([`next_step`]), and the
//!   attempt as recorded.
//!
//! On shutdown the loop stops claiming, gives queued claims back, lets running attempts
//! finish within the grace period, then stops the rest and gives their claims back too.

mod board;
mod direct_claims;
mod outcome;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::board::Board;
pub use self::direct_claims::Ticket;
use self::outcome::attempt;
pub use self::outcome::next_step;
use super::clock::Clock;
use super::measure::DeliveryMetrics;
use super::policy::Policies;
use super::sender::{SendResult, Sender};
use crate::domain::health::HealthSettings;
use crate::domain::{EndpointId, Timestamp, Trigger};
use crate::store::{AttemptRecord, ClaimLimits, ClaimedDelivery, NextStep, Store};
use crate::telemetry::traces::Tracer;

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Attempts in flight at once on this node (as many more may be queued behind them).
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint.
    pub per_endpoint: usize,
    /// How many windows of `per_endpoint` deliveries a fast endpoint may hold.
    pub claim_ahead: usize,
    /// Deliveries claimed per store round trip.
    pub claim_batch: usize,
    /// How long a claim is held; must exceed the request timeout.
    pub lease: Duration,
    /// The longest one attempt may take: a queued claim starts only while its lease has
    /// more than this (and a margin) left, and is given back otherwise.
    pub attempt_timeout: Duration,
    /// At shutdown, how long running attempts may take to finish.
    pub shutdown_grace: Duration,
    /// How attempts bear on their endpoint's health (applied as they are recorded).
    pub health: Arc<HealthSettings>,
    /// Where attempt spans go ([`Tracer::off`] unless `otlp_endpoint` is set).
    pub traces: Tracer,
}

/// After a store error, how long the loop waits before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Longest sleep with nothing scheduled: a safety net, since every write that makes work
/// on this node also wakes the loop.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Lease a queued claim must have left beyond the attempt timeout to be started.
const LEASE_SAFETY: Duration = Duration::from_secs(5);

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Sender,
    policies: Policies,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    settings: DispatchSettings,
    metrics: DeliveryMetrics,
    board: Mutex<Board>,
    tasks: TaskTracker,
    hard_stop: CancellationToken,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        sender: Sender,
        policies: Policies,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        settings: DispatchSettings,
        metrics: DeliveryMetrics,
    ) -> Arc<Self> {
        let min_lease_left = delta(settings.attempt_timeout + LEASE_SAFETY);
        Arc::new(Self {
            store,
            sender,
            policies,
            clock,
            wake,
            board: Mutex::new(Board::new(
                settings.per_endpoint.max(1),
                settings.claim_ahead.max(1),
                settings.max_in_flight.max(1),
                min_lease_left,
            )),
            settings,
            metrics,
            tasks: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        })
    }

    /// Runs until `shutdown` is cancelled, then drains as described in the module docs.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let full = self.lock_board().claim_room() == 0;
            if full {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
            let claimed_at = match self.claim_and_start().await {
                Ok((true, _)) => continue,
                Ok((false, at)) => at,
                Err(()) => {
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_RETRY) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            };
            // From the claim's own `now`: whatever came due since then wakes the loop at once.
            let wake_at = self.next_wake(claimed_at).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = self.clock.sleep_until(wake_at) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let queued = self.lock_board().stop();
        self.release(&queued).await;
        self.tasks.close();
        if tokio::time::timeout(self.settings.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "attempts still running after the shutdown grace period; releasing them"
            );
            self.hard_stop.cancel();
            self.tasks.wait().await;
        }
    }

    /// Claims what is due and starts what may start. `Ok(true)`: the claim took all it was
    /// allowed to; there may be more, so claim again at once.
    async fn claim_and_start(self: &Arc<Self>) -> Result<(bool, Timestamp), ()> {
        let now = self.clock.now();
        let limits = {
            let board = self.lock_board();
            ClaimLimits {
                total: board.claim_room().min(self.settings.claim_batch.max(1)),
                per_endpoint: board.window_of_new(),
                room: board.room(now),
            }
        };
        let lease = now + delta(self.settings.lease);
        let claimed = match self.store.claim_due(now, lease, &limits).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed");
                return Err(());
            }
        };
        let filled = claimed.len() >= limits.total;
        let (start, stale) = {
            let mut board = self.lock_board();
            board.more_waiting = filled || reached_room(&claimed, &limits);
            board.note_claim(&claimed, &limits, filled);
            board.admit(claimed, self.clock.now())
        };
        self.start_all(start);
        self.release_stale(stale);
        Ok((filled, now))
    }

    /// When the loop must look again without being woken: the next retry coming due or the
    /// next paused endpoint resuming, whichever is first, counted from `now`, the time of the
    /// claim that found nothing more.
    async fn next_wake(&self, now: Timestamp) -> Timestamp {
        let due = match self.store.next_due(now).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next due delivery failed");
                Some(now + delta(STORE_RETRY))
            }
        };
        let resume = self.lock_board().next_resume(now);
        [due, resume]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + delta(IDLE_CHECK))
    }

    fn start_all(self: &Arc<Self>, deliveries: Vec<ClaimedDelivery>) {
        for delivery in deliveries {
            self.tasks.spawn(self.clone().deliver(delivery));
        }
    }

    /// Gives back queued claims whose lease ran too short to start them, and wakes the loop
    /// to claim them again under a fresh lease.
    fn release_stale(self: &Arc<Self>, stale: Vec<(i64, Timestamp)>) {
        if stale.is_empty() {
            return;
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            this.release(&stale).await;
            this.wake.notify_one();
        });
    }

    /// The event types' retry policies changed (through this node's API): the next attempt
    /// reads them again.
    pub fn event_type_policies_changed(&self) {
        self.policies.event_types_changed();
    }

    async fn deliver(self: Arc<Self>, mut delivery: ClaimedDelivery) {
        // Resolved at every attempt, so a changed policy applies from the next one.
        let event_types = self.policies.event_types(&*self.store).await;
        let resolved = self.policies.resolve(&delivery, &event_types);
        let timeout = resolved
            .policy
            .timeout(delivery.attempts, self.policies.max_timeout());
        let started = self.clock.now();
        if delivery.attempts == 0 && delivery.trigger == Trigger::Scheduled {
            let waited = (started - delivery.message.created_at).to_std();
            self.metrics.first_attempt(waited.unwrap_or_default());
        }
        self.metrics.in_flight.increment(1.0);
        // `None` when tracing is off: then no span is made below.
        let span = self.settings.traces.start();
        let result = tokio::select! {
            result = self.sender.send(&delivery, started, timeout) => result,
            _ = self.hard_stop.cancelled() => {
                self.metrics.in_flight.decrement(1.0);
                self.release(&[(delivery.id, delivery.lease)]).await;
                self.finish(&delivery, None);
                self.recorded(delivery.direct);
                return;
            }
        };
        self.metrics.in_flight.decrement(1.0);
        self.metrics.attempt(&result);
        let finished = self.clock.now();
        // The endpoint's slot is free once the exchange is over (its next queued delivery
        // starts now); this delivery stays leased until its record is written, so nothing
        // can claim it twice.
        self.finish(&delivery, Some(&result));
        let next = next_step(
            &result,
            delivery.attempts,
            &resolved.policy,
            rand::random::<f64>(),
            finished,
        );
        let mut attempt = attempt(&delivery, &result, started);
        attempt.policy = Some(resolved.source);
        attempt.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        tracing::debug!(
            msg_id = %delivery.message.id,
            endpoint_id = %delivery.endpoint.id,
            status = result.outcome.as_ref().map_or(0, |r| r.status),
            next = ?next,
            "attempt made"
        );
        let record = AttemptRecord {
            delivery_id: delivery.id,
            lease: delivery.lease,
            attempt,
            next,
            // Moved, not cloned: nothing reads it after the send.
            msg_event_id: delivery.message.event_id.take(),
            health: self.settings.health.clone(),
            fifo: delivery.endpoint.ordering.is_fifo(),
        };
        if let Some(start) = span {
            self.settings
                .traces
                .attempt(start, &delivery, &result, &record.attempt, next);
        }
        if let Err(e) = self.store.record_attempt(record).await {
            // The claim's lease will expire and the delivery will be attempted again.
            tracing::error!(error = %e, msg_id = %delivery.message.id, "recording an attempt failed");
        }
        self.recorded(delivery.direct);
        if matches!(next, NextStep::RetryAt(_)) || delivery.endpoint.ordering.is_fifo() {
            // The retry may be due sooner than what the loop is sleeping for; a FIFO line's
            // next delivery is due now.
            self.wake.notify_one();
        }
    }

    /// The exchange is over: frees the endpoint's slot, starts its next queued delivery (or
    /// gives the queue back if the endpoint is now paused), and wakes the loop if work was
    /// left waiting for room.
    fn finish(self: &Arc<Self>, delivery: &ClaimedDelivery, result: Option<&SendResult>) {
        let now = self.clock.now();
        let (start, give_back, more_waiting) = {
            let mut board = self.lock_board();
            let (start, give_back) = board.finish(&delivery.endpoint.id, result, now);
            (start, give_back, board.more_waiting)
        };
        self.start_all(start);
        self.release_stale(give_back);
        if more_waiting {
            self.wake.notify_one();
        }
    }

    /// An attempt's record is written (or never will be): the node may hold one more
    /// delivery, and the loop claims again if work was left waiting for room. Until then
    /// the attempt counts against the node's room: when the store records attempts more
    /// slowly than they are sent, claims slow down to match instead of sent attempts piling
    /// up in memory (`hookd-bench i --database-url …`: 500 MiB with 100,000 of them).
    fn recorded(&self, direct: bool) {
        let more_waiting = {
            let mut board = self.lock_board();
            board.recorded(direct);
            board.more_waiting
        };
        if more_waiting {
            self.wake.notify_one();
        }
    }

    async fn release(&self, claims: &[(i64, Timestamp)]) {
        if claims.is_empty() {
            return;
        }
        if let Err(e) = self.store.release_claims(claims, self.clock.now()).await {
            tracing::warn!(error = %e, "releasing claims failed; they are retried when their lease expires");
        }
    }

    fn lock_board(&self) -> std::sync::MutexGuard<'_, Board> {
        lock(&self.board)
    }
}

/// Locks state that is updated in small critical sections that cannot panic half-way.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a claim gave some endpoint all the room it had (or it had none): more of its
/// work may be due, to claim once one of its slots frees up.
fn reached_room(claimed: &[ClaimedDelivery], limits: &ClaimLimits) -> bool {
    if limits.room.values().any(|room| *room == 0) {
        return true;
    }
    let mut taken: HashMap<&EndpointId, usize> = HashMap::new();
    for d in claimed {
        *taken.entry(&d.endpoint.id).or_default() += 1;
    }
    taken.into_iter().any(|(endpoint, n)| {
        n >= limits
            .room
            .get(endpoint)
            .copied()
            .unwrap_or(limits.per_endpoint)
    })
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
