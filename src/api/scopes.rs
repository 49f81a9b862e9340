//! What each route needs of a stored token: one ability, and for a token limited to one
//! application, whether the route may be reached at all.
//!
//! Every route is in [`RULES`] (a test walks the OpenAPI document to keep it so); a route
//! missing from it would need `admin`. A token limited to an application reaches the
//! routes under `/api/v1/app/{app_id}` for that application only (another one is answered
//! 404, as if it did not exist), the event types' read routes (event types are shared by
//! every application, and a portal shows them), and `whoami`/`logout`. Everything else
//! answers it 403.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;

use crate::domain::Ability;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The ability; for a token limited to an application, only that application's
    /// routes (or the shared read routes) are reachable.
    Ability(Ability),
    /// Any valid token (`whoami`, `logout`).
    AnyToken,
}

use Ability::*;
use Need::AnyToken;

const fn a(ability: Ability) -> Need {
    Need::Ability(ability)
}

/// (method, route template, need).
pub const RULES: &[(&str, &str, Need)] = &[
    ("GET", "/api/v1/app", a(AppRead)),
    ("POST", "/api/v1/app", a(AppWrite)),
    ("GET", "/api/v1/app/{app_id}", a(AppRead)),
    ("PUT", "/api/v1/app/{app_id}", a(AppWrite)),
    ("PATCH", "/api/v1/app/{app_id}", a(AppWrite)),
    ("DELETE", "/api/v1/app/{app_id}", a(AppWrite)),
    ("GET", "/api/v1/event-type", a(EventTypeRead)),
    ("POST", "/api/v1/event-type", a(EventTypeWrite)),
    (
        "POST",
        "/api/v1/event-type/import/openapi",
        a(EventTypeWrite),
    ),
    (
        "GET",
        "/api/v1/event-type/{event_type_name}",
        a(EventTypeRead),
    ),
    (
        "PUT",
        "/api/v1/event-type/{event_type_name}",
        a(EventTypeWrite),
    ),
    (
        "PATCH",
        "/api/v1/event-type/{event_type_name}",
        a(EventTypeWrite),
    ),
    (
        "DELETE",
        "/api/v1/event-type/{event_type_name}",
        a(EventTypeWrite),
    ),
    (
        "GET",
        "/api/v1/event-type/{event_type_name}/retry-schedule",
        a(EventTypeRead),
    ),
    (
        "PUT",
        "/api/v1/event-type/{event_type_name}/retry-schedule",
        a(EventTypeWrite),
    ),
    ("GET", "/api/v1/app/{app_id}/endpoint", a(EndpointRead)),
    ("POST", "/api/v1/app/{app_id}/endpoint", a(EndpointWrite)),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        a(EndpointRead),
    ),
    (
        "PUT",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        a(EndpointWrite),
    ),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        a(EndpointWrite),
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        a(EndpointWrite),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        a(EndpointRead),
    ),
    (
        "PUT",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        a(EndpointWrite),
    ),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        a(EndpointWrite),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret",
        a(SecretRead),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
        a(SecretRotate),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats",
        a(EndpointRead),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats",
        a(EndpointRead),
    ),
    ("GET", "/api/v1/app/{app_id}/msg", a(MessageRead)),
    ("POST", "/api/v1/app/{app_id}/msg", a(MessageCreate)),
    ("POST", "/api/v1/app/{app_id}/msg/batch", a(MessageCreate)),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/precheck/active",
        a(MessageCreate),
    ),
    ("GET", "/api/v1/app/{app_id}/msg/scheduled", a(MessageRead)),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/schedule",
        a(MessageWrite),
    ),
    ("GET", "/api/v1/app/{app_id}/msg/{msg_id}", a(MessageRead)),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/content",
        a(MessageWrite),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/bulk-expunge",
        a(MessageWrite),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/expunge-all-contents",
        a(MessageWrite),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/attempt/msg/{msg_id}",
        a(MessageRead),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}",
        a(MessageRead),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
        a(MessageRead),
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content",
        a(MessageWrite),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg",
        a(MessageRead),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint",
        a(MessageRead),
    ),
    ("GET", "/api/v1/app/{app_id}/dead-letter", a(MessageRead)),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
        a(AttemptCreate),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
        a(AttemptCreate),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
        a(AttemptCreate),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing",
        a(AttemptCreate),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/dead-letter/requeue",
        a(AttemptCreate),
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
        a(AttemptCreate),
    ),
    ("GET", "/api/v1/background-task", a(Admin)),
    ("GET", "/api/v1/background-task/{task_id}", a(Admin)),
    ("GET", "/api/v1/operational-webhook/endpoint", a(Admin)),
    ("POST", "/api/v1/operational-webhook/endpoint", a(Admin)),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "PUT",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "DELETE",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
        a(Admin),
    ),
    (
        "PUT",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
        a(Admin),
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret",
        a(Admin),
    ),
    (
        "POST",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate",
        a(Admin),
    ),
    ("POST", "/api/v1/environment/export", a(Admin)),
    ("POST", "/api/v1/environment/import", a(Admin)),
    ("POST", "/api/v1/hookd/reload", a(Admin)),
    ("GET", "/api/v1/hookd/overview", a(Admin)),
    ("GET", "/api/v1/auth/token", a(Admin)),
    ("POST", "/api/v1/auth/token", a(Admin)),
    ("GET", "/api/v1/auth/token/{token_id}", a(Admin)),
    ("DELETE", "/api/v1/auth/token/{token_id}", a(Admin)),
    ("POST", "/api/v1/auth/app-portal-access/{app_id}", a(Admin)),
    ("POST", "/api/v1/auth/app/{app_id}/expire-all", a(Admin)),
    ("GET", "/ingest/api/v1/source", a(Admin)),
    ("POST", "/ingest/api/v1/source", a(Admin)),
    ("GET", "/ingest/api/v1/source/{source_id}", a(Admin)),
    ("PUT", "/ingest/api/v1/source/{source_id}", a(Admin)),
    ("PATCH", "/ingest/api/v1/source/{source_id}", a(Admin)),
    ("DELETE", "/ingest/api/v1/source/{source_id}", a(Admin)),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/token/rotate",
        a(Admin),
    ),
    ("GET", "/ingest/api/v1/source/{source_id}/log", a(Admin)),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint",
        a(Admin),
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/endpoint",
        a(Admin),
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "DELETE",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        a(Admin),
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
        a(Admin),
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
        a(Admin),
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret",
        a(Admin),
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate",
        a(Admin),
    ),
    ("GET", "/api/v1/monitor", a(Admin)),
    ("POST", "/api/v1/monitor", a(Admin)),
    ("GET", "/api/v1/monitor/{monitor_id}", a(Admin)),
    ("PUT", "/api/v1/monitor/{monitor_id}", a(Admin)),
    ("DELETE", "/api/v1/monitor/{monitor_id}", a(Admin)),
    ("GET", "/api/v1/entity-type", a(EventTypeRead)),
    ("GET", "/api/v1/entity-type/{entity_type}", a(EventTypeRead)),
    (
        "PUT",
        "/api/v1/entity-type/{entity_type}",
        a(EventTypeWrite),
    ),
    (
        "DELETE",
        "/api/v1/entity-type/{entity_type}",
        a(EventTypeWrite),
    ),
    (
        "PUT",
        "/api/v1/app/{app_id}/entity/{entity_type}/{key}",
        a(MessageCreate),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/entity/{entity_type}/{key}",
        a(MessageRead),
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/entity/{entity_type}/{key}/history",
        a(MessageRead),
    ),
    ("GET", "/api/v1/auth/whoami", AnyToken),
    ("POST", "/api/v1/auth/logout", AnyToken),
];

