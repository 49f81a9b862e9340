//! `/api/v1/app`: applications.
//!
//! The operational webhooks' internal application (uid `hookd-operational`, see
//! `crate::events`) is none of the customer's: it is never listed, every route under
//! `/api/v1/app/{app_id}` answers 404 for it as for an unknown application (by uid or id), and
//! its uid cannot be given to an application (422). Its endpoints are managed under
//! `/api/v1/operational-webhook/endpoint`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, null_as_default, nullable};
use super::openapi::strings::PathKeyString;
use super::openapi::strings::UidString;
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::events::OPERATIONAL_APP_UID;
use crate::domain::ingest::{INGEST_APP_UID_PREFIX, is_internal_app_uid};
use crate::domain::{AppId, AppKey, Application, Metadata, ResourceKey, Uid};
use crate::store::{NewApplication, Order};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    #[schema(min_length = 1)]
    pub name: String,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    /// Deliveries per second to all the application's endpoints together, at most (each
    /// endpoint's own `throttleRate` holds too); `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    /// Absent or null: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
}

/// Absent fields, and null ones that cannot be cleared (`name`, `metadata`), are left as
/// they are; a null `uid` or `throttleRate` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<Option<String>>,
    /// Deliveries per second to all the application's endpoints together, at most (each
    /// endpoint's own `throttleRate` holds too); `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u16>, minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<Option<u16>>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    /// Deliveries per second to all the application's endpoints together, at most (each
    /// endpoint's own `throttleRate` holds too); `null` or 0: no limit.
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        Self {
            id: a.id.to_string(),
            uid: a.uid.map(|u| u.to_string()),
            name: a.name,
            throttle_rate: a.rate_limit,
            metadata: a.metadata,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Return the existing application with the body's `uid` (200) instead of a 409.
    #[serde(default)]
    pub get_if_exists: bool,
}

fn is_app_id(s: &str) -> bool {
    AppId::parse(s).is_some()
}

/// An application uid from a body: as any uid, but not the operational application's.
fn app_uid(value: Option<String>) -> Result<Option<Uid>, ApiError> {
    let uid = fields::uid("uid", value, is_app_id)?;
    if uid.as_ref().is_some_and(is_internal) {
        return Err(fields::body_error(
            "uid",
            format!(
                "{OPERATIONAL_APP_UID} and uids starting with {INGEST_APP_UID_PREFIX} are \
                 reserved for hookd's operational webhooks and ingest sources"
            ),
        ));
    }
    Ok(uid)
}

fn is_internal(uid: &Uid) -> bool {
    is_internal_app_uid(uid.as_str())
}

/// An application key from a path; the uids of hookd's internal applications (operational
/// webhooks, ingest sources) are unknown here.
pub fn app_key(value: &str) -> Result<AppKey, ApiError> {
    match fields::app_key(value)? {
        AppKey::Uid(uid) if is_internal(&uid) => Err(ApiError::not_found("application")),
        key => Ok(key),
    }
}

/// The fields of a new application, checked.
pub fn new_application(input: ApplicationIn) -> Result<NewApplication, ApiError> {
    Ok(NewApplication {
        uid: app_uid(input.uid)?,
        name: fields::non_empty("name", input.name)?,
        rate_limit: input.throttle_rate,
        metadata: input.metadata,
    })
}

/// The application a path names, or 404 (also for the operational application, by id).
/// An ingest source's application is found by its id (the source's `appId`), so that what
/// the source forwarded can be looked at like any message, attempts included.
pub async fn find(state: &ApiState, app_id: &str) -> Result<Application, ApiError> {
    let key = app_key(app_id)?;
    state
        .store
        .get_application(&key)
        .await?
        .filter(|app| !app.uid.as_ref().is_some_and(is_operational))
        .ok_or_else(|| ApiError::not_found("application"))
}

fn is_operational(uid: &Uid) -> bool {
    uid.as_str() == OPERATIONAL_APP_UID
}

