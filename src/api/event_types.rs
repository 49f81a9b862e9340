//! `/api/v1/event-type`: event types, shared by all applications.
//!
//! DELETE archives (hidden from lists unless `include_archived`, still readable); with
//! `expunge=true` it removes the event type. Creating an event type whose name is archived
//! replaces and un-archives it; creating one that is live is a 409.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, null_as_default, nullable};
use super::openapi::strings::{EventTypeNameString, FeatureFlagString};
use super::pagination::{ListParams, ListResponse, Ordering, limit, list_response};
use crate::domain::payload_schema;
use crate::domain::retry::whole;
use crate::domain::time::now;
use crate::domain::{EventType, EventTypeName, FeatureFlag, RetryPolicy, RetryPolicySpec};
use crate::store::{Order, StoreError};

type Schemas = Map<String, Value>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    #[schema(value_type = EventTypeNameString)]
    pub name: String,
    pub description: String,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub archived: bool,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub deprecated: bool,
    #[schema(value_type = Option<HashMap<String, Object>>)]
    pub schemas: Option<Schemas>,
    #[schema(value_type = Option<FeatureFlagString>)]
    pub feature_flag: Option<String>,
    #[schema(value_type = Option<Vec<FeatureFlagString>>)]
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// hookd: check each message's payload against the latest version of `schemas` at
    /// ingest (422 when it does not match). Absent or null: false (the server's
    /// `validate_payloads` turns it on for every event type).
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub validate_payloads: bool,
    /// hookd: the retry policy of this type's messages (README, "Retry policies"), unless
    /// their endpoint has one; absent: unchanged (none on creation), null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RetryPolicySpec>, nullable)]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
}

impl EventTypeIn {
    /// Splits off the name; the rest is what PUT takes. (Written out rather than
    /// `serde(flatten)`, which would hide the failing field's path from 422 errors.)
    pub(super) fn split(self) -> (String, EventTypeUpdate) {
        let fields = EventTypeUpdate {
            description: self.description,
            archived: self.archived,
            deprecated: self.deprecated,
            schemas: self.schemas,
            feature_flag: self.feature_flag,
            feature_flags: self.feature_flags,
            group_name: self.group_name,
            validate_payloads: self.validate_payloads,
            retry_policy: self.retry_policy,
        };
        (self.name, fields)
    }
}

/// The body of PUT: everything but the name, which is in the path.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeUpdate {
    pub description: String,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub archived: bool,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub deprecated: bool,
    /// JSON schemas of the payload by version, e.g. `{"1": {"type": "object"}}`.
    #[schema(value_type = Option<HashMap<String, Object>>)]
    pub schemas: Option<Schemas>,
    #[schema(value_type = Option<FeatureFlagString>)]
    pub feature_flag: Option<String>,
    #[schema(value_type = Option<Vec<FeatureFlagString>>)]
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// hookd: check payloads against the latest schema at ingest. Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub validate_payloads: bool,
    /// hookd: the retry policy of this type's messages (README, "Retry policies"), unless
    /// their endpoint has one; absent: unchanged (none on creation), null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RetryPolicySpec>, nullable)]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<HashMap<String, Object>>)]
    pub schemas: Option<Option<Schemas>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<FeatureFlagString>)]
    pub feature_flag: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<FeatureFlagString>>)]
    pub feature_flags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub group_name: Option<Option<String>>,
    /// hookd: check payloads against the latest schema at ingest.
    pub validate_payloads: Option<bool>,
    /// hookd: the retry policy of this type's messages (README, "Retry policies"), unless
    /// their endpoint has one; absent: unchanged, null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RetryPolicySpec>, nullable)]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    #[schema(value_type = Option<HashMap<String, Object>>)]
    pub schemas: Option<Schemas>,
    /// The first of `featureFlags`, for clients of the older single-flag field.
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// hookd: whether payloads are checked against the latest schema at ingest (this event
    /// type's setting; the server's `validate_payloads` may check them anyway).
    pub validate_payloads: bool,
    /// hookd: the retry policy of this type's messages, as given; null: none.
    pub retry_policy: Option<RetryPolicySpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventTypeOut {
    pub(super) fn new(et: EventType, with_schemas: bool) -> Self {
        let flags: Option<Vec<String>> = et
            .feature_flags
            .map(|f| f.into_iter().map(|f| f.to_string()).collect());
        Self {
            name: et.name.to_string(),
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            schemas: et.schemas.filter(|_| with_schemas),
            feature_flag: flags.as_ref().and_then(|f| f.first().cloned()),
            feature_flags: flags,
            group_name: et.group_name,
            validate_payloads: et.validate_payloads,
            retry_policy: et.retry_policy.map(|p| p.spec()),
            created_at: et.created_at,
            updated_at: et.updated_at,
        }
    }
}

