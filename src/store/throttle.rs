//! `throttleRate`: how a claim takes the deliveries of throttled endpoints and applications.
//!
//! Each throttled endpoint, and each throttled application (for all its endpoints together),
//! has a token bucket kept in the `throttle` table, shared by every node: it holds up to
//! `rate` tokens (one second's worth) and refills `rate` per second; each delivery claimed
//! takes one token from each bucket it falls under. The state is one number per bucket, the
//! time at which the bucket will be full again if nothing more is taken (the "theoretical
//! arrival time" of the generic cell rate algorithm): a delivery may go if that time is at
//! most one second (less one token) ahead of now, and takes it one interval further.
//!
//! A claim reads (on PostgreSQL, locks) the buckets of the throttled deliveries it found due,
//! so claims on several nodes take turns on one bucket and together never exceed it. A due
//! delivery a bucket has no token for is not claimed: it is made due again at the time its
//! turn would come (counting the deliveries before it), rounded up to [`QUANTUM`] so one
//! claim takes several, and never further than [`MAX_DEFER`] ahead, so that a backlog leaves
//! the head of the queue (other endpoints' deliveries are not held up behind it) and the
//! dispatcher's timer (the next due delivery) wakes it when tokens are back. Deferring is not
//! an attempt: a throttled delivery waits, and never fails for it.

use std::collections::HashMap;

use chrono::TimeDelta;

use crate::domain::{AppId, EndpointId, Timestamp};
use crate::store::ClaimLimits;

/// Deferred deliveries are made due at a multiple of this, so that one claim takes the
/// tokens of this long at once rather than one claim per token.
const QUANTUM: TimeDelta = TimeDelta::milliseconds(100);
/// The furthest ahead a delivery is deferred: a backlog behind that is looked at again
/// then, so a rate raised meanwhile applies within this long.
const MAX_DEFER: TimeDelta = TimeDelta::seconds(10);

/// A due delivery as a claim finds it: with its endpoint's and application's rates (`None`
/// for no limit; see [`rate`]).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    pub endpoint: EndpointId,
    pub app: AppId,
    pub endpoint_rate: Option<u16>,
    pub app_rate: Option<u16>,
    /// Its endpoint is FIFO and it is not the line's head: it is parked, not claimed
    /// (`store::fifo`).
    pub behind: bool,
}

impl Candidate {
    pub fn is_throttled(&self) -> bool {
        self.endpoint_rate.is_some() || self.app_rate.is_some()
    }

    /// The buckets it falls under: (key in the `throttle` table, rate).
    fn buckets(&self) -> impl Iterator<Item = (String, u16)> + '_ {
        let endpoint = self
            .endpoint_rate
            .map(|r| (bucket_key("endpoint", self.endpoint.as_str()), r));
        let app = self
            .app_rate
            .map(|r| (bucket_key("application", self.app.as_str()), r));
        endpoint.into_iter().chain(app)
    }
}

/// A stored `throttleRate` as a limit: 0, which the contract allows on a PATCH, means no
/// limit, as `null` does (a rate of nothing would hold deliveries forever; disabling the
/// endpoint does that).
pub fn rate(stored: Option<i64>) -> Option<u16> {
    stored
        .filter(|r| *r > 0)
        .map(|r| u16::try_from(r).unwrap_or(u16::MAX))
}

