//! Inputs to store operations: what a caller chooses; the store adds ids and timestamps.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::domain::health::HealthSettings;
use crate::domain::{
    AppId, AppKey, Attempt, Channel, DeliveryOrder, DeliveryStatus, Endpoint, EndpointHeaders,
    EndpointId, EndpointUrl, EventId, EventTypeName, Message, MessageId, Metadata, Payload,
    Priority, RetryPolicy, SignatureScheme, SigningSecret, Subscription, TaskKind, TaskStatus,
    Timestamp, Trigger, Uid,
};

/// A freshness monitor to store.
#[derive(Debug, Clone)]
pub struct NewMonitor {
    pub name: String,
    pub description: String,
    pub app_id: AppId,
    pub source_id: Option<crate::domain::SourceId>,
    pub event_type: Option<crate::domain::EventTypeName>,
    pub expect: crate::domain::Expectation,
}

/// A token to store: its hash, never the token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub kind: crate::domain::TokenKind,
    pub abilities: crate::domain::Abilities,
    pub app_id: Option<AppId>,
    pub session_id: Option<String>,
    pub rate_limit: Option<u32>,
    /// SHA-256 of the token, in hex.
    pub token_hash: String,
    pub hint: String,
    pub expires_at: Option<Timestamp>,
}

/// Requests one node counted for a token since it last said so.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUse {
    pub id: crate::domain::TokenId,
    /// The rate-limit window they fall in (unix seconds of its start).
    pub window_start: i64,
    pub count: u64,
    pub last_used_at: Option<Timestamp>,
}

/// What every node needs to know of a token it holds in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenState {
    pub id: crate::domain::TokenId,
    pub expires_at: Option<Timestamp>,
    /// The window the count is of (unix seconds of its start), and the requests all nodes
    /// have counted in it.
    pub window_start: i64,
    pub window_count: u64,
}

#[derive(Debug, Clone)]
pub struct NewApplication {
    pub uid: Option<Uid>,
    pub name: String,
    pub rate_limit: Option<u16>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub app_id: AppId,
    pub uid: Option<Uid>,
    pub url: EndpointUrl,
    pub description: String,
    pub disabled: bool,
    pub rate_limit: Option<u16>,
    pub subscription: Subscription,
    pub metadata: Metadata,
    pub headers: EndpointHeaders,
    pub secret: SigningSecret,
    pub signature: SignatureScheme,
    pub auto_disable_after_failures: Option<u32>,
    pub auto_disable_after_secs: Option<u64>,
    pub retry_policy: Option<RetryPolicy>,
    pub ordering: DeliveryOrder,
}

/// One row of an outbox: an event waiting to become a message. Operational events
/// (`operational_event`) become messages of the operational application; entity events
/// (`entity_event`) messages of their own application, `app`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The row's id: increasing, and the message's eventId is `hookd-op-<id>` (or
    /// `hookd-ent-<id>`).
    pub id: i64,
    /// The application of an entity event; `None` for operational events.
    pub app: Option<crate::domain::AppId>,
    pub event_type: EventTypeName,
    /// The message payload: for an operational event `{"type": …, "data": …}`.
    pub payload: String,
}

/// An application to create with the message if the path names a uid that does not exist.
#[derive(Debug, Clone)]
pub struct InlineApplication {
    pub name: String,
    pub rate_limit: Option<u16>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub app: AppKey,
    pub create_app: Option<InlineApplication>,
    pub event_type: EventTypeName,
    pub event_id: Option<EventId>,
    pub channels: Option<Vec<Channel>>,
    pub payload: Payload,
    /// How long the payload is kept from the message's creation; `None`: until expunged.
    pub payload_retention: Option<chrono::TimeDelta>,
    /// Attempt no delivery before this time (`deliverAt`). A message scheduled later than
    /// its acceptance is never written claimed, whatever `direct` says.
    pub deliver_at: Option<Timestamp>,
    /// Deliver only to this endpoint (send-example), whatever the subscriptions say.
    pub only_endpoint: Option<EndpointId>,
    /// `priority` on MessageIn (`None`: normal).
    pub priority: Option<Priority>,
    /// The local dispatcher, if it may take the message's deliveries straight away.
    pub direct: Option<Direct>,
    /// The request's idempotency key, to claim with the message and answer for it.
    pub key: Option<KeyedWrite>,
}

