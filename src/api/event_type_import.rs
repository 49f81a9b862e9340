//! `POST /api/v1/event-type/import/openapi`: event types from the webhooks of an OpenAPI
//! document (the Svix SDK's `event_type.import_openapi`).
//!
//! Each entry of the document's `webhooks` (OpenAPI 3.1) or `x-webhooks` becomes an event
//! type of that name: its description is the operation's `description` (else `summary`),
//! `deprecated` the operation's, its schema (version "1") the operation's
//! `application/json` request body schema, with references into the document
//! (`#/components/…`) written out in place, so the schema stands alone. `x-svix-group-name`
//! and `x-svix-feature-flags` on the operation set `groupName` and `featureFlags`.
//!
//! Everything is checked before anything is written: a name that is not an event type
//! name, a schema that does not compile, a reference that leads outside the document or
//! around in a circle: 422 naming the webhook, nothing written. Then each event type is
//! created, or updated (and unarchived) if it differs; `replaceAll` archives the event
//! types the document does not list. The writes are not one transaction: if the store
//! fails midway, the import can be sent again and converges. `dryRun` writes nothing and
//! answers what would change.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::extract::JsonBody;
use super::fields;
use crate::domain::payload_schema::PayloadSchema;
use crate::domain::time::now;
use crate::domain::{EventType, EventTypeName, FeatureFlag};
use crate::store::{Cursor, Order, PageQuery};

/// How deep references may be written out in one schema.
const MAX_REF_DEPTH: usize = 32;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeImportOpenApiIn {
    /// The OpenAPI document as a JSON object (or give `specRaw`; not both).
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Map<String, Value>>,
    /// The OpenAPI document as text: YAML or JSON.
    pub spec_raw: Option<String>,
    /// Answer what would change; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Archive the event types the document does not list.
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOut {
    pub data: EventTypeImportOpenApiOutData,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOutData {
    /// The event types created, updated, unarchived or archived (with `dryRun`: that would
    /// be).
    pub modified: Vec<String>,
    /// With `dryRun`: the event types the document defines, as they would be saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_modify: Option<Vec<EventTypeFromOpenApi>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFromOpenApi {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Map<String, Value>>,
    pub deprecated: bool,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
}

/// An event type as the document defines it, checked.
struct Imported {
    name: EventTypeName,
    description: String,
    schemas: Option<Map<String, Value>>,
    deprecated: bool,
    group_name: Option<String>,
    feature_flags: Option<Vec<FeatureFlag>>,
}

#[utoipa::path(post, operation_id = "v1.event-type.import-openapi", path = "/api/v1/event-type/import/openapi", tag = "Event Type",
    request_body = EventTypeImportOpenApiIn,
    responses((status = 200, body = EventTypeImportOpenApiOut)))]
pub async fn import(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<EventTypeImportOpenApiIn>,
) -> Result<Json<EventTypeImportOpenApiOut>, ApiError> {
    let spec = match (input.spec, input.spec_raw) {
        (Some(spec), None) => spec,
        (None, Some(raw)) => parse_raw(&raw)?,
        _ => {
            return Err(fields::body_error(
                "spec",
                "give the document as spec (a JSON object) or as specRaw (YAML or JSON text), exactly one of them",
            ));
        }
    };
    let imported = event_types_of(&Value::Object(spec))?;
    let mut modified = Vec::new();
    for new in &imported {
        let existing = state.store.get_event_type(&new.name).await?;
        let Some(saved) = apply(existing.as_ref(), new) else {
            continue;
        };
        modified.push(new.name.to_string());
        if input.dry_run {
            continue;
        }
        match existing {
            Some(_) => state.store.update_event_type(&saved).await?,
            None => state.store.insert_event_type(&saved).await?,
        }
        super::event_types::changed(&state, &saved.name);
    }
    if input.replace_all {
        let listed: BTreeSet<&EventTypeName> = imported.iter().map(|i| &i.name).collect();
        for mut et in unlisted(&state, &listed).await? {
            modified.push(et.name.to_string());
            if !input.dry_run {
                et.archived = true;
                et.updated_at = now();
                state.store.update_event_type(&et).await?;
                super::event_types::changed(&state, &et.name);
            }
        }
    }
    let to_modify = input
        .dry_run
        .then(|| imported.iter().map(EventTypeFromOpenApi::from).collect());
    Ok(Json(EventTypeImportOpenApiOut {
        data: EventTypeImportOpenApiOutData {
            modified,
            to_modify,
        },
    }))
}

