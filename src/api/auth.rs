//! Bearer-token authentication and authorization for every `/api/v1` route but health and
//! the OpenAPI document.
//!
//! Three kinds of token:
//! - the `admin_token` option: every ability, no rate limit, never stored;
//! - named tokens (`hookd token create`, `POST /api/v1/auth/token`) with abilities and,
//!   optionally, one application they are limited to;
//! - app portal tokens (`POST /api/v1/auth/app-portal-access/{app_id}`), always limited to
//!   one application, with the abilities of their portal capabilities.
//!
//! Stored tokens are random strings of which only the SHA-256 is kept. What a route needs
//! is in [`super::scopes`]: a token lacking the ability gets 403; a token limited to one
//! application gets 404 for any other application (as if it did not exist) and 403 for the
//! routes outside applications.
//!
//! Each node holds the stored tokens it has seen in memory ([`Authenticator`]), so a request
//! costs one hash and one map lookup. Once a second it tells the store how many requests
//! each token made (and when it was last used) and reads back each token's state: a token
//! revoked or expired on any node stops working on every node within about a second; on
//! the node that revoked it, at once.
//!
//! Rate limit: each stored token may make `token_rate_limit` requests per hour (its own
//! `rateLimit` overrides it; 0 is none), counted in fixed windows of an hour from the start
//! of each hour (UTC), by all nodes together. A node adds what it counted to the store
//! once a second, so on several nodes the limit may be passed by what the others counted
//! in the last second. Every answer to a limited token carries `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (the unix time the window ends, as
//! GitHub and Laravel send it); past the limit the answer is 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::error::ApiError;
use super::scopes::{self, Need};
use crate::domain::time::now;
use crate::domain::{ApiToken, AppId, AppKey, Timestamp, TokenId};
use crate::store::{Store, TokenState, TokenUse};

pub type TokenHash = [u8; 32];

const TOKEN_PREFIX: &str = "hk_";
/// Characters of a token kept to tell it apart in lists (the prefix and four more).
const HINT_LEN: usize = TOKEN_PREFIX.len() + 4;
/// The rate limit's window.
pub const RATE_WINDOW_SECS: i64 = 3600;
/// How often a node tells the store what its tokens did and reads their state back.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Tokens held in memory before idle ones, then those with no count to tell the store, are
/// let go.
const MAX_HELD: usize = 10_000;
/// A token not used for this long is let go (read again from the store when it comes back).
const IDLE_AFTER: Duration = Duration::from_secs(600);

/// A new random API token (`hk_` and 32 random bytes, base64url).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The stored form of a token hash.
pub fn hash_hex(hash: &TokenHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is kept of a token to tell it apart: its first characters.
pub fn token_hint(token: &str) -> String {
    token.chars().take(HINT_LEN).collect()
}

/// Who made a request; handlers find it in the request's extensions.
#[derive(Clone)]
pub enum Caller {
    /// The `admin_token` option.
    Admin,
    Token(Arc<Held>),
}

impl Caller {
    pub fn token(&self) -> Option<&ApiToken> {
        match self {
            Caller::Admin => None,
            Caller::Token(held) => Some(&held.token),
        }
    }
}

/// A stored token held in memory, with its rate-limit count.
pub struct Held {
    pub token: ApiToken,
    hash: TokenHash,
    /// Requests per hour; `None`: no limit.
    limit: Option<u32>,
    usage: Mutex<Usage>,
}

#[derive(Debug)]
struct Usage {
    expires_at: Option<Timestamp>,
    /// The window counted in (unix seconds of its start).
    window_start: i64,
    /// Requests in the window by every node, as of the last sync.
    counted: u64,
    /// Requests this node counted since the last sync.
    pending: u64,
    /// Requests a sync in flight is telling the store: not yet in `counted`, no longer in
    /// `pending`, still counted against the limit.
    syncing: u64,
    last_used: Option<Timestamp>,
    last_request: Instant,
}

/// The rate limit as one answer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u64,
    /// When the window ends, in unix seconds.
    pub reset: i64,
    /// Seconds until then (at least 1).
    pub retry_after: u64,
}

impl RateInfo {
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset));
    }
}

