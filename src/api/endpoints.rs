//! `/api/v1/app/{app_id}/endpoint`: endpoints, their custom headers and signing secrets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Duration;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::applications;
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, null_as_default, nullable};
use super::openapi::strings::PathKeyString;
use super::openapi::strings::{
    ChannelString, CustomHeaders, CustomHeadersPatch, EndpointUrlString, EventTypeNameString,
    SecretString, UidString,
};
use super::pagination::{ListParams, ListResponse, Ordering, list_response};
use crate::domain::events::HealthState;
use crate::domain::health::HealthCounters;
use crate::domain::time::now;
use crate::domain::{
    DeliveryOrder, Endpoint, EndpointHeaders, EndpointId, EndpointKey, EndpointUrl, Metadata,
    PreviousSecret, RetryPolicySpec, SignatureScheme, SignatureSpec, SigningSecret, Subscription,
};
use crate::store::{NewEndpoint, Order};

/// The most channels an endpoint may filter on.
const MAX_CHANNELS: usize = 10;
/// How long a rotated-out secret keeps signing, unless the request says otherwise.
const DEFAULT_GRACE_SECONDS: u32 = 24 * 60 * 60;
const MAX_GRACE_SECONDS: u32 = 7 * 24 * 60 * 60;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    /// Absent or null: empty.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    /// Absent or null: false.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    /// Deliveries per second to this endpoint, at most: a backlog waits its turn (a burst of
    /// up to one second's worth after a quiet spell); `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    /// Only these event types are delivered; absent, null or empty: all.
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    /// Only messages with one of these channels are delivered; absent, null or empty: all.
    #[schema(value_type = Option<Vec<ChannelString>>, max_items = 10)]
    pub channels: Option<Vec<String>>,
    /// `whsec_` and the base64 of 24 to 75 bytes, or (standard scheme only) an ed25519
    /// secret, `whsk_` and the base64 of its 32-byte seed or 64-byte keypair, which signs
    /// `v1a`; a `whsec_` secret is generated when absent or null.
    #[schema(value_type = Option<SecretString>)]
    pub secret: Option<String>,
    /// Absent or null: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    /// Custom headers sent with every delivery.
    #[schema(value_type = Option<CustomHeaders>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// hookd: the format deliveries are signed in (absent or null: `standard`).
    #[schema(nullable)]
    pub signature: Option<SignatureSpec>,
    /// hookd: disable this endpoint after this many consecutive failed attempts (0: never);
    /// absent or null: the server's `auto_disable_after_failures`.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 2147483647, nullable)]
    pub auto_disable_after_failures: Option<u32>,
    /// hookd: disable this endpoint once every attempt has failed for this many seconds (0:
    /// never); absent or null: the server's `auto_disable_after_secs`.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, nullable)]
    pub auto_disable_after_secs: Option<u32>,
    /// hookd: this endpoint's retry policy (README, "Retry policies"), over its event
    /// types', its messages' priorities' and the default; absent or null: none.
    #[schema(nullable)]
    pub retry_policy: Option<RetryPolicySpec>,
    /// hookd: `fifo` sends this endpoint's deliveries one at a time, in message order, a
    /// failing one holding those behind it until it succeeds or fails for good (README,
    /// "FIFO endpoints"); absent or null: `concurrent`.
    #[schema(nullable)]
    pub ordering: Option<DeliveryOrder>,
}