fn bucket_key(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

/// The bucket keys of the throttled candidates, sorted and without repeats (the order in
/// which PostgreSQL locks them, so that claims on several nodes never deadlock).
pub fn bucket_keys(candidates: &[Candidate]) -> Vec<String> {
    let mut keys: Vec<String> = candidates
        .iter()
        .flat_map(|c| c.buckets().map(|(key, _)| key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The interval between two tokens, in microseconds, rounded up so the rate is never
/// exceeded.
fn interval(rate: u16) -> i64 {
    let rate = i64::from(rate.max(1));
    (1_000_000 + rate - 1) / rate
}

/// How far ahead of now a bucket's time may be for a delivery to go: a full bucket less one
/// token.
fn tolerance(rate: u16) -> i64 {
    interval(rate) * (i64::from(rate.max(1)) - 1)
}

/// What one claim decided.
#[derive(Debug, Default, PartialEq)]
pub struct Picked {
    /// The deliveries to claim, in due order.
    pub ids: Vec<i64>,
    /// Deliveries left pending, due again at the given time (microseconds).
    pub deferred: Vec<(i64, i64)>,
}

/// The token buckets of one claim: their times as read (keyed as in the table), changed as
/// deliveries are taken; saved when the claim commits.
#[derive(Debug, Default)]
pub struct Buckets {
    times: HashMap<String, i64>,
    /// Where the next deferred delivery of each bucket would go; only for this claim.
    deferred_from: HashMap<String, i64>,
    changed: Vec<String>,
}

impl Buckets {
    /// A bucket's stored time (`None`: never used, so full).
    pub fn load(&mut self, key: String, time: Option<i64>) {
        self.times.insert(key, time.unwrap_or(i64::MIN));
    }

    /// The buckets that took tokens, with their new times, to save.
    pub fn changed(&self) -> Vec<(String, i64)> {
        self.changed
            .iter()
            .map(|k| (k.clone(), self.times[k]))
            .collect()
    }

    /// Chooses, from candidates in due order, what this claim takes: within `limits` (as
    /// [`ClaimLimits::pick`]) and, for throttled ones, within their buckets' tokens. A
    /// throttled candidate without a token is deferred; one with a token but no room stays
    /// due, and takes no token.
    pub fn pick(
        &mut self,
        candidates: &[Candidate],
        limits: &ClaimLimits,
        taken_before: usize,
        now: Timestamp,
    ) -> Picked {
        let now = now.timestamp_micros();
        let mut picked = Picked::default();
        let mut taken: HashMap<&EndpointId, usize> = HashMap::new();
        for c in candidates {
            if c.is_throttled() && !self.has_token(c, now) {
                let at = self.defer(c, now);
                picked.deferred.push((c.id, at));
                continue;
            }
            if taken_before + picked.ids.len() >= limits.total {
                continue;
            }
            let room = limits
                .room
                .get(&c.endpoint)
                .copied()
                .unwrap_or(limits.per_endpoint);
            let count = taken.entry(&c.endpoint).or_default();
            if *count >= room {
                continue;
            }
            *count += 1;
            self.take(c, now);
            picked.ids.push(c.id);
        }
        picked
    }

    fn time(&self, key: &str, now: i64) -> i64 {
        self.times.get(key).copied().unwrap_or(i64::MIN).max(now)
    }

    fn has_token(&self, c: &Candidate, now: i64) -> bool {
        c.buckets()
            .all(|(key, rate)| self.time(&key, now) <= now + tolerance(rate))
    }

    fn take(&mut self, c: &Candidate, now: i64) {
        for (key, rate) in c.buckets() {
            let next = self.time(&key, now) + interval(rate);
            if !self.changed.contains(&key) {
                self.changed.push(key.clone());
            }
            self.times.insert(key, next);
        }
    }

    /// When a candidate without a token is due again: when each of its buckets would have a
    /// token for it, after those deferred before it in this claim.
    fn defer(&mut self, c: &Candidate, now: i64) -> i64 {
        let mut at = now;
        for (key, rate) in c.buckets() {
            let from = match self.deferred_from.get(&key) {
                Some(from) => *from,
                None => self.time(&key, now),
            };
            at = at.max(from - tolerance(rate));
            self.deferred_from.insert(key, from + interval(rate));
        }
        let quantum = QUANTUM.num_microseconds().unwrap_or(1).max(1);
        let rounded = at.div_euclid(quantum) * quantum + quantum;
        let latest = now + MAX_DEFER.num_microseconds().unwrap_or(i64::MAX / 4);
        rounded.min(latest)
    }
}

#[cfg(test)]
mod tests;