/// `specRaw`: YAML, or JSON (which YAML 1.2 reads too).
fn parse_raw(raw: &str) -> Result<Map<String, Value>, ApiError> {
    let value = crate::declare::node::yaml_to_json(raw).map_err(|e| {
        fields::body_error(
            "specRaw",
            format!("is not YAML or JSON: line {}: {}", e.line, e.message),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(fields::body_error(
            "specRaw",
            "must be an OpenAPI document (an object)",
        )),
    }
}

/// The event types the document's webhooks define, every one checked.
fn event_types_of(spec: &Value) -> Result<Vec<Imported>, ApiError> {
    let webhooks = spec
        .get("webhooks")
        .or_else(|| spec.get("x-webhooks"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            fields::body_error(
                "spec",
                "has no webhooks: the event types are read from its `webhooks` (or `x-webhooks`) object",
            )
        })?;
    let mut problems = Vec::new();
    let mut imported = Vec::new();
    for (name, item) in webhooks {
        match imported_one(spec, name, item) {
            Ok(one) => imported.push(one),
            Err(e) => problems.push(super::error::ValidationItem::new(
                &["body", "spec", "webhooks", name],
                e,
                "value_error",
            )),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    Ok(imported)
}

fn imported_one(spec: &Value, name: &str, item: &Value) -> Result<Imported, String> {
    let name = EventTypeName::parse(name).map_err(|e| format!("is not an event type name: {e}"))?;
    let operation = ["post", "put", "patch", "get", "delete"]
        .iter()
        .find_map(|m| item.get(m))
        .ok_or("has no operation (post, put, …)")?;
    let text = |key: &str| operation.get(key).and_then(Value::as_str);
    let schema = operation
        .pointer("/requestBody/content/application~1json/schema")
        .map(|s| inline_refs(spec, s, 0))
        .transpose()?;
    if let Some(schema) = &schema {
        PayloadSchema::compile(schema).map_err(|e| format!("its request body schema {e}"))?;
    }
    let feature_flags = match operation.get("x-svix-feature-flags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(flags)) => Some(
            flags
                .iter()
                .map(|f| {
                    f.as_str()
                        .and_then(|f| FeatureFlag::parse(f).ok())
                        .ok_or_else(|| format!("x-svix-feature-flags: {f} is not a feature flag"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
        .filter(|f| !f.is_empty()),
        Some(_) => return Err("x-svix-feature-flags must be a list".into()),
    };
    Ok(Imported {
        name,
        description: text("description")
            .or(text("summary"))
            .unwrap_or_default()
            .to_owned(),
        schemas: schema.map(|s| Map::from_iter([("1".to_owned(), s)])),
        deprecated: operation
            .get("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        group_name: text("x-svix-group-name").map(str::to_owned),
        feature_flags,
    })
}

/// `schema` with every `$ref` into the document replaced by what it points at.
fn inline_refs(spec: &Value, schema: &Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_REF_DEPTH {
        return Err(format!(
            "its references nest more than {MAX_REF_DEPTH} deep (a reference cycle?)"
        ));
    }
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let target = reference
                    .strip_prefix('#')
                    .and_then(|pointer| spec.pointer(pointer).cloned())
                    .ok_or_else(|| {
                        format!("reference {reference} does not point into this document")
                    })?;
                return inline_refs(spec, &target, depth + 1);
            }
            map.iter()
                .map(|(k, v)| Ok((k.clone(), inline_refs(spec, v, depth)?)))
                .collect::<Result<Map<_, _>, String>>()
                .map(Value::Object)
        }
        Value::Array(items) => items
            .iter()
            .map(|v| inline_refs(spec, v, depth))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// The event type to save, or `None` when the stored one already is as the document says.
fn apply(existing: Option<&EventType>, new: &Imported) -> Option<EventType> {
    let mut et = existing
        .cloned()
        .unwrap_or_else(|| super::event_types::blank(new.name.clone()));
    let before = existing.cloned();
    et.description = new.description.clone();
    et.schemas = new.schemas.clone();
    et.deprecated = new.deprecated;
    et.group_name = new.group_name.clone();
    et.feature_flags = new.feature_flags.clone();
    et.archived = false;
    if before.as_ref() == Some(&et) {
        return None;
    }
    et.updated_at = now();
    Some(et)
}

/// The event types not archived and not in `listed`.
async fn unlisted(
    state: &ApiState,
    listed: &BTreeSet<&EventTypeName>,
) -> Result<Vec<EventType>, ApiError> {
    let mut found = Vec::new();
    let mut cursor = Cursor::Start;
    loop {
        let page = PageQuery {
            limit: 250,
            cursor,
            order: Order::Ascending,
        };
        let batch = state.store.list_event_types(&page, false).await?;
        let last = batch.last().map(|et| et.name.to_string());
        let full = batch.len() == 250;
        found.extend(batch.into_iter().filter(|et| !listed.contains(&et.name)));
        match last {
            Some(last) if full => cursor = Cursor::After(last),
            _ => return Ok(found),
        }
    }
}

impl From<&Imported> for EventTypeFromOpenApi {
    fn from(i: &Imported) -> Self {
        Self {
            name: i.name.to_string(),
            description: i.description.clone(),
            schemas: i.schemas.clone(),
            deprecated: i.deprecated,
            group_name: i.group_name.clone(),
            feature_flags: i
                .feature_flags
                .as_ref()
                .map(|f| f.iter().map(ToString::to_string).collect()),
        }
    }
}
