//! Change detection (hookd's own routes): entity types and their rules
//! (`/api/v1/entity-type`), and entities' snapshots, states and histories
//! (`/api/v1/app/{app_id}/entity/{entity_type}/{key}`). See [`crate::entities`] for how a
//! snapshot's events become messages, and [`crate::domain::entity`] for what each rule
//! compares.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiState;
use super::applications;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::openapi::strings::{EntityNameString, PathKeyString};
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::entity::{self, Condition, EntityType, EntityVersion, FiredEvent, Rule};
use crate::domain::time::now;
use crate::domain::{EntityKey, EntityTypeName, EventTypeName};
use crate::store::{Order, Snapshot};

/// Longest description of an entity type, in characters.
const MAX_DESCRIPTION: usize = 1000;

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleWhen {
    /// The field's value differs from the previous state's.
    Changed,
    /// Both values are numbers and differ by more than `minAbs` or `minPct` percent of the
    /// old value (from an old value of 0, any change exceeds every percentage).
    Threshold,
    /// The value differs, the old one equals `from` (if given) and the new one `to` (if
    /// given).
    Transition,
    /// The key's first snapshot (`old` is null).
    Created,
}

/// A JSON value that may be `null`: absent is `None`, `null` is `Some(Value::Null)`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// One rule of an entity type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    /// The event type of the messages it creates, such as `price.changed`.
    #[schema(value_type = super::openapi::strings::EventTypeNameString)]
    pub event_type: String,
    /// The field it watches, as a JSON pointer (`/price`, `/stock/status`; `""` is the whole
    /// state). Required but for `created` rules (default `""`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub when: RuleWhen,
    /// `threshold`: fires when `|new - old|` is greater. At least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_abs: Option<f64>,
    /// `threshold`: fires when `|new - old| / |old| * 100` is greater. At least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_pct: Option<f64>,
    /// `transition`: the old value it fires from (any JSON, `null` for a missing field).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<Value>,
    /// `transition`: the new value it fires to.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<Value>,
}

/// An entity type to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityTypeIn {
    /// Applied in order to every snapshot of the type's entities, in every application.
    #[schema(max_items = 100)]
    pub rules: Vec<EntityRule>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityTypeOut {
    pub name: String,
    pub description: Option<String>,
    pub rules: Vec<EntityRule>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event a snapshot fired (and the message it became carries, with `key`,
/// `entityType`, `observedAt` and `entity`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityEventOut {
    pub event_type: String,
    pub field: String,
    pub old: Value,
    pub new: Value,
    /// `(new - old) / |old| * 100` when both are numbers and old is not 0; else null.
    pub change_pct: Option<f64>,
}

/// What a snapshot did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOut {
    pub key: String,
    pub entity_type: String,
    /// The key's version now (unchanged when `changed` is false).
    pub version: i64,
    /// False when the state equals the current one: nothing was written.
    pub changed: bool,
    /// The events fired, each a message of the application.
    pub events: Vec<EntityEventOut>,
    /// When the current version was observed.
    pub observed_at: DateTime<Utc>,
}

/// An entity's current state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityOut {
    pub key: String,
    pub entity_type: String,
    pub version: i64,
    pub state: Map<String, Value>,
    pub observed_at: DateTime<Utc>,
}

/// One version of an entity's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityVersionOut {
    pub version: i64,
    pub state: Map<String, Value>,
    pub observed_at: DateTime<Utc>,
    pub events: Vec<EntityEventOut>,
}

fn event_out(e: FiredEvent) -> EntityEventOut {
    EntityEventOut {
        event_type: e.event_type.to_string(),
        field: e.field,
        old: e.old,
        new: e.new,
        change_pct: e.change_pct,
    }
}

fn rule_out(r: &Rule) -> EntityRule {
    let (mut min_abs, mut min_pct, mut from, mut to) = (None, None, None, None);
    let when = match &r.when {
        Condition::Changed => RuleWhen::Changed,
        Condition::Created => RuleWhen::Created,
        Condition::Threshold {
            min_abs: a,
            min_pct: p,
        } => {
            (min_abs, min_pct) = (*a, *p);
            RuleWhen::Threshold
        }
        Condition::Transition { from: f, to: t } => {
            (from, to) = (f.clone(), t.clone());
            RuleWhen::Transition
        }
    };
    EntityRule {
        event_type: r.event_type.to_string(),
        field: Some(r.field.clone()),
        when,
        min_abs,
        min_pct,
        from,
        to,
    }
}

