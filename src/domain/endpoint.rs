use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

use super::{
    AppId, Channel, EndpointHeaders, EndpointId, EventTypeName, Metadata, RetryPolicy,
    SignatureScheme, SigningSecret, Timestamp, Uid,
};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("is not a valid URL: {0}")]
    Invalid(#[from] url::ParseError),
    #[error("must use http or https (got {0:?})")]
    Scheme(String),
    #[error("must name a host")]
    NoHost,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
}

/// Where an endpoint's deliveries are POSTed: an absolute http(s) URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    pub const MAX_LEN: usize = 65_536;

    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > Self::MAX_LEN {
            return Err(UrlError::TooLong { max: Self::MAX_LEN });
        }
        let url = Url::parse(s)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host().is_none() {
            return Err(UrlError::NoHost);
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }
}

/// A secret replaced by a rotation, still used to sign until `expires_at` so receivers can
/// switch keys without dropping deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousSecret {
    pub secret: SigningSecret,
    pub expires_at: Timestamp,
}

/// A URL an application's messages are delivered to, with its filters and secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: EndpointId,
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
    pub previous_secrets: Vec<PreviousSecret>,
    /// The format deliveries are signed in.
    pub signature: SignatureScheme,
    /// Overrides of `auto_disable_after_failures` and `auto_disable_after_secs` (0 turns the
    /// rule off for this endpoint); `None`: the global option.
    pub auto_disable_after_failures: Option<u32>,
    pub auto_disable_after_secs: Option<u64>,
    /// The endpoint's retry policy, over every other (`None`: the event type's, the
    /// priority's or the default applies).
    pub retry_policy: Option<Arc<RetryPolicy>>,
    /// Whether its deliveries go out concurrently or one at a time in order.
    pub ordering: DeliveryOrder,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The order an endpoint's deliveries go out in (hookd's `ordering` field).
///
/// `fifo`: one at a time, in the order they were queued (message order), across retries,
/// restarts and nodes: a failing head holds the deliveries behind it until it succeeds or
/// fails for good (retries exhausted), then the next goes. A scheduled message (`deliverAt`)
/// joins the line when it comes due, not when it was sent; a resent, recovered or replayed
/// delivery joins it at its original place (it goes next, after the head in flight).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum DeliveryOrder {
    /// Several at once (up to the server's per-endpoint limit), retries independent.
    #[default]
    Concurrent,
    /// One at a time, first in first out.
    Fifo,
}

/// Read from a string so that any other JSON value is a clear 422 naming the field (serde's
/// derived enums report a number as a syntax error).
impl TryFrom<String> for DeliveryOrder {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "concurrent" => Ok(Self::Concurrent),
            "fifo" => Ok(Self::Fifo),
            other => Err(format!(
                "unknown ordering {other:?}: expected \"concurrent\" or \"fifo\""
            )),
        }
    }
}

impl DeliveryOrder {
    /// As stored: 0 concurrent, 1 fifo.
    pub fn code(self) -> i64 {
        match self {
            Self::Concurrent => 0,
            Self::Fifo => 1,
        }
    }

    /// From [`Self::code`]; `None` for any other number.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Concurrent),
            1 => Some(Self::Fifo),
            _ => None,
        }
    }

    pub fn is_fifo(self) -> bool {
        self == Self::Fifo
    }
}

impl Endpoint {
    /// Every secret a delivery made at `now` is signed with: the current one, then those
    /// still in their rotation grace period.
    pub fn signing_secrets(&self, now: Timestamp) -> impl Iterator<Item = &SigningSecret> {
        std::iter::once(&self.secret).chain(
            self.previous_secrets
                .iter()
                .filter(move |p| p.expires_at > now)
                .map(|p| &p.secret),
        )
    }
}

/// Which messages an endpoint receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// `None`: every event type.
    pub event_types: Option<BTreeSet<EventTypeName>>,
    /// `None`: messages of every channel, and those without one. `Some`: only messages that
    /// carry at least one of these channels.
    pub channels: Option<BTreeSet<Channel>>,
}

impl Subscription {
    pub fn accepts(&self, event_type: &EventTypeName, channels: Option<&[Channel]>) -> bool {
        let type_ok = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(event_type));
        let channel_ok = match &self.channels {
            None => true,
            Some(wanted) => channels.is_some_and(|cs| cs.iter().any(|c| wanted.contains(c))),
        };
        type_ok && channel_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> EventTypeName {
        EventTypeName::parse(s).unwrap()
    }
    fn chan(s: &str) -> Channel {
        Channel::parse(s).unwrap()
    }

    #[test]
    fn url_must_be_absolute_http_with_host() {
        assert!(EndpointUrl::parse("https://example.com/hook").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(matches!(
            EndpointUrl::parse("ftp://x.com"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("/relative"),
            Err(UrlError::Invalid(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("not a url"),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn subscription_filters_on_type_and_channel() {
        let all = Subscription::default();
        assert!(all.accepts(&name("a"), None));
        assert!(all.accepts(&name("a"), Some(&[chan("x")])));

        let typed = Subscription {
            event_types: Some([name("a")].into()),
            channels: None,
        };
        assert!(typed.accepts(&name("a"), None));
        assert!(!typed.accepts(&name("b"), None));

        let channelled = Subscription {
            event_types: None,
            channels: Some([chan("x")].into()),
        };
        assert!(channelled.accepts(&name("a"), Some(&[chan("y"), chan("x")])));
        assert!(!channelled.accepts(&name("a"), Some(&[chan("y")])));
        assert!(!channelled.accepts(&name("a"), None));
    }
}
