//! Secrets at rest, as the store sees them: the values it keeps that are credentials
//! (endpoint secrets, current and in their rotation grace period, and endpoint headers) are
//! written through a [`SecretsAtRest`] and read back through it.
//!
//! A stored value is either plaintext (what hookd wrote before it had a main key, or
//! without one) or sealed: `enc:v1:<key id>:<base64 of nonce and ciphertext>`. Plaintext
//! values never start with `enc:` (secrets start with `whsec_` or `whsk_`, header maps with
//! `{`, lists of previous secrets with `[`), so the two cannot be confused. The cipher
//! itself is the signing module's (`signing::at_rest`); the store only knows this
//! interface, and [`Plaintext`] for a store opened without a main key.

use std::borrow::Cow;

use thiserror::Error;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:";

/// Seals and opens the credential values the store keeps.
///
/// `binding` names where the value lives (`endpoint.secret:ep_…`): it is authenticated with
/// the value, so a sealed value copied into another row or column does not open there.
pub trait SecretsAtRest: Send + Sync {
    /// The text to store for `plaintext`: sealed under the current main key, or the
    /// plaintext itself when there is none.
    fn seal(&self, plaintext: &str, binding: &str) -> String;

    /// The plaintext of a stored value: plaintext as is, a sealed value decrypted with the
    /// main key its prefix names.
    fn open<'a>(&self, stored: &'a str, binding: &str) -> Result<Cow<'a, str>, OpenError>;

    /// Whether `stored` is already what [`SecretsAtRest::seal`] writes now (sealed under
    /// the current key), so that rotating the main key need not rewrite it.
    fn is_current(&self, stored: &str) -> bool;
}

/// Why a stored value cannot be read. The messages name the main key by its id, never the
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error(
        "encrypted under main key {0}, which this node does not have (set it as main_key or \
         in previous_main_keys)"
    )]
    UnknownKey(String),
    #[error("does not decrypt under main key {0}: it was altered, or copied from another row")]
    Rejected(String),
    #[error("is not an encrypted value this version of hookd can read ({0})")]
    Malformed(&'static str),
}

/// The key id of a sealed value (`enc:v1:<key id>:…`), or `None` for plaintext.
pub fn sealed_key_id(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(SEALED_PREFIX)?;
    let mut parts = rest.splitn(3, ':');
    let _version = parts.next()?;
    parts.next()
}

/// No main key: values are stored as they are. A sealed value cannot be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plaintext;

impl SecretsAtRest for Plaintext {
    fn seal(&self, plaintext: &str, _: &str) -> String {
        plaintext.to_owned()
    }

    fn open<'a>(&self, stored: &'a str, _: &str) -> Result<Cow<'a, str>, OpenError> {
        match sealed_key_id(stored) {
            None if !stored.starts_with(SEALED_PREFIX) => Ok(Cow::Borrowed(stored)),
            None => Err(OpenError::Malformed("no key id")),
            Some(id) => Err(OpenError::UnknownKey(id.to_owned())),
        }
    }

    fn is_current(&self, stored: &str) -> bool {
        !stored.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_reads_plaintext_and_refuses_sealed_values() {
        assert_eq!(Plaintext.open("whsec_abc", "b").unwrap(), "whsec_abc");
        assert_eq!(
            Plaintext.open("enc:v1:0a1b2c3d:AAAA", "b"),
            Err(OpenError::UnknownKey("0a1b2c3d".into()))
        );
        assert_eq!(sealed_key_id("enc:v1:0a1b2c3d:AAAA"), Some("0a1b2c3d"));
        assert_eq!(sealed_key_id("{\"enc:v1:x:y\": \"\"}"), None);
    }
}
