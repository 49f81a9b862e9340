//! How an endpoint's deliveries are signed: the format its receiver already verifies.
//!
//! `standard` is Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature`. The others exist for receivers written before hookd:
//! - `stripe`: one header, `t=<unix>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256 of
//!   `"{t}.{body}"`, one `v1` per secret still signing during a rotation;
//! - `hmac-sha256`: one header, `<prefix><hex or base64 HMAC-SHA256 of the body>` (GitHub's
//!   `X-Hub-Signature-256`, Laravel-style `X-Webhook-Signature: sha256=…`); with a
//!   `timestampHeader`, hookd also sends the unix time in that header and signs
//!   `"{t}.{body}"` instead, so that a receiver can refuse replays (a timestamp the signature
//!   does not cover would prove nothing).
//!
//! Every scheme also sends the message id (`webhook-id`) so receivers can de-duplicate.
//! The computations are in [`crate::signing`]; this module holds the validated settings.

use http::HeaderName;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::headers;

/// How the HMAC of the `hmac-sha256` scheme is written into its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacEncoding {
    /// Lower-case hexadecimal (what `hash_hmac` and GitHub produce).
    Hex,
    /// Standard base64 with padding (Shopify's form).
    Base64,
}

impl MacEncoding {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

/// An endpoint's signature scheme, validated. The default is `standard`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SignatureScheme {
    #[default]
    Standard,
    Stripe {
        header: HeaderName,
    },
    HmacSha256 {
        header: HeaderName,
        prefix: String,
        encoding: MacEncoding,
        timestamp_header: Option<HeaderName>,
    },
}

/// The scheme as the API and the store write it: `{"scheme": "stripe", "header": …}`.
/// [`SignatureScheme::spec`] fills in every default, so what is read back says exactly what
/// is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureSpec {
    /// `standard`, `stripe` or `hmac-sha256`.
    #[schema(pattern = "^(standard|stripe|hmac-sha256)$")]
    pub scheme: String,
    /// `stripe` and `hmac-sha256`: the header that carries the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length = 256)]
    pub header: Option<String>,
    /// `hmac-sha256`: written before the MAC (default `sha256=`; may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[ -~]*$", max_length = 64)]
    pub prefix: Option<String>,
    /// `hmac-sha256`: `hex` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(hex|base64)$")]
    pub encoding: Option<String>,
    /// `hmac-sha256`: a header for the unix time; when set, `"{t}.{body}"` is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length = 256)]
    pub timestamp_header: Option<String>,
}

/// A setting that cannot be used, with the field (under `signature`) it came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SignatureError {
    pub field: &'static str,
    pub message: String,
}

fn error(field: &'static str, message: impl Into<String>) -> SignatureError {
    SignatureError {
        field,
        message: message.into(),
    }
}

/// The header of the `stripe` scheme when none is given.
pub const STRIPE_HEADER: &str = "webhook-signature";
/// The header and prefix of the `hmac-sha256` scheme when none are given.
pub const HMAC_HEADER: &str = "x-webhook-signature";
pub const HMAC_PREFIX: &str = "sha256=";
const MAX_PREFIX: usize = 64;
const MAX_HEADER_NAME: usize = 256;

impl SignatureScheme {
    /// Checks a spec. Each setting must belong to the scheme named (a `prefix` on `stripe`
    /// is refused, not ignored); header names must be valid, not set by hookd or the
    /// connection, and different from each other.
    pub fn parse(spec: SignatureSpec) -> Result<Self, SignatureError> {
        let scheme = match spec.scheme.as_str() {
            "standard" => {
                for (field, present) in [
                    ("header", spec.header.is_some()),
                    ("prefix", spec.prefix.is_some()),
                    ("encoding", spec.encoding.is_some()),
                    ("timestampHeader", spec.timestamp_header.is_some()),
                ] {
                    if present {
                        return Err(error(
                            field,
                            "does not apply to the standard scheme, whose headers are fixed",
                        ));
                    }
                }
                Self::Standard
            }
            "stripe" => {
                for (field, present) in [
                    ("prefix", spec.prefix.is_some()),
                    ("encoding", spec.encoding.is_some()),
                    ("timestampHeader", spec.timestamp_header.is_some()),
                ] {
                    if present {
                        return Err(error(field, "does not apply to the stripe scheme"));
                    }
                }
                Self::Stripe {
                    header: header_name("header", spec.header.as_deref(), STRIPE_HEADER)?,
                }
            }
            "hmac-sha256" => {
                let header = header_name("header", spec.header.as_deref(), HMAC_HEADER)?;
                let timestamp_header = spec
                    .timestamp_header
                    .as_deref()
                    .map(|name| header_name("timestampHeader", Some(name), ""))
                    .transpose()?;
                if timestamp_header.as_ref() == Some(&header) {
                    return Err(error(
                        "timestampHeader",
                        "must differ from the signature header",
                    ));
                }
                let prefix = spec.prefix.unwrap_or_else(|| HMAC_PREFIX.to_owned());
                if prefix.len() > MAX_PREFIX
                    || !prefix.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                {
                    return Err(error(
                        "prefix",
                        format!("must be at most {MAX_PREFIX} printable ASCII characters"),
                    ));
                }
                let encoding = match spec.encoding.as_deref() {
                    None | Some("hex") => MacEncoding::Hex,
                    Some("base64") => MacEncoding::Base64,
                    Some(other) => {
                        return Err(error(
                            "encoding",
                            format!("must be \"hex\" or \"base64\" (got {other:?})"),
                        ));
                    }
                };
                Self::HmacSha256 {
                    header,
                    prefix,
                    encoding,
                    timestamp_header,
                }
            }
            other => {
                return Err(error(
                    "scheme",
                    format!("must be \"standard\", \"stripe\" or \"hmac-sha256\" (got {other:?})"),
                ));
            }
        };
        Ok(scheme)
    }

