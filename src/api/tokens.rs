//! `/api/v1/auth`: API tokens (hookd's own routes), app portal access, expire-all, logout
//! and whoami (the Svix SDK's `authentication` routes). See [`super::auth`] for what the
//! tokens may do.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::applications::{self, ApplicationIn};
use super::auth::{Caller, generate_token, hash_hex, hash_token, token_hint};
use super::error::ApiError;
use super::extract::{JsonBody, QueryParams};
use super::fields::{self, body_error};
use super::openapi::strings::{PathKeyString, SessionIdString};
use super::pagination::{ListParams, ListResponse, list_response};
use crate::domain::time::now;
use crate::domain::{Abilities, Ability, ApiToken, AppId, AppKey, TokenId, TokenKind};
use crate::store::{NewApplication, NewToken, Order};

/// The longest and default life of an app portal token, as the Svix SDK documents it.
const PORTAL_EXPIRY_MAX: u64 = 7 * 24 * 3600;
const PORTAL_EXPIRY_MIN: u64 = 3600;
/// The furthest `expire-all` may set an expiry.
const EXPIRE_ALL_MAX: i64 = 259_200;

/// A named token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenIn {
    /// What the token is for, to tell it by.
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// What the token may do; `admin` is everything, including tokens.
    #[schema(min_items = 1)]
    pub abilities: Vec<Ability>,
    /// The one application (id or uid) the token is limited to; absent: every one. With
    /// `admin`, a limited token may do everything within its application (and nothing
    /// outside it). An application that does not exist is a 404.
    #[schema(value_type = Option<PathKeyString>)]
    pub app: Option<String>,
    /// When the token stops working; absent: never. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests per hour, counted by all nodes together; 0: no limit; absent: the
    /// `token_rate_limit` option.
    #[serde(default, deserialize_with = "fields::whole")]
    pub rate_limit: Option<u32>,
}

/// A stored token, never the token itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenOut {
    pub id: String,
    pub name: String,
    /// `named` (made by an administrator) or `portal` (made for the app portal).
    pub kind: String,
    pub abilities: Vec<Ability>,
    /// The id of the one application the token is limited to.
    pub app: Option<String>,
    pub session_id: Option<String>,
    /// Its own requests per hour, if it has one (0: no limit); absent: `token_rate_limit`.
    pub rate_limit: Option<u32>,
    /// The token's first characters, and an ellipsis.
    pub censored_token: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The last request made with it (recorded within about a second).
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A token just made: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreatedOut {
    #[serde(flatten)]
    pub stored: ApiTokenOut,
    /// The token: send it as `Authorization: Bearer <token>`. Only its hash is kept.
    pub token: String,
}

impl From<ApiToken> for ApiTokenOut {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            kind: t.kind.as_str().to_owned(),
            abilities: t.abilities.iter().collect(),
            app: t.app_id.map(|a| a.to_string()),
            session_id: t.session_id,
            rate_limit: t.rate_limit,
            censored_token: format!("{}…", t.hint),
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            created_at: t.created_at,
        }
    }
}

/// A token to store, and the token, for `new` with a freshly generated token.
pub fn new_token(new: impl FnOnce(String, String) -> NewToken) -> (NewToken, String) {
    let token = generate_token();
    (
        new(hash_hex(&hash_token(&token)), token_hint(&token)),
        token,
    )
}

/// The checked fields of a named token.
pub struct NamedToken {
    pub name: String,
    pub abilities: Abilities,
    pub app_id: Option<AppId>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<u32>,
}

impl NamedToken {
    pub fn check(&self) -> Result<(), ApiError> {
        if self.name.is_empty() || self.name.chars().count() > 256 {
            return Err(body_error("name", "must be 1 to 256 characters"));
        }
        if self.abilities.is_empty() {
            return Err(body_error(
                "abilities",
                format!(
                    "give at least one of: {}",
                    Ability::ALL.map(Ability::as_str).join(", ")
                ),
            ));
        }
        if self.expires_at.is_some_and(|at| at <= now()) {
            return Err(body_error("expiresAt", "must be in the future"));
        }
        Ok(())
    }

