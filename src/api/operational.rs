//! `/api/v1/operational-webhook/endpoint`: the endpoints that receive hookd's operational
//! events, with the shapes of the Svix SDK's document (`OperationalWebhookEndpointIn`, …).
//!
//! They are endpoints of the internal application (`crate::events`), created with the
//! first of them, and stored, signed and delivered to like any endpoint; their own changes
//! produce no operational events. Every field the SDK sends is honoured: `eventTypes`
//! filters the events an endpoint receives (absent, null or empty: all), `throttleRate`
//! caps its deliveries per second as on any endpoint. Fields of other endpoint shapes that
//! would mean nothing here (`filterTypes`, `rateLimit`, `channels`, `signature`) are refused
//! with a 422 naming them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::endpoints::{self, EndpointHeadersOut, EndpointSecretOut, EndpointSecretRotateIn};
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, null_as_default};
use super::openapi::strings::{
    CustomHeaders, EndpointUrlString, EventTypeNameString, PathKeyString, SecretString, UidString,
};
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::{
    Application, DeliveryOrder, Endpoint, EndpointHeaders, EndpointId, EndpointKey, Metadata,
    SignatureScheme, Subscription,
};
use crate::events::{operational_app, operational_app_or_create};
use crate::store::{NewEndpoint, Order};