impl From<EntityType> for EntityTypeOut {
    fn from(t: EntityType) -> Self {
        Self {
            name: t.name.to_string(),
            description: t.description,
            rules: t.rules.iter().map(rule_out).collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

fn rule_error(i: usize, field: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(&["body", "rules", &i.to_string(), field], msg)
}

/// The rule at `i`, checked.
fn rule(i: usize, r: EntityRule) -> Result<Rule, ApiError> {
    let event_type = EventTypeName::parse(&r.event_type)
        .map_err(|e| rule_error(i, "eventType", e.to_string()))?;
    let field = match (r.field, r.when) {
        (Some(f), _) => f,
        (None, RuleWhen::Created) => String::new(),
        (None, _) => return Err(rule_error(i, "field", "field required")),
    };
    if !entity::valid_pointer(&field) {
        return Err(rule_error(
            i,
            "field",
            "must be a JSON pointer, such as /price or /stock/status (\"\" is the whole state)",
        ));
    }
    for (name, value) in [("minAbs", r.min_abs), ("minPct", r.min_pct)] {
        match value {
            Some(_) if r.when != RuleWhen::Threshold => {
                return Err(rule_error(i, name, "only threshold rules take it"));
            }
            Some(v) if v < 0.0 => return Err(rule_error(i, name, "must be at least 0")),
            _ => {}
        }
    }
    for (name, value) in [("from", &r.from), ("to", &r.to)] {
        if value.is_some() && r.when != RuleWhen::Transition {
            return Err(rule_error(i, name, "only transition rules take it"));
        }
    }
    let when = match r.when {
        RuleWhen::Changed => Condition::Changed,
        RuleWhen::Created => Condition::Created,
        RuleWhen::Threshold if r.min_abs.is_none() && r.min_pct.is_none() => {
            return Err(rule_error(
                i,
                "minPct",
                "a threshold rule needs minAbs or minPct",
            ));
        }
        RuleWhen::Threshold => Condition::Threshold {
            min_abs: r.min_abs,
            min_pct: r.min_pct,
        },
        RuleWhen::Transition => Condition::Transition {
            from: r.from,
            to: r.to,
        },
    };
    Ok(Rule {
        event_type,
        field,
        when,
    })
}

fn path_error(param: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&["path", param], e.to_string())
}

fn type_name(s: &str) -> Result<EntityTypeName, ApiError> {
    EntityTypeName::parse(s).map_err(|e| path_error("entity_type", e))
}

fn entity_key(s: &str) -> Result<EntityKey, ApiError> {
    EntityKey::parse(s).map_err(|e| path_error("key", e))
}

#[utoipa::path(get, operation_id = "hookd.entity-type.list", path = "/api/v1/entity-type", tag = "Entity",
    params(ListParams),
    responses((status = 200, body = ListResponse<EntityTypeOut>)))]
pub async fn list_types(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<EntityTypeOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = state.store.list_entity_types(&page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |t| t.name.to_string(),
        EntityTypeOut::from,
    )))
}

#[utoipa::path(get, operation_id = "hookd.entity-type.get", path = "/api/v1/entity-type/{entity_type}", tag = "Entity",
    params(("entity_type" = EntityNameString, Path)),
    responses((status = 200, body = EntityTypeOut)))]
pub async fn get_type(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<EntityTypeOut>, ApiError> {
    let found = state
        .store
        .get_entity_type(&type_name(&name)?)
        .await?
        .ok_or_else(|| ApiError::not_found("entity type"))?;
    Ok(Json(found.into()))
}

/// Creates or replaces the entity type's rules. They apply to the snapshots that follow,
/// not to states already stored.
#[utoipa::path(put, operation_id = "hookd.entity-type.put", path = "/api/v1/entity-type/{entity_type}", tag = "Entity",
    params(("entity_type" = EntityNameString, Path)),
    request_body = EntityTypeIn,
    responses((status = 200, body = EntityTypeOut)))]
pub async fn put_type(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(input): JsonBody<EntityTypeIn>,
) -> Result<Json<EntityTypeOut>, ApiError> {
    let name = type_name(&name)?;
    if input.rules.len() > entity::MAX_RULES {
        return Err(ApiError::invalid(
            &["body", "rules"],
            format!("may hold at most {} rules", entity::MAX_RULES),
        ));
    }
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::invalid(
            &["body", "description"],
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let rules = input
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let at = now();
    let stored = state
        .store
        .put_entity_type(EntityType {
            name,
            description: input.description,
            rules,
            created_at: at,
            updated_at: at,
        })
        .await?;
    Ok(Json(stored.into()))
}

/// Deletes the entity type's rules; its entities' states and histories stay.
#[utoipa::path(delete, operation_id = "hookd.entity-type.delete", path = "/api/v1/entity-type/{entity_type}", tag = "Entity",
    params(("entity_type" = EntityNameString, Path)),
    responses((status = 204)))]