    pub fn into_new(self, token_hash: String, hint: String) -> NewToken {
        NewToken {
            name: self.name,
            kind: TokenKind::Named,
            abilities: self.abilities,
            app_id: self.app_id,
            session_id: None,
            rate_limit: self.rate_limit,
            token_hash,
            hint,
            expires_at: self.expires_at,
        }
    }
}

#[utoipa::path(post, operation_id = "hookd.token.create", path = "/api/v1/auth/token", tag = "Authentication",
    request_body = ApiTokenIn,
    responses((status = 201, body = ApiTokenCreatedOut)))]
pub async fn create(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<ApiTokenIn>,
) -> Result<(StatusCode, Json<ApiTokenCreatedOut>), ApiError> {
    let app_id = match &input.app {
        None => None,
        Some(app) => Some(
            applications::find(&state, app)
                .await
                .map_err(|_| ApiError::NotFound(format!("application `{app}` not found")))?
                .id,
        ),
    };
    let named = NamedToken {
        name: input.name,
        abilities: Abilities::of(input.abilities),
        app_id,
        expires_at: input.expires_at,
        rate_limit: input.rate_limit,
    };
    named.check()?;
    let (new, token) = new_token(|hash, hint| named.into_new(hash, hint));
    let stored = state.store.insert_token(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiTokenCreatedOut {
            stored: stored.into(),
            token,
        }),
    ))
}

#[utoipa::path(get, operation_id = "hookd.token.list", path = "/api/v1/auth/token", tag = "Authentication",
    params(ListParams),
    responses((status = 200, body = ListResponse<ApiTokenOut>)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListResponse<ApiTokenOut>>, ApiError> {
    let page = params.page(Order::Ascending)?;
    let rows = state.store.list_tokens(&page).await?;
    Ok(Json(list_response(
        rows,
        &page,
        |t| t.id.to_string(),
        ApiTokenOut::from,
    )))
}

fn token_id(s: &str) -> Result<TokenId, ApiError> {
    TokenId::parse(s).ok_or_else(|| ApiError::not_found("token"))
}

#[utoipa::path(get, operation_id = "hookd.token.get", path = "/api/v1/auth/token/{token_id}", tag = "Authentication",
    params(("token_id" = String, Path, description = "The token's id (`tok_…`)")),
    responses((status = 200, body = ApiTokenOut)))]
pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ApiTokenOut>, ApiError> {
    let token = state
        .store
        .get_token(&token_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))?;
    Ok(Json(token.into()))
}

/// Revokes the token: it stops working at once on this node, within about a second on the
/// others.
#[utoipa::path(delete, operation_id = "hookd.token.revoke", path = "/api/v1/auth/token/{token_id}", tag = "Authentication",
    params(("token_id" = String, Path, description = "The token's id (`tok_…`)")),
    responses((status = 204)))]
pub async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = token_id(&id)?;
    if !state.store.delete_token(&id).await? {
        return Err(ApiError::not_found("token"));
    }
    state.auth.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// What an app portal token may do, as the Svix SDK documents the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, ToSchema)]
pub enum AppPortalCapability {
    /// Read the application, its endpoints (not their secrets), messages and attempts, and
    /// the event types.
    ViewBase,
    /// Read endpoint secrets.
    ViewEndpointSecret,
    /// Read and rotate endpoint secrets.
    ManageEndpointSecret,
    /// Change endpoint transformations: hookd has none, so this adds nothing.
    ManageTransformations,
    /// Resend, recover and replay messages, and send examples.
    CreateAttempts,
    /// Change anything of an endpoint, its secret included.
    ManageEndpoint,
}

impl AppPortalCapability {
    /// Whether it only lets the token read (what `readOnly: true` keeps).
    fn reads_only(self) -> bool {
        matches!(self, Self::ViewBase | Self::ViewEndpointSecret)
    }