/// The body of PUT: as for creation, but the secret and headers are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointUpdate {
    #[schema(value_type = EndpointUrlString)]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub description: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub disabled: bool,
    /// Deliveries per second to this endpoint, at most: a backlog waits its turn (a burst of
    /// up to one second's worth after a quiet spell); `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<String>,
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<ChannelString>>, max_items = 10)]
    pub channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub metadata: Metadata,
    /// hookd: the signature scheme; absent: unchanged (the Svix SDKs do not send it), null:
    /// `standard`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<SignatureSpec>, nullable)]
    pub signature: Option<Option<SignatureSpec>>,
    /// hookd: see `EndpointIn`; absent: unchanged (the Svix SDKs do not send it), null: the
    /// server's option.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 2147483647, nullable)]
    pub auto_disable_after_failures: Option<Option<u32>>,
    /// hookd: see `EndpointIn`; absent: unchanged, null: the server's option.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u32>, minimum = 0, nullable)]
    pub auto_disable_after_secs: Option<Option<u32>>,
    /// hookd: the endpoint's retry policy; absent: unchanged, null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RetryPolicySpec>, nullable)]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
    /// hookd: see `EndpointIn`; absent: unchanged, null: `concurrent`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DeliveryOrder>, nullable)]
    pub ordering: Option<Option<DeliveryOrder>>,
}

/// Absent fields, and null ones that cannot be cleared (`url`, `description`, `disabled`,
/// `metadata`), are left as they are; a null `throttleRate`, `uid`, `eventTypes` or
/// `channels` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    #[schema(value_type = Option<EndpointUrlString>)]
    pub url: Option<String>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
    /// Deliveries per second to this endpoint, at most: a backlog waits its turn (a burst of
    /// up to one second's worth after a quiet spell); `null` or 0: no limit.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u16>, minimum = 0, maximum = 65535)]
    pub throttle_rate: Option<Option<u16>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<UidString>)]
    pub uid: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<EventTypeNameString>>)]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<ChannelString>>, max_items = 10)]
    pub channels: Option<Option<Vec<String>>>,
    pub metadata: Option<Metadata>,
    /// hookd: the signature scheme; absent: unchanged, null: `standard`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<SignatureSpec>, nullable)]
    pub signature: Option<Option<SignatureSpec>>,
    /// hookd: see `EndpointIn`; absent: unchanged, null: the server's option.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 2147483647, nullable)]
    pub auto_disable_after_failures: Option<Option<u32>>,
    /// hookd: see `EndpointIn`; absent: unchanged, null: the server's option.
    #[serde(default, deserialize_with = "fields::nullable_whole")]
    #[schema(value_type = Option<u32>, minimum = 0, nullable)]
    pub auto_disable_after_secs: Option<Option<u32>>,
    /// hookd: the endpoint's retry policy; absent: unchanged, null: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<RetryPolicySpec>, nullable)]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
    /// hookd: see `EndpointIn`; absent: unchanged, null: `concurrent`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DeliveryOrder>, nullable)]
    pub ordering: Option<Option<DeliveryOrder>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    /// Deliveries per second to this endpoint, at most: a backlog waits its turn (a burst of
    /// up to one second's worth after a quiet spell); `null` or 0: no limit.
    pub throttle_rate: Option<u16>,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: Metadata,
    /// hookd: the format deliveries are signed in, with every default written out.
    pub signature: SignatureSpec,
    /// hookd: this endpoint's override of `auto_disable_after_failures`; null: the server's.
    pub auto_disable_after_failures: Option<u32>,
    /// hookd: this endpoint's override of `auto_disable_after_secs`; null: the server's.
    pub auto_disable_after_secs: Option<u64>,
    /// hookd: the endpoint's retry policy, as given; null: none (its event types', its
    /// messages' priorities' or the default applies).
    pub retry_policy: Option<RetryPolicySpec>,
    /// hookd: `concurrent`, or `fifo` (one at a time, in message order).
    pub ordering: DeliveryOrder,
    /// hookd: the endpoint's health, from its recent attempts.
    pub health: EndpointHealthOut,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// hookd: an endpoint's health (see the README's "Endpoint health"). An endpoint with no
/// attempt recorded is healthy, with nulls.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealthOut {
    /// `disabled` whenever the endpoint is, whatever its counters say.
    pub state: HealthState,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When the first attempt of the current failing streak was made.
    pub failing_since: Option<DateTime<Utc>>,
    /// Successful attempts over the attempts in the window (the last `health_window`),
    /// 0.0–1.0; null before any attempt.
    pub success_rate: Option<f64>,
    /// Attempts in the window.
    pub window_attempts: u32,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
}