/// Refuses the fields other endpoint shapes have and these do not (`filterTypes`,
/// `rateLimit`, `channels`, `signature`), rather than dropping them. Each is given as whether
/// the body held a value (absent or null is fine).
fn refuse_others(
    filter_types: bool,
    rate_limit: bool,
    channels: bool,
    signature: bool,
) -> Result<(), ApiError> {
    let refused = [
        (
            filter_types,
            "filterTypes",
            "operational endpoints filter with eventTypes; leave filterTypes out",
        ),
        (
            rate_limit,
            "rateLimit",
            "operational endpoints are limited with throttleRate; leave rateLimit out",
        ),
        (
            channels,
            "channels",
            "operational events carry no channels; leave channels out",
        ),
        (
            signature,
            "signature",
            "operational deliveries are signed with Standard Webhooks; leave signature out",
        ),
    ];
    match refused.into_iter().find(|(given, _, _)| *given) {
        Some((_, field, why)) => Err(fields::body_error(field, why)),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointIn {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    /// Absent or null: empty.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    /// Deliveries per second to this endpoint, at most; `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    /// Only these operational event types are delivered; absent, null or empty: all.
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    /// `whsec_` and the base64 of 24 to 75 bytes, or an ed25519 `whsk_` secret (`v1a`
    /// signatures); a `whsec_` secret is generated when absent or null.
    #[schema(value_type = Option<SecretString>)]
    pub secret: Option<String>,
    /// Absent or null: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    /// Custom headers sent with every delivery.
    #[schema(value_type = Option<CustomHeaders>)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[schema(ignore)]
    pub filter_types: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub rate_limit: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub channels: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub signature: Option<serde_json::Value>,
}

/// The body of PUT: as for creation, but the secret and headers are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointUpsertIn {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    /// Deliveries per second to this endpoint, at most; `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    /// Only these operational event types are delivered; absent, null or empty: all.
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    #[serde(default)]
    #[schema(ignore)]
    pub filter_types: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub rate_limit: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub channels: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub signature: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    /// Deliveries per second to this endpoint, at most; `null`: no limit.
    pub throttle_rate: Option<u16>,
    pub event_types: Option<Vec<String>>,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for OperationalWebhookEndpointOut {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            uid: e.uid.map(|u| u.to_string()),
            url: e.url.as_str().to_owned(),
            description: e.description,
            disabled: e.disabled,
            throttle_rate: e.rate_limit,
            event_types: e
                .subscription
                .event_types
                .map(|s| s.into_iter().map(|n| n.to_string()).collect()),
            metadata: e.metadata,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OperationalWebhookEndpointHeadersIn {
    #[schema(value_type = CustomHeaders)]
    pub headers: BTreeMap<String, String>,
}

fn is_endpoint_id(s: &str) -> bool {
    EndpointId::parse(s).is_some()
}

fn subscription(event_types: Option<Vec<String>>) -> Result<Subscription, ApiError> {
    Ok(Subscription {
        event_types: fields::event_types("eventTypes", event_types)?,
        channels: None,
    })
}

/// The operational endpoint a path names, or 404.
async fn find(state: &ApiState, endpoint_id: &str) -> Result<(Application, Endpoint), ApiError> {
    let key = fields::endpoint_key(endpoint_id)?;
    let not_found = || ApiError::not_found("endpoint");
    let app = operational_app(&*state.store)
        .await?
        .ok_or_else(not_found)?;
    let endpoint = state.store.get_endpoint(&app.id, &key).await?;
    Ok((app, endpoint.ok_or_else(not_found)?))
}

#[utoipa::path(get, operation_id = "v1.operational-webhook.endpoint.list", path = "/api/v1/operational-webhook/endpoint",
    tag = "Webhook Endpoint", params(ListParams),
    responses((status = 200, body = ListResponse<OperationalWebhookEndpointOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<OperationalWebhookEndpointOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = match operational_app(&*state.store).await? {
        Some(app) => state.store.list_endpoints(&app.id, None, &page).await?,
        None => Vec::new(),
    };
    Ok(Json(list_response(
        rows,
        &page,
        |e| e.id.to_string(),
        OperationalWebhookEndpointOut::from,
    )))
}

#[utoipa::path(post, operation_id = "v1.operational-webhook.endpoint.create", path = "/api/v1/operational-webhook/endpoint",
    tag = "Webhook Endpoint", request_body = OperationalWebhookEndpointIn,
    responses((status = 201, body = OperationalWebhookEndpointOut)))]
pub async fn create(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<OperationalWebhookEndpointIn>,
) -> Result<(StatusCode, Json<OperationalWebhookEndpointOut>), ApiError> {
    refuse_others(
        input.filter_types.is_some(),
        input.rate_limit.is_some(),
        input.channels.is_some(),
        input.signature.is_some(),
    )?;
    let uid = fields::uid("uid", input.uid, is_endpoint_id)?;
    let url = endpoints::url(&state, &input.url)?;
    let subscription = subscription(input.event_types)?;
    let headers = EndpointHeaders::parse(input.headers.unwrap_or_default())
        .map_err(|e| fields::body_error("headers", e))?;
    let scheme = SignatureScheme::default();
    endpoints::check_headers(&scheme, &headers, &["body", "headers"])?;
    let secret = endpoints::secret("secret", input.secret)?;
    let app = operational_app_or_create(&*state.store).await?;
    let new = NewEndpoint {
        app_id: app.id,
        uid,
        url,
        description: input.description,
        disabled: input.disabled,
        rate_limit: input.throttle_rate,
        subscription,
        metadata: input.metadata,
        headers,
        secret,
        signature: scheme,
        // The server's auto_disable_after_* options: the SDK's shapes have no override.
        auto_disable_after_failures: None,
        auto_disable_after_secs: None,
        retry_policy: None,
        ordering: DeliveryOrder::Concurrent,
    };
    let endpoint = state.store.insert_endpoint(new).await?;
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

#[utoipa::path(get, operation_id = "v1.operational-webhook.endpoint.get", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = OperationalWebhookEndpointOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
) -> Result<Json<OperationalWebhookEndpointOut>, ApiError> {
    Ok(Json(find(&state, &endpoint_id).await?.1.into()))
}

/// Replaces the endpoint's settings (not its secret or headers), or creates it with the path
/// as its uid.
#[utoipa::path(put, operation_id = "v1.operational-webhook.endpoint.upsert", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    request_body = OperationalWebhookEndpointUpsertIn,
    responses((status = 200, body = OperationalWebhookEndpointOut), (status = 201, body = OperationalWebhookEndpointOut)))]