#[utoipa::path(get, operation_id = "v1.application.list", path = "/api/v1/app", tag = "Application", params(ListParams),
    responses((status = 200, body = ListResponse<ApplicationOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<ApplicationOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = state.store.list_applications(&page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |a| a.id.to_string(),
        ApplicationOut::from,
    )))
}

#[utoipa::path(post, operation_id = "v1.application.create", path = "/api/v1/app", tag = "Application", params(CreateParams),
    request_body = ApplicationIn,
    responses((status = 201, body = ApplicationOut), (status = 200, body = ApplicationOut,
        description = "`get_if_exists` and the uid exists")))]
pub async fn create(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<CreateParams>,
    JsonBody(input): JsonBody<ApplicationIn>,
) -> Result<(StatusCode, Json<ApplicationOut>), ApiError> {
    let new = new_application(input)?;
    if params.get_if_exists {
        if let Some(uid) = &new.uid {
            let key = ResourceKey::Uid(uid.clone());
            if let Some(existing) = state.store.get_application(&key).await? {
                return Ok((StatusCode::OK, Json(existing.into())));
            }
        }
    }
    let app = state.store.insert_application(new).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

#[utoipa::path(get, operation_id = "v1.application.get", path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    responses((status = 200, body = ApplicationOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
) -> Result<Json<ApplicationOut>, ApiError> {
    Ok(Json(find(&state, &app_id).await?.into()))
}

/// Replaces the application's name, throttle rate and metadata (and uid, when given); when
/// there is none, creates it with the body's uid, else the path as its uid.
#[utoipa::path(put, operation_id = "v1.application.update", path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    request_body = ApplicationIn,
    responses((status = 200, body = ApplicationOut), (status = 201, body = ApplicationOut)))]
pub async fn update(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<ApplicationIn>,
) -> Result<(StatusCode, Json<ApplicationOut>), ApiError> {
    let key = app_key(&app_id)?;
    let new = new_application(input)?;
    let existing = state.store.get_application(&key).await?;
    if existing
        .as_ref()
        .is_some_and(|app| app.uid.as_ref().is_some_and(is_internal))
    {
        return Err(ApiError::not_found("application"));
    }
    match existing {
        Some(mut app) => {
            app.uid = new.uid.or(app.uid);
            app.name = new.name;
            app.rate_limit = new.rate_limit;
            app.metadata = new.metadata;
            let app = state.store.update_application(app).await?;
            Ok((StatusCode::OK, Json(app.into())))
        }
        None => {
            let AppKey::Uid(path_uid) = key else {
                return Err(ApiError::not_found("application"));
            };
            // The path is the uid, unless the body names one.
            let uid = new.uid.clone().or(Some(path_uid));
            let app = state
                .store
                .insert_application(NewApplication { uid, ..new })
                .await?;
            Ok((StatusCode::CREATED, Json(app.into())))
        }
    }
}

#[utoipa::path(patch, operation_id = "v1.application.patch", path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    request_body = ApplicationPatch,
    responses((status = 200, body = ApplicationOut)))]
pub async fn patch(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<ApplicationPatch>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let mut app = find(&state, &app_id).await?;
    if let Some(name) = input.name {
        // The contract sets no minimum length here, unlike for creation.
        app.name = name;
    }
    if let Some(uid) = input.uid {
        app.uid = app_uid(uid)?;
    }
    if let Some(rate) = input.throttle_rate {
        app.rate_limit = rate;
    }
    if let Some(metadata) = input.metadata {
        app.metadata = metadata;
    }
    Ok(Json(state.store.update_application(app).await?.into()))
}

/// Deletes the application with its endpoints, messages and delivery records.
#[utoipa::path(delete, operation_id = "v1.application.delete", path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = find(&state, &app_id).await?;
    state.store.delete_application(&app.id).await?;
    // Its endpoints were reported deleted.
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
