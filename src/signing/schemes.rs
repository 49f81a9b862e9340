//! The `stripe` and `hmac-sha256` signature schemes (see [`crate::domain::SignatureScheme`]).
//!
//! Both key their HMAC-SHA256 with the secret's text as the API shows it, `whsec_…`
//! included: Stripe's libraries and `hash_hmac('sha256', $body, $secret)` use the configured
//! string itself as the key, so the receiver pastes the secret hookd shows and it works.
//! (The standard scheme keys with the decoded bytes, as Standard Webhooks says.)

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::{MacEncoding, SigningSecret};

/// HMAC-SHA256 under the secret's text of `"{timestamp}."` (when given) followed by `body`.
fn text_mac(secret: &SigningSecret, timestamp: Option<i64>, body: &[u8]) -> [u8; 32] {
    key_mac(secret.expose().as_bytes(), timestamp, body)
}

/// HMAC-SHA256 under `key` of `"{timestamp}."` (when given) followed by `body`.
pub fn key_mac(key: &[u8], timestamp: Option<i64>, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of every length");
    if let Some(t) = timestamp {
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `stripe` header value: `t=<unix>` and one `,v1=<hex>` per secret, in the order given.
pub fn stripe_header<'a>(
    timestamp: i64,
    body: &[u8],
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(text_mac(secret, Some(timestamp), body)));
    }
    header
}

/// Whether a `stripe` header holds a `v1` signature of `body` under `secret`; `Ok` carries
/// the header's timestamp for the caller's freshness check.
pub fn verify_stripe(secret: &SigningSecret, body: &[u8], header: &str) -> Result<i64, String> {
    verify_stripe_key(secret.expose().as_bytes(), body, header)
}

/// [`verify_stripe`] keyed with any bytes (an ingest source's secret as its sender gave it).
pub fn verify_stripe_key(key: &[u8], body: &[u8], header: &str) -> Result<i64, String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("the header has no t=<unix time>")?;
    if signatures.is_empty() {
        return Err("the header has no v1= signature".into());
    }
    let expected = key_mac(key, Some(timestamp), body);
    let matched = signatures.iter().any(|sig| {
        hex::decode(sig).is_ok_and(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(timestamp)
    } else {
        Err(format!(
            "none of the {} v1 signatures is this body's under this secret",
            signatures.len()
        ))
    }
}

/// The `hmac-sha256` header value under one secret.
pub fn hmac_header(
    secret: &SigningSecret,
    prefix: &str,
    encoding: MacEncoding,
    timestamp: Option<i64>,
    body: &[u8],
) -> String {
    let mac = text_mac(secret, timestamp, body);
    let mut header = String::with_capacity(prefix.len() + 64);
    header.push_str(prefix);
    match encoding {
        MacEncoding::Hex => header.push_str(&hex::encode(mac)),
        MacEncoding::Base64 => STANDARD.encode_string(mac, &mut header),
    }
    header
}

/// Whether an `hmac-sha256` header is the signature of `body` (and `timestamp`, when the
/// scheme sends one) under `secret`.
pub fn verify_hmac(
    secret: &SigningSecret,
    prefix: &str,
    encoding: MacEncoding,
    timestamp: Option<i64>,
    body: &[u8],
    header: &str,
) -> Result<(), String> {
    verify_hmac_key(
        secret.expose().as_bytes(),
        prefix,
        encoding,
        timestamp,
        body,
        header,
    )
}

/// [`verify_hmac`] keyed with any bytes (an ingest source's secret as its sender gave it).
pub fn verify_hmac_key(
    key: &[u8],
    prefix: &str,
    encoding: MacEncoding,
    timestamp: Option<i64>,
    body: &[u8],
    header: &str,
) -> Result<(), String> {
    let encoded = header
        .strip_prefix(prefix)
        .ok_or_else(|| format!("the header does not start with {prefix:?}"))?;
    let candidate = match encoding {
        MacEncoding::Hex => hex::decode(encoded).map_err(|e| format!("not hexadecimal: {e}"))?,
        MacEncoding::Base64 => STANDARD
            .decode(encoded)
            .map_err(|e| format!("not base64: {e}"))?,
    };
    let expected = key_mac(key, timestamp, body);
    if bool::from(candidate.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err("the signature is not this body's under this secret".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> SigningSecret {
        SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    /// Expected values computed with Python's standard library:
    /// `hmac.new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b"1614265330.{\"a\":1}",
    /// hashlib.sha256).hexdigest()`, and without the timestamp for the body-only form.
    #[test]
    fn known_answers() {
        let body = br#"{"a":1}"#;
        assert_eq!(
            stripe_header(1614265330, body, [&secret()]),
            "t=1614265330,v1=1ab9289e001574cd47b050aeb73ea3df7ce1db2c42990eb3fb82c03ec0f1ac6a"
        );
        assert_eq!(
            hmac_header(&secret(), "sha256=", MacEncoding::Hex, None, body),
            "sha256=45ec03b2b33403c8043a90de06bedad0827183927115fd7e448ef97eeb13c5be"
        );
    }

    #[test]
    fn a_rotation_sends_one_v1_per_secret() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let header = stripe_header(42, b"{}", [&new, &old]);
        assert_eq!(header.matches(",v1=").count(), 2);
        assert_eq!(verify_stripe(&old, b"{}", &header), Ok(42));
        assert_eq!(verify_stripe(&new, b"{}", &header), Ok(42));
        assert!(verify_stripe(&SigningSecret::generate(), b"{}", &header).is_err());
        assert!(verify_stripe(&new, b"{} ", &header).is_err());
        assert!(verify_stripe(&new, b"{}", "v1=abc").is_err());
        assert!(verify_stripe(&new, b"{}", "t=42").is_err());
    }

    proptest! {
        #[test]
        fn hmac_round_trips_and_detects_tampering(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            base64 in any::<bool>(), timestamp in proptest::option::of(any::<i64>()),
            prefix in "[a-z0-9=]{0,8}",
        ) {
            let secret = SigningSecret::generate();
            let encoding = if base64 { MacEncoding::Base64 } else { MacEncoding::Hex };
            let header = hmac_header(&secret, &prefix, encoding, timestamp, &body);
            prop_assert!(verify_hmac(&secret, &prefix, encoding, timestamp, &body, &header).is_ok());
            let mut other = body.clone();
            other.push(b' ');
            prop_assert!(verify_hmac(&secret, &prefix, encoding, timestamp, &other, &header).is_err());
            let other_secret = SigningSecret::generate();
            prop_assert!(verify_hmac(&other_secret, &prefix, encoding, timestamp, &body, &header).is_err());
        }

        #[test]
        fn arbitrary_headers_never_panic(header in ".*") {
            let _ = verify_stripe(&secret(), b"{}", &header);
            let _ = verify_hmac(&secret(), "sha256=", MacEncoding::Hex, None, b"{}", &header);
        }
    }
}