impl Held {
    /// Counts one request at `now` (unix seconds): `Err` when the token is expired or over
    /// its limit, else the rate to report (`None`: no limit).
    fn take(&self, now: Timestamp) -> Result<Option<RateInfo>, ApiError> {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if usage.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::Unauthorized("this token has expired"));
        }
        let secs = now.timestamp();
        let window = secs - secs.rem_euclid(RATE_WINDOW_SECS);
        if window > usage.window_start {
            usage.window_start = window;
            usage.counted = 0;
            usage.pending = 0;
            usage.syncing = 0;
        }
        usage.last_used = Some(now);
        usage.last_request = Instant::now();
        let Some(limit) = self.limit else {
            usage.pending += 1;
            return Ok(None);
        };
        let used = usage.counted + usage.syncing + usage.pending;
        let reset = usage.window_start + RATE_WINDOW_SECS;
        let mut info = RateInfo {
            limit,
            remaining: 0,
            reset,
            retry_after: u64::try_from(reset - secs).unwrap_or(1).max(1),
        };
        if used >= u64::from(limit) {
            return Err(ApiError::RateLimited(info));
        }
        usage.pending += 1;
        info.remaining = u64::from(limit) - used - 1;
        Ok(Some(info))
    }

    /// Takes the requests counted since the last sync, to tell the store.
    fn take_use(&self) -> TokenUse {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let count = std::mem::take(&mut usage.pending);
        usage.syncing = count;
        TokenUse {
            id: self.token.id.clone(),
            window_start: usage.window_start,
            count,
            last_used_at: usage.last_used.filter(|_| count > 0),
        }
    }

    /// Gives back requests a failed sync could not tell the store.
    fn give_back(&self, taken: &TokenUse) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.syncing = 0;
        if usage.window_start == taken.window_start {
            usage.pending += taken.count;
        }
    }

    /// Takes in the store's state: the expiry and every node's count.
    fn update(&self, state: &TokenState) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.expires_at = state.expires_at;
        // The store's count now has what the sync told it (or that window is over).
        usage.syncing = 0;
        if state.window_start >= usage.window_start {
            if state.window_start > usage.window_start {
                usage.pending = 0;
            }
            usage.window_start = state.window_start;
            usage.counted = state.window_count;
        } else {
            // The stored count is of a window that is over: nobody counted in ours yet.
            usage.counted = 0;
        }
    }

    fn has_pending(&self) -> bool {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).pending > 0
    }

    fn is_idle(&self) -> bool {
        let usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.pending == 0 && usage.last_request.elapsed() > IDLE_AFTER
    }
}

pub struct Authenticator {
    admin: Option<TokenHash>,
    /// `token_rate_limit`: requests per hour for stored tokens without their own; 0: none.
    default_limit: u32,
    held: RwLock<HashMap<TokenHash, Arc<Held>>>,
    /// Counts of tokens let go of before they were told to the store (`forget_app`): the
    /// next sync tells them.
    orphans: Mutex<Vec<TokenUse>>,
}

impl Authenticator {
    pub fn new(admin_token: Option<&str>, default_limit: u32) -> Self {
        Self {
            admin: admin_token.filter(|t| !t.is_empty()).map(hash_token),
            default_limit,
            held: RwLock::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
        }
    }

    fn is_admin(&self, hash: &TokenHash) -> bool {
        self.admin
            .is_some_and(|admin| bool::from(admin.ct_eq(hash)))
    }

    /// The rate limit a token has: its own, else the default; 0 is none.
    pub fn limit_of(&self, token: &ApiToken) -> Option<u32> {
        Some(token.rate_limit.unwrap_or(self.default_limit)).filter(|l| *l > 0)
    }

    fn held(&self, hash: &TokenHash) -> Option<Arc<Held>> {
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        held.get(hash).cloned()
    }

    /// The stored token with this hash, from memory or else from the store.
    async fn find(
        &self,
        store: &dyn Store,
        hash: &TokenHash,
    ) -> Result<Option<Arc<Held>>, ApiError> {
        if let Some(held) = self.held(hash) {
            return Ok(Some(held));
        }
        let Some((token, state)) = store.token_by_hash(&hash_hex(hash)).await? else {
            return Ok(None);
        };
        // Counts of this token not yet told to the store (it was let go of) are its own.
        let (mut window_start, mut counted, mut pending) =
            (state.window_start, state.window_count, 0);
        {
            let mut orphans = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
            orphans.retain(|u| {
                let is_mine = u.id == token.id && u.window_start >= window_start;
                if is_mine {
                    if u.window_start > window_start {
                        // A window the store has no count of yet.
                        (window_start, counted, pending) = (u.window_start, 0, 0);
                    }
                    pending += u.count;
                }
                !is_mine
            });
        }
        let held = Arc::new(Held {
            limit: self.limit_of(&token),
            hash: *hash,
            usage: Mutex::new(Usage {
                expires_at: state.expires_at,
                window_start,
                counted,
                pending,
                syncing: 0,
                last_used: None,
                last_request: Instant::now(),
            }),
            token,
        });
        let mut all = self.held.write().unwrap_or_else(|e| e.into_inner());
        if all.len() >= MAX_HELD {
            all.retain(|_, h| !h.is_idle());
        }
        if all.len() >= MAX_HELD {
            // Those with nothing left to tell the store can be read again when they return.
            all.retain(|_, h| h.has_pending());
        }
        Ok(Some(all.entry(*hash).or_insert(held).clone()))
    }