impl EndpointHealthOut {
    pub fn new(disabled: bool, counters: Option<&HealthCounters>) -> Self {
        let fresh = HealthCounters::default();
        let c = counters.unwrap_or(&fresh);
        Self {
            state: c.shown(disabled),
            consecutive_failures: c.consecutive_failures,
            failing_since: c.failing_since,
            success_rate: c.success_rate(),
            window_attempts: c.window_attempts(),
            last_success_at: c.last_success_at,
            last_failure_at: c.last_failure_at,
        }
    }
}

/// The endpoints' health counters, for their reads.
pub async fn health_of(
    state: &ApiState,
    endpoints: &[&Endpoint],
) -> Result<HashMap<EndpointId, HealthCounters>, ApiError> {
    let ids: Vec<EndpointId> = endpoints.iter().map(|e| e.id.clone()).collect();
    Ok(state.store.endpoint_health(&ids).await?)
}

/// Saves a changed endpoint. Enabling a disabled one makes its parked deliveries due at once:
/// this node's dispatcher is woken for them (other nodes are, on PostgreSQL, by the store's
/// notification).
async fn save(
    state: &ApiState,
    endpoint: Endpoint,
    was_disabled: bool,
) -> Result<Endpoint, ApiError> {
    let endpoint = state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    if was_disabled && !endpoint.disabled {
        state.message_enqueued.notify_one();
    }
    Ok(endpoint)
}

/// An endpoint as read, with its health.
pub async fn out(state: &ApiState, endpoint: Endpoint) -> Result<EndpointOut, ApiError> {
    let health = health_of(state, &[&endpoint]).await?;
    let counters = health.get(&endpoint.id);
    Ok(EndpointOut::new(endpoint, counters))
}