    /// The settings with every default written out.
    pub fn spec(&self) -> SignatureSpec {
        match self {
            Self::Standard => SignatureSpec {
                scheme: "standard".into(),
                ..SignatureSpec::default()
            },
            Self::Stripe { header } => SignatureSpec {
                scheme: "stripe".into(),
                header: Some(header.as_str().to_owned()),
                ..SignatureSpec::default()
            },
            Self::HmacSha256 {
                header,
                prefix,
                encoding,
                timestamp_header,
            } => SignatureSpec {
                scheme: "hmac-sha256".into(),
                header: Some(header.as_str().to_owned()),
                prefix: Some(prefix.clone()),
                encoding: Some(encoding.as_str().to_owned()),
                timestamp_header: timestamp_header.as_ref().map(|h| h.as_str().to_owned()),
            },
        }
    }

    /// The headers this scheme sets besides the message id, which custom headers may not use.
    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> {
        let (first, second) = match self {
            Self::Standard => (None, None),
            Self::Stripe { header } => (Some(header), None),
            Self::HmacSha256 {
                header,
                timestamp_header,
                ..
            } => (Some(header), timestamp_header.as_ref()),
        };
        first.into_iter().chain(second)
    }
}

fn header_name(
    field: &'static str,
    given: Option<&str>,
    default: &str,
) -> Result<HeaderName, SignatureError> {
    let name = given.unwrap_or(default);
    if name.len() > MAX_HEADER_NAME {
        return Err(error(
            field,
            format!("must be at most {MAX_HEADER_NAME} characters long"),
        ));
    }
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| error(field, format!("{name:?} is not a valid header name")))?;
    if headers::is_reserved(&parsed) {
        return Err(error(
            field,
            format!("{name:?} is set by hookd or by the connection and cannot carry a signature"),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> SignatureSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_written_out() {
        let stripe = SignatureScheme::parse(spec(serde_json::json!({"scheme": "stripe"}))).unwrap();
        assert_eq!(
            stripe.spec().header.as_deref(),
            Some("webhook-signature"),
            "stripe's default header"
        );
        let hmac =
            SignatureScheme::parse(spec(serde_json::json!({"scheme": "hmac-sha256"}))).unwrap();
        let written = hmac.spec();
        assert_eq!(written.header.as_deref(), Some("x-webhook-signature"));
        assert_eq!(written.prefix.as_deref(), Some("sha256="));
        assert_eq!(written.encoding.as_deref(), Some("hex"));
        assert_eq!(written.timestamp_header, None);
        // What is written reads back as the same scheme.
        assert_eq!(SignatureScheme::parse(written).unwrap(), hmac);
        assert_eq!(
            SignatureScheme::parse(SignatureScheme::Standard.spec()).unwrap(),
            SignatureScheme::Standard
        );
    }

    #[test]
    fn header_names_are_case_insensitive_and_checked() {
        let s = SignatureScheme::parse(spec(serde_json::json!({
            "scheme": "hmac-sha256", "header": "X-Hub-Signature-256", "encoding": "base64",
            "timestampHeader": "X-Webhook-Timestamp", "prefix": ""
        })))
        .unwrap();
        let names: Vec<&str> = s.header_names().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-hub-signature-256", "x-webhook-timestamp"]);

        for (json, field) in [
            (serde_json::json!({"scheme": "hmac"}), "scheme"),
            (
                serde_json::json!({"scheme": "stripe", "prefix": "x"}),
                "prefix",
            ),
            (
                serde_json::json!({"scheme": "standard", "header": "X-Sig"}),
                "header",
            ),
            (
                serde_json::json!({"scheme": "stripe", "header": "bad header"}),
                "header",
            ),
            (
                serde_json::json!({"scheme": "stripe", "header": "Webhook-Id"}),
                "header",
            ),
            (
                serde_json::json!({"scheme": "stripe", "header": "Content-Length"}),
                "header",
            ),
            (
                serde_json::json!({"scheme": "hmac-sha256", "header": "Content-Type"}),
                "header",
            ),
            (
                serde_json::json!({"scheme": "hmac-sha256", "encoding": "base32"}),
                "encoding",
            ),
            (
                serde_json::json!({"scheme": "hmac-sha256", "prefix": "sha256=\n"}),
                "prefix",
            ),
            (
                serde_json::json!({"scheme": "hmac-sha256", "timestampHeader": "X-Webhook-Signature"}),
                "timestampHeader",
            ),
        ] {
            let err = SignatureScheme::parse(spec(json.clone())).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        assert!(
            serde_json::from_value::<SignatureSpec>(
                serde_json::json!({"scheme": "stripe", "tolerance": 300})
            )
            .is_err(),
            "unknown settings are refused, not ignored"
        );
    }
}
