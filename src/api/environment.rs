//! `/api/v1/environment/export` and `/import`, the Svix SDK's environment configuration
//! (event types and settings), and `/api/v1/hookd/reload`, which applies the declarative
//! file `hookd serve --apply` was given.
//!
//! hookd has no environment settings and no connectors (transformation templates): export
//! gives `settings: null` and `connectors: []`, and import refuses non-empty ones with a 422
//! naming the field rather than dropping them. Import adds and updates event types and
//! deletes nothing, as on Svix. Every API token is an admin token in hookd, so these routes
//! take any valid token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::event_types::{self, EventTypeIn, EventTypeOut};
use super::extract::JsonBody;
use crate::domain::EventTypeName;
use crate::domain::time::now;
use crate::store::{Cursor, Order, PageQuery};

/// Event types read per page while exporting.
const EXPORT_PAGE: usize = 250;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentOut {
    /// The format's version: 1.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    /// Every event type, archived ones included.
    pub event_types: Vec<EventTypeOut>,
    /// hookd has no environment settings: always null.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
    /// hookd has no connectors: always empty.
    #[schema(value_type = Vec<Object>)]
    pub connectors: Vec<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentIn {
    /// Created, or replaced when they exist (un-archived unless `archived` says otherwise).
    pub event_types: Option<Vec<EventTypeIn>>,
    /// hookd has no environment settings: absent, null or `{}`; anything else is a 422.
    #[schema(schema_with = nothing_in_object)]
    pub settings: Option<Map<String, Value>>,
    /// hookd has no connectors: absent, null or `[]`; anything else is a 422.
    #[schema(schema_with = nothing_in_array)]
    pub connectors: Option<Vec<Value>>,
}

/// `settings` as the document states it: null or an empty object.
fn nothing_in_object() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(0))
        .description(Some(
            "hookd has no environment settings: absent, null or {}; anything else is a 422.",
        ))
        .build()
}

/// `connectors` as the document states it: null or an empty list.
fn nothing_in_array() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ObjectBuilder::new())
        .max_items(Some(0))
        .description(Some(
            "hookd has no connectors: absent, null or []; anything else is a 422.",
        ))
        .build()
}

/// Downloads the event types (and the settings and connectors hookd does not have).
#[utoipa::path(post, operation_id = "v1.environment.export", path = "/api/v1/environment/export", tag = "Environment",
    responses((status = 200, body = EnvironmentOut)))]
pub async fn export(State(state): State<ApiState>) -> Result<Json<EnvironmentOut>, ApiError> {
    let mut event_types = Vec::new();
    let mut cursor = Cursor::Start;
    loop {
        let page = PageQuery {
            limit: EXPORT_PAGE,
            cursor,
            order: Order::Ascending,
        };
        let rows = state.store.list_event_types(&page, true).await?;
        let last = rows.last().map(|et| et.name.to_string());
        let full = rows.len() >= EXPORT_PAGE;
        event_types.extend(rows.into_iter().map(EventTypeOut::from));
        match last {
            Some(last) if full => cursor = Cursor::After(last),
            _ => break,
        }
    }
    Ok(Json(EnvironmentOut {
        version: 1,
        created_at: now(),
        event_types,
        settings: None,
        connectors: Vec::new(),
    }))
}

/// Creates or replaces the event types given; deletes nothing. Every event type is checked
/// before the first is written.
#[utoipa::path(post, operation_id = "v1.environment.import", path = "/api/v1/environment/import", tag = "Environment",
    request_body = EnvironmentIn, responses((status = 204)))]
pub async fn import(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<EnvironmentIn>,
) -> Result<StatusCode, ApiError> {
    if input.settings.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            &["body", "settings"],
            "hookd has no environment settings; leave settings out, null or {}",
        ));
    }
    if input.connectors.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::invalid(
            &["body", "connectors"],
            "hookd has no connectors (transformation templates); leave connectors out, null or []",
        ));
    }
    // By name: an event type given twice is written once, as the last one says (as two
    // upserts in a row would leave it).
    let mut checked: Vec<(crate::domain::EventType, bool)> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, et) in input
        .event_types
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let index = i.to_string();
        let (name, fields) = et.split();
        let name = EventTypeName::parse(&name).map_err(|e| {
            ApiError::invalid(&["body", "eventTypes", &index, "name"], e.to_string())
        })?;
        let at = match seen.get(&name) {
            Some(&at) => at,
            None => {
                let existing = state.store.get_event_type(&name).await?;
                let is_new = existing.is_none();
                seen.insert(name.clone(), checked.len());
                checked.push((existing.unwrap_or_else(|| event_types::blank(name)), is_new));
                checked.len() - 1
            }
        };
        let et = &mut checked[at].0;
        event_types::replace(&state, et, fields).map_err(|e| under_event_type(e, &index))?;
        et.updated_at = now();
    }
    for (et, is_new) in checked {
        if is_new {
            state.store.insert_event_type(&et).await?;
        } else {
            state.store.update_event_type(&et).await?;
        }
        event_types::changed(&state, &et.name);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// An event type's 422 as the import's: `["body", "schemas", …]` becomes
/// `["body", "eventTypes", "2", "schemas", …]`.
fn under_event_type(error: ApiError, index: &str) -> ApiError {
    match error {
        ApiError::Validation(items) => ApiError::Validation(
            items
                .into_iter()
                .map(|mut item| {
                    if item.loc.first().map(String::as_str) == Some("body") {
                        item.loc
                            .splice(1..1, ["eventTypes".to_owned(), index.to_owned()]);
                    }
                    item
                })
                .collect(),
        ),
        other => other,
    }
}

/// What `POST /api/v1/hookd/reload` runs: the declarative file applied again.
#[async_trait::async_trait]
pub trait Reload: Send + Sync {
    /// The changes made (as JSON), or why nothing or not everything was applied.
    async fn reload(&self) -> Result<Value, ReloadError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid: nothing was applied.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The API refused a change part way, or another apply is running.
    #[error("{0}")]
    Refused(String),
}

/// hookd: applies the declarative file given to `hookd serve --apply` again, as SIGHUP does,
/// and answers the changes made. An invalid file is a 422 listing every error with its line
/// (nothing applied); a change the API refuses part way is a 409 saying what was applied.
#[utoipa::path(post, operation_id = "v1.hookd.reload", path = "/api/v1/hookd/reload", tag = "hookd",
    responses((status = 200, body = Object)))]
pub async fn reload(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let Some(reloader) = state.reload.clone() else {
        return Err(ApiError::Conflict(
            "hookd was started without --apply: there is no declarative file to reload".into(),
        ));
    };
    match reloader.reload().await {
        Ok(summary) => Ok(Json(summary)),
        Err(ReloadError::Invalid(errors)) => Err(ApiError::Validation(
            errors
                .iter()
                .map(|e| super::error::ValidationItem::new(&["file"], e.clone(), "value_error"))
                .collect(),
        )),
        Err(ReloadError::Refused(why)) => Err(ApiError::Conflict(why)),
    }
}
