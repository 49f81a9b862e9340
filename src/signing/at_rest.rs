//! Encryption of secrets at rest: the [`Keyring`] of main keys the store seals endpoint
//! secrets and headers with (see `domain::sealed` for what is sealed and the stored form).
//!
//! - **Cipher**: XChaCha20-Poly1305 (an AEAD) with a random 24-byte nonce per value; a
//!   nonce that long can be drawn at random for any number of values under one key.
//! - **Stored form**: `enc:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`. `v1` names this
//!   format; the key id (8 hex digits of a SHA-256 of the key, which says nothing about the
//!   key) lets a reader pick the key among the current one and the previous ones, and lets
//!   `hookd rotate-main-key` find values under an old key without decrypting them.
//! - **Binding**: the associated data is `hookd:v1:` and the value's binding (column and row
//!   id, e.g. `endpoint.secret:ep_…`), so a sealed value moved to another row or column fails
//!   to decrypt instead of being read as that row's secret.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::domain::sealed::{OpenError, SEALED_PREFIX, SecretsAtRest};

/// The stored form's version.
const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The length of a main key, in bytes.
pub const MAIN_KEY_LEN: usize = 32;

/// One main key and its id.
struct MainKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl MainKey {
    fn new(key: &[u8; MAIN_KEY_LEN]) -> Self {
        Self {
            id: key_id(key),
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }
}

/// The id a key is named by in stored values: the first four bytes of a SHA-256 of it.
fn key_id(key: &[u8; MAIN_KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"hookd main key id\0")
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..4])
}

fn associated_data(binding: &str) -> Vec<u8> {
    format!("hookd:{VERSION}:{binding}").into_bytes()
}

/// Parses a main key as configured: the standard base64 (padding optional) of exactly 32
/// bytes. The error says what is wrong, never the value.
pub fn parse_main_key(text: &str) -> Result<[u8; MAIN_KEY_LEN], String> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| {
            "is not base64; it must be 32 random bytes in base64 (generate one with \
             `hookd main-key generate` or `openssl rand -base64 32`)"
                .to_owned()
        })?;
    <[u8; MAIN_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "decodes to {} bytes; it must be 32 random bytes in base64 (generate one with \
             `hookd main-key generate` or `openssl rand -base64 32`)",
            bytes.len()
        )
    })
}

/// A new random main key, in the form [`parse_main_key`] reads.
pub fn generate_main_key() -> String {
    STANDARD.encode(rand::random::<[u8; MAIN_KEY_LEN]>())
}

/// The main keys of a node: the current one, which seals what is written, and previous ones,
/// still accepted for reading while values are re-encrypted (`hookd rotate-main-key`).
#[derive(Default)]
pub struct Keyring {
    current: Option<MainKey>,
    previous: Vec<MainKey>,
}

impl Keyring {
    /// Without a current key nothing is sealed (and `previous` can only be read).
    pub fn new(current: Option<&[u8; MAIN_KEY_LEN]>, previous: &[[u8; MAIN_KEY_LEN]]) -> Self {
        Self {
            current: current.map(MainKey::new),
            previous: previous.iter().map(MainKey::new).collect(),
        }
    }