pub async fn upsert(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
    JsonBody(input): JsonBody<OperationalWebhookEndpointUpsertIn>,
) -> Result<(StatusCode, Json<OperationalWebhookEndpointOut>), ApiError> {
    refuse_others(
        input.filter_types.is_some(),
        input.rate_limit.is_some(),
        input.channels.is_some(),
        input.signature.is_some(),
    )?;
    let key = fields::endpoint_key(&endpoint_id)?;
    let uid = fields::uid("uid", input.uid, is_endpoint_id)?;
    let url = endpoints::url(&state, &input.url)?;
    let subscription = subscription(input.event_types)?;
    let app = operational_app_or_create(&*state.store).await?;
    match state.store.get_endpoint(&app.id, &key).await? {
        Some(mut endpoint) => {
            endpoint.uid = uid.or(endpoint.uid);
            endpoint.url = url;
            endpoint.description = input.description;
            endpoint.disabled = input.disabled;
            endpoint.rate_limit = input.throttle_rate;
            endpoint.subscription = subscription;
            endpoint.metadata = input.metadata;
            let endpoint = state.store.update_endpoint(endpoint).await?;
            Ok((StatusCode::OK, Json(endpoint.into())))
        }
        None => {
            let EndpointKey::Uid(path_uid) = key else {
                return Err(ApiError::not_found("endpoint"));
            };
            let new = NewEndpoint {
                app_id: app.id,
                uid: uid.or(Some(path_uid)),
                url,
                description: input.description,
                disabled: input.disabled,
                rate_limit: input.throttle_rate,
                subscription,
                metadata: input.metadata,
                headers: EndpointHeaders::default(),
                secret: endpoints::secret("secret", None)?,
                signature: SignatureScheme::default(),
                auto_disable_after_failures: None,
                auto_disable_after_secs: None,
                retry_policy: None,
                ordering: DeliveryOrder::Concurrent,
            };
            let endpoint = state.store.insert_endpoint(new).await?;
            Ok((StatusCode::CREATED, Json(endpoint.into())))
        }
    }
}

#[utoipa::path(delete, operation_id = "v1.operational-webhook.endpoint.delete", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (app, endpoint) = find(&state, &endpoint_id).await?;
    state.store.delete_endpoint(&app.id, &endpoint.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.operational-webhook.endpoint.get-headers", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
pub async fn get_headers(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let (_, endpoint) = find(&state, &endpoint_id).await?;
    Ok(Json(endpoints::headers_out(&endpoint)))
}

/// Replaces all custom headers.
#[utoipa::path(put, operation_id = "v1.operational-webhook.endpoint.set-headers", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    request_body = OperationalWebhookEndpointHeadersIn, responses((status = 204)))]
pub async fn update_headers(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
    JsonBody(input): JsonBody<OperationalWebhookEndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let (_, mut endpoint) = find(&state, &endpoint_id).await?;
    endpoints::replace_headers(&mut endpoint, input.headers)?;
    state.store.update_endpoint(endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.operational-webhook.endpoint.get-secret", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
pub async fn get_secret(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let (_, endpoint) = find(&state, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut::of(&endpoint.secret)))
}

/// Replaces the signing secret. The old secret keeps signing (deliveries carry both
/// signatures) for `gracePeriodSeconds`. Answers 204, as the SDK's document says (the SDK
/// returns nothing for this call).
#[utoipa::path(post, operation_id = "v1.operational-webhook.endpoint.rotate-secret", path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate",
    tag = "Webhook Endpoint", params(("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointSecretRotateIn, responses((status = 204)))]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    Path(endpoint_id): Path<String>,
    JsonBody(input): JsonBody<EndpointSecretRotateIn>,
) -> Result<StatusCode, ApiError> {
    let (_, mut endpoint) = find(&state, &endpoint_id).await?;
    endpoints::rotate(&mut endpoint, input)?;
    state.store.update_endpoint(endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}