impl From<EventType> for EventTypeOut {
    fn from(et: EventType) -> Self {
        Self::new(et, true)
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypeListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
    /// Include archived event types.
    #[serde(default)]
    pub include_archived: bool,
    /// Include the schemas (default true).
    pub with_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Remove the event type entirely instead of archiving it.
    #[serde(default)]
    pub expunge: bool,
}

fn feature_flags(
    single: Option<String>,
    many: Option<Vec<String>>,
) -> Result<Option<Vec<FeatureFlag>>, ApiError> {
    let Some(flags) = many
        .or_else(|| single.map(|f| vec![f]))
        .filter(|f| !f.is_empty())
    else {
        return Ok(None);
    };
    flags
        .iter()
        .map(|f| FeatureFlag::parse(f).map_err(|e| fields::body_error("featureFlags", e)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Each version's schema must be a valid JSON Schema (an object), compiled as ingest would
/// compile it, so a schema that could not check payloads is refused here.
fn schemas(input: Option<Schemas>) -> Result<Option<Schemas>, ApiError> {
    if let Some(schemas) = &input {
        payload_schema::check_all(schemas)
            .map_err(|(version, e)| ApiError::invalid(&["body", "schemas", &version], e))?;
    }
    Ok(input)
}

/// Applies a full update to `et` (its retry policy only if the body names it).
pub(super) fn replace(
    state: &ApiState,
    et: &mut EventType,
    input: EventTypeUpdate,
) -> Result<(), ApiError> {
    if let Some(policy) = input.retry_policy {
        et.retry_policy = fields::retry_policy(state, policy, "retryPolicy")?;
    }
    et.feature_flags = feature_flags(input.feature_flag, input.feature_flags)?;
    et.description = input.description;
    et.archived = input.archived;
    et.deprecated = input.deprecated;
    et.schemas = schemas(input.schemas)?;
    et.group_name = input.group_name;
    et.validate_payloads = input.validate_payloads;
    Ok(())
}

pub(super) fn blank(name: EventTypeName) -> EventType {
    let now = now();
    EventType {
        name,
        description: String::new(),
        archived: false,
        deprecated: false,
        feature_flags: None,
        group_name: None,
        schemas: None,
        validate_payloads: false,
        retry_policy: None,
        created_at: now,
        updated_at: now,
    }
}

async fn find(state: &ApiState, name: &str) -> Result<EventType, ApiError> {
    let name = fields::event_type_path(name)?;
    state
        .store
        .get_event_type(&name)
        .await?
        .ok_or_else(|| ApiError::not_found("event type"))
}

#[utoipa::path(get, operation_id = "v1.event-type.list", path = "/api/v1/event-type", tag = "Event Type", params(EventTypeListParams),
    responses((status = 200, body = ListResponse<EventTypeOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<EventTypeListParams>,
) -> Result<Json<ListResponse<EventTypeOut>>, ApiError> {
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        params.order,
        Order::Ascending,
    )?;
    let rows = state
        .store
        .list_event_types(&page, params.include_archived)
        .await?;
    let with_schemas = params.with_content.unwrap_or(true);
    Ok(Json(list_response(
        rows,
        &page,
        |et| et.name.to_string(),
        |et| EventTypeOut::new(et, with_schemas),
    )))
}

#[utoipa::path(post, operation_id = "v1.event-type.create", path = "/api/v1/event-type", tag = "Event Type", request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut)))]
pub async fn create(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<EventTypeIn>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let (name, input) = input.split();
    let name = EventTypeName::parse(&name).map_err(|e| fields::body_error("name", e))?;
    match state.store.get_event_type(&name).await? {
        Some(existing) if !existing.archived => {
            Err(StoreError::Conflict(crate::store::Conflict::EventType).into())
        }
        Some(mut archived) => {
            // Replaced: an old policy does not survive a creation that does not name one.
            archived.retry_policy = None;
            replace(&state, &mut archived, input)?;
            archived.updated_at = now();
            state.store.update_event_type(&archived).await?;
            changed(&state, &archived.name);
            Ok((StatusCode::CREATED, Json(archived.into())))
        }
        None => {
            let mut et = blank(name);
            replace(&state, &mut et, input)?;
            state.store.insert_event_type(&et).await?;
            changed(&state, &et.name);
            Ok((StatusCode::CREATED, Json(et.into())))
        }
    }
}

#[utoipa::path(get, operation_id = "v1.event-type.get", path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path)),
    responses((status = 200, body = EventTypeOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<EventTypeOut>, ApiError> {
    Ok(Json(find(&state, &name).await?.into()))
}

/// Replaces the event type, or creates it (201).
#[utoipa::path(put, operation_id = "v1.event-type.update", path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path)), request_body = EventTypeUpdate,
    responses((status = 200, body = EventTypeOut), (status = 201, body = EventTypeOut)))]
pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(input): JsonBody<EventTypeUpdate>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let name = fields::event_type_path(&name)?;
    match state.store.get_event_type(&name).await? {
        Some(mut et) => {
            replace(&state, &mut et, input)?;
            et.updated_at = now();
            state.store.update_event_type(&et).await?;
            changed(&state, &et.name);
            Ok((StatusCode::OK, Json(et.into())))
        }
        None => {
            let mut et = blank(name);
            replace(&state, &mut et, input)?;
            state.store.insert_event_type(&et).await?;
            changed(&state, &et.name);
            Ok((StatusCode::CREATED, Json(et.into())))
        }
    }
}

#[utoipa::path(patch, operation_id = "v1.event-type.patch", path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path)), request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut)))]
pub async fn patch(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(input): JsonBody<EventTypePatch>,
) -> Result<Json<EventTypeOut>, ApiError> {
    let mut et = find(&state, &name).await?;
    if let Some(description) = input.description {
        et.description = description;
    }
    if let Some(archived) = input.archived {
        et.archived = archived;
    }
    if let Some(deprecated) = input.deprecated {
        et.deprecated = deprecated;
    }
    if let Some(new) = input.schemas {
        et.schemas = schemas(new)?;
    }
    if input.feature_flag.is_some() || input.feature_flags.is_some() {
        et.feature_flags =
            feature_flags(input.feature_flag.flatten(), input.feature_flags.flatten())?;
    }
    if let Some(group) = input.group_name {
        et.group_name = group;
    }
    if let Some(validate) = input.validate_payloads {
        et.validate_payloads = validate;
    }
    if let Some(policy) = input.retry_policy {
        et.retry_policy = fields::retry_policy(&state, policy, "retryPolicy")?;
    }
    et.updated_at = now();
    state.store.update_event_type(&et).await?;
    changed(&state, &et.name);
    Ok(Json(et.into()))
}

#[utoipa::path(delete, operation_id = "v1.event-type.delete", path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path), DeleteParams),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let mut et = find(&state, &name).await?;
    if params.expunge {
        state.store.delete_event_type(&et.name).await?;
        changed(&state, &et.name);
    } else if !et.archived {
        et.archived = true;
        et.updated_at = now();
        state.store.update_event_type(&et).await?;
        changed(&state, &et.name);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// After a write of the event type `name`, what this node keeps of event types is read
/// again: its schema for payload validation (other nodes within
/// [`super::payload_schemas::FRESH_FOR`]) and the retry policies, before the dispatcher's
/// next attempt (other nodes within `EVENT_TYPE_REFRESH`).
pub(super) fn changed(state: &ApiState, name: &EventTypeName) {
    state.payload_schemas.forget(name);
    if let Some(dispatcher) = &state.dispatcher {
        dispatcher.event_type_policies_changed();
    }
}

/// The Svix SDK's retry schedule of an event type: the delays before each retry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryScheduleInOut {
    /// The delays, each `{"secs": …, "nanos": 0}` (whole seconds; a plain number of seconds
    /// is taken too). Read: null when the event type has no delays of its own (its messages'
    /// priorities' or the default apply); an exponential policy's delays are listed without
    /// jitter. Written: replaces the event type's delays (its other policy fields stay);
    /// null removes them.
    #[schema(value_type = Option<Vec<ScheduleDuration>>, nullable, max_items = 49)]
    pub retry_schedule: Option<Vec<ScheduleDelay>>,
}

/// One delay of a retry schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScheduleDelay {
    Duration(ScheduleDuration),
    #[schema(value_type = i64)]
    Seconds(#[serde(deserialize_with = "whole::one")] i64),
}

/// A delay as the Svix SDK writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDuration {
    /// Seconds, from 0 to 2592000 (30 days).
    #[serde(deserialize_with = "whole::one")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub secs: i64,
    /// Must be 0: delays are whole seconds.
    #[serde(default, deserialize_with = "whole::one")]
    #[schema(minimum = 0, maximum = 0)]
    pub nanos: i64,
}

fn schedule_out(et: &EventType) -> RetryScheduleInOut {
    RetryScheduleInOut {
        retry_schedule: et
            .retry_policy
            .as_ref()
            .and_then(|p| p.delays_secs())
            .map(|delays| {
                delays
                    .into_iter()
                    .map(|secs| {
                        ScheduleDelay::Duration(ScheduleDuration {
                            secs: i64::try_from(secs).unwrap_or(i64::MAX),
                            nanos: 0,
                        })
                    })
                    .collect()
            }),
    }
}

#[utoipa::path(get, operation_id = "v1.event-type.get-retry-schedule", path = "/api/v1/event-type/{event_type_name}/retry-schedule", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path)),
    responses((status = 200, body = RetryScheduleInOut)))]
