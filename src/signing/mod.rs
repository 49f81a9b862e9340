//! Signatures: what receivers check to trust a delivery. Standard Webhooks here; the
//! `stripe` and `hmac-sha256` schemes in `schemes`.
//!
//! Every delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
//! The signed content is `"{msg_id}.{timestamp}."` followed by the body bytes. Under a
//! symmetric (`whsec_`) [`SigningSecret`] the signature is `v1,` followed by the standard
//! base64 (with padding) of the HMAC-SHA256 of that content, keyed with the secret's raw
//! bytes (not its `whsec_…` text); under an ed25519 (`whsk_`) secret it is `v1a,` followed
//! by the standard base64 of the 64-byte ed25519 signature of the same content, which
//! receivers check with the public key (`whpk_…`) alone. While a secret is
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
mod inbound;
mod request;
mod schemes;

pub use inbound::verify_inbound;
pub use request::{Verdict, VerifyKey, parse_saved_request, verify_request};
pub use schemes::{
    hmac_header, key_mac, stripe_header, verify_hmac, verify_hmac_key, verify_stripe,
    verify_stripe_key,
};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::{PublicKey, SigningSecret};

/// The signature version Standard Webhooks defines for symmetric keys.
const VERSION: &str = "v1";
/// The version for ed25519 keys.
const ASYMMETRIC_VERSION: &str = "v1a";

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

/// `"{msg_id}.{timestamp}." ++ body` in one buffer, as ed25519 signs and verifies it
/// (the HMAC is fed the same pieces in turn instead).
fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(msg_id.len() + 22 + body.len());
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// `v1,` and the 44 characters of a padded base64 SHA-256.
const SIGNATURE_LEN: usize = VERSION.len() + 1 + 44;

/// Appends the `v1,<base64>` or `v1a,<base64>` signature of one delivery under one secret.
fn push_signature(
    out: &mut String,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    secret: &SigningSecret,
) {
    match secret.hmac_key() {
        Some(key) => {
            let mac = mac(key, msg_id, timestamp, body);
            out.push_str(VERSION);
            out.push(',');
            STANDARD.encode_string(mac, out);
        }
        None => {
            let content = signed_content(msg_id, timestamp, body);
            if let Some(signature) = secret.sign_ed25519(&content) {
                out.push_str(ASYMMETRIC_VERSION);
                out.push(',');
                STANDARD.encode_string(signature, out);
            }
        }
    }
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

/// The decoded signatures of one version in a `webhook-signature` header. Entries of other
/// versions and malformed entries (no comma, bad base64) are skipped rather than rejected,
/// so a header mixing versions (during a rotation from `whsec_` to `whsk_`) still verifies.
fn signatures<'h>(header: &'h str, wanted: &'h str) -> impl Iterator<Item = Vec<u8>> + 'h {
    header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(move |(version, _)| *version == wanted)
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
}

/// Whether any entry of a `webhook-signature` header is the signature of this delivery
/// under `secret`, as a receiver would check it (the timestamp's freshness aside): a `v1`
/// entry for a symmetric secret, a `v1a` entry (checked with its public key) for an ed25519
/// one.
///
/// The comparison of each `v1` signature takes the same time whatever bytes differ.
pub fn verify(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(key) = secret.hmac_key() else {
        return secret
            .public_key()
            .is_some_and(|public| verify_ed25519(&public, msg_id, timestamp, body, header));
    };
    let expected = mac(key, msg_id, timestamp, body);
    signatures(header, VERSION)
        // `ct_eq` on slices of different lengths is false without comparing bytes; the
        // length of a MAC is public, so that early answer leaks nothing.
        .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
}

/// Whether any `v1a,<sig>` entry of a `webhook-signature` header is this delivery's ed25519
/// signature under `public`: what a receiver given only the `whpk_…` key checks.
pub fn verify_ed25519(
    public: &PublicKey,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let content = signed_content(msg_id, timestamp, body);
    signatures(header, ASYMMETRIC_VERSION).any(|candidate| public.verify(&content, &candidate))
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

    /// The specification's message under the ed25519 seed bytes 0..32; the expected value was
    /// computed with Python's `cryptography`: `Ed25519PrivateKey.from_private_bytes(
    /// bytes(range(32))).sign(b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body)`.
    #[test]
    fn known_answer_for_an_ed25519_secret() {
        let secret = secret("whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        let public = PublicKey::parse("whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &secret);
        assert_eq!(
            signature,
            "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ=="
        );
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        assert!(verify_ed25519(&public, id, 1614265330, body, &signature));
        assert!(verify(&secret, id, 1614265330, body, &signature));
        assert!(!verify_ed25519(
            &public,
            id,
            1614265330,
            br#"{"test": 2432232315}"#,
            &signature
        ));
        assert!(!verify_ed25519(&public, id, 1614265331, body, &signature));
        // The same bytes under the v1 label are not an ed25519 signature.
        let relabelled = signature.replacen("v1a,", "v1,", 1);
        assert!(!verify_ed25519(&public, id, 1614265330, body, &relabelled));
    }

    #[test]
    fn a_rotation_header_mixes_v1_and_v1a_and_each_verifies() {
        let old = SigningSecret::generate();
        let new = SigningSecret::generate_ed25519();
        let header = signature_header("msg_1", 42, b"{}", [&new, &old]);
        let (first, second) = header.split_once(' ').unwrap();
        assert!(first.starts_with("v1a,") && second.starts_with("v1,"));
        assert!(verify(&old, "msg_1", 42, b"{}", &header));
        assert!(verify(&new, "msg_1", 42, b"{}", &header));
        let public = new.public_key().unwrap();
        assert!(verify_ed25519(&public, "msg_1", 42, b"{}", &header));
        assert!(!verify_ed25519(&public, "msg_1", 42, b"{ }", &header));
        let outsider = SigningSecret::generate_ed25519();
        assert!(!verify(&outsider, "msg_1", 42, b"{}", &header));
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
            let public = SigningSecret::generate_ed25519().public_key().unwrap();
            let _ = verify_ed25519(&public, "msg_1", 1, b"{}", &header);
        }

        #[test]
        fn ed25519_round_trips_and_a_flipped_body_bit_fails(
            seed in any::<[u8; 32]>(), ts in any::<i64>(),
            body in proptest::collection::vec(any::<u8>(), 1..256),
            index in any::<prop::sample::Index>(), bit in 0u8..8,
        ) {
            let secret = secret(&format!("whsk_{}", STANDARD.encode(seed)));
            let public = secret.public_key().unwrap();
            let header = sign("msg_1", ts, &body, &secret);
            prop_assert!(verify_ed25519(&public, "msg_1", ts, &body, &header));
            let mut tampered = body.clone();
            tampered[index.index(body.len())] ^= 1 << bit;
            prop_assert!(!verify_ed25519(&public, "msg_1", ts, &tampered, &header));
        }
    }
}
