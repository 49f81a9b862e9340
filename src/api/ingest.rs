//! Ingest sources, with the shapes of the Svix SDK's document (`IngestSourceIn/Out`,
//! `IngestEndpointIn/Out`, `IngestLogOut`): `/ingest/api/v1/source…` to manage them, and
//! `/ingest/in/{token}`, the source's `ingestUrl`, where its sender posts.
//!
//! What a source receives is checked as its `type` says (see `domain::ingest` and
//! `signing::verify_inbound`). A request that verifies is logged and becomes a message of
//! the source's internal application, delivered byte for byte to the source's endpoints
//! (signed by hookd with each endpoint's secret, retried and logged like any message). One
//! that does not is answered 401 and logged with why; nothing is forwarded.
//!
//! Choices where the SDK's document is silent:
//! - Bodies are forwarded byte for byte when they are a JSON object, what webhook senders
//!   post; other bodies (form-encoded, text) are answered 415 and logged, since hookd's
//!   messages are JSON. A `slack` source answers Slack's `url_verification` with its
//!   challenge (and forwards nothing).
//! - A message's event type is the sender's: `X-GitHub-Event` (`github`),
//!   `X-Shopify-Topic` with `/` as `.` (`shopify`), else the body's top-level `type`, else
//!   `ingest.received`.
//! - The URL token is rotated as the SDK says: the previous token stays valid 48 hours,
//!   and a source may have at most three previous tokens valid at once (409 beyond).
//! - The source log lists every request, accepted or not, newest first, for 30 days (see
//!   `retention`).
//! - Source types the SDK lists that hookd cannot verify (`meta`, `zoom`, …) are refused
//!   with a 422 naming `type`, rather than accepted unverified.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::endpoints::{self, EndpointHeadersOut, EndpointSecretOut, EndpointSecretRotateIn};
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, body_error, null_as_default};
use super::openapi::strings::{
    CustomHeaders, EndpointUrlString, PathKeyString, SecretString, UidString,
};
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::ingest::{self, IngestLog, IngestSource, SourceKind, public_config};
use crate::domain::time::now;
use crate::domain::{
    DeliveryOrder, Endpoint, EndpointHeaders, EndpointId, EndpointKey, EventTypeName, IngestLogId,
    Metadata, Payload, PayloadError, ResourceKey, SignatureScheme, SourceId, Subscription, Uid,
};
use crate::store::{NewApplication, NewEndpoint, NewMessage, Order, SourceKey, StoreError};