impl EndpointOut {
    pub fn new(e: Endpoint, health: Option<&HealthCounters>) -> Self {
        Self {
            health: EndpointHealthOut::new(e.disabled, health),
            auto_disable_after_failures: e.auto_disable_after_failures,
            auto_disable_after_secs: e.auto_disable_after_secs,
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
            channels: e
                .subscription
                .channels
                .map(|s| s.into_iter().map(|c| c.to_string()).collect()),
            metadata: e.metadata,
            signature: e.signature.spec(),
            retry_policy: e.retry_policy.map(|p| p.spec()),
            ordering: e.ordering,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointHeadersIn {
    #[schema(value_type = CustomHeaders)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHeadersPatchIn {
    /// Headers to set; a null value removes the header. Absent or null: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(value_type = Option<CustomHeadersPatch>)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Headers to remove. Absent or null: none.
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub delete_headers: Vec<String>,
}

/// The endpoint's custom headers as the API shows them: credentials by name only.
pub(super) fn headers_out(endpoint: &Endpoint) -> EndpointHeadersOut {
    let (headers, sensitive) = endpoint.headers.split_sensitive();
    EndpointHeadersOut { headers, sensitive }
}

/// Replaces all the endpoint's custom headers (not yet saved), refusing those the endpoint
/// cannot send (422 naming `headers`).
pub(super) fn replace_headers(
    endpoint: &mut Endpoint,
    headers: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    endpoint.headers =
        EndpointHeaders::parse(headers).map_err(|e| fields::body_error("headers", e))?;
    check_headers(&endpoint.signature, &endpoint.headers, &["body", "headers"])
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointHeadersOut {
    /// Headers whose values may be shown.
    pub headers: BTreeMap<String, String>,
    /// Names of headers holding credentials; their values are not shown.
    pub sensitive: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretOut {
    /// The secret as it was set: `whsec_…` (symmetric, `v1` signatures) or `whsk_…`
    /// (ed25519, `v1a` signatures).
    pub key: String,
    /// hookd: for a `whsk_` secret, its public key (`whpk_…`), all a receiver needs to
    /// verify `v1a` signatures; null for a symmetric secret.
    #[serde(default)]
    #[schema(nullable, pattern = "^whpk_[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
    pub public_key: Option<String>,
}

impl EndpointSecretOut {
    pub fn of(secret: &SigningSecret) -> Self {
        Self {
            key: secret.expose(),
            public_key: secret.public_key().map(|p| p.expose()),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    /// The new secret, `whsec_…` or (standard scheme only) `whsk_…`; a `whsec_` secret is
    /// generated when absent or null.
    #[schema(value_type = Option<SecretString>)]
    pub key: Option<String>,
    /// How long the old secret keeps signing deliveries (absent or null: 86400).
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<u32>,
}

fn is_endpoint_id(s: &str) -> bool {
    EndpointId::parse(s).is_some()
}

pub(super) fn url(state: &ApiState, value: &str) -> Result<EndpointUrl, ApiError> {
    let url = EndpointUrl::parse(value).map_err(|e| fields::body_error("url", e))?;
    if state.settings.https_only && !url.is_https() {
        return Err(fields::body_error(
            "url",
            "must use https (this server has https_only set)",
        ));
    }
    Ok(url)
}

fn subscription(
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
) -> Result<Subscription, ApiError> {
    Ok(Subscription {
        event_types: fields::event_types("eventTypes", event_types)?,
        channels: fields::channels("channels", channels, MAX_CHANNELS)?,
    })
}

pub(super) fn secret(field: &str, value: Option<String>) -> Result<SigningSecret, ApiError> {
    match value {
        None => Ok(SigningSecret::generate()),
        Some(s) => SigningSecret::parse(&s).map_err(|e| fields::body_error(field, e)),
    }
}

/// Refuses an ed25519 (`whsk_`) secret under a scheme other than `standard`: only Standard
/// Webhooks defines an asymmetric signature (`v1a`). `secrets` are those that would sign
/// (rotated-out ones included); `loc` names the field the request set.
fn check_secret_scheme<'a>(
    scheme: &SignatureScheme,
    mut secrets: impl Iterator<Item = &'a SigningSecret>,
    loc: &[&str],
) -> Result<(), ApiError> {
    if *scheme == SignatureScheme::Standard || !secrets.any(SigningSecret::is_asymmetric) {
        return Ok(());
    }
    Err(ApiError::invalid(
        loc,
        "an ed25519 (whsk_) secret signs only the standard scheme (v1a signatures); the stripe and hmac-sha256 schemes need a symmetric whsec_ secret (rotate to one, and wait for the old one's grace period to end, before changing the scheme)",
    ))
}

/// A signature scheme from the request; null or absent is `standard`.
fn signature(spec: Option<SignatureSpec>) -> Result<SignatureScheme, ApiError> {
    spec.map(SignatureScheme::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(&["body", "signature", e.field], e.message))
        .map(Option::unwrap_or_default)
}

/// Refuses a custom header that the signature scheme sets itself: one of the two would be
/// lost, and a header dropped without a word is a surprise at the receiver.
pub(super) fn check_headers(
    scheme: &SignatureScheme,
    headers: &EndpointHeaders,
    field: &[&str],
) -> Result<(), ApiError> {
    match scheme.header_names().find(|name| headers.contains(name)) {
        Some(name) => Err(ApiError::invalid(
            field,
            format!(
                "{name} is the header the signature scheme sets; a custom header cannot use it"
            ),
        )),
        None => Ok(()),
    }
}

/// The endpoint a path names (in an application the path names), or 404.
pub async fn find(state: &ApiState, app_id: &str, endpoint_id: &str) -> Result<Endpoint, ApiError> {
    let app = applications::find(state, app_id).await?;
    let key = fields::endpoint_key(endpoint_id)?;
    state
        .store
        .get_endpoint(&app.id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "super::pagination::limit")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    /// Sort order (default ascending).
    pub order: Option<Ordering>,
    /// hookd: only endpoints in this health state.
    #[param(value_type = Option<HealthState>)]
    pub health: Option<String>,
}

#[utoipa::path(get, operation_id = "v1.endpoint.list", path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), EndpointListParams),
    responses((status = 200, body = ListResponse<EndpointOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    QueryParams(params): QueryParams<EndpointListParams>,
) -> Result<Json<ListResponse<EndpointOut>>, ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let page = ListParams::page_of(
        params.limit,
        params.iterator.as_deref(),
        params.order,
        Order::Ascending,
    )?;
    let health = params
        .health
        .map(|h| {
            HealthState::parse(&h).ok_or_else(|| {
                ApiError::invalid(
                    &["query", "health"],
                    "must be healthy, degraded, failing or disabled",
                )
            })
        })
        .transpose()?;
    let rows = state.store.list_endpoints(&app.id, health, &page).await?;
    let counters = health_of(&state, &rows.iter().collect::<Vec<_>>()).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |e| e.id.to_string(),
        |e| {
            let c = counters.get(&e.id);
            EndpointOut::new(e, c)
        },
    )))
}

#[utoipa::path(post, operation_id = "v1.endpoint.create", path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path)), request_body = EndpointIn,
    responses((status = 201, body = EndpointOut)))]
pub async fn create(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<EndpointIn>,
) -> Result<(StatusCode, Json<EndpointOut>), ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let new = NewEndpoint {
        app_id: app.id,
        uid: fields::uid("uid", input.uid, is_endpoint_id)?,
        url: url(&state, &input.url)?,
        description: input.description,
        disabled: input.disabled,
        rate_limit: input.throttle_rate,
        subscription: subscription(input.event_types, input.channels)?,
        metadata: input.metadata,
        headers: EndpointHeaders::parse(input.headers.unwrap_or_default())
            .map_err(|e| fields::body_error("headers", e))?,
        secret: secret("secret", input.secret)?,
        signature: signature(input.signature)?,
        auto_disable_after_failures: failures_limit(input.auto_disable_after_failures)?,
        auto_disable_after_secs: input.auto_disable_after_secs.map(u64::from),
        retry_policy: fields::retry_policy(&state, input.retry_policy, "retryPolicy")?,
        ordering: input.ordering.unwrap_or_default(),
    };
    check_headers(&new.signature, &new.headers, &["body", "headers"])?;
    check_secret_scheme(
        &new.signature,
        [&new.secret].into_iter(),
        &["body", "secret"],
    )?;
    let endpoint = state.store.insert_endpoint(new).await?;
    state.events_written.notify_one();
    Ok((StatusCode::CREATED, Json(EndpointOut::new(endpoint, None))))
}

