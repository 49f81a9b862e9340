//! The concurrency rule: what this node holds of each endpoint (attempts in flight, claims
//! queued behind them, reservations for direct claims) and what it may take on.
//!
//! Concurrency is bounded per node (`max_in_flight` attempts) and per endpoint. Each
//! endpoint has a limit of attempts in flight, adaptive: halved, and the endpoint paused,
//! when it signals overload (429/502/503/504), raised by one per success. An endpoint whose
//! last exchange ended within [`SLOW`] is claimed *ahead* of its free slots, up to
//! `claim_ahead` windows, into a small local queue: when one of its attempts ends the next
//! starts at once, without waiting for a claim to come back from the store, so one
//! endpoint's throughput is not bounded by how many claims per second the store commits.
//! What it holds so is capped at a quarter of the node's room, so that on a small node one
//! endpoint's queue cannot fill the node.
//! An endpoint not known to be fast is claimed only up to its free slots, so a slow
//! endpoint's backlog stays in the store, where no lease runs out while it waits; a paused
//! endpoint gives its queue back. Queued deliveries have their own node-wide budget (as many
//! as `max_in_flight`), so they never take an attempt's slot. An endpoint with no room is
//! left out of claims, so a slow or failing endpoint never takes the slots of healthy ones.
//!
//! A reservation for a direct claim is granted only within the endpoint's window, counting
//! what is held and reserved; a claim's room leaves reservations out, since they are bounded
//! by the requests being served. When a reservation is refused, the endpoint (or the node,
//! when it is full) takes no more direct claims until a claim comes back with room to spare
//! for it, so direct claims do not starve what waits in the store (see
//! [`Board::note_claim`]).
//!
//! A share of the node's room ([`Board::direct_share`], a quarter) is kept for direct
//! claims: claims from the store leave it free, and direct claims within it are taken even
//! while the node is full of claimed work. Without it, a backlog of one endpoint (an outage
//! over) would fill the node, every new message to the other endpoints would be written
//! pending and wait behind the backlog in the queue (`hookd-bench h` on PostgreSQL: p99 of
//! 1.6 s). The share cannot starve the store's backlog either: claims keep the other three
//! quarters, and an endpoint with deliveries waiting in the store takes no direct claims.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::TimeDelta;

use super::delta;
use crate::delivery::sender::SendResult;
use crate::domain::{EndpointId, Timestamp};
use crate::store::{ClaimLimits, ClaimedDelivery};

/// Bounds of the pause after an endpoint signals overload.
const MIN_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// An endpoint whose last exchange took longer than this is not claimed ahead.
const SLOW: Duration = Duration::from_secs(1);

