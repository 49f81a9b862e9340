//! The dispatcher: claims due deliveries, sends them concurrently, records the outcomes.
//!
//! One loop per node claims batches of due deliveries under a lease (committed before any
//! request goes out) and sleeps until woken: by a new message (`wake`), by a slot freeing up
//! while more work was left waiting, by a retry being scheduled, by the next retry coming
//! due, or by a paused endpoint resuming.
//!
//! Concurrency is bounded per node (`max_in_flight` attempts) and per endpoint. Each
//! endpoint has a limit of attempts in flight, adaptive: halved, and the endpoint paused,
//! when it signals overload (429/502/503/504), raised by one per success. An endpoint whose
//! last exchange ended within [`SLOW`] is claimed *ahead* of its free slots, up to
//! `claim_ahead` windows, into a small local queue: when one of its attempts ends the next
//! starts at once, without waiting for a claim to come back from the store, so one
//! endpoint's throughput is not bounded by how many claims per second the store commits.
//! An endpoint not known to be fast is claimed only up to its free slots, so a slow
//! endpoint's backlog stays in the store, where no lease runs out while it waits; a paused
//! endpoint gives its queue back. Queued deliveries have their own node-wide budget (as many
//! as `max_in_flight`), so they never take an attempt's slot. An endpoint with no room is
//! left out of claims, so a slow or failing endpoint never takes the slots of healthy ones.
//!
//! A new message accepted on this node needs no claim at all when there is room for it: the
//! API asks for [`Dispatcher::direct_claims`], the store writes each delivery this node
//! reserves already claimed, and [`Ticket::hand_over`] queues them here, so the hot path
//! is one write to accept the message and one to record the attempt. A reservation is
//! granted only within the endpoint's window, counting what is held and reserved; a claim's
//! room leaves reservations out, since they are bounded by the requests being served.
//! Deliveries without room are written pending and the loop is woken to claim them; the
//! endpoint (or the node, when it is full) then takes no more direct claims until a claim
//! comes back with room to spare for it, so direct claims do not starve what waits in the
//! store (see [`Board::note_claim`]).
//!
//! On shutdown the loop stops claiming, gives queued claims back, lets running attempts
//! finish within the grace period, then stops the rest and gives their claims back too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::Clock;
use super::policy::{RetryPolicy, bounded_retry_after};
use super::sender::{Response, SendResult, Sender};
use crate::domain::{
    Attempt, AttemptError, AttemptId, DeliveryStatus, EndpointId, ErrorClass, Timestamp,
};
use crate::store::{AttemptRecord, ClaimLimits, ClaimedDelivery, DirectClaims, NextStep, Store};

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
}