    fn abilities(self) -> &'static [Ability] {
        use Ability::*;
        match self {
            Self::ViewBase => &[AppRead, EventTypeRead, EndpointRead, MessageRead],
            Self::ViewEndpointSecret => &[SecretRead],
            Self::ManageEndpointSecret => &[SecretRead, SecretRotate],
            Self::ManageTransformations => &[],
            Self::CreateAttempts => &[AttemptCreate],
            Self::ManageEndpoint => &[EndpointWrite, SecretRead, SecretRotate],
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    /// Creates the application when the path's id or uid names none (the path is then its
    /// uid, unless this names one); ignored when it exists.
    #[schema(nullable)]
    pub application: Option<ApplicationIn>,
    /// Deprecated: `true` keeps only the capabilities that read (`ViewBase`,
    /// `ViewEndpointSecret`).
    #[schema(nullable)]
    pub read_only: Option<bool>,
    /// What the token may do; `ViewBase` is always given. Absent: every capability.
    #[schema(nullable)]
    pub capabilities: Option<BTreeSet<AppPortalCapability>>,
    /// hookd has no feature flags: refused (422) when given, so it is not in the document.
    #[schema(ignore)]
    pub feature_flags: Option<Vec<String>>,
    /// Seconds the token is valid for, 3600 to 604800 (the default).
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(nullable, minimum = 3600, maximum = 604800)]
    pub expiry: Option<u64>,
    /// A session the token belongs to, for `expire-all` with `sessionIds`.
    #[schema(
        nullable,
        min_length = 1,
        max_length = 64,
        pattern = "^[a-zA-Z0-9@_-]+$"
    )]
    pub session_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppPortalAccessOut {
    /// The application's page in hookd's UI, signed in with the token (in the URL's
    /// fragment, which browsers never send to a server).
    pub url: String,
    /// An API token limited to the application, with the capabilities' abilities.
    pub token: String,
}

fn session_id(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(body_error(
            field,
            "must be 1 to 64 characters: letters, digits, @, _ and -",
        ))
    }
}

/// Where people reach this hookd: `public_url`, else the request's `Host`.
pub(super) fn base_url(state: &ApiState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A token for the app portal, limited to one application.
#[utoipa::path(post, operation_id = "v1.authentication.app-portal-access", path = "/api/v1/auth/app-portal-access/{app_id}", tag = "Authentication",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    request_body = AppPortalAccessIn,
    responses((status = 200, body = AppPortalAccessOut)))]
