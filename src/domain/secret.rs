//! Endpoint signing secrets, in the two forms of Standard Webhooks:
//! - symmetric, `whsec_` followed by the standard base64 of 24 to 75 bytes: an HMAC-SHA256 key
//!   the receiver shares (signatures `v1,…`);
//! - asymmetric, `whsk_` followed by the standard base64 of an ed25519 secret key: the
//!   32-byte seed, or the 64 bytes of seed and public key (the form Svix's libraries write).
//!   Signatures are `v1a,…`, and receivers hold only the [`PublicKey`], `whpk_…`.
//!
//! A secret's text form (what the API shows and the store keeps, sealed or not) is the form
//! it was given in, so `GET …/secret` returns exactly the key that was set.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("must be 'whsec_' followed by standard base64 (invalid base64: {0})")]
    NotBase64(String),
    #[error("must encode between {min} and {max} bytes of key (got {len})")]
    BadLength { min: usize, max: usize, len: usize },
    #[error("must be 'whsk_' followed by standard base64 (invalid base64: {0})")]
    Ed25519NotBase64(String),
    #[error(
        "a 'whsk_' secret must encode a 32-byte ed25519 seed, or 64 bytes of seed and public key (got {0} bytes)"
    )]
    Ed25519BadLength(usize),
    #[error("the last 32 bytes of a 64-byte 'whsk_' secret must be the public key of the first 32")]
    Ed25519Mismatch,
    #[error(
        "must be 'whpk_' followed by the standard base64 of a 32-byte ed25519 public key ({0})"
    )]
    BadPublicKey(String),
}

#[derive(Clone, PartialEq, Eq)]
enum Key {
    Hmac(Vec<u8>),
    /// The signing key keeps its public key, derived once at parse: signing needs it, and
    /// deriving it (a scalar multiplication) costs more than a signature's hashing.
    Ed25519 {
        key: Box<SigningKey>,
        /// Given as 64 bytes (seed and public key) rather than the 32-byte seed.
        keypair_form: bool,
    },
}

/// The key an endpoint's deliveries are signed with. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Key);

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";
    pub const ASYMMETRIC_PREFIX: &'static str = "whsk_";
    pub const MIN_BYTES: usize = 24;
    /// The contract allows up to 100 base64 characters: 75 bytes.
    pub const MAX_BYTES: usize = 75;
    /// Generated secrets have the length of an HMAC-SHA256 key.
    const GENERATED_BYTES: usize = 32;

    /// A new symmetric secret: what an endpoint gets when none is given.
    pub fn generate() -> Self {
        let mut key = vec![0u8; Self::GENERATED_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self(Key::Hmac(key))
    }

    /// A new ed25519 secret (32-byte seed form).
    pub fn generate_ed25519() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self(Key::Ed25519 {
            key: Box::new(SigningKey::from_bytes(&seed)),
            keypair_form: false,
        })
    }

    /// Parses `whsk_<base64>` as an ed25519 secret, and anything else as `whsec_<base64>`,
    /// whose prefix may be left out, as the contract allows.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if let Some(b64) = s.strip_prefix(Self::ASYMMETRIC_PREFIX) {
            return Self::parse_ed25519(b64);
        }
        let b64 = s.strip_prefix(Self::PREFIX).unwrap_or(s);
        let key = STANDARD
            .decode(b64)
            .map_err(|e| SecretError::NotBase64(e.to_string()))?;
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength {
                min: Self::MIN_BYTES,
                max: Self::MAX_BYTES,
                len: key.len(),
            });
        }
        Ok(Self(Key::Hmac(key)))
    }

    fn parse_ed25519(b64: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| SecretError::Ed25519NotBase64(e.to_string()))?;
        let key = match <[u8; 64]>::try_from(bytes.as_slice()) {
            Ok(pair) => {
                SigningKey::from_keypair_bytes(&pair).map_err(|_| SecretError::Ed25519Mismatch)?
            }
            Err(_) => {
                let seed = <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| SecretError::Ed25519BadLength(bytes.len()))?;
                SigningKey::from_bytes(&seed)
            }
        };
        Ok(Self(Key::Ed25519 {
            key: Box::new(key),
            keypair_form: bytes.len() == 64,
        }))
    }

    /// The raw key bytes of a symmetric secret, for the HMAC; `None` for an ed25519 secret.
    pub fn hmac_key(&self) -> Option<&[u8]> {
        match &self.0 {
            Key::Hmac(key) => Some(key),
            Key::Ed25519 { .. } => None,
        }
    }

    /// Whether this is an ed25519 (`whsk_`) secret, which only the standard scheme can use.
    pub fn is_asymmetric(&self) -> bool {
        matches!(self.0, Key::Ed25519 { .. })
    }

    /// The ed25519 signature of `content`; `None` for a symmetric secret.
    pub fn sign_ed25519(&self, content: &[u8]) -> Option<[u8; 64]> {
        match &self.0 {
            Key::Hmac(_) => None,
            Key::Ed25519 { key, .. } => Some(key.sign(content).to_bytes()),
        }
    }

    /// The public key receivers verify with; `None` for a symmetric secret.
    pub fn public_key(&self) -> Option<PublicKey> {
        match &self.0 {
            Key::Hmac(_) => None,
            Key::Ed25519 { key, .. } => Some(PublicKey(key.verifying_key())),
        }
    }

    /// The text form shown to API users and stored: `whsec_…`, or `whsk_…` in the length
    /// it was given.
    pub fn expose(&self) -> String {
        match &self.0 {
            Key::Hmac(key) => format!("{}{}", Self::PREFIX, STANDARD.encode(key)),
            Key::Ed25519 { key, keypair_form } => {
                let encoded = if *keypair_form {
                    STANDARD.encode(key.to_keypair_bytes())
                } else {
                    STANDARD.encode(key.to_bytes())
                };
                format!("{}{encoded}", Self::ASYMMETRIC_PREFIX)
            }
        }
    }
}