#[utoipa::path(get, operation_id = "v1.endpoint.get", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointOut>, ApiError> {
    let endpoint = find(&state, &app_id, &endpoint_id).await?;
    Ok(Json(out(&state, endpoint).await?))
}

/// Replaces the endpoint's settings (not its secret or headers), or creates it with the
/// path as its uid.
#[utoipa::path(put, operation_id = "v1.endpoint.update", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointUpdate,
    responses((status = 200, body = EndpointOut), (status = 201, body = EndpointOut)))]
pub async fn update(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointUpdate>,
) -> Result<(StatusCode, Json<EndpointOut>), ApiError> {
    let app = applications::find(&state, &app_id).await?;
    let key = fields::endpoint_key(&endpoint_id)?;
    let uid = fields::uid("uid", input.uid, is_endpoint_id)?;
    let url = url(&state, &input.url)?;
    let subscription = subscription(input.event_types, input.channels)?;
    let scheme = input.signature.map(signature).transpose()?;
    let retry_policy = input
        .retry_policy
        .map(|p| fields::retry_policy(&state, p, "retryPolicy"))
        .transpose()?;
    match state.store.get_endpoint(&app.id, &key).await? {
        Some(mut endpoint) => {
            let was_disabled = endpoint.disabled;
            if let Some(scheme) = scheme {
                endpoint.signature = scheme;
                check_headers(
                    &endpoint.signature,
                    &endpoint.headers,
                    &["body", "signature", "header"],
                )?;
                check_secret_scheme(
                    &endpoint.signature,
                    endpoint.signing_secrets(now()),
                    &["body", "signature", "scheme"],
                )?;
            }
            endpoint.uid = uid.or(endpoint.uid);
            endpoint.url = url;
            endpoint.description = input.description;
            endpoint.disabled = input.disabled;
            endpoint.rate_limit = input.throttle_rate;
            endpoint.subscription = subscription;
            endpoint.metadata = input.metadata;
            if let Some(n) = input.auto_disable_after_failures {
                endpoint.auto_disable_after_failures = failures_limit(n)?;
            }
            if let Some(secs) = input.auto_disable_after_secs {
                endpoint.auto_disable_after_secs = secs.map(u64::from);
            }
            if let Some(policy) = retry_policy {
                endpoint.retry_policy = policy.map(Arc::new);
            }
            if let Some(ordering) = input.ordering {
                endpoint.ordering = ordering.unwrap_or_default();
            }
            let endpoint = save(&state, endpoint, was_disabled).await?;
            Ok((StatusCode::OK, Json(out(&state, endpoint).await?)))
        }
        None => {
            let EndpointKey::Uid(path_uid) = key else {
                return Err(ApiError::not_found("endpoint"));
            };
            // The path is the uid, unless the body names one.
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
                secret: SigningSecret::generate(),
                signature: scheme.unwrap_or_default(),
                auto_disable_after_failures: failures_limit(
                    input.auto_disable_after_failures.flatten(),
                )?,
                auto_disable_after_secs: input.auto_disable_after_secs.flatten().map(u64::from),
                retry_policy: retry_policy.flatten(),
                ordering: input.ordering.flatten().unwrap_or_default(),
            };
            let endpoint = state.store.insert_endpoint(new).await?;
            state.events_written.notify_one();
            Ok((StatusCode::CREATED, Json(EndpointOut::new(endpoint, None))))
        }
    }
}