/// How long a rotated-out URL token keeps working.
const OLD_TOKEN_VALID_HOURS: i64 = 48;
/// Earlier URL tokens a source may have valid at once.
const MAX_VALID_OLD_TOKENS: usize = 3;
/// The event type of a received message when the sender names none.
const DEFAULT_EVENT_TYPE: &str = "ingest.received";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestSourceIn {
    #[schema(min_length = 2, max_length = 256)]
    pub name: String,
    /// 1 to 60 letters, digits, `_` or `-`; not shaped like a source id (`src_` and a ULID).
    #[schema(value_type = Option<String>, pattern = "^[a-zA-Z0-9_-]+$", min_length = 1, max_length = 60)]
    pub uid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    /// `generic-webhook`, `cron`, `svix` (and the senders that sign as Standard Webhooks:
    /// `clerk`, `resend`, …), `stripe`, `github`, `shopify`, `slack`, or hookd's
    /// `hookd-hmac`, `hookd-basic`, `hookd-bearer`.
    #[serde(rename = "type")]
    #[schema(schema_with = source_type_schema)]
    pub source_type: String,
    /// As the type says: `{secret}` for most; `cron`: `{schedule, payload, contentType}`;
    /// `hookd-hmac`: `{secret, header, prefix, encoding, timestampHeader,
    /// toleranceSeconds}`; `hookd-basic`: `{username, password}`; `hookd-bearer`: `{token}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestSourcePatch {
    #[schema(min_length = 2, max_length = 256)]
    pub name: Option<String>,
    /// null: removes the uid.
    #[serde(default, deserialize_with = "fields::nullable")]
    #[schema(value_type = Option<String>, pattern = "^[a-zA-Z0-9_-]+$", min_length = 1, max_length = 60)]
    pub uid: Option<Option<String>>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestSourceOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    /// Where the sender posts; null for a `cron` source.
    pub ingest_url: Option<String>,
    /// hookd: the source's internal application, where what it forwarded is listed
    /// (`/api/v1/app/{appId}/msg…`, attempts included).
    pub app_id: String,
    #[serde(rename = "type")]
    pub source_type: String,
    /// The config without its credentials (`secret`, `password`, `token`).
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateTokenOut {
    pub ingest_url: String,
}

/// One request the source received (snake_case, as the SDK's `IngestLogOut`).
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestLogOut {
    pub id: String,
    pub source_id: String,
    /// What hookd answered: 200 forwarded, 401 not verified, 413/415/422 refused.
    pub status_code: u16,
    /// Why it was refused; empty when forwarded.
    pub error_text: String,
    /// The request's headers (`Authorization` and `Cookie` shown as `[redacted]`).
    pub headers: BTreeMap<String, String>,
    /// The body as received (invalid UTF-8 shown as U+FFFD).
    pub payload: String,
    /// hookd: the message it became, when forwarded.
    pub msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<IngestLog> for IngestLogOut {
    fn from(l: IngestLog) -> Self {
        Self {
            id: l.id.to_string(),
            source_id: l.source_id.to_string(),
            status_code: l.status_code,
            error_text: l.error_text,
            headers: l.headers,
            payload: String::from_utf8_lossy(&l.payload).into_owned(),
            msg_id: l.msg_id,
            created_at: l.created_at,
            updated_at: l.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestEndpointIn {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    /// Deliveries per second to this endpoint, at most; null: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    /// The secret hookd signs deliveries with; generated when absent or null.
    #[schema(value_type = Option<SecretString>)]
    pub secret: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    #[schema(value_type = Option<CustomHeaders>)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// The body of PUT: as for creation, but the secret and headers are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngestEndpointUpsertIn {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 1, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestEndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub throttle_rate: Option<u16>,
    pub disabled: bool,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for IngestEndpointOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            uid: e.uid.map(|u| u.to_string()),
            url: e.url.as_str().to_owned(),
            description: e.description,
            throttle_rate: e.rate_limit,
            disabled: e.disabled,
            metadata: e.metadata,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestEndpointHeadersIn {
    #[schema(value_type = CustomHeaders)]
    pub headers: BTreeMap<String, String>,
}

fn source_out(state: &ApiState, headers: &HeaderMap, s: IngestSource) -> IngestSourceOut {
    IngestSourceOut {
        ingest_url: s.token.as_deref().map(|t| ingest_url(state, headers, t)),
        app_id: s.app_id.to_string(),
        id: s.id.to_string(),
        uid: s.uid.map(|u| u.to_string()),
        name: s.name,
        source_type: s.source_type,
        config: public_config(&s.config),
        metadata: s.metadata,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn ingest_url(state: &ApiState, headers: &HeaderMap, token: &str) -> String {
    format!(
        "{}/ingest/in/{token}",
        super::tokens::base_url(state, headers)
    )
}

/// A new URL token: 32 random bytes, URL-safe base64.
fn new_url_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The source types hookd takes, as the document lists them.
fn source_type_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            ingest::supported_types().split(", ").map(str::to_owned),
        ))
        .build()
}

/// A source uid from a body: 1 to 60 letters, digits, `_` or `-` (the SDK's pattern, but for
/// uids starting with `src_` that are not shaped like an id, which hookd tells apart).
fn source_uid(value: Option<String>) -> Result<Option<Uid>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    let ok = !value.is_empty()
        && value.len() <= 60
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(body_error("uid", "must be 1 to 60 letters, digits, _ or -"));
    }
    if SourceId::parse(&value).is_some() {
        return Err(body_error(
            "uid",
            "must not have the shape of a source id (src_…)",
        ));
    }
    Ok(Some(Uid::from_stored(value)))
}

fn source_name(value: String) -> Result<String, ApiError> {
    let n = value.chars().count();
    if !(2..=256).contains(&n) {
        return Err(body_error("name", "must be 2 to 256 characters"));
    }
    Ok(value)
}

fn source_key(value: &str) -> Result<SourceKey, ApiError> {
    if let Some(id) = SourceId::parse(value) {
        return Ok(ResourceKey::Id(id));
    }
    Uid::parse(value)
        .map(ResourceKey::Uid)
        .map_err(|e| ApiError::invalid(&["path", "source_id"], e.to_string()))
}

pub(super) async fn find_source(
    state: &ApiState,
    source_id: &str,
) -> Result<IngestSource, ApiError> {
    let key = source_key(source_id)?;
    state
        .store
        .get_source(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("ingest source"))
}

/// The kind of a source's `type` and `config`, or a 422 naming the field.
fn kind(source_type: &str, config: &serde_json::Value) -> Result<SourceKind, ApiError> {
    SourceKind::parse(source_type, config).map_err(|e| body_error(&e.field, e.message))
}

/// The token and next run a source of `kind` starts with (keeping `token` if it has one).
fn schedule(
    kind: &SourceKind,
    token: Option<String>,
) -> (Option<String>, Option<crate::domain::Timestamp>) {
    match kind {
        SourceKind::Cron(job) => (None, job.schedule.next(now(), false)),
        SourceKind::Receive { .. } => (Some(token.unwrap_or_else(new_url_token)), None),
    }
}

/// Creates the source with its internal application.
async fn create_source(
    state: &ApiState,
    uid: Option<Uid>,
    input: IngestSourceIn,
) -> Result<IngestSource, ApiError> {
    let name = source_name(input.name)?;
    let config = input.config.unwrap_or(serde_json::Value::Null);
    let kind = kind(&input.source_type, &config)?;
    let id = SourceId::generate();
    let app = state
        .store
        .insert_application(NewApplication {
            uid: Some(Uid::from_stored(ingest::app_uid(&id))),
            name: format!("hookd ingest source {id}"),
            rate_limit: None,
            metadata: Default::default(),
        })
        .await?;
    let (token, next_run_at) = schedule(&kind, None);
    let at = now();
    let source = IngestSource {
        id,
        uid,
        name,
        source_type: input.source_type,
        config: if config.is_null() {
            serde_json::json!({})
        } else {
            config
        },
        kind,
        metadata: input.metadata,
        app_id: app.id.clone(),
        token,
        next_run_at,
        created_at: at,
        updated_at: at,
    };
    if let Err(e) = state.store.insert_source(&source).await {
        // The uid is taken: the application made for it goes.
        if let Err(cleanup) = state.store.delete_application(&app.id).await {
            tracing::warn!(error = %cleanup, app = %app.id, "cannot remove an ingest source's application");
        }
        return Err(e.into());
    }
    Ok(source)
}

#[utoipa::path(get, operation_id = "v1.ingest.source.list", path = "/ingest/api/v1/source",
    tag = "Ingest Source", params(ListParams),
    responses((status = 200, body = ListResponse<IngestSourceOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<IngestSourceOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = state.store.list_sources(&page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |s| s.id.to_string(),
        |s| source_out(&state, &headers, s),
    )))
}

#[utoipa::path(post, operation_id = "v1.ingest.source.create", path = "/ingest/api/v1/source",
    tag = "Ingest Source", request_body = IngestSourceIn,
    responses((status = 201, body = IngestSourceOut)))]
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<IngestSourceIn>,
) -> Result<(StatusCode, Json<IngestSourceOut>), ApiError> {
    let uid = source_uid(input.uid.clone())?;
    let source = create_source(&state, uid, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(source_out(&state, &headers, source)),
    ))
}