pub async fn delete_type(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_entity_type(&type_name(&name)?).await? {
        return Err(ApiError::not_found("entity type"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sends an entity's current state (the body, a JSON object). If it differs from the stored
/// one, it becomes the next version and the type's rules are applied: each rule that fires
/// creates a message of the application (event type: the rule's), committed with the state.
/// The same state again changes nothing. Snapshots of one key are applied one at a time.
#[utoipa::path(put, operation_id = "hookd.entity.snapshot", path = "/api/v1/app/{app_id}/entity/{entity_type}/{key}", tag = "Entity",
    params(("app_id" = PathKeyString, Path), ("entity_type" = EntityNameString, Path), ("key" = EntityNameString, Path)),
    request_body(content = Object, description = "The entity's state: a JSON object."),
    responses((status = 200, body = SnapshotOut)))]
pub async fn put_snapshot(
    State(state): State<ApiState>,
    Path((app_id, entity_type, key)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Box<serde_json::value::RawValue>>,
) -> Result<Json<SnapshotOut>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let (entity_type, key) = (type_name(&entity_type)?, entity_key(&key)?);
    let entity_state = checked_state(&state, &body)?;
    let applied = state
        .snapshots
        .apply(Snapshot {
            app_id: app.id,
            entity_type,
            key,
            state: entity_state,
            // Set again by the writer, when its batch is formed.
            observed_at: now(),
        })
        .await?;
    if !applied.current.events.is_empty() {
        state.entities_written.notify_one();
    }
    let current = applied.current;
    Ok(Json(SnapshotOut {
        key: current.key.to_string(),
        entity_type: current.entity_type.to_string(),
        version: current.version,
        changed: applied.changed,
        events: current.events.into_iter().map(event_out).collect(),
        observed_at: current.observed_at,
    }))
}

/// A snapshot's state: a JSON object within `max_payload_bytes` (413 past it) and
/// `max_payload_depth`, the limits of a message's payload. (The events it fires carry the
/// state, and old and new values, so their payloads can be a few times larger.)
fn checked_state(
    state: &ApiState,
    body: &serde_json::value::RawValue,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let limit = state.settings.max_payload_bytes;
    if body.get().len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the state is {} bytes; the limit is {limit} bytes (max_payload_bytes)",
            body.get().len()
        )));
    }
    let invalid = |msg: String| ApiError::invalid(&["body"], msg);
    crate::domain::Payload::parse(body, state.settings.max_payload_depth).map_err(|e| {
        invalid(match e {
            crate::domain::PayloadError::NotAnObject => "the state must be a JSON object".into(),
            other => format!("the state {other}"),
        })
    })?;
    serde_json::from_str(body.get()).map_err(|e| invalid(format!("the state is not JSON: {e}")))
}

#[utoipa::path(get, operation_id = "hookd.entity.get", path = "/api/v1/app/{app_id}/entity/{entity_type}/{key}", tag = "Entity",
    params(("app_id" = PathKeyString, Path), ("entity_type" = EntityNameString, Path), ("key" = EntityNameString, Path)),
    responses((status = 200, body = EntityOut)))]
pub async fn get_entity(
    State(state): State<ApiState>,
    Path((app_id, entity_type, key)): Path<(String, String, String)>,
) -> Result<Json<EntityOut>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let (entity_type, key) = (type_name(&entity_type)?, entity_key(&key)?);
    let found = state
        .store
        .get_entity(&app.id, &entity_type, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("entity"))?;
    Ok(Json(EntityOut {
        key: found.key.to_string(),
        entity_type: found.entity_type.to_string(),
        version: found.version,
        state: found.state,
        observed_at: found.observed_at,
    }))
}

fn version_out(v: EntityVersion) -> EntityVersionOut {
    EntityVersionOut {
        version: v.version,
        state: v.state,
        observed_at: v.observed_at,
        events: v.events.into_iter().map(event_out).collect(),
    }
}

/// The entity's versions, newest first by default; the iterator is a version number.
#[utoipa::path(get, operation_id = "hookd.entity.history", path = "/api/v1/app/{app_id}/entity/{entity_type}/{key}/history", tag = "Entity",
    params(("app_id" = PathKeyString, Path), ("entity_type" = EntityNameString, Path), ("key" = EntityNameString, Path), ListParams),
    responses((status = 200, body = ListResponse<EntityVersionOut>)))]
pub async fn list_history(
    State(state): State<ApiState>,
    Path((app_id, entity_type, key)): Path<(String, String, String)>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<EntityVersionOut>>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let (entity_type, key) = (type_name(&entity_type)?, entity_key(&key)?);
    if let Some(it) = params.iterator.as_deref().filter(|it| !it.is_empty()) {
        let digits = it.strip_prefix('-').unwrap_or(it);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 18 {
            return Err(ApiError::invalid(
                &["query", "iterator"],
                "must be an iterator this list gave",
            ));
        }
    }
    let page = params.page(Order::Descending)?;
    let rows = state
        .store
        .list_entity_history(&app.id, &entity_type, &key, &page)
        .await?;
    Ok(Json(list_response(
        rows,
        &page,
        |v| v.version.to_string(),
        version_out,
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_and_event_values_may_be_any_json_in_the_document() {
        let doc = serde_json::to_value(crate::api::openapi_document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let rule = &schemas["EntityRule"]["properties"];
        let event = &schemas["EntityEventOut"]["properties"];
        for any in [&rule["from"], &rule["to"], &event["old"], &event["new"]] {
            assert!(any.is_object() && any.get("type").is_none(), "{any}");
        }
        assert_eq!(rule["minPct"]["minimum"], 0.0);
    }
}
