//! Payload validation at ingest: the compiled schema of each event type that validates,
//! cached per node.
//!
//! A message is checked when its event type exists, has `schemas`, and validates (its
//! `validatePayloads`, or the server's `validate_payloads` for every type), against the
//! latest version's schema (see [`crate::domain::payload_schema`]). A payload that fails is
//! a 422 with one problem per place, `loc` `["body", "payload", …pointer segments]`.
//!
//! Each event type is read once and its schema compiled once per [`FRESH_FOR`] on each
//! node, whatever the message rate: a change made through this node applies to the next
//! message; one made through another node (PostgreSQL) within [`FRESH_FOR`]. The cache
//! holds at most [`MAX_ENTRIES`] event types (names come from clients); when full it is
//! emptied and fills again. A schema stored before schemas were checked on save and that
//! does not compile is not applied (the message is accepted) and logged.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::error::{ApiError, ValidationItem};
use crate::domain::payload_schema::PayloadSchema;
use crate::domain::{EventTypeName, Payload};
use crate::store::{Store, StoreError};

/// How long a read of an event type is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// The most event types cached at once.
const MAX_ENTRIES: usize = 10_000;

pub struct PayloadSchemas {
    /// The server's `validate_payloads`: every event type with a schema validates.
    validate_all: bool,
    entries: RwLock<HashMap<EventTypeName, Entry>>,
}

#[derive(Clone)]
struct Entry {
    read_at: Instant,
    /// `None`: messages of this type are not checked.
    schema: Option<Arc<PayloadSchema>>,
}

impl PayloadSchemas {
    pub fn new(validate_all: bool) -> Self {
        Self {
            validate_all,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Checks `payload` against its event type's schema, if it validates.
    pub async fn check(
        &self,
        store: &dyn Store,
        event_type: &EventTypeName,
        payload: &Payload,
        loc: &[&str],
    ) -> Result<(), ApiError> {
        let Some(schema) = self.schema_for(store, event_type).await? else {
            return Ok(());
        };
        let problems = schema.check(payload);
        if problems.is_empty() {
            return Ok(());
        }
        Err(ApiError::Validation(
            problems
                .into_iter()
                .map(|p| {
                    let mut at: Vec<&str> = loc.to_vec();
                    at.push("payload");
                    at.extend(p.pointer.split('/').skip(1));
                    let where_ = if p.pointer.is_empty() {
                        "the payload".to_owned()
                    } else {
                        format!("payload{}", p.pointer)
                    };
                    let msg = format!(
                        "{where_} does not match event type {event_type}'s schema: {}",
                        p.message
                    );
                    ValidationItem::new(&at, msg, "value_error.jsonschema")
                })
                .collect(),
        ))
    }

    /// Forgets what this node knows of `event_type`, after a change made through it.
    pub fn forget(&self, event_type: &EventTypeName) {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(event_type);
    }

    async fn schema_for(
        &self,
        store: &dyn Store,
        name: &EventTypeName,
    ) -> Result<Option<Arc<PayloadSchema>>, StoreError> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .filter(|e| e.read_at.elapsed() < FRESH_FOR)
            .cloned();
        if let Some(entry) = cached {
            return Ok(entry.schema);
        }
        let read_at = Instant::now();
        let event_type = store.get_event_type(name).await?;
        let schema = event_type
            .filter(|et| self.validate_all || et.validate_payloads)
            .and_then(|et| {
                let compiled = PayloadSchema::latest(et.schemas.as_ref()?)?;
                compiled
                    .map_err(|e| {
                        tracing::warn!(event_type = %name, error = %e,
                            "the event type's stored schema does not compile; payloads are not checked against it");
                    })
                    .ok()
            })
            .map(Arc::new);
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            name.clone(),
            Entry {
                read_at,
                schema: schema.clone(),
            },
        );
        Ok(schema)
    }
}