#[utoipa::path(get, operation_id = "v1.ingest.source.get", path = "/ingest/api/v1/source/{source_id}",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path)),
    responses((status = 200, body = IngestSourceOut)))]
pub async fn get(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(source_id): Path<String>,
) -> Result<Json<IngestSourceOut>, ApiError> {
    let source = find_source(&state, &source_id).await?;
    Ok(Json(source_out(&state, &headers, source)))
}

/// Replaces the source's name, uid, metadata, type and config, or creates it with the path
/// as its uid. A source that becomes `cron` loses its URL; one that stops being `cron`
/// gets one.
#[utoipa::path(put, operation_id = "v1.ingest.source.upsert", path = "/ingest/api/v1/source/{source_id}",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path)), request_body = IngestSourceIn,
    responses((status = 200, body = IngestSourceOut), (status = 201, body = IngestSourceOut)))]
pub async fn upsert(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(source_id): Path<String>,
    JsonBody(input): JsonBody<IngestSourceIn>,
) -> Result<(StatusCode, Json<IngestSourceOut>), ApiError> {
    let key = source_key(&source_id)?;
    let uid = source_uid(input.uid.clone())?;
    let Some(mut source) = state.store.get_source(&key).await? else {
        let ResourceKey::Uid(path_uid) = key else {
            return Err(ApiError::not_found("ingest source"));
        };
        let uid = match uid {
            Some(uid) => Some(uid),
            None => source_uid(Some(path_uid.to_string()))?,
        };
        let source = create_source(&state, uid, input).await?;
        return Ok((
            StatusCode::CREATED,
            Json(source_out(&state, &headers, source)),
        ));
    };
    let config = input.config.unwrap_or(serde_json::Value::Null);
    let new_kind = kind(&input.source_type, &config)?;
    source.name = source_name(input.name)?;
    source.uid = uid.or(source.uid);
    source.metadata = input.metadata;
    if source.kind != new_kind {
        let (token, next_run_at) = schedule(&new_kind, source.token.take());
        source.token = token;
        source.next_run_at = next_run_at;
    }
    source.source_type = input.source_type;
    source.config = if config.is_null() {
        serde_json::json!({})
    } else {
        config
    };
    source.kind = new_kind;
    source.updated_at = now();
    state.store.update_source(&source).await?;
    Ok((StatusCode::OK, Json(source_out(&state, &headers, source))))
}

