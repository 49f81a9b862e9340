//! Prefixed, time-sortable ids: `app_`, `ep_`, `msg_`, `atmpt_`, `qtask_`, `mon_`, `tok_`
//! followed by a ULID.
//!
//! ULIDs sort by creation time (millisecond resolution). Ids are drawn from one monotonic
//! generator per process, so two ids made one after the other in this process always sort in
//! that order, even within the same millisecond. The store relies on this: it assigns ids
//! while it holds the write lock, which makes id order equal commit order, and that is what
//! lets keyset pagination visit every item exactly once while new items keep arriving.

use std::fmt;
use std::sync::{LazyLock, Mutex};

use ulid::{Generator, Ulid};

static GENERATOR: LazyLock<Mutex<Generator>> = LazyLock::new(|| Mutex::new(Generator::new()));

fn next_ulid() -> Ulid {
    // A poisoned lock only means another thread panicked while holding it; the generator's
    // state is a timestamp and a counter, still valid.
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    // `generate` fails only when 2^80 ids were made in one millisecond; fall back to a fresh
    // random ULID rather than panic.
    generator.generate().unwrap_or_else(|_| Ulid::new())
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id, later in sort order than every id this process made before.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, next_ulid()))
            }

            /// A new id that sorts after `last`, the greatest id of its kind already stored:
            /// [`Self::generate`] bumped past `last` when `last` was made by another process
            /// (a clock ahead of ours, the same millisecond). Called under the store's lock
            /// for the list it goes into, it keeps id order equal to commit order across
            /// processes.
            pub fn generate_after(last: Option<&str>) -> Self {
                let next = next_ulid();
                let previous = last
                    .and_then(|l| l.strip_prefix($prefix))
                    .and_then(|u| Ulid::from_string(u).ok());
                let ulid = match previous {
                    Some(prev) if next <= prev => prev.increment().unwrap_or(next),
                    _ => next,
                };
                Self(format!("{}{}", $prefix, ulid))
            }

            /// The id if `s` has exactly the shape of one: the prefix and a valid ULID.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                if rest.len() != ulid::ULID_LEN || Ulid::from_string(rest).is_err() {
                    return None;
                }
                // Crockford base32 decodes lowercase too; keep the canonical uppercase form
                // so that equal ids compare equal as strings in the store.
                Some(Self(format!("{}{}", $prefix, rest.to_ascii_uppercase())))
            }

            /// Wraps an id read back from the store, which only ever holds ids made here.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
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

prefixed_id!(
    /// Identifies an application: one customer of the product that sends webhooks.
    AppId,
    "app_"
);
prefixed_id!(
    /// Identifies an endpoint: a URL an application's messages are delivered to.
    EndpointId,
    "ep_"
);
prefixed_id!(
    /// Identifies a message; also sent as `webhook-id` on every delivery of it.
    MessageId,
    "msg_"
);
prefixed_id!(
    /// Identifies one delivery attempt of a message to an endpoint.
    AttemptId,
    "atmpt_"
);
prefixed_id!(
    /// Identifies a background task (the contract's `QueueBackgroundTask` id).
    TaskId,
    "qtask_"
);
prefixed_id!(
    /// Identifies a freshness monitor.
    MonitorId,
    "mon_"
);
prefixed_id!(
    /// Identifies an ingest source (`crate::ingest`).
    SourceId,
    "src_"
);
prefixed_id!(
    /// Identifies one request an ingest source received (its log entry).
    IngestLogId,
    "log_"
);
prefixed_id!(
    /// Identifies a stored API token (never the token itself, which is only hashed).
    TokenId,
    "tok_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_have_prefix_and_parse_back() {
        let id = MessageId::generate();
        assert!(id.as_str().starts_with("msg_"));
        assert_eq!(MessageId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_sort_in_generation_order() {
        let ids: Vec<AppId> = (0..10_000).map(|_| AppId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_made_after_a_later_id_sort_after_it() {
        // An id stored by a process whose clock runs an hour ahead.
        let ahead = Ulid::from_parts(Ulid::new().timestamp_ms() + 3_600_000, 7);
        let last = format!("msg_{ahead}");
        let next = MessageId::generate_after(Some(&last));
        assert!(next.as_str() > last.as_str());
        assert_eq!(MessageId::parse(next.as_str()), Some(next.clone()));
        let fresh = MessageId::generate_after(Some("msg_00000000000000000000000000"));
        assert!(
            fresh.as_str() < last.as_str(),
            "an old `last` leaves the clock in charge"
        );
        assert!(MessageId::generate_after(None).as_str().starts_with("msg_"));
    }

    #[test]
    fn wrong_prefix_or_shape_is_not_an_id() {
        let ep = EndpointId::generate();
        assert_eq!(AppId::parse(ep.as_str()), None);
        assert_eq!(AppId::parse("app_"), None);
        assert_eq!(AppId::parse("app_01ARZ3NDEKTSV4RRFFQ69G5FA"), None);
        assert_eq!(AppId::parse("app_01ARZ3NDEKTSV4RRFFQ69G5FAVX"), None);
        assert_eq!(AppId::parse("my-app"), None);
    }

    #[test]
    fn lowercase_ids_are_normalised() {
        let id = AppId::generate();
        let lower = id.as_str().to_ascii_lowercase().replacen("APP_", "app_", 1);
        assert_eq!(AppId::parse(&lower), Some(id));
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = AppId::parse(&s);
            let _ = AttemptId::parse(&s);
        }
    }
}