pub async fn app_portal_access(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<AppPortalAccessIn>,
) -> Result<Json<AppPortalAccessOut>, ApiError> {
    if input.feature_flags.is_some() {
        return Err(body_error(
            "featureFlags",
            "hookd has no feature flags; leave featureFlags out",
        ));
    }
    let expiry = input.expiry.unwrap_or(PORTAL_EXPIRY_MAX);
    if !(PORTAL_EXPIRY_MIN..=PORTAL_EXPIRY_MAX).contains(&expiry) {
        return Err(body_error(
            "expiry",
            "must be 3600 (an hour) to 604800 (7 days) seconds",
        ));
    }
    if let Some(session) = &input.session_id {
        session_id("sessionId", session)?;
    }
    let mut capabilities = input.capabilities.unwrap_or_else(|| {
        BTreeSet::from([
            AppPortalCapability::ViewBase,
            AppPortalCapability::ViewEndpointSecret,
            AppPortalCapability::ManageEndpointSecret,
            AppPortalCapability::ManageTransformations,
            AppPortalCapability::CreateAttempts,
            AppPortalCapability::ManageEndpoint,
        ])
    });
    // "The ViewBase capability is always required": it is always given.
    capabilities.insert(AppPortalCapability::ViewBase);
    if input.read_only == Some(true) {
        capabilities.retain(|c| c.reads_only());
    }
    let app = match (applications::find(&state, &app_id).await, input.application) {
        (Ok(app), _) => app,
        (Err(ApiError::NotFound(_)), Some(application)) => {
            let AppKey::Uid(path_uid) = applications::app_key(&app_id)? else {
                return Err(ApiError::not_found("application"));
            };
            let new = applications::new_application(application)?;
            let uid = new.uid.clone().or(Some(path_uid));
            state
                .store
                .insert_application(NewApplication { uid, ..new })
                .await?
        }
        (Err(e), _) => return Err(e),
    };
    let abilities = Abilities::of(
        capabilities
            .iter()
            .flat_map(|c| c.abilities().iter().copied()),
    );
    let expires_at = now() + TimeDelta::seconds(i64::try_from(expiry).unwrap_or(i64::MAX));
    let (new, token) = new_token(|token_hash, hint| NewToken {
        name: format!("app portal: {}", app.name),
        kind: TokenKind::Portal,
        abilities,
        app_id: Some(app.id.clone()),
        session_id: input.session_id,
        rate_limit: None,
        token_hash,
        hint,
        expires_at: Some(expires_at),
    });
    state.store.insert_token(new).await?;
    let url = format!(
        "{}/ui/portal/{}#token={token}",
        base_url(&state, &headers),
        app.id
    );
    Ok(Json(AppPortalAccessOut { url, token }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTokenExpireIn {
    /// Seconds until the tokens expire, 0 (now, the default) to 259200.
    #[serde(default, deserialize_with = "fields::whole")]
    #[schema(nullable, minimum = 0, maximum = 259200)]
    pub expiry: Option<i64>,
    /// Only the tokens made with one of these `sessionId`s; absent or empty: all of them.
    #[schema(max_items = 1000, value_type = Option<Vec<SessionIdString>>)]
    pub session_ids: Option<Vec<String>>,
}

/// Expires every token limited to the application: its app portal tokens and the named
/// tokens limited to it (or only those of the sessions given).
#[utoipa::path(post, operation_id = "v1.authentication.expire-all", path = "/api/v1/auth/app/{app_id}/expire-all", tag = "Authentication",
    params(("app_id" = PathKeyString, Path, description = "Application id or uid")),
    request_body = ApplicationTokenExpireIn,
    responses((status = 204)))]
pub async fn expire_all(
    State(state): State<ApiState>,
    Path(app_id): Path<String>,
    JsonBody(input): JsonBody<ApplicationTokenExpireIn>,
) -> Result<StatusCode, ApiError> {
    let expiry = input.expiry.unwrap_or(0);
    if !(0..=EXPIRE_ALL_MAX).contains(&expiry) {
        return Err(body_error("expiry", "must be 0 to 259200 seconds"));
    }
    let sessions = input.session_ids.unwrap_or_default();
    if sessions.len() > 1000 {
        return Err(body_error("sessionIds", "at most 1000"));
    }
    for s in &sessions {
        session_id("sessionIds", s)?;
    }
    let app = applications::find(&state, &app_id).await?;
    let at = now() + TimeDelta::seconds(expiry);
    state
        .store
        .expire_app_tokens(&app.id, at, &sessions)
        .await?;
    state.auth.forget_app(&app.id);
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes the token the request is made with. The `admin_token` of the configuration
/// cannot be: 403.
#[utoipa::path(post, operation_id = "v1.authentication.logout", path = "/api/v1/auth/logout", tag = "Authentication",
    responses((status = 204)))]
pub async fn logout(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    let Some(token) = caller.token() else {
        return Err(ApiError::Forbidden(
            "the admin_token of the configuration cannot log out; change admin_token instead"
                .into(),
        ));
    };
    state.store.delete_token(&token.id).await?;
    state.auth.forget(&token.id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoamiOut {
    /// The application the token is limited to, if any.
    pub app_id: Option<String>,
    /// `GlobalAuthToken` for the `admin_token` of the configuration, `RegionalAuthToken`
    /// for a stored token.
    pub permission_source: String,
    pub session_id: Option<String>,
    /// hookd: the stored token's id (absent for the admin token).
    pub token_id: Option<String>,
    /// hookd: what the token may do.
    pub abilities: Vec<Ability>,
}

#[utoipa::path(get, operation_id = "v1.authentication.whoami", path = "/api/v1/auth/whoami", tag = "Authentication",
    responses((status = 200, body = WhoamiOut)))]
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoamiOut> {
    Json(match caller.token() {
        None => WhoamiOut {
            app_id: None,
            permission_source: "GlobalAuthToken".into(),
            session_id: None,
            token_id: None,
            abilities: vec![Ability::Admin],
        },
        Some(t) => WhoamiOut {
            app_id: t.app_id.as_ref().map(|a| a.to_string()),
            permission_source: "RegionalAuthToken".into(),
            session_id: t.session_id.clone(),
            token_id: Some(t.id.to_string()),
            abilities: t.abilities.iter().collect(),
        },
    })
}