#[utoipa::path(patch, operation_id = "v1.ingest.source.patch", path = "/ingest/api/v1/source/{source_id}",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path)), request_body = IngestSourcePatch,
    responses((status = 200, body = IngestSourceOut)))]
pub async fn patch(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(source_id): Path<String>,
    JsonBody(input): JsonBody<IngestSourcePatch>,
) -> Result<Json<IngestSourceOut>, ApiError> {
    let mut source = find_source(&state, &source_id).await?;
    if let Some(name) = input.name {
        source.name = source_name(name)?;
    }
    if let Some(uid) = input.uid {
        source.uid = source_uid(uid)?;
    }
    if let Some(metadata) = input.metadata {
        source.metadata = metadata;
    }
    source.updated_at = now();
    state.store.update_source(&source).await?;
    Ok(Json(source_out(&state, &headers, source)))
}

/// Deletes the source with its endpoints, messages and log.
#[utoipa::path(delete, operation_id = "v1.ingest.source.delete", path = "/ingest/api/v1/source/{source_id}",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(source_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let source = find_source(&state, &source_id).await?;
    // The source's row goes with its application (ON DELETE CASCADE).
    match state.store.delete_application(&source.app_id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}

/// A new token for the source's `ingestUrl`; the previous one keeps working for 48 hours.
#[utoipa::path(post, operation_id = "v1.ingest.source.rotate-token", path = "/ingest/api/v1/source/{source_id}/token/rotate",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path)),
    responses((status = 200, body = RotateTokenOut)))]
pub async fn rotate_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(source_id): Path<String>,
) -> Result<Json<RotateTokenOut>, ApiError> {
    let source = find_source(&state, &source_id).await?;
    if source.token.is_none() {
        return Err(ApiError::Conflict(
            "a cron source has no ingest URL to rotate".into(),
        ));
    }
    let token = new_url_token();
    let at = now();
    let rotated = state
        .store
        .rotate_source_token(
            &source.id,
            &token,
            at,
            at + TimeDelta::hours(OLD_TOKEN_VALID_HOURS),
            MAX_VALID_OLD_TOKENS,
        )
        .await?;
    if !rotated {
        return Err(ApiError::Conflict(format!(
            "the token was rotated {MAX_VALID_OLD_TOKENS} times in the last \
             {OLD_TOKEN_VALID_HOURS} hours; wait until the oldest previous token expires"
        )));
    }
    Ok(Json(RotateTokenOut {
        ingest_url: ingest_url(&state, &headers, &token),
    }))
}

/// The requests the source received, newest first.
#[utoipa::path(get, operation_id = "v1.ingest.log.list", path = "/ingest/api/v1/source/{source_id}/log",
    tag = "Ingest Source", params(("source_id" = PathKeyString, Path), ListParams),
    responses((status = 200, body = ListResponse<IngestLogOut>)))]
pub async fn list_logs(
    State(state): State<ApiState>,
    Path(source_id): Path<String>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<IngestLogOut>>, ApiError> {
    let source = find_source(&state, &source_id).await?;
    let page = params.page(Order::Descending)?;
    let rows = state.store.list_ingest_logs(&source.id, &page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |l| l.id.to_string(),
        IngestLogOut::from,
    )))
}

