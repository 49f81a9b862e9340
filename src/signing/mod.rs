//! Signatures: what receivers check to trust a delivery. Standard Webhooks here; the
//! `stripe` and `hmac-sha256` schemes in `schemes`.
//!
//! Every delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
//! The signature is `v1,` followed by the standard base64 (with padding) of
//! HMAC-SHA256 over `"{msg_id}.{timestamp}."` followed by the body bytes, keyed with the raw
//! bytes of the endpoint's [`SigningSecret`] (not its `whsec_…` text). While a secret is
//! being rotated, the header holds one signature per secret separated by single spaces, and a
//! receiver accepts the delivery if any of them matches. This is what the Standard Webhooks
//! and Svix libraries verify (`docs/svix-sdk-notes.md`, section 4), so any of them can check
//! what hookd sends.
//!
//! Invariant: the body signed is the body sent, byte for byte. Callers sign the exact bytes
//! they put on the wire, never a value they serialise again afterwards.
//!
//! Everything here is pure: the timestamp is passed in, and the receiver-side freshness
//! check (±5 minutes) belongs to whoever owns the clock.

pub mod at_rest;
mod request;
mod schemes;

pub use request::{Verdict, parse_saved_request, verify_request};
pub use schemes::{hmac_header, stripe_header, verify_hmac, verify_stripe};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::SigningSecret;

/// The only signature version defined by Standard Webhooks for symmetric keys.
const VERSION: &str = "v1";

/// The HMAC-SHA256 of `"{msg_id}.{timestamp}." ++ body` under `key`.
fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of every length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// `v1,` and the 44 characters of a padded base64 SHA-256.
const SIGNATURE_LEN: usize = VERSION.len() + 1 + 44;

/// Appends the `v1,<base64>` signature of one delivery under one secret.
fn push_signature(
    out: &mut String,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secret: &SigningSecret,
) {
    let mac = mac(secret.key(), msg_id, timestamp, body);
    out.push_str(VERSION);
    out.push(',');
    STANDARD.encode_string(mac, out);
}

/// The `webhook-signature` header value: one signature per secret, separated by single
/// spaces, in the order given. No secrets give an empty string, which no receiver accepts;
/// an endpoint always has at least one secret, so callers never send that.
pub fn signature_header<'a>(
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
) -> String {
    let mut header = String::with_capacity(SIGNATURE_LEN);
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        push_signature(&mut header, msg_id, timestamp, body, secret);
    }
    header
}