/// An idempotency key claimed in the message's own write (`api::idempotency`): a message
/// whose key another request holds or has answered is not written
/// ([`StoreError::KeyTaken`](super::StoreError::KeyTaken)); a written one's response,
/// made by `respond`, is stored for the key and returned in [`Enqueued::response`]; a
/// refused one (an unknown application, a repeated `eventId`) leaves the key free.
///
/// On SQLite the claim, the message and the response are one transaction, in the writer's
/// batch, so a message sent with a key (as the Svix SDKs send every one) costs one trip to
/// the writer rather than three. PostgreSQL's message batches cannot hold a claim, so there
/// it is claim, write, store, one after the other ([`super::keyed_in_steps`]).
#[derive(Clone)]
pub struct KeyedWrite {
    /// The key as stored: scoped to the request path and hashed.
    pub key: String,
    /// A claim started before this, whose request never finished, is taken over.
    pub expired_before: Timestamp,
    pub respond: Arc<dyn Fn(&Message) -> StoredResponse + Send + Sync>,
}

impl fmt::Debug for KeyedWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedWrite")
            .field("key", &self.key)
            .field("expired_before", &self.expired_before)
            .finish_non_exhaustive()
    }
}

/// A dispatcher ready to take a new message's deliveries as they are written, so that they
/// need no claim: each delivery it reserves is written already claimed (`sending`, under
/// [`DirectClaims::lease`]) and returned in [`Enqueued::claimed`]; the others are written
/// pending, for a claim to find.
pub trait DirectClaims: Send + Sync {
    /// The lease the reserved deliveries are written under.
    fn lease(&self) -> Timestamp;
    /// Called inside the transaction, once per delivery about to be written. `true`: write it
    /// claimed. Asking again for the same endpoint (a batch written again after a failure)
    /// answers the same and reserves nothing more.
    fn reserve(&self, endpoint: &EndpointId) -> bool;
}

/// [`DirectClaims`] as a field of [`NewMessage`].
#[derive(Clone)]
pub struct Direct(pub Arc<dyn DirectClaims>);

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Direct")
            .field("lease", &self.0.lease())
            .finish_non_exhaustive()
    }
}

/// An accepted message.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub message: Message,
    /// Its deliveries written claimed for [`NewMessage::direct`], to send now.
    pub claimed: Vec<ClaimedDelivery>,
    /// How many of its deliveries were written pending, for a claim to find.
    pub pending: usize,
    /// The response stored for [`NewMessage::key`], if it had one.
    pub response: Option<StoredResponse>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Option<BTreeSet<EventTypeName>>,
    pub channel: Option<Channel>,
    /// Only messages created strictly before this time.
    pub before: Option<Timestamp>,
    /// Only messages created strictly after this time.
    pub after: Option<Timestamp>,
    /// Only messages sent with a `deliverAt` strictly after this time: those still waiting
    /// for it, when this is now.
    pub deliver_after: Option<Timestamp>,
}

/// A response kept for replay to retries carrying the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is now held by this request; run it, then complete or release the key.
    Claimed,
    /// An earlier request with this key finished; answer with its response.
    Completed(StoredResponse),
    /// An earlier request with this key is still running.
    InProgress,
}

/// A node's heartbeat (see [`super::NodeStore`]).
#[derive(Debug, Clone)]
pub struct NodeBeat {
    /// Where the node serves its API, for people reading the node table.
    pub address: String,
    /// The hookd version the node runs.
    pub version: String,
    /// When the node started.
    pub started: Timestamp,
    /// This node's time: claims given back are due at it.
    pub now: Timestamp,
    /// A node whose heartbeat is older than this (by the database's clock) is dead.
    pub dead_after: std::time::Duration,
    /// Whether to look for dead nodes: only once this node's own heartbeats have gone
    /// through without a gap for `dead_after`, so that every live node had the time to
    /// beat too (after the database was unreachable for everyone, say, the first node back
    /// would otherwise take all the others for dead).
    pub sweep: bool,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Nodes with a fresh heartbeat, this one included.
    pub live: u64,
    /// The nodes this heartbeat found dead (their rows are gone).
    pub dead: Vec<String>,
    /// Claims of the dead nodes given back.
    pub released: u64,
    /// This node had no row: another node took it for dead (and gave back its claims).
    pub rejoined: bool,
}

