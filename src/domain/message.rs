use serde_json::value::RawValue;
use thiserror::Error;

use super::{AppId, Channel, EventId, EventTypeName, MessageId, Priority, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error(
        "nests arrays and objects deeper than {0} levels (the payload object is level 1); \
         many receivers cannot parse that"
    )]
    TooDeep(usize),
}

/// A message payload: the exact JSON text the producer sent, known to be an object.
///
/// The text is kept byte for byte (never re-serialised), because those are the bytes that
/// will be delivered and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(String);

impl Payload {
    /// A JSON object whose arrays and objects nest at most `max_depth` deep (the object
    /// itself is depth 1). serde_json limits the depth of what it parses into values, but
    /// not of a `RawValue`, which it only skips over.
    pub fn parse(raw: &RawValue, max_depth: usize) -> Result<Self, PayloadError> {
        // `RawValue` is already valid JSON without surrounding whitespace.
        let text = raw.get();
        if !text.starts_with('{') {
            return Err(PayloadError::NotAnObject);
        }
        if depth_exceeds(text.as_bytes(), max_depth) {
            return Err(PayloadError::TooDeep(max_depth));
        }
        Ok(Self(text.to_owned()))
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

/// Whether valid JSON `text` nests arrays and objects deeper than `max_depth`: one pass
/// over the bytes, counting brackets outside strings.
fn depth_exceeds(text: &[u8], max_depth: usize) -> bool {
    // Each level takes an opening bracket: shorter text cannot be too deep.
    if text.len() <= max_depth {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return true;
                }
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    false
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
    /// The time the producer asked for its deliveries to go out (`deliverAt`), if any: none
    /// is attempted before it.
    pub deliver_at: Option<Timestamp>,
    /// `priority` on MessageIn: picks the retry policy when neither the endpoint nor the
    /// event type has one. `None`: normal.
    pub priority: Option<Priority>,
}

impl Message {
    /// When its deliveries are first due: at `deliverAt`, or at once (a `deliverAt` already
    /// past when it was accepted counts as at once).
    pub fn first_due(&self) -> Timestamp {
        self.deliver_at
            .map_or(self.created_at, |at| at.max(self.created_at))
    }

    /// Whether its deliveries wait for a `deliverAt` later than its acceptance.
    pub fn is_scheduled(&self) -> bool {
        self.deliver_at.is_some_and(|at| at > self.created_at)
    }
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
            Payload::parse(&raw(r#" {"a": 1} "#), 64).unwrap().as_str(),
            r#"{"a": 1}"#
        );
        for other in ["[1]", "1", "\"x\"", "null", "true"] {
            assert_eq!(
                Payload::parse(&raw(other), 64),
                Err(PayloadError::NotAnObject)
            );
        }
    }

    fn nested(depth: usize) -> String {
        // An object, then arrays: `{"a": [[…]]}` is `depth` levels deep.
        format!(
            "{{\"a\": {}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    }

    #[test]
    fn payloads_nest_at_most_the_limit() {
        assert!(Payload::parse(&raw(&nested(64)), 64).is_ok());
        assert_eq!(
            Payload::parse(&raw(&nested(65)), 64),
            Err(PayloadError::TooDeep(64))
        );
        assert!(Payload::parse(&raw(r#"{"a": {"b": 1}}"#), 2).is_ok());
        assert!(Payload::parse(&raw(r#"{"a": {"b": {}}}"#), 2).is_err());
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let text = r#"{"a": "[[[[{{{{", "b\"[[": "\\", "c": ["]]]]"]}"#;
        assert!(Payload::parse(&raw(text), 2).is_ok());
    }
}
