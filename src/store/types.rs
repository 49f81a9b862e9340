//! Inputs to store operations: what a caller chooses; the store adds ids and timestamps.

use std::collections::BTreeSet;

use crate::domain::{
    AppId, AppKey, Channel, EndpointHeaders, EndpointUrl, EventId, EventTypeName, Metadata,
    Payload, SigningSecret, Subscription, Timestamp, Uid,
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
