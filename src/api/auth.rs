//! Bearer-token authentication for every `/api/v1` route but health and the OpenAPI document.
//!
//! Tokens are random strings; only their SHA-256 is stored (`hookd token create`). The
//! `admin_token` option is a token accepted without being stored. A token once found in the
//! store is remembered in memory, so each request costs one hash and one map lookup; tokens
//! cannot be revoked yet, so the cache can never hold a token that is no longer valid.

use std::collections::HashSet;
use std::sync::RwLock;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::ApiError;

pub type TokenHash = [u8; 32];

const TOKEN_PREFIX: &str = "hk_";

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

pub struct Authenticator {
    admin: Option<TokenHash>,
    known: RwLock<HashSet<TokenHash>>,
}

impl Authenticator {
    pub fn new(admin_token: Option<&str>) -> Self {
        Self {
            admin: admin_token.filter(|t| !t.is_empty()).map(hash_token),
            known: RwLock::new(HashSet::new()),
        }
    }
}

pub async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <token>'",
        ))?;
    let token = header
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
        ))?;
    let hash = hash_token(token);
    let auth = &state.auth;
    let is_admin = auth
        .admin
        .is_some_and(|admin| bool::from(admin.ct_eq(&hash)));
    let cached = || auth.known.read().is_ok_and(|known| known.contains(&hash));
    if !is_admin && !cached() {
        if !state.store.api_token_exists(&hash_hex(&hash)).await? {
            return Err(ApiError::Unauthorized("invalid token"));
        }
        if let Ok(mut known) = auth.known.write() {
            known.insert(hash);
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("hk_") && !a.contains('.'));
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_hex(&hash_token(&a)).len(), 64);
    }
}