/// Whether any `v1,<sig>` entry of a `webhook-signature` header is the signature of this
/// delivery under `secret`, as a receiver would check it (the timestamp's freshness aside).
///
/// Entries of other versions and malformed entries (no comma, bad base64, wrong length) are
/// skipped rather than rejected, so a header mixing schemes still verifies. The comparison
/// of each signature takes the same time whatever bytes differ.
pub fn verify(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected = mac(secret.key(), msg_id, timestamp, body);
    header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        // `ct_eq` on slices of different lengths is false without comparing bytes; the
        // length of a MAC is public, so that early answer leaks nothing.
        .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(whsec: &str) -> SigningSecret {
        SigningSecret::parse(whsec).expect("test secrets are valid")
    }

    /// The signature under one secret: the header of an endpoint that is not rotating.
    fn sign(msg_id: &str, timestamp: i64, body: &[u8], secret: &SigningSecret) -> String {
        signature_header(msg_id, timestamp, body, [secret])
    }

    fn any_secret() -> impl Strategy<Value = SigningSecret> {
        proptest::collection::vec(
            any::<u8>(),
            SigningSecret::MIN_BYTES..=SigningSecret::MAX_BYTES,
        )
        .prop_map(|key| secret(&STANDARD.encode(key)))
    }

    /// The example of the Standard Webhooks specification and the Svix docs; the expected
    /// value was recomputed with Python's standard library:
    /// `base64.b64encode(hmac.new(base64.b64decode(key), msg, hashlib.sha256).digest())`.
    #[test]
    fn known_answer_from_the_specification() {
        let secret = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let signature = sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &secret);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// A 32-byte key (bytes 0..32) and a body that is not UTF-8, also computed with Python:
    /// `hmac.new(bytes(range(32)), b"msg_2hT0kK7c3W4f.1700000000." + bytes([0, 255, 10])
    /// + "héllo".encode(), hashlib.sha256)`.
    #[test]
    fn known_answer_for_a_binary_body() {
        let secret = secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        let mut body = vec![0u8, 255, 10];
        body.extend_from_slice("héllo".as_bytes());
        let signature = sign("msg_2hT0kK7c3W4f", 1700000000, &body, &secret);
        assert_eq!(signature, "v1,YHVFkp2V4gcAZuN+YdQAqTtClJvppOD3X0aM8Uo0Qgw=");
        assert!(verify(
            &secret,
            "msg_2hT0kK7c3W4f",
            1700000000,
            &body,
            &signature
        ));
    }

    #[test]
    fn header_lists_one_signature_per_secret_in_order() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate();
        let header = signature_header("msg_1", 42, b"{}", [&old, &new]);
        let expected = format!(
            "{} {}",
            sign("msg_1", 42, b"{}", &old),
            sign("msg_1", 42, b"{}", &new)
        );
        assert_eq!(header, expected);
        assert_eq!(signature_header("msg_1", 42, b"{}", []), "");
    }

    #[test]
    fn verify_skips_other_versions_and_malformed_entries() {
        let secret = SigningSecret::generate();
        let good = sign("msg_1", 42, b"{}", &secret);
        let sig = good.trim_start_matches("v1,");
        assert!(!verify(&secret, "msg_1", 42, b"{}", &format!("v2,{sig}")));
        assert!(!verify(&secret, "msg_1", 42, b"{}", &format!("v1a,{sig}")));
        assert!(!verify(&secret, "msg_1", 42, b"{}", sig));
        assert!(!verify(&secret, "msg_1", 42, b"{}", ""));
        // A signature cut short or padded out must not match a prefix of the MAC.
        assert!(!verify(
            &secret,
            "msg_1",
            42,
            b"{}",
            &format!(
                "v1,{}",
                STANDARD.encode(&STANDARD.decode(sig).unwrap()[..16])
            )
        ));
        assert!(!verify(&secret, "msg_1", 42, b"{}", &format!("{good}AAAA")));
        let mixed = format!("v1a,xyz v2,{sig} nocomma v1,!!notbase64!!  {good}");
        assert!(verify(&secret, "msg_1", 42, b"{}", &mixed));
    }

    #[test]
    fn a_signature_from_another_secret_does_not_verify() {
        let ours = SigningSecret::generate();
        let theirs = SigningSecret::generate();
        let header = sign("msg_1", 42, b"{}", &theirs);
        assert!(!verify(&ours, "msg_1", 42, b"{}", &header));
    }

    proptest! {
        #[test]
        fn signatures_have_the_wire_format(
            secret in any_secret(), id in "[a-zA-Z0-9_]{1,40}", ts in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let signature = sign(&id, ts, &body, &secret);
            let b64 = signature.strip_prefix("v1,").expect("starts with v1,");
            prop_assert_eq!(STANDARD.decode(b64).map(|mac| mac.len()), Ok(32));
        }

        #[test]
        fn sign_then_verify_round_trips(
            secret in any_secret(), id in "[a-zA-Z0-9_]{1,40}", ts in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let signature = sign(&id, ts, &body, &secret);
            prop_assert!(verify(&secret, &id, ts, &body, &signature));
        }

        #[test]
        fn tampering_fails_verification(
            secret in any_secret(), id in "[a-zA-Z0-9_]{1,40}", other_id in "[a-zA-Z0-9_]{1,40}",
            ts in any::<i64>(), other_ts in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            other_body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let signature = sign(&id, ts, &body, &secret);
            if other_body != body {
                prop_assert!(!verify(&secret, &id, ts, &other_body, &signature));
            }
            if other_id != id {
                prop_assert!(!verify(&secret, &other_id, ts, &body, &signature));
            }
            if other_ts != ts {
                prop_assert!(!verify(&secret, &id, other_ts, &body, &signature));
            }
        }

        #[test]
        fn a_flipped_bit_anywhere_in_the_body_fails(
            secret in any_secret(), body in proptest::collection::vec(any::<u8>(), 1..256),
            index in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let signature = sign("msg_1", 1, &body, &secret);
            let mut tampered = body.clone();
            tampered[index.index(body.len())] ^= 1 << bit;
            prop_assert!(!verify(&secret, "msg_1", 1, &tampered, &signature));
        }

        #[test]
        fn a_multi_secret_header_verifies_with_each_secret(
            secrets in proptest::collection::vec(any_secret(), 1..5), outsider in any_secret(),
            ts in any::<i64>(), body in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let header = signature_header("msg_1", ts, &body, &secrets);
            prop_assert_eq!(header.split(' ').count(), secrets.len());
            for secret in &secrets {
                prop_assert!(verify(secret, "msg_1", ts, &body, &header));
            }
            if !secrets.contains(&outsider) {
                prop_assert!(!verify(&outsider, "msg_1", ts, &body, &header));
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(secret in any_secret(), header in ".*") {
            let _ = verify(&secret, "msg_1", 1, b"{}", &header);
        }
    }
}
