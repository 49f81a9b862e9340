use super::{EventTypeName, FeatureFlag, RetryPolicy, Timestamp};

/// A kind of message, with its documentation and JSON schemas. Event types are shared by
/// all applications; a message may name an event type that was never registered.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: EventTypeName,
    pub description: String,
    /// Archived event types are hidden from lists unless asked for; DELETE archives.
    pub archived: bool,
    pub deprecated: bool,
    /// Only users with one of these flags may see the event type (not enforced by hookd,
    /// which has no per-user views; kept for API compatibility).
    pub feature_flags: Option<Vec<FeatureFlag>>,
    /// A label to group event types in documentation.
    pub group_name: Option<String>,
    /// JSON object of schemas by version (`{"1": {...json schema...}}`), stored as given.
    pub schemas: Option<serde_json::Map<String, serde_json::Value>>,
    /// Check messages of this type against its latest schema at ingest (hookd's
    /// `validatePayloads`; the server's `validate_payloads` does it for every type).
    pub validate_payloads: bool,
    /// hookd: the retry policy of messages of this type, unless their endpoint has one.
    pub retry_policy: Option<RetryPolicy>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
