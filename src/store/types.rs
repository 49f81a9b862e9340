//! Inputs to store operations: what a caller chooses; the store adds ids and timestamps.

use std::collections::BTreeSet;

use crate::domain::{
    AppId, AppKey, Attempt, Channel, DeliveryStatus, Endpoint, EndpointHeaders, EndpointId,
    EndpointUrl, EventId, EventTypeName, Message, MessageId, Metadata, Payload, SigningSecret,
    Subscription, Timestamp, Trigger, Uid,
};

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
    /// Deliver only to this endpoint (send-example), whatever the subscriptions say.
    pub only_endpoint: Option<EndpointId>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Option<BTreeSet<EventTypeName>>,
    pub channel: Option<Channel>,
    /// Only messages created strictly before this time.
    pub before: Option<Timestamp>,
    /// Only messages created strictly after this time.
    pub after: Option<Timestamp>,
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

/// The outcome of one attempt, as the dispatcher hands it to the store.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub lease: Timestamp,
    pub attempt: Attempt,
    pub next: NextStep,
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
