//! A received request checked as its receiver would check it, with the reason when it fails:
//! what `hookd verify` prints for a developer whose receiver refuses hookd's deliveries.

use http::HeaderMap;

use super::schemes::{verify_hmac, verify_stripe};
use crate::domain::{PublicKey, SecretError, SignatureScheme, SigningSecret};

/// Why a request does not verify, or what matched when it does.
pub type Verdict = Result<String, String>;

/// What a request is checked with: the endpoint's secret (`whsec_…` or `whsk_…`), or the
/// public key of a `whsk_` secret (`whpk_…`), which checks only `v1a` signatures.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    Secret(SigningSecret),
    Public(PublicKey),
}

impl VerifyKey {
    /// `whpk_…` is a public key; anything else is parsed as a secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.starts_with(PublicKey::PREFIX) {
            PublicKey::parse(text).map(Self::Public)
        } else {
            SigningSecret::parse(text).map(Self::Secret)
        }
    }

    /// The signature version this key checks in a `webhook-signature` header.
    fn version(&self) -> &'static str {
        match self {
            Self::Secret(s) if !s.is_asymmetric() => "v1",
            _ => "v1a",
        }
    }
}

/// Why no signature of the key's version matched, naming a likely mix-up of keys.
fn standard_mismatch(key: &VerifyKey, family: &str, signatures: &str, body: &[u8]) -> String {
    let version = key.version();
    let present = signatures
        .split(' ')
        .any(|entry| entry.split_once(',').is_some_and(|(v, _)| v == version));
    if !present {
        let hint = if version == "v1a" {
            "a whsk_ or whpk_ key checks the v1a signatures of an endpoint whose secret is whsk_; this request was signed with a whsec_ secret (v1)"
        } else {
            "a whsec_ secret checks v1 signatures; an endpoint whose secret is whsk_ signs v1a: check with its public key (publicKey of GET …/secret, whpk_…)"
        };
        return format!("{family}-signature has no {version} signature ({hint})");
    }
    format!(
        "no {version} signature in {family}-signature is this request's under this key: check that the key is the endpoint's (GET …/secret) and that the body is byte for byte what was received ({} bytes)",
        body.len()
    )
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    let value = headers
        .get(name)
        .ok_or_else(|| format!("the request has no {name} header"))?;
    value
        .to_str()
        .map_err(|_| format!("the {name} header is not ASCII"))
}

/// The unix time in the header `name`, when there is one to read.
pub(crate) fn timestamp_in(
    headers: &HeaderMap,
    name: Option<&http::HeaderName>,
) -> Result<Option<i64>, String> {
    let Some(name) = name else { return Ok(None) };
    let value = header(headers, name.as_str())?;
    value
        .trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{name} {value:?} is not a unix time"))
}

pub(crate) fn fresh(timestamp: i64, now: i64, tolerance: i64) -> Result<(), String> {
    let age = now - timestamp;
    if age.abs() > tolerance {
        let when = if age > 0 { "old" } else { "in the future" };
        return Err(format!(
            "the signature is valid but its timestamp is {} s {when}, outside the {tolerance} s tolerance (a replay, or a clock that is off)",
            age.abs()
        ));
    }
    Ok(())
}