/// The source and its application, and the endpoint a path names, or 404.
async fn find_endpoint(
    state: &ApiState,
    source_id: &str,
    endpoint_id: &str,
) -> Result<(IngestSource, Endpoint), ApiError> {
    let source = find_source(state, source_id).await?;
    let key = fields::endpoint_key(endpoint_id)?;
    let endpoint = state
        .store
        .get_endpoint(&source.app_id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    Ok((source, endpoint))
}

fn is_endpoint_id(s: &str) -> bool {
    EndpointId::parse(s).is_some()
}

/// A new endpoint of the source's application with the SDK's defaults; every ingest
/// endpoint gets every message the source receives.
fn new_endpoint(
    source: &IngestSource,
    url: crate::domain::EndpointUrl,
    secret: crate::domain::SigningSecret,
) -> NewEndpoint {
    NewEndpoint {
        app_id: source.app_id.clone(),
        uid: None,
        url,
        description: String::new(),
        disabled: false,
        rate_limit: None,
        subscription: Subscription::default(),
        metadata: Metadata::default(),
        headers: EndpointHeaders::default(),
        secret,
        signature: SignatureScheme::default(),
        auto_disable_after_failures: None,
        auto_disable_after_secs: None,
        retry_policy: None,
        ordering: DeliveryOrder::Concurrent,
    }
}

fn throttle(rate: Option<u16>) -> Result<Option<u16>, ApiError> {
    match rate {
        Some(0) => Err(body_error(
            "throttleRate",
            "must be at least 1 (null: no limit)",
        )),
        rate => Ok(rate),
    }
}

#[utoipa::path(get, operation_id = "v1.ingest.endpoint.list", path = "/ingest/api/v1/source/{source_id}/endpoint",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ListParams),
    responses((status = 200, body = ListResponse<IngestEndpointOut>)))]
pub async fn list_endpoints(
    State(state): State<ApiState>,
    Path(source_id): Path<String>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<IngestEndpointOut>>, ApiError> {
    let source = find_source(&state, &source_id).await?;
    let page = params.page(Order::Descending)?;
    let rows = state
        .store
        .list_endpoints(&source.app_id, None, &page)
        .await?;
    Ok(Json(list_response(
        rows,
        &page,
        |e| e.id.to_string(),
        IngestEndpointOut::from,
    )))
}

#[utoipa::path(post, operation_id = "v1.ingest.endpoint.create", path = "/ingest/api/v1/source/{source_id}/endpoint",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path)), request_body = IngestEndpointIn,
    responses((status = 201, body = IngestEndpointOut)))]
pub async fn create_endpoint(
    State(state): State<ApiState>,
    Path(source_id): Path<String>,
    JsonBody(input): JsonBody<IngestEndpointIn>,
) -> Result<(StatusCode, Json<IngestEndpointOut>), ApiError> {
    let source = find_source(&state, &source_id).await?;
    let uid = fields::uid("uid", input.uid, is_endpoint_id)?;
    let url = endpoints::url(&state, &input.url)?;
    let headers = EndpointHeaders::parse(input.headers.unwrap_or_default())
        .map_err(|e| body_error("headers", e))?;
    endpoints::check_headers(&SignatureScheme::default(), &headers, &["body", "headers"])?;
    let secret = endpoints::secret("secret", input.secret)?;
    let new = NewEndpoint {
        uid,
        description: input.description,
        disabled: input.disabled,
        rate_limit: throttle(input.throttle_rate)?,
        metadata: input.metadata,
        headers,
        ..new_endpoint(&source, url, secret)
    };
    let endpoint = state.store.insert_endpoint(new).await?;
    state.events_written.notify_one();
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

#[utoipa::path(get, operation_id = "v1.ingest.endpoint.get", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = IngestEndpointOut)))]
pub async fn get_endpoint(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<IngestEndpointOut>, ApiError> {
    Ok(Json(
        find_endpoint(&state, &source_id, &endpoint_id)
            .await?
            .1
            .into(),
    ))
}

/// Replaces the endpoint's settings (not its secret or headers), or creates it with the
/// path as its uid.
#[utoipa::path(put, operation_id = "v1.ingest.endpoint.upsert", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = IngestEndpointUpsertIn,
    responses((status = 200, body = IngestEndpointOut), (status = 201, body = IngestEndpointOut)))]