#[utoipa::path(patch, operation_id = "v1.endpoint.patch", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointPatch, responses((status = 200, body = EndpointOut)))]
pub async fn patch(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    let mut endpoint = find(&state, &app_id, &endpoint_id).await?;
    let was_disabled = endpoint.disabled;
    if let Some(u) = input.url {
        endpoint.url = url(&state, &u)?;
    }
    if let Some(description) = input.description {
        endpoint.description = description;
    }
    if let Some(disabled) = input.disabled {
        endpoint.disabled = disabled;
    }
    if let Some(rate) = input.throttle_rate {
        endpoint.rate_limit = rate;
    }
    if let Some(uid) = input.uid {
        endpoint.uid = fields::uid("uid", uid, is_endpoint_id)?;
    }
    if let Some(types) = input.event_types {
        endpoint.subscription.event_types = fields::event_types("eventTypes", types)?;
    }
    if let Some(channels) = input.channels {
        endpoint.subscription.channels = fields::channels("channels", channels, MAX_CHANNELS)?;
    }
    if let Some(metadata) = input.metadata {
        endpoint.metadata = metadata;
    }
    if let Some(spec) = input.signature {
        endpoint.signature = signature(spec)?;
        check_headers(
            &endpoint.signature,
            &endpoint.headers,
            &["body", "signature", "header"],
        )?;
        check_secret_scheme(
            &endpoint.signature,
            endpoint.signing_secrets(now()),
            &["body", "signature", "scheme"],
        )?;
    }
    if let Some(n) = input.auto_disable_after_failures {
        endpoint.auto_disable_after_failures = failures_limit(n)?;
    }
    if let Some(secs) = input.auto_disable_after_secs {
        endpoint.auto_disable_after_secs = secs.map(u64::from);
    }
    if let Some(policy) = input.retry_policy {
        endpoint.retry_policy = fields::retry_policy(&state, policy, "retryPolicy")?.map(Arc::new);
    }
    if let Some(ordering) = input.ordering {
        endpoint.ordering = ordering.unwrap_or_default();
    }
    let endpoint = save(&state, endpoint, was_disabled).await?;
    Ok(Json(out(&state, endpoint).await?))
}

