//! The webhook domain: ids, names, applications, endpoints, event types, messages, the
//! secrets endpoints are signed with, background tasks and operational events.
//!
//! Everything here is pure: no I/O, no clock reads except [`time::now`]. Input from the
//! outside world is parsed into these types once, at the edge (`EndpointUrl::parse`,
//! `EventTypeName::parse`, `SigningSecret::parse`, ...), so code deeper in the crate never
//! handles an unchecked string where one of these types exists.

mod application;
mod attempt;
mod endpoint;
pub mod entity;
mod event_type;
pub mod events;
mod headers;
pub mod health;
mod ids;
pub mod ingest;
mod message;
mod monitor;
mod names;
pub mod payload_schema;
pub mod retry;
pub mod sealed;
mod secret;
mod signature;
mod task;
pub mod time;
mod token;

pub use application::{Application, Metadata};
pub use attempt::{Attempt, AttemptError, DeliveryCounts, DeliveryStatus, ErrorClass, Trigger};
pub use endpoint::{DeliveryOrder, Endpoint, EndpointUrl, PreviousSecret, Subscription, UrlError};
pub use event_type::EventType;
pub use headers::{EndpointHeaders, HeaderError};
pub use ids::{
    AppId, AttemptId, EndpointId, IngestLogId, MessageId, MonitorId, SourceId, TaskId, TokenId,
};
pub use message::{Message, Payload, PayloadError};
pub use monitor::{Deadline, Expectation, Monitor, MonitorState};
pub use names::{
    Channel, EntityKey, EntityTypeName, EventId, EventTypeName, FeatureFlag, NameError, Uid,
};
pub use retry::{Priority, RetryPolicy, RetryPolicySpec};
pub use secret::{PublicKey, SecretError, SigningSecret};
pub use signature::{MacEncoding, SignatureError, SignatureScheme, SignatureSpec};
pub use task::{BackgroundTask, TaskKind, TaskStatus};
pub use time::Timestamp;
pub use token::{Abilities, Ability, ApiToken, TokenKind};

/// How a path segment names an application or an endpoint: by its id, or by the `uid` its
/// owner chose. A string shaped like an id of the right kind is an id; anything else is a uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKey<I> {
    Id(I),
    Uid(Uid),
}

impl<I> ResourceKey<I> {
    /// The key as it appears in a path, for error messages.
    pub fn as_str(&self) -> &str
    where
        I: AsRef<str>,
    {
        match self {
            ResourceKey::Id(id) => id.as_ref(),
            ResourceKey::Uid(uid) => uid.as_str(),
        }
    }
}

pub type AppKey = ResourceKey<AppId>;
pub type EndpointKey = ResourceKey<EndpointId>;

impl AppKey {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        match AppId::parse(s) {
            Some(id) => Ok(ResourceKey::Id(id)),
            None => Uid::parse(s).map(ResourceKey::Uid),
        }
    }
}

impl EndpointKey {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        match EndpointId::parse(s) {
            Some(id) => Ok(ResourceKey::Id(id)),
            None => Uid::parse(s).map(ResourceKey::Uid),
        }
    }
}

/// How a path segment names a message: by id, or by the `eventId` given at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKey {
    Id(MessageId),
    EventId(EventId),
}

impl MessageKey {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        match MessageId::parse(s) {
            Some(id) => Ok(MessageKey::Id(id)),
            None => EventId::parse(s).map(MessageKey::EventId),
        }
    }
}
