//! API tokens: what a stored token may do (its abilities), and which application it is
//! limited to, if any.
//!
//! Abilities name a resource and what may be done with it. Each route of the API needs
//! exactly one (`crate::api::scopes` says which); `admin` holds every other one and is the
//! only one that reaches the routes outside applications that change the environment
//! (tokens, operational webhooks, environment import, background tasks).

use std::fmt;

use super::{AppId, Timestamp, TokenId};

/// One thing a token may do; the API names it as [`Ability::as_str`] does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub enum Ability {
    /// Everything, including tokens and the environment.
    #[serde(rename = "admin")]
    Admin,
    /// Read applications.
    #[serde(rename = "app:read")]
    AppRead,
    /// Create, change and delete applications.
    #[serde(rename = "app:write")]
    AppWrite,
    /// Read event types and their retry schedules.
    #[serde(rename = "event-type:read")]
    EventTypeRead,
    /// Create, change, import and archive event types.
    #[serde(rename = "event-type:write")]
    EventTypeWrite,
    /// Read endpoints, their headers and statistics (not their secrets).
    #[serde(rename = "endpoint:read")]
    EndpointRead,
    /// Create, change and delete endpoints and their headers.
    #[serde(rename = "endpoint:write")]
    EndpointWrite,
    /// Read endpoint secrets (and ed25519 public keys).
    #[serde(rename = "secret:read")]
    SecretRead,
    /// Rotate endpoint secrets.
    #[serde(rename = "secret:rotate")]
    SecretRotate,
    /// Read messages, attempts, scheduled messages and dead letters.
    #[serde(rename = "message:read")]
    MessageRead,
    /// Send messages (one, a batch, a precheck).
    #[serde(rename = "message:create")]
    MessageCreate,
    /// Expunge message contents and cancel scheduled messages.
    #[serde(rename = "message:write")]
    MessageWrite,
    /// Make attempts happen again: resend, recover, replay, requeue dead letters, send an
    /// example.
    #[serde(rename = "attempt:create")]
    AttemptCreate,
}

impl Ability {
    pub const ALL: [Ability; 13] = [
        Ability::Admin,
        Ability::AppRead,
        Ability::AppWrite,
        Ability::EventTypeRead,
        Ability::EventTypeWrite,
        Ability::EndpointRead,
        Ability::EndpointWrite,
        Ability::SecretRead,
        Ability::SecretRotate,
        Ability::MessageRead,
        Ability::MessageCreate,
        Ability::MessageWrite,
        Ability::AttemptCreate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Ability::Admin => "admin",
            Ability::AppRead => "app:read",
            Ability::AppWrite => "app:write",
            Ability::EventTypeRead => "event-type:read",
            Ability::EventTypeWrite => "event-type:write",
            Ability::EndpointRead => "endpoint:read",
            Ability::EndpointWrite => "endpoint:write",
            Ability::SecretRead => "secret:read",
            Ability::SecretRotate => "secret:rotate",
            Ability::MessageRead => "message:read",
            Ability::MessageCreate => "message:create",
            Ability::MessageWrite => "message:write",
            Ability::AttemptCreate => "attempt:create",
        }
    }

    pub fn parse(s: &str) -> Option<Ability> {
        Ability::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of abilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Abilities(u16);

impl Abilities {
    pub fn of(abilities: impl IntoIterator<Item = Ability>) -> Self {
        Self(abilities.into_iter().fold(0, |bits, a| bits | a.bit()))
    }

    /// Whether a holder of these may do what `needed` allows: it is in the set, or the set
    /// holds `admin`.
    pub fn allow(self, needed: Ability) -> bool {
        self.0 & (needed.bit() | Ability::Admin.bit()) != 0
    }

    pub fn contains(self, ability: Ability) -> bool {
        self.0 & ability.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Ability> {
        Ability::ALL.into_iter().filter(move |a| self.contains(*a))
    }

    /// The stored form: names separated by spaces.
    pub fn to_stored(self) -> String {
        self.iter()
            .map(Ability::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads the stored form back; `Err` names an unknown ability.
    pub fn from_stored(s: &str) -> Result<Self, String> {
        s.split_whitespace()
            .map(|name| Ability::parse(name).ok_or_else(|| name.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::of)
    }
}

/// How a token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made by an administrator (`hookd token create`, `POST /api/v1/auth/token`).
    Named,
    /// Made by `POST /api/v1/auth/app-portal-access/{app_id}`: always limited to one
    /// application.
    Portal,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Named => "named",
            TokenKind::Portal => "portal",
        }
    }

    pub fn to_stored(self) -> i64 {
        match self {
            TokenKind::Named => 0,
            TokenKind::Portal => 1,
        }
    }

    pub fn from_stored(v: i64) -> Option<Self> {
        match v {
            0 => Some(TokenKind::Named),
            1 => Some(TokenKind::Portal),
            _ => None,
        }
    }
}

/// A stored token, as listed: never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub kind: TokenKind,
    pub abilities: Abilities,
    /// The one application the token reaches, if it is limited to one.
    pub app_id: Option<AppId>,
    /// The portal session it was made for (`sessionId`), which `expire-all` can select by.
    pub session_id: Option<String>,
    /// Requests per hour, overriding `token_rate_limit`; `Some(0)`: none.
    pub rate_limit: Option<u32>,
    /// The token's first characters, to tell tokens apart in a list.
    pub hint: String,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl ApiToken {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abilities_round_trip_and_admin_allows_all() {
        for a in Ability::ALL {
            assert_eq!(Ability::parse(a.as_str()), Some(a));
        }
        let set = Abilities::of([Ability::AppRead, Ability::MessageCreate]);
        assert_eq!(set.to_stored(), "app:read message:create");
        assert_eq!(Abilities::from_stored(&set.to_stored()), Ok(set));
        assert!(set.allow(Ability::AppRead) && !set.allow(Ability::AppWrite));
        let admin = Abilities::of([Ability::Admin]);
        assert!(Ability::ALL.iter().all(|a| admin.allow(*a)));
        assert_eq!(Abilities::from_stored("app:read fly"), Err("fly".into()));
        // The API's names are the stored ones.
        for a in Ability::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