/// After a store error, how long the loop waits before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Longest sleep with nothing scheduled: a safety net, since every write that makes work
/// on this node also wakes the loop.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Bounds of the pause after an endpoint signals overload.
const MIN_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// An endpoint whose last exchange took longer than this is not claimed ahead.
const SLOW: Duration = Duration::from_secs(1);
/// Lease a queued claim must have left beyond the attempt timeout to be started.
const LEASE_SAFETY: Duration = Duration::from_secs(5);

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Sender,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    settings: DispatchSettings,
    board: Mutex<Board>,
    tasks: TaskTracker,
    hard_stop: CancellationToken,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        sender: Sender,
        retry: RetryPolicy,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        settings: DispatchSettings,
    ) -> Arc<Self> {
        let min_lease_left = delta(settings.attempt_timeout + LEASE_SAFETY);
        Arc::new(Self {
            store,
            sender,
            retry,
            clock,
            wake,
            board: Mutex::new(Board::new(
                settings.per_endpoint.max(1),
                settings.claim_ahead.max(1),
                settings.max_in_flight.max(1),
                min_lease_left,
            )),
            settings,
            tasks: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        })
    }

    /// Runs until `shutdown` is cancelled, then drains as described in the module docs.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let full = {
                let board = self.lock_board();
                board.held >= board.max_held()
            };
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
                total: board
                    .max_held()
                    .saturating_sub(board.held)
                    .min(self.settings.claim_batch.max(1)),
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

    /// Direct claims for one new message (see the module docs), or `None` if this node takes
    /// no more deliveries now. What the store writes claimed for it goes to
    /// [`Ticket::hand_over`]; reservations not handed over are cancelled when it drops.
    pub fn direct_claims(self: &Arc<Self>) -> Option<Arc<Ticket>> {
        if !self.lock_board().takes_direct() {
            return None;
        }
        Some(Arc::new(Ticket {
            dispatcher: self.clone(),
            lease: self.clock.now() + delta(self.settings.lease),
            reserved: Mutex::new(Vec::new()),
        }))
    }

    /// Takes over the deliveries the store wrote claimed for `ticket`, and starts what may
    /// start.
    fn hand_over(self: &Arc<Self>, ticket: &Ticket, claimed: Vec<ClaimedDelivery>) {
        if claimed.is_empty() {
            return;
        }
        let (start, stale) = {
            let mut reserved = lock(&ticket.reserved);
            let mut board = self.lock_board();
            for delivery in &claimed {
                if let Some(at) = reserved.iter().position(|e| *e == delivery.endpoint.id) {
                    reserved.swap_remove(at);
                    board.unreserve(&delivery.endpoint.id);
                }
            }
            board.admit(claimed, self.clock.now())
        };
        self.start_all(start);
        self.release_stale(stale);
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

    async fn deliver(self: Arc<Self>, delivery: ClaimedDelivery) {
        let started = self.clock.now();
        let result = tokio::select! {
            result = self.sender.send(&delivery, started) => result,
            _ = self.hard_stop.cancelled() => {
                self.release(&[(delivery.id, delivery.lease)]).await;
                self.finish(&delivery, None);
                return;
            }
        };
        let finished = self.clock.now();
        // The endpoint's slot is free once the exchange is over (its next queued delivery
        // starts now); this delivery stays leased until its record is written, so nothing
        // can claim it twice.
        self.finish(&delivery, Some(&result));
        let next = next_step(
            &result,
            delivery.attempts,
            &self.retry,
            rand::random::<f64>(),
            finished,
        );
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
            attempt: attempt(&delivery, &result, started),
            next,
        };
        if let Err(e) = self.store.record_attempt(record).await {
            // The claim's lease will expire and the delivery will be attempted again.
            tracing::error!(error = %e, msg_id = %delivery.message.id, "recording an attempt failed");
        }
        if matches!(next, NextStep::RetryAt(_)) {
            // The retry may be due sooner than what the loop is sleeping for.
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

/// The direct claims of one new message: the endpoints reserved for it so far.
pub struct Ticket {
    dispatcher: Arc<Dispatcher>,
    lease: Timestamp,
    reserved: Mutex<Vec<EndpointId>>,
}

impl Ticket {
    /// Takes over the deliveries the store wrote claimed for this ticket.
    pub fn hand_over(&self, claimed: Vec<ClaimedDelivery>) {
        self.dispatcher.hand_over(self, claimed);
    }
}

impl DirectClaims for Ticket {
    fn lease(&self) -> Timestamp {
        self.lease
    }

    fn reserve(&self, endpoint: &EndpointId) -> bool {
        let mut reserved = lock(&self.reserved);
        if reserved.contains(endpoint) {
            return true;
        }
        let now = self.dispatcher.clock.now();
        if !self.dispatcher.lock_board().reserve(endpoint, now) {
            return false;
        }
        reserved.push(endpoint.clone());
        true
    }
}

impl Drop for Ticket {
    /// Gives back the room of reservations that were not handed over (the message was not
    /// written, or the write failed).
    fn drop(&mut self) {
        let reserved = std::mem::take(&mut *lock(&self.reserved));
        if reserved.is_empty() {
            return;
        }
        let now = self.dispatcher.clock.now();
        let mut board = self.dispatcher.lock_board();
        for endpoint in &reserved {
            board.unreserve(endpoint);
            board.forget_if_resting(endpoint, now);
        }
    }
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

/// What becomes of a delivery after an attempt (see the README's delivery semantics).
pub fn next_step(
    result: &SendResult,
    attempts_before: u32,
    retry: &RetryPolicy,
    unit: f64,
    now: Timestamp,
) -> NextStep {
    match &result.outcome {
        Ok(r) if (200..300).contains(&r.status) => NextStep::Delivered,
        Ok(r) if r.status == 410 => NextStep::DisableEndpoint,
        outcome => {
            let retry_number = usize::try_from(attempts_before)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let Some(scheduled) = retry.delay_before_retry(retry_number, unit) else {
                return NextStep::Failed;
            };
            let retry_after = match outcome {
                Ok(r) if matches!(r.status, 429 | 503) => r.retry_after,
                _ => None,
            };
            let wait = bounded_retry_after(scheduled, retry_after, retry.max_delay());
            NextStep::RetryAt(now + delta(wait))
        }
    }
}

fn attempt(delivery: &ClaimedDelivery, result: &SendResult, started: Timestamp) -> Attempt {
    let (status, code, body, headers, error) = match &result.outcome {
        Ok(Response {
            status,
            headers,
            body,
            ..
        }) => {
            let ok = (200..300).contains(status);
            let error = (!ok).then(|| AttemptError {
                class: ErrorClass::HttpStatus,
                message: format!("the endpoint answered {status}"),
            });
            let state = if ok {
                DeliveryStatus::Success
            } else {
                DeliveryStatus::Fail
            };
            (state, *status, body.clone(), headers.clone(), error)
        }
        Err(e) => (
            DeliveryStatus::Fail,
            0,
            String::new(),
            Default::default(),
            Some(e.clone()),
        ),
    };
    Attempt {
        id: AttemptId::generate(),
        msg_id: delivery.message.id.clone(),
        endpoint_id: delivery.endpoint.id.clone(),
        app_id: delivery.endpoint.app_id.clone(),
        url: delivery.endpoint.url.as_str().to_owned(),
        status,
        response_status_code: code,
        response_body: body,
        response_headers: headers,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        trigger: delivery.trigger,
        error,
        created_at: started,
    }
}

/// What this node holds, per endpoint: attempts in flight, claims queued behind them, and
/// the adaptive limit.
struct Board {
    /// The configured limit of attempts in flight to one endpoint.
    max: usize,
    /// Windows of `limit` a fast endpoint may hold (in flight plus queued).
    ahead: usize,
    /// Attempts in flight at once on the node.
    max_in_flight: usize,
    /// A queued claim starts only with more than this left on its lease.
    min_lease_left: TimeDelta,
    /// Deliveries held in all: in flight or queued.
    held: usize,
    /// Attempts in flight in all.
    in_flight: usize,
    /// Endpoints with queued deliveries and free slots, waiting for a node-wide slot.
    ready: VecDeque<EndpointId>,
    /// The last claim left due work behind for lack of room: a freed slot should wake the
    /// loop to claim again.
    more_waiting: bool,
    /// Shutting down: nothing more starts.
    stopping: bool,
    /// The node was too full to take a new message's deliveries directly: it takes no direct
    /// claims until a claim comes back with room to spare.
    backlog: bool,
    loads: HashMap<EndpointId, Load>,
}

struct Load {
    in_flight: usize,
    queued: VecDeque<ClaimedDelivery>,
    /// Deliveries of new messages reserved for direct claims, being written.
    reserved: usize,
    /// Deliveries of this endpoint may be due in the store (one was written pending, or a
    /// claim took all the room it had): no direct claims until a claim shows there are none.
    backlog: bool,
    limit: usize,
    paused_until: Option<Timestamp>,
    /// The last exchange ended within [`SLOW`]: the endpoint may be claimed ahead.
    fast: bool,
    /// Listed in [`Board::ready`].
    ready: bool,
}

/// Claims to give back to the store: (delivery id, lease).
type GiveBack = Vec<(i64, Timestamp)>;

impl Board {
    fn new(max: usize, ahead: usize, max_in_flight: usize, min_lease_left: TimeDelta) -> Self {
        Self {
            max,
            ahead,
            max_in_flight,
            min_lease_left,
            held: 0,
            in_flight: 0,
            ready: VecDeque::new(),
            more_waiting: false,
            stopping: false,
            backlog: false,
            loads: HashMap::new(),
        }
    }

    fn new_load(&self) -> Load {
        Load {
            in_flight: 0,
            queued: VecDeque::new(),
            reserved: 0,
            backlog: false,
            limit: self.max,
            paused_until: None,
            fast: false,
            ready: false,
        }
    }

    /// How many deliveries `load` may hold: in flight, queued and reserved.
    fn window(&self, load: &Load) -> usize {
        if load.fast {
            load.limit * self.ahead
        } else {
            load.limit
        }
    }

    /// Whether a new message's deliveries may be offered for direct claims.
    fn takes_direct(&self) -> bool {
        let full = self.held >= self.max_held();
        !self.stopping && !full && !self.backlog
    }

    /// Reserves room for one new delivery to `endpoint`, to be written claimed. Refused, the
    /// delivery is written pending, and the endpoint takes no more direct claims until a
    /// claim has found it.
    fn reserve(&mut self, endpoint: &EndpointId, now: Timestamp) -> bool {
        if self.stopping {
            return false;
        }
        let node_full = self.held >= self.max_held();
        if !self.loads.contains_key(endpoint) {
            // Taken to be fast until an exchange shows otherwise: a busy endpoint's load is
            // forgotten whenever it is momentarily idle (between two batches of messages),
            // and one window would then not hold the next batch. What it may hold stays
            // bounded, and its first slow answer brings it down to one window.
            let load = Load {
                fast: true,
                ..self.new_load()
            };
            self.loads.insert(endpoint.clone(), load);
        }
        let load = &self.loads[endpoint];
        let paused = load.paused_until.is_some_and(|p| p > now);
        let has_room = load.in_flight + load.queued.len() + load.reserved < self.window(load);
        let load = self.loads.get_mut(endpoint).expect("inserted above");
        if node_full || paused || load.backlog || !has_room {
            load.backlog = true;
            self.backlog |= node_full;
            self.more_waiting = true;
            return false;
        }
        load.reserved += 1;
        self.held += 1;
        true
    }

    /// Takes back one reservation of `endpoint` (written claimed and handed over, or not
    /// written at all).
    fn unreserve(&mut self, endpoint: &EndpointId) {
        if let Some(load) = self.loads.get_mut(endpoint) {
            load.reserved = load.reserved.saturating_sub(1);
            self.held = self.held.saturating_sub(1);
        }
    }

    /// What a claim shows of the store's backlog: an endpoint that took all the room it was
    /// given may have more due; one that took less, in a claim that was not cut short by its
    /// total, had nothing more due, and neither had the node.
    ///
    /// Deliveries left pending while the claim ran may have been missed by it; they wake the
    /// loop, so the next claim takes them, possibly after direct claims of newer messages:
    /// a short overtaking, never starvation, since an endpoint whose room direct claims fill
    /// takes no direct claims until it has been claimed with room to spare.
    fn note_claim(&mut self, claimed: &[ClaimedDelivery], limits: &ClaimLimits, filled: bool) {
        let mut taken: HashMap<&EndpointId, usize> = HashMap::new();
        for d in claimed {
            *taken.entry(&d.endpoint.id).or_default() += 1;
        }
        if !filled {
            self.backlog = false;
        }
        for (id, load) in &mut self.loads {
            let room = limits.room.get(id).copied().unwrap_or(limits.per_endpoint);
            if taken.get(id).copied().unwrap_or(0) >= room {
                load.backlog = true;
            } else if !filled {
                load.backlog = false;
            }
        }
    }

    /// How many deliveries the node may hold: its attempts in flight, and as many queued.
    fn max_held(&self) -> usize {
        self.max_in_flight * 2
    }

    /// How many deliveries an endpoint this node holds nothing of may take: one window, as
    /// nothing is known yet of how fast it answers.
    fn window_of_new(&self) -> usize {
        self.max
    }

    /// Takes in claimed deliveries; returns those that may start now and those whose lease
    /// is already too short.
    fn admit(
        &mut self,
        claimed: Vec<ClaimedDelivery>,
        now: Timestamp,
    ) -> (Vec<ClaimedDelivery>, GiveBack) {
        if self.stopping {
            return (
                Vec::new(),
                claimed.iter().map(|d| (d.id, d.lease)).collect(),
            );
        }
        let mut touched = Vec::new();
        for delivery in claimed {
            self.held += 1;
            let endpoint = delivery.endpoint.id.clone();
            if !self.loads.contains_key(&endpoint) {
                let load = self.new_load();
                self.loads.insert(endpoint.clone(), load);
            }
            let load = self.loads.get_mut(&endpoint).expect("inserted above");
            load.queued.push_back(delivery);
            if !touched.contains(&endpoint) {
                touched.push(endpoint);
            }
        }
        let (mut start, mut stale) = (Vec::new(), Vec::new());
        for endpoint in &touched {
            self.take_startable(endpoint, now, &mut start, &mut stale);
        }
        (start, stale)
    }

    /// Moves queued deliveries of `endpoint` into flight while it and the node have free
    /// slots; lists the endpoint as ready if only the node's slots are missing.
    fn take_startable(
        &mut self,
        endpoint: &EndpointId,
        now: Timestamp,
        start: &mut Vec<ClaimedDelivery>,
        stale: &mut GiveBack,
    ) {
        let Some(load) = self.loads.get_mut(endpoint) else {
            return;
        };
        if self.stopping || load.paused_until.is_some_and(|p| p > now) {
            return;
        }
        while load.in_flight < load.limit {
            if self.in_flight >= self.max_in_flight {
                if !load.queued.is_empty() && !load.ready {
                    load.ready = true;
                    self.ready.push_back(endpoint.clone());
                }
                break;
            }
            let Some(delivery) = load.queued.pop_front() else {
                break;
            };
            if delivery.lease - now <= self.min_lease_left {
                stale.push((delivery.id, delivery.lease));
                self.held -= 1;
                continue;
            }
            load.in_flight += 1;
            self.in_flight += 1;
            start.push(delivery);
        }
        self.forget_if_resting(endpoint, now);
    }

    /// An exchange with `endpoint` is over (`None`: it was abandoned). Returns what may start
    /// in its place and what must be given back.
    fn finish(
        &mut self,
        endpoint: &EndpointId,
        result: Option<&SendResult>,
        now: Timestamp,
    ) -> (Vec<ClaimedDelivery>, GiveBack) {
        let max = self.max;
        let Some(load) = self.loads.get_mut(endpoint) else {
            return (Vec::new(), Vec::new());
        };
        load.in_flight = load.in_flight.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        self.held = self.held.saturating_sub(1);
        if let Some(result) = result {
            load.fast = result.duration <= SLOW;
        }
        let mut give_back = Vec::new();
        match result.map(|r| &r.outcome) {
            Some(Ok(r)) if matches!(r.status, 429 | 502 | 503 | 504) => {
                load.limit = (load.limit / 2).max(1);
                let pause = r
                    .retry_after
                    .unwrap_or(MIN_PAUSE)
                    .clamp(MIN_PAUSE, MAX_PAUSE);
                load.paused_until = Some(now + delta(pause));
                give_back.extend(load.queued.drain(..).map(|d| (d.id, d.lease)));
            }
            Some(Ok(r)) if (200..300).contains(&r.status) => {
                load.limit = (load.limit + 1).min(max);
            }
            _ => {}
        }
        self.held -= give_back.len();
        let mut start = Vec::new();
        self.take_startable(endpoint, now, &mut start, &mut give_back);
        while self.in_flight < self.max_in_flight {
            let Some(waiting) = self.ready.pop_front() else {
                break;
            };
            if let Some(load) = self.loads.get_mut(&waiting) {
                load.ready = false;
            }
            self.take_startable(&waiting, now, &mut start, &mut give_back);
        }
        (start, give_back)
    }

    fn forget_if_resting(&mut self, endpoint: &EndpointId, now: Timestamp) {
        let max = self.max;
        let resting = self.loads.get(endpoint).is_some_and(|l| {
            l.in_flight == 0
                && l.queued.is_empty()
                && l.reserved == 0
                && !l.backlog
                && l.limit == max
                && l.paused_until.is_none_or(|p| p <= now)
        });
        if resting {
            self.loads.remove(endpoint);
        }
    }

    /// How many more deliveries each endpoint this node holds may claim now (0 while paused).
    fn room(&self, now: Timestamp) -> HashMap<EndpointId, usize> {
        self.loads
            .iter()
            .map(|(id, l)| {
                let paused = l.paused_until.is_some_and(|p| p > now);
                // Reservations are left out: they are bounded by the requests being served,
                // not by this window, and a claim must be able to drain what was left
                // pending while they come and go, or direct claims would never resume.
                let room = if paused {
                    0
                } else {
                    self.window(l).saturating_sub(l.in_flight + l.queued.len())
                };
                (id.clone(), room)
            })
            .collect()
    }

    fn next_resume(&self, now: Timestamp) -> Option<Timestamp> {
        self.loads
            .values()
            .filter_map(|l| l.paused_until)
            .filter(|p| *p > now)
            .min()
    }

    /// Stops starting anything; returns every queued claim, to give back.
    fn stop(&mut self) -> GiveBack {
        self.stopping = true;
        let mut give_back = Vec::new();
        for load in self.loads.values_mut() {
            give_back.extend(load.queued.drain(..).map(|d| (d.id, d.lease)));
        }
        self.held -= give_back.len();
        give_back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::now;

    fn answered(status: u16, retry_after: Option<u64>) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            outcome: Ok(Response {
                status,
                headers: Default::default(),
                body: String::new(),
                retry_after: retry_after.map(Duration::from_secs),
            }),
        }
    }

    fn failed(class: ErrorClass) -> SendResult {
        SendResult {
            duration: Duration::from_millis(3),
            outcome: Err(AttemptError {
                class,
                message: "x".into(),
            }),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(vec![Duration::from_secs(5), Duration::from_secs(300)], 0.0)
    }

    #[test]
    fn success_delivers_and_gone_disables() {
        let t = now();
        assert_eq!(
            next_step(&answered(204, None), 0, &policy(), 0.5, t),
            NextStep::Delivered
        );
        assert_eq!(
            next_step(&answered(410, None), 0, &policy(), 0.5, t),
            NextStep::DisableEndpoint
        );
    }

    #[test]
    fn everything_else_follows_the_schedule_then_fails() {
        let t = now();
        for result in [
            answered(500, None),
            answered(302, None),
            answered(404, None),
            failed(ErrorClass::Timeout),
            failed(ErrorClass::SsrfRefused),
        ] {
            assert_eq!(
                next_step(&result, 0, &policy(), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(5))
            );
            assert_eq!(
                next_step(&result, 1, &policy(), 0.5, t),
                NextStep::RetryAt(t + TimeDelta::seconds(300))
            );
            assert_eq!(next_step(&result, 2, &policy(), 0.5, t), NextStep::Failed);
        }
    }

    #[test]
    fn retry_after_is_honoured_for_429_and_503_within_bounds() {
        let t = now();
        let step = |status, after| next_step(&answered(status, Some(after)), 0, &policy(), 0.5, t);
        assert_eq!(step(429, 60), NextStep::RetryAt(t + TimeDelta::seconds(60)));
        assert_eq!(step(503, 1), NextStep::RetryAt(t + TimeDelta::seconds(5)));
        assert_eq!(
            step(429, 99_999),
            NextStep::RetryAt(t + TimeDelta::seconds(300))
        );
        assert_eq!(step(500, 60), NextStep::RetryAt(t + TimeDelta::seconds(5)));
    }

    fn claimed(endpoint: &crate::domain::Endpoint, id: i64, lease: Timestamp) -> ClaimedDelivery {
        ClaimedDelivery {
            id,
            lease,
            attempts: 0,
            trigger: crate::domain::Trigger::Scheduled,
            message: crate::domain::Message {
                id: crate::domain::MessageId::generate(),
                app_id: endpoint.app_id.clone(),
                event_type: crate::domain::EventTypeName::parse("a.b").unwrap(),
                event_id: None,
                channels: None,
                payload: None,
                created_at: lease,
            },
            endpoint: endpoint.clone(),
        }
    }

    fn endpoint() -> crate::domain::Endpoint {
        crate::domain::Endpoint {
            id: EndpointId::generate(),
            app_id: crate::domain::AppId::generate(),
            uid: None,
            url: crate::domain::EndpointUrl::parse("http://127.0.0.1:9/").unwrap(),
            description: String::new(),
            disabled: false,
            rate_limit: None,
            subscription: Default::default(),
            metadata: Default::default(),
            headers: Default::default(),
            secret: crate::domain::SigningSecret::generate(),
            previous_secrets: Vec::new(),
            created_at: now(),
            updated_at: now(),
        }
    }

    fn board() -> Board {
        Board::new(8, 2, 100, TimeDelta::seconds(20))
    }

    #[test]
    fn overload_halves_the_limit_pauses_the_endpoint_and_gives_its_queue_back() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        let (start, stale) = board.admit((0..12).map(|i| claimed(&ep, i, lease)).collect(), t);
        assert_eq!((start.len(), stale.len()), (8, 0), "8 slots, 4 queued");
        assert_eq!(board.room(t)[&ep.id], 0, "one window until it proves fast");
        let (start, back) = board.finish(&ep.id, Some(&answered(429, Some(10))), t);
        assert!(start.is_empty());
        assert_eq!(back.len(), 4, "the queue goes back while paused");
        assert_eq!(board.held, 7);
        assert_eq!(board.loads[&ep.id].limit, 4);
        assert_eq!(board.next_resume(t), Some(t + TimeDelta::seconds(10)));
        let later = t + TimeDelta::seconds(11);
        assert_eq!(board.room(t)[&ep.id], 0, "paused");
        assert_eq!(board.room(later)[&ep.id], 1, "7 held, two windows of 4");
        for _ in 0..7 {
            board.finish(&ep.id, Some(&answered(200, None)), later);
        }
        assert!(board.loads.is_empty(), "back to rest after successes");
        assert_eq!(board.held, 0);
    }

    #[test]
    fn a_finished_attempt_starts_the_next_queued_one() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        let (start, _) = board.admit((0..10).map(|i| claimed(&ep, i, lease)).collect(), t);
        assert_eq!(
            start.iter().map(|d| d.id).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        let (start, back) = board.finish(&ep.id, Some(&answered(200, None)), t);
        assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [8]);
        assert!(back.is_empty());
        assert_eq!(board.held, 9);
    }

    #[test]
    fn a_queued_claim_with_too_little_lease_left_is_given_back() {
        let t = now();
        let ep = endpoint();
        let mut board = board();
        let fresh = t + TimeDelta::seconds(45);
        let (start, _) = board.admit((0..8).map(|i| claimed(&ep, i, fresh)).collect(), t);
        assert_eq!(start.len(), 8);
        let short = t + TimeDelta::seconds(25);
        board.admit(vec![claimed(&ep, 100, short)], t);
        let (start, back) = board.finish(
            &ep.id,
            Some(&answered(200, None)),
            t + TimeDelta::seconds(10),
        );
        assert!(start.is_empty());
        assert_eq!(back, [(100, short)]);
        assert_eq!(board.held, 7);
    }

    #[test]
    fn a_fast_endpoint_is_claimed_ahead() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
        board.finish(&ep.id, Some(&answered(200, None)), t);
        assert_eq!(board.room(t)[&ep.id], 15, "two windows of 8, 1 held");
    }

    #[test]
    fn queued_deliveries_wait_for_a_node_wide_slot() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let (a, b) = (endpoint(), endpoint());
        let mut board = Board::new(8, 2, 3, TimeDelta::seconds(20));
        let (start, _) = board.admit(
            vec![
                claimed(&a, 1, lease),
                claimed(&a, 2, lease),
                claimed(&b, 3, lease),
                claimed(&b, 4, lease),
            ],
            t,
        );
        assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2, 3]);
        let (start, _) = board.finish(&a.id, Some(&answered(200, None)), t);
        assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [4]);
        assert!(board.ready.is_empty());
    }

    #[test]
    fn a_slow_endpoint_is_not_claimed_ahead() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
        let mut slow = answered(200, None);
        slow.duration = Duration::from_secs(2);
        board.finish(&ep.id, Some(&slow), t);
        assert_eq!(board.room(t)[&ep.id], 7, "one window of 8, 1 in flight");
    }

    #[test]
    fn stopping_gives_back_every_queued_claim() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        board.admit((0..10).map(|i| claimed(&ep, i, lease)).collect(), t);
        assert_eq!(board.stop().len(), 2);
        let (start, _) = board.finish(&ep.id, Some(&answered(200, None)), t);
        assert!(start.is_empty(), "nothing starts once stopping");
    }

    fn limits_of(board: &Board, t: Timestamp) -> ClaimLimits {
        ClaimLimits {
            total: 256,
            per_endpoint: board.window_of_new(),
            room: board.room(t),
        }
    }

    #[test]
    fn reservations_take_room_until_handed_over_or_cancelled() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        for _ in 0..16 {
            assert!(board.reserve(&ep.id, t));
        }
        assert_eq!(board.held, 16, "reserved counts as held");
        assert!(!board.reserve(&ep.id, t), "two windows: taken to be fast");
        assert_eq!(
            board.room(t)[&ep.id],
            16,
            "a claim may still drain the store"
        );
        assert!(board.loads[&ep.id].backlog);

        // Handed over: the reservation becomes an attempt, the room stays taken.
        board.unreserve(&ep.id);
        let (start, _) = board.admit(vec![claimed(&ep, 1, lease)], t);
        assert_eq!(start.len(), 1);
        assert_eq!((board.held, board.in_flight), (16, 1));
        // Cancelled (the write failed): the room comes back.
        for _ in 0..15 {
            board.unreserve(&ep.id);
        }
        assert_eq!(board.held, 1);
        assert_eq!(board.loads[&ep.id].reserved, 0);
    }

    #[test]
    fn an_endpoint_left_pending_takes_no_direct_claims_until_a_claim_drains_it() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = Board::new(1, 1, 100, TimeDelta::seconds(20));
        assert!(board.reserve(&ep.id, t));
        assert!(!board.reserve(&ep.id, t), "no room: written pending");
        board.unreserve(&ep.id);
        board.admit(vec![claimed(&ep, 1, lease)], t);
        board.finish(&ep.id, Some(&answered(200, None)), t);
        assert!(
            !board.reserve(&ep.id, t),
            "room again, but older work waits"
        );

        // A claim that took all the room it had may have left more behind.
        let limits = limits_of(&board, t);
        let found = vec![claimed(&ep, 2, lease)];
        board.note_claim(&found, &limits, false);
        board.admit(found, t);
        board.finish(&ep.id, Some(&answered(200, None)), t);
        assert!(!board.reserve(&ep.id, t));
        // A claim cut short by its total may have too.
        board.note_claim(&[], &limits_of(&board, t), true);
        assert!(!board.reserve(&ep.id, t));
        // One with room to spare found all there was.
        board.note_claim(&[], &limits_of(&board, t), false);
        assert!(board.reserve(&ep.id, t), "drained: direct claims again");
    }

    #[test]
    fn a_full_node_takes_no_direct_claims_until_a_claim_drains_it() {
        let t = now();
        let (a, b) = (endpoint(), endpoint());
        let mut board = Board::new(8, 1, 1, TimeDelta::seconds(20));
        assert!(board.takes_direct());
        assert!(board.reserve(&a.id, t));
        assert!(board.reserve(&a.id, t));
        assert!(!board.takes_direct(), "two held of two");
        assert!(!board.reserve(&b.id, t));
        board.unreserve(&a.id);
        board.unreserve(&a.id);
        assert!(!board.takes_direct(), "what was left pending goes first");
        let limits = limits_of(&board, t);
        board.note_claim(&[], &limits, true);
        assert!(!board.takes_direct(), "a full claim may have left more");
        board.note_claim(&[], &limits, false);
        assert!(board.takes_direct());
        assert!(board.reserve(&a.id, t));
        assert!(board.reserve(&b.id, t), "b's own backlog was drained too");
    }

    #[test]
    fn a_paused_endpoint_takes_no_direct_claims() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        board.admit(vec![claimed(&ep, 1, lease)], t);
        board.finish(&ep.id, Some(&answered(503, Some(5))), t);
        assert!(!board.reserve(&ep.id, t));
        assert!(
            !board.reserve(&ep.id, t + TimeDelta::seconds(6)),
            "pending first"
        );
    }

    #[test]
    fn stopping_refuses_direct_claims_and_gives_back_what_arrives() {
        let t = now();
        let lease = t + TimeDelta::seconds(45);
        let ep = endpoint();
        let mut board = board();
        board.stop();
        assert!(!board.takes_direct());
        assert!(!board.reserve(&ep.id, t));
        let (start, back) = board.admit(vec![claimed(&ep, 7, lease)], t);
        assert!(start.is_empty());
        assert_eq!(back, [(7, lease)]);
        assert_eq!(board.held, 0);
    }
}
