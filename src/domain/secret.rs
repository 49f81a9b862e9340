//! Endpoint signing secrets: `whsec_` followed by the standard base64 of 24 to 75 bytes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("must be 'whsec_' followed by standard base64 (invalid base64: {0})")]
    NotBase64(String),
    #[error("must encode between {min} and {max} bytes of key (got {len})")]
    BadLength { min: usize, max: usize, len: usize },
}

/// The key an endpoint's deliveries are signed with. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub const PREFIX: &'static str = "whsec_";
    pub const MIN_BYTES: usize = 24;
    /// The contract allows up to 100 base64 characters: 75 bytes.
    pub const MAX_BYTES: usize = 75;
    /// Generated secrets have the length of an HMAC-SHA256 key.
    const GENERATED_BYTES: usize = 32;

    pub fn generate() -> Self {
        let mut key = vec![0u8; Self::GENERATED_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// Parses `whsec_<base64>`; the prefix may be left out, as the contract allows.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
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
        Ok(Self(key))
    }

    /// The raw key bytes, for the HMAC.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` form shown to API users and stored.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.0))
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

    proptest! {
        #[test]
        fn every_valid_length_round_trips(key in proptest::collection::vec(any::<u8>(), 24..=64)) {
            let text = format!("whsec_{}", STANDARD.encode(&key));
            let secret = SigningSecret::parse(&text).unwrap();
            prop_assert_eq!(secret.key(), key.as_slice());
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = SigningSecret::parse(&s);
        }
    }
}