pub async fn upsert_endpoint(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<IngestEndpointUpsertIn>,
) -> Result<(StatusCode, Json<IngestEndpointOut>), ApiError> {
    let source = find_source(&state, &source_id).await?;
    let key = fields::endpoint_key(&endpoint_id)?;
    let uid = fields::uid("uid", input.uid, is_endpoint_id)?;
    let url = endpoints::url(&state, &input.url)?;
    let throttle_rate = throttle(input.throttle_rate)?;
    match state.store.get_endpoint(&source.app_id, &key).await? {
        Some(mut endpoint) => {
            endpoint.uid = uid.or(endpoint.uid);
            endpoint.url = url;
            endpoint.description = input.description;
            endpoint.disabled = input.disabled;
            endpoint.rate_limit = throttle_rate;
            endpoint.metadata = input.metadata;
            let endpoint = state.store.update_endpoint(endpoint).await?;
            state.events_written.notify_one();
            Ok((StatusCode::OK, Json(endpoint.into())))
        }
        None => {
            let EndpointKey::Uid(path_uid) = key else {
                return Err(ApiError::not_found("endpoint"));
            };
            let new = NewEndpoint {
                uid: uid.or(Some(path_uid)),
                description: input.description,
                disabled: input.disabled,
                rate_limit: throttle_rate,
                metadata: input.metadata,
                ..new_endpoint(&source, url, endpoints::secret("secret", None)?)
            };
            let endpoint = state.store.insert_endpoint(new).await?;
            Ok((StatusCode::CREATED, Json(endpoint.into())))
        }
    }
}

