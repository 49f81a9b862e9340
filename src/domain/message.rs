use serde_json::value::RawValue;
use thiserror::Error;

use super::{AppId, Channel, EventId, EventTypeName, MessageId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("must be a JSON object")]
    NotAnObject,
}

/// A message payload: the exact JSON text the producer sent, known to be an object.
///
/// The text is kept byte for byte (never re-serialised), because those are the bytes that
/// will be delivered and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    pub fn parse(raw: &RawValue) -> Result<Self, PayloadError> {
        // `RawValue` is already valid JSON without surrounding whitespace.
        if raw.get().starts_with('{') {
            Ok(Self(raw.get().to_owned()))
        } else {
            Err(PayloadError::NotAnObject)
        }
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An event sent by the producer to one application.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: EventTypeName,
    pub event_id: Option<EventId>,
    pub channels: Option<Vec<Channel>>,
    /// `None` once the content was expunged.
    pub payload: Option<Payload>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn only_objects_are_payloads() {
        assert_eq!(
            Payload::parse(&raw(r#" {"a": 1} "#)).unwrap().as_str(),
            r#"{"a": 1}"#
        );
        for other in ["[1]", "1", "\"x\"", "null", "true"] {
            assert_eq!(Payload::parse(&raw(other)), Err(PayloadError::NotAnObject));
        }
    }
}