/// How much one claim may take.
#[derive(Debug, Clone)]
pub struct ClaimLimits {
    /// Deliveries in all.
    pub total: usize,
    /// Deliveries to one endpoint, for endpoints not in `room`.
    pub per_endpoint: usize,
    /// Endpoints with attempts in flight on this node, and how many more each may take now
    /// (0: none; such endpoints are not even scanned).
    pub room: HashMap<EndpointId, usize>,
}

impl ClaimLimits {
    /// The endpoints that may take nothing now.
    pub fn full(&self) -> Vec<EndpointId> {
        self.room
            .iter()
            .filter(|(_, room)| **room == 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a claim should look past the head of the due queue: the head was full (`head`
    /// rows read of `total`) and yet did not fill the claim (`picked`), so endpoints in it
    /// ran out of room (or tokens) and others may be due behind them. A head that was not
    /// full held all that was due and not being claimed elsewhere.
    pub fn crowded_out(&self, picked: usize, head: usize) -> bool {
        picked < self.total && head == self.total
    }

    /// Chooses, from candidates in due order, what this claim takes: at most `total`, and per
    /// endpoint no more than its room.
    pub fn pick<'c, T>(&self, candidates: &'c [(T, EndpointId)]) -> Vec<&'c T> {
        let mut taken: HashMap<&EndpointId, usize> = HashMap::new();
        let mut picked = Vec::new();
        for (item, endpoint) in candidates {
            if picked.len() >= self.total {
                break;
            }
            let room = self
                .room
                .get(endpoint)
                .copied()
                .unwrap_or(self.per_endpoint);
            let count = taken.entry(endpoint).or_default();
            if *count < room {
                *count += 1;
                picked.push(item);
            }
        }
        picked
    }
}

/// A delivery claimed by a dispatcher: leased until `lease`, with what it needs to send.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    /// The lease's expiry; also the claim's token: a record is applied only while the
    /// delivery still carries it, so a claim that outlived its lease cannot undo a newer one.
    pub lease: Timestamp,
    /// Attempts made before this one since the last (re)start of the schedule.
    pub attempts: u32,
    pub trigger: Trigger,
    pub message: Message,
    pub endpoint: Endpoint,
    /// Written claimed for a new message accepted on this node (a direct claim), rather than
    /// claimed from the queue: it counts against the node's room kept for direct claims.
    pub direct: bool,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(Timestamp),
    /// Retries exhausted.
    Failed,
    /// The endpoint answered 410 Gone: fail this delivery and disable the endpoint, which
    /// parks its other pending deliveries.
    DisableEndpoint,
}

impl NextStep {
    /// The delivery's status after the attempt, and when it is due again (only a retry is).
    pub fn delivery_state(self) -> (DeliveryStatus, Option<Timestamp>) {
        match self {
            Self::Delivered => (DeliveryStatus::Success, None),
            Self::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
            Self::Failed | Self::DisableEndpoint => (DeliveryStatus::Fail, None),
        }
    }
}

/// The outcome of one attempt, as the dispatcher hands it to the store, which updates the
/// endpoint's health counters in the same write (see `domain::health`).
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub lease: Timestamp,
    pub attempt: Attempt,
    pub next: NextStep,
    /// The message's `eventId`, for the operational events the attempt may cause.
    pub msg_event_id: Option<EventId>,
    /// The health options the attempt is judged under (the endpoint's overrides of the
    /// auto-disable ones are read with its counters).
    pub health: Arc<HealthSettings>,
    /// The endpoint was FIFO when the delivery was claimed: an outcome that ends the
    /// delivery promotes the next in its line (`store::fifo`).
    pub fifo: bool,
}

impl AttemptRecord {
    /// Whether the record makes way for the next delivery of a FIFO line.
    pub fn frees_line(&self) -> bool {
        self.fifo && !matches!(self.next, NextStep::RetryAt(_))
    }
}

#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub msg_id: Option<MessageId>,
    pub endpoint_id: Option<EndpointId>,
    pub status: Option<DeliveryStatus>,
    /// 200 for 2xx, 400 for 4xx, ..., 0 for no response.
    pub status_code_class: Option<u16>,
    pub before: Option<Timestamp>,
    pub after: Option<Timestamp>,
}