#[utoipa::path(delete, operation_id = "v1.ingest.endpoint.delete", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn delete_endpoint(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (source, endpoint) = find_endpoint(&state, &source_id, &endpoint_id).await?;
    state
        .store
        .delete_endpoint(&source.app_id, &endpoint.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.ingest.endpoint.get-headers", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
pub async fn get_endpoint_headers(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let (_, endpoint) = find_endpoint(&state, &source_id, &endpoint_id).await?;
    Ok(Json(endpoints::headers_out(&endpoint)))
}

/// Replaces all custom headers.
#[utoipa::path(put, operation_id = "v1.ingest.endpoint.set-headers", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = IngestEndpointHeadersIn, responses((status = 204)))]
pub async fn set_endpoint_headers(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<IngestEndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let (_, mut endpoint) = find_endpoint(&state, &source_id, &endpoint_id).await?;
    endpoints::replace_headers(&mut endpoint, input.headers)?;
    state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.ingest.endpoint.get-secret", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
pub async fn get_endpoint_secret(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let (_, endpoint) = find_endpoint(&state, &source_id, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut::of(&endpoint.secret)))
}

/// Replaces the signing secret; the old one keeps signing for `gracePeriodSeconds`.
#[utoipa::path(post, operation_id = "v1.ingest.endpoint.rotate-secret", path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate",
    tag = "Ingest Endpoint", params(("source_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointSecretRotateIn, responses((status = 204)))]
pub async fn rotate_endpoint_secret(
    State(state): State<ApiState>,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointSecretRotateIn>,
) -> Result<StatusCode, ApiError> {
    let (_, mut endpoint) = find_endpoint(&state, &source_id, &endpoint_id).await?;
    endpoints::rotate(&mut endpoint, input)?;
    state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// What the receiving route answers, as JSON.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refusal(status: StatusCode, code: &str, detail: &str) -> Response {
    answer(
        status,
        serde_json::json!({ "code": code, "detail": detail }),
    )
}

/// The request's headers as the log keeps them, credentials redacted.
fn logged_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if name == header::AUTHORIZATION || name == header::COOKIE {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

/// The event type of a received message (see the module's documentation).
/// The top-level fields of a received body that hookd reads: its `type` (the event type,
/// and Slack's `url_verification`) and Slack's `challenge`. A `type` that is not a string
/// reads as none.
#[derive(Debug, Default, Deserialize)]
struct Envelope {
    #[serde(rename = "type", default, deserialize_with = "string_or_none")]
    kind: Option<String>,
    #[serde(default)]
    challenge: Option<serde_json::Value>,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

fn event_type_of(
    source_type: &str,
    headers: &HeaderMap,
    body_type: Option<String>,
) -> EventTypeName {
    let header_value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let named = match source_type {
        "github" => header_value("x-github-event").map(str::to_owned),
        "shopify" => header_value("x-shopify-topic").map(|t| t.replace('/', ".")),
        _ => None,
    }
    .or(body_type);
    named
        .and_then(|n| EventTypeName::parse(&n).ok())
        .unwrap_or_else(|| EventTypeName::from_stored(DEFAULT_EVENT_TYPE.to_owned()))
}

/// Where a source's sender posts (the source's `ingestUrl`): verified, logged, forwarded.
/// No API token is needed: the URL's token names the source, and the source's `type` says
/// how the request must be signed.
#[utoipa::path(post, operation_id = "hookd.ingest.receive", path = "/ingest/in/{token}",
    tag = "Ingest Source", params(("token" = String, Path, description = "The token of the source's ingestUrl")),
    request_body(content = Object, description = "The sender's webhook, a JSON object"),
    responses(
        (status = 200, description = "Verified and forwarded: `{\"msgId\": …}`"),
        (status = 401, description = "Not verified (logged, not forwarded)"),
        (status = 404, description = "No source has this URL"),
        (status = 413, description = "Larger than max_payload_bytes"),
        (status = 415, description = "Not a JSON object"),
    ))]
pub async fn receive(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = now();
    let source = match state.store.source_by_token(&token, at).await {
        Ok(Some(source)) => source,
        Ok(None) => {
            return refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                "no ingest source has this URL",
            );
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (status, error_text, msg_id, response) = handle(&state, &source, &headers, &body).await;
    let entry = IngestLog {
        id: IngestLogId::generate(),
        source_id: source.id.clone(),
        status_code: status.as_u16(),
        error_text,
        headers: logged_headers(&headers),
        payload: body.to_vec(),
        msg_id,
        created_at: at,
    };
    if let Err(e) = state.store.insert_ingest_log(&entry).await {
        tracing::warn!(error = %e, source = %source.id, "cannot log a request an ingest source received");
    }
    response
}

/// Checks and forwards one request: the status, the log's error text, the message made,
/// and the answer.
async fn handle(
    state: &ApiState,
    source: &IngestSource,
    headers: &HeaderMap,
    body: &Bytes,
) -> (StatusCode, String, Option<String>, Response) {
    let refuse = |status: StatusCode, code: &str, why: String| {
        let response = refusal(status, code, &why);
        (status, why, None, response)
    };
    let SourceKind::Receive {
        verification,
        tolerance_secs,
    } = &source.kind
    else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "a cron source has no ingest URL".into(),
        );
    };
    if let Err(why) = crate::signing::verify_inbound(
        verification,
        headers,
        body,
        now().timestamp(),
        *tolerance_secs,
    ) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("not verified: {why}"),
        );
    }
    if body.len() > state.settings.max_payload_bytes {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; this hookd takes at most {} (max_payload_bytes)",
                body.len(),
                state.settings.max_payload_bytes
            ),
        );
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body is not UTF-8 text; hookd forwards JSON objects".into(),
        );
    };
    let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(text) else {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body is not JSON; hookd forwards JSON objects (form-encoded bodies are not supported)".into(),
        );
    };
    match Payload::parse(raw, state.settings.max_payload_depth) {
        Ok(_) => {}
        Err(PayloadError::NotAnObject) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "the body is JSON but not an object; hookd forwards JSON objects".into(),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                e.to_string(),
            );
        }
    }
    // Only the fields hookd reads; the rest is skipped, not built.
    let envelope: Envelope = serde_json::from_str(raw.get()).unwrap_or_default();
    if source.source_type == "slack" && envelope.kind.as_deref() == Some("url_verification") {
        let challenge = envelope.challenge.unwrap_or_default();
        let response = answer(
            StatusCode::OK,
            serde_json::json!({ "challenge": challenge }),
        );
        return (StatusCode::OK, String::new(), None, response);
    }
    let new = NewMessage {
        app: ResourceKey::Id(source.app_id.clone()),
        create_app: None,
        event_type: event_type_of(&source.source_type, headers, envelope.kind),
        event_id: None,
        channels: None,
        // Byte for byte as received.
        payload: Payload::from_stored(text.to_owned()),
        payload_retention: state.settings.payload_retention,
        deliver_at: None,
        priority: None,
        only_endpoint: None,
        direct: None,
        key: None,
    };
    match super::messages::accept(state, new).await {
        Ok(message) => {
            let id = message.id.to_string();
            let response = answer(StatusCode::OK, serde_json::json!({ "msgId": id }));
            (StatusCode::OK, String::new(), Some(id), response)
        }
        Err(e) => {
            let error = ApiError::from(e);
            let status = error.status();
            (status, error.to_string(), None, error.into_response())
        }
    }
}