/// The public half of an ed25519 secret: `whpk_` and the standard base64 of its 32 bytes.
/// Not secret: it verifies `v1a` signatures and cannot make them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub const PREFIX: &'static str = "whpk_";

    /// Parses `whpk_<base64>` (the prefix is required: it is what tells a public key from
    /// a secret).
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| SecretError::BadPublicKey("no 'whpk_' prefix".into()))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| SecretError::BadPublicKey(format!("invalid base64: {e}")))?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| SecretError::BadPublicKey(format!("got {} bytes", bytes.len())))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| SecretError::BadPublicKey("not a point of the curve".into()))
    }

    /// Whether `signature` is this key's ed25519 signature of `content` (strict
    /// verification: no malleable or small-order forms).
    pub fn verify(&self, content: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(content, &signature).is_ok()
    }

    /// `whpk_…`.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.expose())
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_secret_round_trips() {
        let s = SigningSecret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap(), s);
        assert_ne!(SigningSecret::generate(), s);
    }

    #[test]
    fn prefix_is_optional() {
        let s = SigningSecret::generate();
        let bare = s.expose().trim_start_matches("whsec_").to_owned();
        assert_eq!(SigningSecret::parse(&bare).unwrap(), s);
    }

    #[test]
    fn rejects_bad_base64_and_lengths() {
        assert!(matches!(
            SigningSecret::parse("whsec_not base64!"),
            Err(SecretError::NotBase64(_))
        ));
        let short = STANDARD.encode([1u8; 23]);
        assert!(matches!(
            SigningSecret::parse(&short),
            Err(SecretError::BadLength { len: 23, .. })
        ));
        let long = STANDARD.encode([1u8; 76]);
        assert!(matches!(
            SigningSecret::parse(&long),
            Err(SecretError::BadLength { len: 76, .. })
        ));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let s = SigningSecret::generate();
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
    }

    const SEED: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// The public key of `SEED` (bytes 0..32), computed with Python's `cryptography`:
    /// `Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()`.
    const PUBLIC: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

    #[test]
    fn ed25519_secrets_parse_in_both_lengths_and_keep_their_form() {
        let seed = SigningSecret::parse(SEED).unwrap();
        assert!(seed.is_asymmetric());
        assert_eq!(seed.hmac_key(), None);
        assert_eq!(seed.expose(), SEED);
        assert_eq!(seed.public_key().unwrap().expose(), PUBLIC);
        let pair = format!(
            "whsk_{}",
            STANDARD.encode(
                [
                    (0u8..32).collect::<Vec<_>>(),
                    STANDARD.decode(&PUBLIC[5..]).unwrap()
                ]
                .concat()
            )
        );
        let parsed = SigningSecret::parse(&pair).unwrap();
        assert_eq!(parsed.expose(), pair);
        assert_eq!(parsed.public_key(), seed.public_key());
        assert_eq!(
            SigningSecret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
                .unwrap()
                .public_key(),
            None
        );
        let generated = SigningSecret::generate_ed25519();
        assert_eq!(
            SigningSecret::parse(&generated.expose()).unwrap(),
            generated
        );
    }

    #[test]
    fn bad_ed25519_secrets_say_why() {
        assert!(matches!(
            SigningSecret::parse("whsk_not base64!"),
            Err(SecretError::Ed25519NotBase64(_))
        ));
        let short = format!("whsk_{}", STANDARD.encode([7u8; 31]));
        assert_eq!(
            SigningSecret::parse(&short),
            Err(SecretError::Ed25519BadLength(31))
        );
        let mismatched = format!("whsk_{}", STANDARD.encode([7u8; 64]));
        assert_eq!(
            SigningSecret::parse(&mismatched),
            Err(SecretError::Ed25519Mismatch)
        );
        assert!(PublicKey::parse(&PUBLIC[5..]).is_err());
        assert!(PublicKey::parse("whpk_AAAA").is_err());
        assert!(!format!("{:?}", SigningSecret::parse(SEED).unwrap()).contains(&SEED[5..]));
    }

    #[test]
    fn public_key_verifies_what_the_secret_signs_and_nothing_else() {
        let secret = SigningSecret::parse(SEED).unwrap();
        let public = PublicKey::parse(PUBLIC).unwrap();
        let signature = secret.sign_ed25519(b"msg_1.42.{}").unwrap();
        assert!(public.verify(b"msg_1.42.{}", &signature));
        assert!(!public.verify(b"msg_1.42.{ }", &signature));
        assert!(!public.verify(b"msg_1.42.{}", &signature[..63]));
        let other = SigningSecret::generate_ed25519().public_key().unwrap();
        assert!(!other.verify(b"msg_1.42.{}", &signature));
        assert_eq!(SigningSecret::generate().sign_ed25519(b"x"), None);
    }

    proptest! {
        #[test]
        fn every_valid_length_round_trips(key in proptest::collection::vec(any::<u8>(), 24..=64)) {
            let text = format!("whsec_{}", STANDARD.encode(&key));
            let secret = SigningSecret::parse(&text).unwrap();
            prop_assert_eq!(secret.hmac_key(), Some(key.as_slice()));
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = SigningSecret::parse(&s);
        }
    }
}