/// A delivery's state, as shown next to its message or endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryState {
    pub status: DeliveryStatus,
    pub next_attempt: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_respects_each_endpoints_room_and_the_total() {
        let (a, b, c) = (
            EndpointId::generate(),
            EndpointId::generate(),
            EndpointId::generate(),
        );
        let candidates: Vec<(u32, EndpointId)> = (0..10)
            .map(|i| (i, a.clone()))
            .chain((10..14).map(|i| (i, b.clone())))
            .chain((14..20).map(|i| (i, c.clone())))
            .collect();
        let room = HashMap::from([(b.clone(), 1)]);
        let limits = ClaimLimits {
            total: 100,
            per_endpoint: 3,
            room: room.clone(),
        };
        assert_eq!(limits.pick(&candidates), [&0, &1, &2, &10, &14, &15, &16]);
        let limits = ClaimLimits {
            total: 4,
            per_endpoint: 3,
            room: room.clone(),
        };
        assert_eq!(limits.pick(&candidates), [&0, &1, &2, &10]);
        let none = HashMap::from([(a.clone(), 0)]);
        let limits = ClaimLimits {
            total: 100,
            per_endpoint: 3,
            room: none,
        };
        assert_eq!(limits.full(), [a]);
    }
}

/// What one step of purging an application's payloads did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeStep {
    /// Payloads removed (messages whose payload was already gone are not counted, so a step
    /// run again after a crash counts nothing twice).
    pub purged: u64,
    /// The greatest id the step looked at: the next step starts after it. `None`: there was
    /// nothing after `after`, the purge is done.
    pub last: Option<MessageId>,
}

/// Which background tasks a list shows.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub kind: Option<TaskKind>,
}

/// Which of an endpoint's deliveries a bulk replay sends again: those of messages created in
/// `[since, until)` that match every filter.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub since: Timestamp,
    /// `None`: no end.
    pub until: Option<Timestamp>,
    /// Deliveries in one of these states; an empty list matches nothing.
    pub statuses: Vec<DeliveryStatus>,
    /// Deliveries whose latest attempt's response status is of this class (0: no response,
    /// 100, …, 500); a delivery never attempted has no class.
    pub status_code_class: Option<u16>,
    /// The messages' event types and channel (`before`, `after` and `deliver_after` unused).
    pub messages: MessageFilter,
}

/// Which of an application's failed deliveries (dead letters) a list shows or a requeue
/// takes: every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct FailedFilter {
    pub endpoint: Option<EndpointId>,
    pub event_types: Option<BTreeSet<EventTypeName>>,
    /// Deliveries created (with their message, or by a resend) at or after this time…
    pub since: Option<Timestamp>,
    /// … and strictly before this one.
    pub until: Option<Timestamp>,
}

/// One step of a replay or requeue task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStep {
    /// Deliveries queued by the step (a step run again after a crash queues again only what
    /// it had not yet; see each operation).
    pub sent: u64,
    /// Where the next step starts (the greatest key the step looked at). `None`: the step
    /// found fewer than it was allowed to take, the task is done.
    pub last: Option<String>,
}

/// A delivery that failed for good: retries exhausted, or the endpoint answered 410.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The delivery's number (`dlv_<n>` in the API).
    pub id: i64,
    pub msg_id: MessageId,
    pub event_type: EventTypeName,
    pub event_id: Option<EventId>,
    pub endpoint_id: EndpointId,
    /// Attempts made since it was last queued.
    pub attempts: i64,
    pub created_at: Timestamp,
    /// When it failed for good (a failed delivery is not changed again until requeued).
    pub failed_at: Timestamp,
}

/// A snapshot of one entity to apply ([`super::EntityStore::apply_snapshot`]).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub app_id: crate::domain::AppId,
    pub entity_type: crate::domain::EntityTypeName,
    pub key: crate::domain::EntityKey,
    pub state: serde_json::Map<String, serde_json::Value>,
    pub observed_at: crate::domain::Timestamp,
}

/// What a snapshot did: the key's current version (the new one when `changed`) and, in it,
/// the events that fired.
#[derive(Debug, Clone)]
pub struct Applied {
    pub current: crate::domain::entity::EntityVersion,
    pub changed: bool,
}