    /// Lets go of a token this node revoked, so it stops working here at once.
    pub fn forget(&self, id: &TokenId) {
        let mut all = self.held.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, h| h.token.id != *id);
    }

    /// Lets go of every token limited to `app`, so their new expiry is read at once. What
    /// they counted since the last sync is kept for the next one.
    pub fn forget_app(&self, app: &AppId) {
        let mut let_go = Vec::new();
        {
            let mut all = self.held.write().unwrap_or_else(|e| e.into_inner());
            all.retain(|_, h| {
                let keep = h.token.app_id.as_ref() != Some(app);
                if !keep {
                    let_go.push(h.take_use());
                }
                keep
            });
        }
        let_go.retain(|u| u.count > 0);
        if !let_go.is_empty() {
            let mut orphans = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
            orphans.extend(let_go);
        }
    }

    /// Once a second, until `shutdown`: tells the store what the held tokens did and reads
    /// their state back (see the module note).
    pub async fn sync(self: Arc<Self>, store: Arc<dyn Store>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(SYNC_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Count what this node served before it stops.
                    self.sync_once(&*store).await;
                    return;
                }
                _ = every.tick() => self.sync_once(&*store).await,
            }
        }
    }

    async fn sync_once(&self, store: &dyn Store) {
        let held: Vec<Arc<Held>> = {
            let mut all = self.held.write().unwrap_or_else(|e| e.into_inner());
            all.retain(|_, h| !h.is_idle());
            all.values().cloned().collect()
        };
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap_or_else(|e| e.into_inner()));
        if held.is_empty() && orphans.is_empty() {
            return;
        }
        let mut uses: Vec<TokenUse> = held.iter().map(|h| h.take_use()).collect();
        uses.extend(orphans.iter().cloned());
        match store.sync_token_usage(&uses).await {
            Ok(states) => {
                let states: HashMap<&TokenId, &TokenState> =
                    states.iter().map(|s| (&s.id, s)).collect();
                let mut gone = Vec::new();
                for h in &held {
                    match states.get(&h.token.id) {
                        Some(state) => h.update(state),
                        None => gone.push(h.hash),
                    }
                }
                if !gone.is_empty() {
                    let mut all = self.held.write().unwrap_or_else(|e| e.into_inner());
                    for hash in gone {
                        all.remove(&hash);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot record API token use; will retry");
                for (h, taken) in held.iter().zip(&uses) {
                    h.give_back(taken);
                }
                let mut kept = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend(orphans);
            }
        }
    }
}

fn bearer(request: &Request) -> Result<&str, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <token>'",
        ))?;
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        ))
}