/// What this node holds, per endpoint: attempts in flight, claims queued behind them, and
/// the adaptive limit.
pub(super) struct Board {
    /// The configured limit of attempts in flight to one endpoint.
    max: usize,
    /// Windows of `limit` a fast endpoint may hold (in flight plus queued).
    ahead: usize,
    /// Attempts in flight at once on the node.
    max_in_flight: usize,
    /// A queued claim starts only with more than this left on its lease.
    min_lease_left: TimeDelta,
    /// Deliveries held in all: in flight, queued, or sent and waiting for their attempt to
    /// be recorded ([`Board::recorded`]). It bounds what the node claims, so attempts that
    /// the store records more slowly than they are sent wait in the store, not in memory.
    pub(super) held: usize,
    /// Of `held`, the deliveries of direct claims: reserved, or handed over and not yet
    /// recorded.
    direct_held: usize,
    /// Attempts in flight in all.
    in_flight: usize,
    /// Endpoints with queued deliveries and free slots, waiting for a node-wide slot.
    ready: VecDeque<EndpointId>,
    /// The last claim left due work behind for lack of room: a freed slot should wake the
    /// loop to claim again.
    pub(super) more_waiting: bool,
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
    pub(super) fn new(
        max: usize,
        ahead: usize,
        max_in_flight: usize,
        min_lease_left: TimeDelta,
    ) -> Self {
        Self {
            max,
            ahead,
            max_in_flight,
            min_lease_left,
            held: 0,
            direct_held: 0,
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

    /// How many deliveries `load` may hold: in flight, queued and reserved. Claimed ahead, a
    /// fast endpoint holds no more than a quarter of the node's room (nor less than its
    /// limit), so that on a small node one endpoint's queue cannot take the room of all the
    /// others.
    fn window(&self, load: &Load) -> usize {
        if load.fast {
            (load.limit * self.ahead).min((self.max_held() / 4).max(load.limit))
        } else {
            load.limit
        }
    }

    /// Whether a new message's deliveries may be offered for direct claims: within the
    /// share kept for them, or in the node's free room while nothing waits in the store.
    pub(super) fn takes_direct(&self) -> bool {
        let full = self.held >= self.max_held();
        !self.stopping && (self.within_direct_share() || (!full && !self.backlog))
    }

    /// The part of the node's room kept for direct claims (see the module docs).
    pub(super) fn direct_share(&self) -> usize {
        self.max_held() / 4
    }

    fn within_direct_share(&self) -> bool {
        self.direct_held < self.direct_share()
    }

    /// How many deliveries a claim from the store may take: the node's free room, less what
    /// is kept for direct claims.
    pub(super) fn claim_room(&self) -> usize {
        let kept = self.direct_share().saturating_sub(self.direct_held);
        self.max_held().saturating_sub(self.held + kept)
    }

    /// Reserves room for one new delivery to `endpoint`, to be written claimed. Refused, the
    /// delivery is written pending, and the endpoint takes no more direct claims until a
    /// claim has found it.
    pub(super) fn reserve(&mut self, endpoint: &EndpointId, now: Timestamp) -> bool {
        if self.stopping {
            return false;
        }
        let node_full = self.held >= self.max_held() && !self.within_direct_share();
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
        self.direct_held += 1;
        true
    }

    /// Takes back one reservation of `endpoint` (written claimed and handed over, or not
    /// written at all).
    pub(super) fn unreserve(&mut self, endpoint: &EndpointId) {
        if let Some(load) = self.loads.get_mut(endpoint) {
            load.reserved = load.reserved.saturating_sub(1);
            self.held = self.held.saturating_sub(1);
            self.direct_held = self.direct_held.saturating_sub(1);
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
    pub(super) fn note_claim(
        &mut self,
        claimed: &[ClaimedDelivery],
        limits: &ClaimLimits,
        filled: bool,
    ) {
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
    pub(super) fn max_held(&self) -> usize {
        self.max_in_flight * 2
    }

    /// How many deliveries an endpoint this node holds nothing of may take: one window, as
    /// nothing is known yet of how fast it answers.
    pub(super) fn window_of_new(&self) -> usize {
        self.max
    }

    /// Takes in claimed deliveries; returns those that may start now and those whose lease
    /// is already too short.
    pub(super) fn admit(
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
            self.direct_held += usize::from(delivery.direct);
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
                self.direct_held -= usize::from(delivery.direct);
                continue;
            }
            load.in_flight += 1;
            self.in_flight += 1;
            start.push(delivery);
        }
        self.forget_if_resting(endpoint, now);
    }

    /// The attempt of a finished exchange is recorded (or will never be: the exchange was
    /// abandoned): the node holds one delivery less (`direct`: of a direct claim).
    pub(super) fn recorded(&mut self, direct: bool) {
        self.held = self.held.saturating_sub(1);
        if direct {
            self.direct_held = self.direct_held.saturating_sub(1);
        }
    }

    /// An exchange with `endpoint` is over (`None`: it was abandoned): its slot is free, and
    /// the delivery stays held until [`Board::recorded`]. Returns what may start in its
    /// place and what must be given back.
    pub(super) fn finish(
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
                for d in load.queued.drain(..) {
                    self.direct_held -= usize::from(d.direct);
                    give_back.push((d.id, d.lease));
                }
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

    pub(super) fn forget_if_resting(&mut self, endpoint: &EndpointId, now: Timestamp) {
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
    pub(super) fn room(&self, now: Timestamp) -> HashMap<EndpointId, usize> {
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

    pub(super) fn next_resume(&self, now: Timestamp) -> Option<Timestamp> {
        self.loads
            .values()
            .filter_map(|l| l.paused_until)
            .filter(|p| *p > now)
            .min()
    }

    /// Stops starting anything; returns every queued claim, to give back.
    pub(super) fn stop(&mut self) -> GiveBack {
        self.stopping = true;
        let mut give_back = Vec::new();
        for load in self.loads.values_mut() {
            for d in load.queued.drain(..) {
                self.direct_held -= usize::from(d.direct);
                give_back.push((d.id, d.lease));
            }
        }
        self.held -= give_back.len();
        give_back
    }
}

#[cfg(test)]
mod tests;