    /// The current key's id, if there is a current key.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// Whether a value sealed under the key with this id can be read.
    pub fn has_key(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: &str) -> Option<&MainKey> {
        self.current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

impl SecretsAtRest for Keyring {
    fn seal(&self, plaintext: &str, binding: &str) -> String {
        let Some(key) = &self.current else {
            return plaintext.to_owned();
        };
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &associated_data(binding),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{VERSION}:{}:{}",
            key.id,
            STANDARD.encode(bytes)
        )
    }

    fn open<'a>(&self, stored: &'a str, binding: &str) -> Result<Cow<'a, str>, OpenError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(Cow::Borrowed(stored));
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(version), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Malformed("not enc:<version>:<key id>:<data>"));
        };
        if version != VERSION {
            return Err(OpenError::Malformed("unknown version"));
        }
        let key = self
            .key(id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD
            .decode(data)
            .map_err(|_| OpenError::Malformed("data is not base64"))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed("data too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(binding),
                },
            )
            .map_err(|_| OpenError::Rejected(id.to_owned()))?;
        String::from_utf8(plain)
            .map(Cow::Owned)
            .map_err(|_| OpenError::Malformed("plaintext is not UTF-8"))
    }

    fn is_current(&self, stored: &str) -> bool {
        match &self.current {
            None => !stored.starts_with(SEALED_PREFIX),
            Some(key) => stored
                .strip_prefix(SEALED_PREFIX)
                .and_then(|rest| rest.strip_prefix(VERSION))
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.strip_prefix(key.id.as_str()))
                .is_some_and(|rest| rest.starts_with(':')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: [u8; 32] = [7; 32];
    const NEW: [u8; 32] = [9; 32];
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const BINDING: &str = "endpoint.secret:ep_1";

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_does_not_show_it() {
        let keys = Keyring::new(Some(&NEW), &[]);
        let sealed = keys.seal(SECRET, BINDING);
        assert!(
            sealed.starts_with(&format!("enc:v1:{}:", key_id(&NEW))),
            "{sealed}"
        );
        assert!(!sealed.contains(SECRET) && !sealed.contains("MfKQ9r8G"));
        assert_eq!(keys.open(&sealed, BINDING).unwrap(), SECRET);
        assert!(keys.is_current(&sealed));
        // A fresh nonce each time: the same secret never seals to the same text.
        assert_ne!(keys.seal(SECRET, BINDING), sealed);
    }

    #[test]
    fn a_value_sealed_under_another_key_is_an_unknown_key() {
        let old = Keyring::new(Some(&OLD), &[]);
        let new = Keyring::new(Some(&NEW), &[]);
        let sealed = new.seal(SECRET, BINDING);
        assert_eq!(
            old.open(&sealed, BINDING),
            Err(OpenError::UnknownKey(key_id(&NEW)))
        );
        assert!(!old.is_current(&sealed));
    }

    #[test]
    fn a_previous_key_still_reads_what_it_sealed() {
        let sealed = Keyring::new(Some(&OLD), &[]).seal(SECRET, BINDING);
        let rotated = Keyring::new(Some(&NEW), &[OLD]);
        assert_eq!(rotated.open(&sealed, BINDING).unwrap(), SECRET);
        assert!(!rotated.is_current(&sealed), "rotation must rewrite it");
        assert!(rotated.is_current(&rotated.seal(SECRET, BINDING)));
    }

    #[test]
    fn a_tampered_value_is_rejected() {
        let keys = Keyring::new(Some(&NEW), &[]);
        let sealed = keys.seal(SECRET, BINDING);
        let (head, data) = sealed.rsplit_once(':').unwrap();
        let mut bytes = STANDARD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}:{}", STANDARD.encode(&bytes));
        assert_eq!(
            keys.open(&tampered, BINDING),
            Err(OpenError::Rejected(key_id(&NEW)))
        );
        bytes[NONCE_LEN + 2] ^= 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}:{}", STANDARD.encode(&bytes));
        assert!(matches!(
            keys.open(&tampered, BINDING),
            Err(OpenError::Rejected(_))
        ));
        assert!(matches!(
            keys.open(&format!("{head}:AAAA"), BINDING),
            Err(OpenError::Malformed(_))
        ));
        assert!(matches!(
            keys.open(&sealed.replacen("v1", "v9", 1), BINDING),
            Err(OpenError::Malformed(_))
        ));
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_is_rejected() {
        let keys = Keyring::new(Some(&NEW), &[]);
        let sealed = keys.seal(SECRET, BINDING);
        for other in ["endpoint.secret:ep_2", "endpoint.headers:ep_1"] {
            assert_eq!(
                keys.open(&sealed, other),
                Err(OpenError::Rejected(key_id(&NEW))),
                "{other}"
            );
        }
    }

    #[test]
    fn plaintext_is_read_as_is_and_is_not_current_once_there_is_a_key() {
        let keys = Keyring::new(Some(&NEW), &[]);
        assert_eq!(keys.open(SECRET, BINDING).unwrap(), SECRET);
        assert!(!keys.is_current(SECRET));
        let none = Keyring::default();
        assert_eq!(none.seal(SECRET, BINDING), SECRET);
        assert!(none.is_current(SECRET));
    }

    #[test]
    fn main_keys_must_be_32_bytes_of_base64() {
        let generated = generate_main_key();
        assert_eq!(generated.len(), 44);
        assert!(parse_main_key(&generated).is_ok());
        assert!(parse_main_key(generated.trim_end_matches('=')).is_ok());
        let short = STANDARD.encode([1u8; 16]);
        assert!(parse_main_key(&short).unwrap_err().contains("16 bytes"));
        assert!(
            parse_main_key("not base64!")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(parse_main_key("").is_err());
    }
}