static BY_ROUTE: LazyLock<HashMap<(&'static str, &'static str), Need>> = LazyLock::new(|| {
    RULES
        .iter()
        .map(|(method, route, need)| ((*method, *route), *need))
        .collect()
});

/// What `method` on the route `template` needs: `admin` for a route not in [`RULES`].
pub fn need(method: &Method, template: &str) -> Need {
    BY_ROUTE
        .get(&(method.as_str(), template))
        .copied()
        .unwrap_or(Need::Ability(Admin))
}

/// Whether a token limited to one application may reach this route: it is under
/// `/api/v1/app/{app_id}` (and then only for its application), or is one of the shared
/// routes.
pub fn reachable_when_limited(method: &Method, template: &str) -> bool {
    if template.starts_with("/api/v1/app/{app_id}") {
        return true;
    }
    match need(method, template) {
        Need::AnyToken => true,
        Need::Ability(ability) => ability == EventTypeRead,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_route_has_a_rule_and_every_rule_a_route() {
        let doc = crate::api::openapi_document();
        let mut documented = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                let public = path.starts_with("/api/v1/health") || path == "/ingest/in/{token}";
                if op.is_some() && !public {
                    documented.push((method, path.as_str()));
                }
            }
        }
        for (method, path) in &documented {
            assert!(
                BY_ROUTE.contains_key(&(*method, *path)),
                "{method} {path} has no rule in api::scopes::RULES"
            );
        }
        for (method, path, _) in RULES {
            assert!(
                documented.contains(&(*method, *path)),
                "the rule for {method} {path} names no route"
            );
        }
        assert_eq!(BY_ROUTE.len(), RULES.len(), "a route has two rules");
    }

    #[test]
    fn limited_tokens_reach_their_application_and_shared_reads_only() {
        let get = Method::GET;
        assert!(reachable_when_limited(&get, "/api/v1/app/{app_id}/msg"));
        assert!(reachable_when_limited(&get, "/api/v1/event-type"));
        assert!(reachable_when_limited(&get, "/api/v1/auth/whoami"));
        assert!(!reachable_when_limited(&get, "/api/v1/app"));
        assert!(!reachable_when_limited(&Method::POST, "/api/v1/event-type"));
        assert!(!reachable_when_limited(&get, "/api/v1/background-task"));
        assert!(!reachable_when_limited(
            &Method::POST,
            "/api/v1/auth/app/{app_id}/expire-all"
        ));
    }
}