/// Deletes the endpoint; its pending deliveries stop.
#[utoipa::path(delete, operation_id = "v1.endpoint.delete", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find(&state, &app_id, &endpoint_id).await?;
    state
        .store
        .delete_endpoint(&endpoint.app_id, &endpoint.id)
        .await?;
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.endpoint.get-headers", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
pub async fn get_headers(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let endpoint = find(&state, &app_id, &endpoint_id).await?;
    Ok(Json(headers_out(&endpoint)))
}

/// Replaces all custom headers.
#[utoipa::path(put, operation_id = "v1.endpoint.update-headers", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointHeadersIn, responses((status = 204)))]
pub async fn update_headers(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let mut endpoint = find(&state, &app_id, &endpoint_id).await?;
    replace_headers(&mut endpoint, input.headers)?;
    state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the given headers and removes those with a null value or listed in `deleteHeaders`.
#[utoipa::path(patch, operation_id = "v1.endpoint.patch-headers", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointHeadersPatchIn, responses((status = 204)))]
pub async fn patch_headers(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointHeadersPatchIn>,
) -> Result<StatusCode, ApiError> {
    let mut endpoint = find(&state, &app_id, &endpoint_id).await?;
    let mut changes = input.headers;
    changes.extend(input.delete_headers.into_iter().map(|name| (name, None)));
    endpoint
        .headers
        .patch(changes)
        .map_err(|e| fields::body_error("headers", e))?;
    check_headers(&endpoint.signature, &endpoint.headers, &["body", "headers"])?;
    state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "v1.endpoint.get-secret", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
pub async fn get_secret(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let endpoint = find(&state, &app_id, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut::of(&endpoint.secret)))
}

/// Replaces the signing secret and answers with the new one. The old secret keeps signing
/// (deliveries carry both signatures) for `gracePeriodSeconds`.
#[utoipa::path(post, operation_id = "v1.endpoint.rotate-secret", path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
    tag = "Endpoint", params(("app_id" = PathKeyString, Path), ("endpoint_id" = PathKeyString, Path)),
    request_body = EndpointSecretRotateIn, responses((status = 200, body = EndpointSecretOut)))]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<EndpointSecretRotateIn>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let mut endpoint = find(&state, &app_id, &endpoint_id).await?;
    rotate(&mut endpoint, input)?;
    let endpoint = state.store.update_endpoint(endpoint).await?;
    state.events_written.notify_one();
    Ok(Json(EndpointSecretOut::of(&endpoint.secret)))
}

/// Puts the new secret in place, keeping the old one for the grace period (not saved).
pub(super) fn rotate(
    endpoint: &mut Endpoint,
    input: EndpointSecretRotateIn,
) -> Result<(), ApiError> {
    let grace = input.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(fields::body_error(
            "gracePeriodSeconds",
            format!("must be at most {MAX_GRACE_SECONDS} (7 days)"),
        ));
    }
    let new_secret = secret("key", input.key)?;
    check_secret_scheme(
        &endpoint.signature,
        [&new_secret].into_iter(),
        &["body", "key"],
    )?;
    let now = now();
    let old = std::mem::replace(&mut endpoint.secret, new_secret);
    endpoint.previous_secrets.retain(|p| p.expires_at > now);
    if grace > 0 {
        endpoint.previous_secrets.push(PreviousSecret {
            secret: old,
            expires_at: now + Duration::seconds(i64::from(grace)),
        });
    }
    Ok(())
}

/// `autoDisableAfterFailures` is stored as a 32-bit signed integer.
fn failures_limit(n: Option<u32>) -> Result<Option<u32>, ApiError> {
    match n {
        Some(n) if n > i32::MAX as u32 => Err(ApiError::invalid(
            &["body", "autoDisableAfterFailures"],
            "must be at most 2147483647",
        )),
        n => Ok(n),
    }
}