/// Checks `headers` and `body` under `scheme` and `key` at `now` (unix seconds), allowing
/// timestamps `tolerance` seconds away. The standard scheme reads the `webhook-*` headers,
/// or the `svix-*` ones when those are absent.
pub fn verify_request(
    scheme: &SignatureScheme,
    key: &VerifyKey,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Verdict {
    match scheme {
        SignatureScheme::Standard => {
            let family = if headers.contains_key("webhook-signature")
                || !headers.contains_key("svix-signature")
            {
                "webhook"
            } else {
                "svix"
            };
            let signatures = header(headers, &format!("{family}-signature"))?;
            let id = header(headers, &format!("{family}-id"))?;
            let timestamp = header(headers, &format!("{family}-timestamp"))?;
            let timestamp: i64 = timestamp
                .parse()
                .map_err(|_| format!("{family}-timestamp {timestamp:?} is not a unix time"))?;
            let matched = match key {
                VerifyKey::Secret(secret) => super::verify(secret, id, timestamp, body, signatures),
                VerifyKey::Public(public) => {
                    super::verify_ed25519(public, id, timestamp, body, signatures)
                }
            };
            if !matched {
                return Err(standard_mismatch(key, family, signatures, body));
            }
            fresh(timestamp, now, tolerance)?;
            Ok(format!(
                "{family}-signature matches ({} signature, message {id})",
                key.version()
            ))
        }

        SignatureScheme::Stripe { header: name } => {
            let secret = symmetric(key)?;
            let value = header(headers, name.as_str())?;
            let timestamp = verify_stripe(secret, body, value).map_err(|why| {
                format!("{name}: {why} (the key is the secret's whole text, whsec_ included)")
            })?;
            fresh(timestamp, now, tolerance)?;
            Ok(format!("{name} matches"))
        }
        SignatureScheme::HmacSha256 {
            header: name,
            prefix,
            encoding,
            timestamp_header,
        } => {
            let timestamp = timestamp_in(headers, timestamp_header.as_ref())?;
            let value = header(headers, name.as_str())?;
            let secret = symmetric(key)?;
            verify_hmac(secret, prefix, *encoding, timestamp, body, value).map_err(|why| {
                format!("{name}: {why} (the key is the secret's whole text, whsec_ included)")
            })?;
            if let Some(t) = timestamp {
                fresh(t, now, tolerance)?;
            }
            Ok(format!("{name} matches"))
        }
    }
}

/// The `whsec_` secret the stripe and hmac-sha256 schemes are keyed with.
fn symmetric(key: &VerifyKey) -> Result<&SigningSecret, String> {
    match key {
        VerifyKey::Secret(secret) if !secret.is_asymmetric() => Ok(secret),
        _ => Err("the stripe and hmac-sha256 schemes are keyed with a whsec_ secret; whsk_ and whpk_ keys check only the standard scheme's v1a signatures".into()),
    }
}

/// Splits a saved request into its headers and its body: header lines `Name: value` (a first
/// line such as `POST /hook HTTP/1.1` is skipped), an empty line, then the body, byte for byte
/// to the end. Lines may end in CRLF or LF.
pub fn parse_saved_request(raw: &[u8]) -> Result<(HeaderMap, &[u8]), String> {
    let mut headers = HeaderMap::new();
    let mut rest = raw;
    let mut first = true;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err("no empty line between the headers and the body".into());
        };
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[end + 1..];
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let text =
            std::str::from_utf8(line).map_err(|_| "a header line is not UTF-8".to_owned())?;
        match text.split_once(':') {
            Some((name, value)) => {
                let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
                let value = http::HeaderValue::from_str(value.trim())
                    .map_err(|_| format!("the value of {name} is not a header value"))?;
                headers.append(name, value);
            }
            None if first => {}
            None => return Err(format!("{text:?} is not a `Name: value` header line")),
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MacEncoding, SignatureScheme};
    use crate::signing::{hmac_header, signature_header, stripe_header};
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_saved_request_splits_into_headers_and_the_exact_body() {
        let raw = b"POST /hook HTTP/1.1\r\nWebhook-Id: msg_1\r\nX-A:  b \r\n\r\n{\"a\":1}\n";
        let (headers, body) = parse_saved_request(raw).unwrap();
        assert_eq!(headers["webhook-id"], "msg_1");
        assert_eq!(headers["x-a"], "b");
        assert_eq!(body, b"{\"a\":1}\n");
        let (headers, body) = parse_saved_request(b"x-a: 1\n\n").unwrap();
        assert_eq!((headers.len(), body), (1, &b""[..]));
        assert!(parse_saved_request(b"x-a: 1\n").is_err());
        assert!(parse_saved_request(b"x-a: 1\nnot a header\n\n").is_err());
    }

    #[test]
    fn each_scheme_verifies_and_says_why_not() {
        let secret = SigningSecret::generate();
        let body = br#"{"x":1}"#;
        let now = 1_700_000_000;

        let standard = headers(&[
            ("svix-id", "msg_1".into()),
            ("svix-timestamp", now.to_string()),
            (
                "svix-signature",
                signature_header("msg_1", now, body, [&secret]),
            ),
        ]);
        let scheme = SignatureScheme::Standard;
        let signing_secret = secret;
        let secret = VerifyKey::Secret(signing_secret.clone());
        assert!(verify_request(&scheme, &secret, &standard, body, now, 300).is_ok());
        let why = verify_request(&scheme, &secret, &standard, b"{}", now, 300).unwrap_err();
        assert!(why.contains("byte for byte"), "{why}");
        let why = verify_request(&scheme, &secret, &standard, body, now + 301, 300).unwrap_err();
        assert!(why.contains("301 s old"), "{why}");

        let stripe = SignatureScheme::Stripe {
            header: HeaderName::from_static("x-obsrv-signature"),
        };
        let sent = headers(&[(
            "x-obsrv-signature",
            stripe_header(now, body, [&signing_secret]),
        )]);
        assert!(verify_request(&stripe, &secret, &sent, body, now, 300).is_ok());
        let why = verify_request(&stripe, &secret, &HeaderMap::new(), body, now, 300).unwrap_err();
        assert_eq!(why, "the request has no x-obsrv-signature header");

        let hmac = SignatureScheme::HmacSha256 {
            header: HeaderName::from_static("x-webhook-signature"),
            prefix: "sha256=".into(),
            encoding: MacEncoding::Hex,
            timestamp_header: Some(HeaderName::from_static("x-webhook-timestamp")),
        };
        let sent = headers(&[
            (
                "x-webhook-signature",
                hmac_header(
                    &signing_secret,
                    "sha256=",
                    MacEncoding::Hex,
                    Some(now),
                    body,
                ),
            ),
            ("x-webhook-timestamp", now.to_string()),
        ]);
        assert!(verify_request(&hmac, &secret, &sent, body, now + 10, 300).is_ok());
        let why = verify_request(
            &hmac,
            &VerifyKey::Secret(SigningSecret::generate()),
            &sent,
            body,
            now,
            300,
        )
        .unwrap_err();
        assert!(why.contains("not this body's"), "{why}");
    }

    #[test]
    fn v1a_verifies_with_the_public_key_or_the_secret_and_says_why_not() {
        let secret = SigningSecret::generate_ed25519();
        let public = secret.public_key().unwrap();
        let old = SigningSecret::generate();
        let body = br#"{"x":1}"#;
        let now = 1_700_000_000;
        let sent = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", now.to_string()),
            (
                "webhook-signature",
                signature_header("msg_1", now, body, [&secret, &old]),
            ),
        ]);
        let standard = SignatureScheme::Standard;
        for key in [
            VerifyKey::parse(&public.expose()).unwrap(),
            VerifyKey::parse(&secret.expose()).unwrap(),
        ] {
            let how = verify_request(&standard, &key, &sent, body, now, 300).unwrap();
            assert!(how.contains("v1a"), "{how}");
            let why = verify_request(&standard, &key, &sent, b"{}", now, 300).unwrap_err();
            assert!(
                why.contains("no v1a signature") && why.contains("byte for byte"),
                "{why}"
            );
        }
        // The whsec_ still verifies the v1 half of the same header.
        assert!(
            verify_request(
                &standard,
                &VerifyKey::Secret(old.clone()),
                &sent,
                body,
                now,
                300
            )
            .is_ok()
        );
        // A public key against a request signed v1 only says which key it would need.
        let v1_only = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", now.to_string()),
            (
                "webhook-signature",
                signature_header("msg_1", now, body, [&old]),
            ),
        ]);
        let why = verify_request(
            &standard,
            &VerifyKey::Public(public),
            &v1_only,
            body,
            now,
            300,
        )
        .unwrap_err();
        assert!(
            why.contains("has no v1a signature") && why.contains("whsec_"),
            "{why}"
        );
        let stripe = SignatureScheme::Stripe {
            header: HeaderName::from_static("x-obsrv-signature"),
        };
        let why =
            verify_request(&stripe, &VerifyKey::Public(public), &sent, body, now, 300).unwrap_err();
        assert!(why.contains("standard scheme"), "{why}");
        assert!(VerifyKey::parse("whpk_AAAA").is_err());
    }
}