pub async fn require_token(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let hash = hash_token(bearer(&request)?);
    if state.auth.is_admin(&hash) {
        request.extensions_mut().insert(Caller::Admin);
        return Ok(next.run(request).await);
    }
    let held = state
        .auth
        .find(&*state.store, &hash)
        .await?
        .ok_or(ApiError::Unauthorized("invalid token"))?;
    let rate = held.take(now())?;
    let (mut parts, body) = request.into_parts();
    let allowed = authorize(&state, &held.token, &mut parts).await;
    let mut response = match allowed {
        Ok(()) => {
            let mut request = Request::from_parts(parts, body);
            request.extensions_mut().insert(Caller::Token(held));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    if let Some(rate) = rate {
        rate.write(response.headers_mut());
    }
    Ok(response)
}

/// Whether `token` may make this request (see [`super::scopes`]).
async fn authorize(
    state: &ApiState,
    token: &ApiToken,
    parts: &mut axum::http::request::Parts,
) -> Result<(), ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = parts.method.clone();
    let method = &method;
    if let Some(app) = &token.app_id {
        if !scopes::reachable_when_limited(method, &route) {
            return Err(ApiError::Forbidden(format!(
                "this token is limited to application {app}; {method} {route} is outside it"
            )));
        }
        if route.starts_with("/api/v1/app/{app_id}") {
            use axum::extract::FromRequestParts;
            let params = RawPathParams::from_request_parts(parts, &())
                .await
                .map_err(|_| ApiError::not_found("application"))?;
            let named = params
                .iter()
                .find(|(name, _)| *name == "app_id")
                .map(|(_, value)| value.to_owned())
                .unwrap_or_default();
            if named != app.as_str() && !names_app(state, &named, app).await? {
                return Err(ApiError::not_found("application"));
            }
        }
    }
    if let Need::Ability(ability) = scopes::need(method, &route) {
        if !token.abilities.allow(ability) {
            return Err(ApiError::Forbidden(format!(
                "this token lacks the `{ability}` ability, which {method} {route} needs"
            )));
        }
    }
    Ok(())
}

/// Whether a path's application id or uid is `app`.
async fn names_app(state: &ApiState, named: &str, app: &AppId) -> Result<bool, ApiError> {
    let Ok(key) = super::fields::app_key(named) else {
        return Ok(false);
    };
    if let AppKey::Id(id) = &key {
        return Ok(id == app);
    }
    let found = state.store.get_application(&key).await?;
    Ok(found.is_some_and(|a| a.id == *app))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Abilities, TokenKind};
    use chrono::TimeZone;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("hk_") && !a.contains('.'));
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_hex(&hash_token(&a)).len(), 64);
        assert_eq!(token_hint(&a).len(), 7);
    }

    fn held(limit: Option<u32>) -> Held {
        let created = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Held {
            token: ApiToken {
                id: TokenId::generate(),
                name: "t".into(),
                kind: TokenKind::Named,
                abilities: Abilities::default(),
                app_id: None,
                session_id: None,
                rate_limit: limit,
                hint: "hk_abcd".into(),
                expires_at: None,
                last_used_at: None,
                created_at: created,
            },
            hash: [0; 32],
            limit,
            usage: Mutex::new(Usage {
                expires_at: None,
                window_start: 0,
                counted: 0,
                pending: 0,
                syncing: 0,
                last_used: None,
                last_request: Instant::now(),
            }),
        }
    }

    #[test]
    fn the_limit_counts_this_nodes_requests_and_the_others_in_fixed_hours() {
        let h = held(Some(3));
        // 10:20:00 UTC on some day: the window is 10:00 to 11:00.
        let at = chrono::Utc.timestamp_opt(1_700_000_000 - 1_700_000_000 % 3600 + 1200, 0);
        let at = at.unwrap();
        let first = h.take(at).unwrap().unwrap();
        assert_eq!(
            (first.limit, first.remaining, first.retry_after),
            (3, 2, 2400)
        );
        assert_eq!(first.reset, at.timestamp() + 2400);
        // Another node counted one more.
        let taken = h.take_use();
        assert_eq!(taken.count, 1);
        h.update(&TokenState {
            id: h.token.id.clone(),
            expires_at: None,
            window_start: taken.window_start,
            window_count: 2,
        });
        assert_eq!(h.take(at).unwrap().unwrap().remaining, 0);
        let over = h.take(at).unwrap_err();
        assert!(matches!(
            over,
            ApiError::RateLimited(RateInfo { remaining: 0, .. })
        ));
        // The next hour starts afresh.
        let later = at + chrono::TimeDelta::seconds(2400);
        assert_eq!(h.take(later).unwrap().unwrap().remaining, 2);
        // A failed sync gives its count back.
        let taken = h.take_use();
        h.give_back(&taken);
        assert_eq!(h.take_use().count, 1);
    }

    #[test]
    fn requests_a_sync_is_telling_the_store_still_count() {
        let h = held(Some(2));
        let at = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        h.take(at).unwrap();
        h.take(at).unwrap();
        // A sync takes the two requests to tell the store; until the store answers, they
        // are still counted.
        let taken = h.take_use();
        assert_eq!(taken.count, 2);
        assert!(matches!(h.take(at), Err(ApiError::RateLimited(_))));
        // The store answers with them in its count.
        h.update(&TokenState {
            id: h.token.id.clone(),
            expires_at: None,
            window_start: taken.window_start,
            window_count: 2,
        });
        assert!(matches!(h.take(at), Err(ApiError::RateLimited(_))));
        // A failed sync gives them back once, not twice.
        let h = held(Some(2));
        h.take(at).unwrap();
        let taken = h.take_use();
        h.give_back(&taken);
        assert_eq!(h.take(at).unwrap().unwrap().remaining, 0);
        assert!(matches!(h.take(at), Err(ApiError::RateLimited(_))));
    }

    #[test]
    fn expired_tokens_and_unlimited_tokens() {
        let h = held(None);
        let at = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(h.take(at).unwrap(), None);
        h.update(&TokenState {
            id: h.token.id.clone(),
            expires_at: Some(at),
            window_start: 0,
            window_count: 0,
        });
        assert!(matches!(h.take(at), Err(ApiError::Unauthorized(_))));
    }
}
