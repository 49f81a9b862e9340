//! User-chosen names: uids, event type names, channels, event ids and feature flags.
//!
//! All of them share the contract's shape: 1 to N characters from `[a-zA-Z0-9-_.]`.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long (got {len})")]
    TooLong { max: usize, len: usize },
    #[error("may only contain letters, digits, '-', '_' and '.' (found {found:?})")]
    InvalidChar { found: char },
}

fn check(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    let len = s.chars().count();
    if len > max {
        return Err(NameError::TooLong { max, len });
    }
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(found) => Err(NameError::InvalidChar { found }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$meta:meta])* $name:ident, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Result<Self, NameError> {
                check(s, $max)?;
                Ok(Self(s.to_owned()))
            }

            /// Wraps a value read back from the store, which only holds parsed values.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// An identifier chosen by the API user for an application or endpoint, usable wherever
    /// the generated id is.
    Uid,
    256
);
name_type!(
    /// The name of an event type, such as `invoice.paid`.
    EventTypeName,
    256
);
name_type!(
    /// A channel: an extra dimension to filter which endpoints receive a message.
    Channel,
    128
);
name_type!(
    /// The producer's own id for a message; unique per application.
    EventId,
    256
);
name_type!(
    /// The name of an entity type whose snapshots hookd compares, such as `product`.
    EntityTypeName,
    256
);
name_type!(
    /// The producer's key of one entity of a type, such as a SKU.
    EntityKey,
    256
);
name_type!(
    /// A feature flag gating who sees an event type.
    FeatureFlag,
    256
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_contract_alphabet() {
        assert!(EventTypeName::parse("invoice.paid-v2_beta").is_ok());
        assert!(Uid::parse("A").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(Uid::parse(""), Err(NameError::Empty));
        assert_eq!(
            Channel::parse(&"c".repeat(129)),
            Err(NameError::TooLong { max: 128, len: 129 })
        );
        assert!(Channel::parse(&"c".repeat(128)).is_ok());
        assert_eq!(
            EventTypeName::parse("user signup"),
            Err(NameError::InvalidChar { found: ' ' })
        );
        assert_eq!(
            EventTypeName::parse("ünïcode"),
            Err(NameError::InvalidChar { found: 'ü' })
        );
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(s in "[a-zA-Z0-9._-]{1,256}") {
            let name = EventTypeName::parse(&s).unwrap();
            prop_assert_eq!(name.as_str(), s.as_str());
        }

        #[test]
        fn any_other_character_is_rejected(
            prefix in "[a-z]{0,5}",
            bad in "[^a-zA-Z0-9._-]",
            suffix in "[a-z]{0,5}",
        ) {
            let s = format!("{prefix}{bad}{suffix}");
            let is_invalid_char = matches!(Uid::parse(&s), Err(NameError::InvalidChar { .. }));
            prop_assert!(is_invalid_char);
        }
    }
}
