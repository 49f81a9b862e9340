//! Custom headers an endpoint's owner wants on every delivery.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("{0:?} is not a valid HTTP header name")]
    InvalidName(String),
    #[error("the value of {0:?} is not a valid HTTP header value")]
    InvalidValue(String),
    #[error("{0:?} is set by hookd itself and cannot be overridden")]
    Reserved(String),
}

/// Headers hookd sets itself, or that belong to the connection rather than the request.
const RESERVED: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
    "svix-id",
    "svix-signature",
    "svix-timestamp",
];

/// Headers whose values are credentials: stored and sent, but never shown by the API.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// Validated custom headers, keyed by name as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EndpointHeaders(BTreeMap<String, String>);

impl EndpointHeaders {
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, HeaderError> {
        for (name, value) in &raw {
            check(name, value)?;
        }
        Ok(Self(raw))
    }

    /// Applies a patch: `Some(value)` sets a header, `None` removes it. Names compare
    /// case-insensitively, as HTTP header names do.
    pub fn patch(&mut self, changes: BTreeMap<String, Option<String>>) -> Result<(), HeaderError> {
        for (name, value) in changes {
            self.0.retain(|k, _| !k.eq_ignore_ascii_case(&name));
            if let Some(value) = value {
                check(&name, &value)?;
                self.0.insert(name, value);
            }
        }
        Ok(())
    }

    /// Whether a custom header uses `name` (names compare case-insensitively).
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.keys().any(|k| k.eq_ignore_ascii_case(name.as_str()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Whether the API withholds the value of the header `name` (credentials).
    pub fn is_sensitive(name: &str) -> bool {
        SENSITIVE.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// The headers whose values the API may show, and the names of those it withholds.
    pub fn split_sensitive(&self) -> (BTreeMap<String, String>, Vec<String>) {
        let mut shown = BTreeMap::new();
        let mut sensitive = Vec::new();
        for (name, value) in &self.0 {
            if SENSITIVE.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                sensitive.push(name.clone());
            } else {
                shown.insert(name.clone(), value.clone());
            }
        }
        (shown, sensitive)
    }
}

/// Whether a non-standard signature scheme may not put its signature in this header: the
/// connection's headers, `content-type`, `user-agent` and the message id. The standard
/// scheme's signature and timestamp names are free under those schemes, which do not send
/// them.
pub(crate) fn is_reserved(name: &HeaderName) -> bool {
    const FREE_UNDER_OTHER_SCHEMES: &[&str] = &[
        "webhook-signature",
        "webhook-timestamp",
        "svix-signature",
        "svix-timestamp",
    ];
    RESERVED.contains(&name.as_str()) && !FREE_UNDER_OTHER_SCHEMES.contains(&name.as_str())
}

fn check(name: &str, value: &str) -> Result<(), HeaderError> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| HeaderError::InvalidName(name.into()))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(HeaderError::Reserved(name.into()));
    }
    HeaderValue::from_str(value).map_err(|_| HeaderError::InvalidValue(name.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rejects_reserved_and_malformed_headers() {
        assert_eq!(
            EndpointHeaders::parse(map(&[("Webhook-Signature", "x")])),
            Err(HeaderError::Reserved("Webhook-Signature".into()))
        );
        assert!(matches!(
            EndpointHeaders::parse(map(&[("bad name", "x")])),
            Err(HeaderError::InvalidName(_))
        ));
        assert!(matches!(
            EndpointHeaders::parse(map(&[("X-Ok", "line\nbreak")])),
            Err(HeaderError::InvalidValue(_))
        ));
    }

    #[test]
    fn patch_sets_and_removes_case_insensitively() {
        let mut h = EndpointHeaders::parse(map(&[("X-A", "1"), ("X-B", "2")])).unwrap();
        h.patch(
            [
                ("x-a".to_string(), None),
                ("X-C".to_string(), Some("3".to_string())),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap();
        assert_eq!(
            h,
            EndpointHeaders::parse(map(&[("X-B", "2"), ("X-C", "3")])).unwrap()
        );
    }

    #[test]
    fn credentials_are_withheld() {
        let h =
            EndpointHeaders::parse(map(&[("Authorization", "Bearer x"), ("X-A", "1")])).unwrap();
        let (shown, sensitive) = h.split_sensitive();
        assert_eq!(shown, map(&[("X-A", "1")]));
        assert_eq!(sensitive, vec!["Authorization".to_string()]);
    }
}