pub async fn get_retry_schedule(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<RetryScheduleInOut>, ApiError> {
    Ok(Json(schedule_out(&find(&state, &name).await?)))
}

/// Sets the delays of the event type's retry policy (see `RetryScheduleInOut`).
#[utoipa::path(put, operation_id = "v1.event-type.set-retry-schedule", path = "/api/v1/event-type/{event_type_name}/retry-schedule", tag = "Event Type",
    params(("event_type_name" = EventTypeNameString, Path)), request_body = RetryScheduleInOut,
    responses((status = 200, body = RetryScheduleInOut)))]
pub async fn set_retry_schedule(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    JsonBody(input): JsonBody<RetryScheduleInOut>,
) -> Result<Json<RetryScheduleInOut>, ApiError> {
    let mut et = find(&state, &name).await?;
    let mut spec = et
        .retry_policy
        .as_ref()
        .map(|p| p.spec())
        .unwrap_or_default();
    spec.exponential = None;
    spec.schedule = match input.retry_schedule {
        None => None,
        Some(delays) => {
            let mut secs = Vec::with_capacity(delays.len());
            for (i, delay) in delays.iter().enumerate() {
                secs.push(match delay {
                    ScheduleDelay::Seconds(s) => *s,
                    ScheduleDelay::Duration(d) if d.nanos == 0 => d.secs,
                    ScheduleDelay::Duration(_) => {
                        return Err(ApiError::invalid(
                            &["body", "retrySchedule", &i.to_string(), "nanos"],
                            "must be 0: delays are whole seconds",
                        ));
                    }
                });
            }
            Some(secs)
        }
    };
    let policy = RetryPolicy::parse(&spec, state.settings.max_request_timeout).map_err(|e| {
        // The schedule's errors are the body's; others come from the event type's policy.
        let mut loc = vec!["body"];
        match e.field.split_first() {
            Some((first, rest)) if first == "schedule" => {
                loc.push("retrySchedule");
                loc.extend(rest.iter().map(String::as_str));
            }
            _ => loc.extend(e.field.iter().map(String::as_str)),
        }
        ApiError::invalid(&loc, e.message)
    })?;
    et.retry_policy = Some(policy).filter(|p| p.spec() != RetryPolicySpec::default());
    et.updated_at = now();
    state.store.update_event_type(&et).await?;
    changed(&state, &et.name);
    Ok(Json(schedule_out(&et)))
}
