//! The routes of the API, as in the OpenAPI document, for tests that walk all of them.

/// Every operation of the API that needs a token, as in the OpenAPI document.
pub const PROTECTED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/app"),
    ("POST", "/api/v1/app"),
    ("GET", "/api/v1/app/{app_id}"),
    ("PUT", "/api/v1/app/{app_id}"),
    ("PATCH", "/api/v1/app/{app_id}"),
    ("DELETE", "/api/v1/app/{app_id}"),
    ("GET", "/api/v1/event-type"),
    ("POST", "/api/v1/event-type"),
    ("GET", "/api/v1/event-type/{event_type_name}"),
    ("PUT", "/api/v1/event-type/{event_type_name}"),
    ("PATCH", "/api/v1/event-type/{event_type_name}"),
    ("DELETE", "/api/v1/event-type/{event_type_name}"),
    ("POST", "/api/v1/event-type/import/openapi"),
    ("GET", "/api/v1/event-type/{event_type_name}/retry-schedule"),
    ("PUT", "/api/v1/event-type/{event_type_name}/retry-schedule"),
    ("GET", "/api/v1/app/{app_id}/endpoint"),
    ("POST", "/api/v1/app/{app_id}/endpoint"),
    ("GET", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("PUT", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("PATCH", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("DELETE", "/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
    ("GET", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    ("PUT", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers"),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
    ),
    ("GET", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
    ),
    ("GET", "/api/v1/app/{app_id}/msg"),
    ("POST", "/api/v1/app/{app_id}/msg"),
    ("GET", "/api/v1/app/{app_id}/msg/{msg_id}"),
    ("DELETE", "/api/v1/app/{app_id}/msg/{msg_id}/content"),
    ("POST", "/api/v1/app/{app_id}/msg/bulk-expunge"),
    ("POST", "/api/v1/app/{app_id}/msg/expunge-all-contents"),
    ("GET", "/api/v1/background-task"),
    ("GET", "/api/v1/background-task/{task_id}"),
    ("GET", "/api/v1/app/{app_id}/msg/scheduled"),
    ("DELETE", "/api/v1/app/{app_id}/msg/{msg_id}/schedule"),
    ("GET", "/api/v1/app/{app_id}/attempt/msg/{msg_id}"),
    ("GET", "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"),
    (
        "GET",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content",
    ),
    ("GET", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg"),
    ("GET", "/api/v1/app/{app_id}/msg/{msg_id}/endpoint"),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing",
    ),
    ("GET", "/api/v1/app/{app_id}/dead-letter"),
    ("POST", "/api/v1/app/{app_id}/dead-letter/requeue"),
    ("GET", "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
    ),
    ("GET", "/api/v1/operational-webhook/endpoint"),
    ("POST", "/api/v1/operational-webhook/endpoint"),
    ("GET", "/api/v1/operational-webhook/endpoint/{endpoint_id}"),
    ("PUT", "/api/v1/operational-webhook/endpoint/{endpoint_id}"),
    (
        "DELETE",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
    ),
    (
        "PUT",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret",
    ),
    (
        "POST",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate",
    ),
    ("POST", "/api/v1/app/{app_id}/msg/batch"),
    ("POST", "/api/v1/app/{app_id}/msg/precheck/active"),
    ("POST", "/api/v1/environment/export"),
    ("POST", "/api/v1/environment/import"),
    ("POST", "/api/v1/hookd/reload"),
    ("GET", "/api/v1/hookd/overview"),
    ("GET", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/token"),
    ("GET", "/api/v1/auth/token/{token_id}"),
    ("DELETE", "/api/v1/auth/token/{token_id}"),
    ("POST", "/api/v1/auth/app-portal-access/{app_id}"),
    ("POST", "/api/v1/auth/app/{app_id}/expire-all"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/whoami"),
    ("GET", "/ingest/api/v1/source"),
    ("POST", "/ingest/api/v1/source"),
    ("GET", "/ingest/api/v1/source/{source_id}"),
    ("PUT", "/ingest/api/v1/source/{source_id}"),
    ("PATCH", "/ingest/api/v1/source/{source_id}"),
    ("DELETE", "/ingest/api/v1/source/{source_id}"),
    ("POST", "/ingest/api/v1/source/{source_id}/token/rotate"),
    ("GET", "/ingest/api/v1/source/{source_id}/log"),
    ("GET", "/ingest/api/v1/source/{source_id}/endpoint"),
    ("POST", "/ingest/api/v1/source/{source_id}/endpoint"),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    ),
    (
        "DELETE",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret",
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate",
    ),
    ("GET", "/api/v1/monitor"),
    ("POST", "/api/v1/monitor"),
    ("GET", "/api/v1/monitor/{monitor_id}"),
    ("PUT", "/api/v1/monitor/{monitor_id}"),
    ("DELETE", "/api/v1/monitor/{monitor_id}"),
    ("GET", "/api/v1/entity-type"),
    ("GET", "/api/v1/entity-type/{entity_type}"),
    ("PUT", "/api/v1/entity-type/{entity_type}"),
    ("DELETE", "/api/v1/entity-type/{entity_type}"),
    ("PUT", "/api/v1/app/{app_id}/entity/{entity_type}/{key}"),
    ("GET", "/api/v1/app/{app_id}/entity/{entity_type}/{key}"),
    (
        "GET",
        "/api/v1/app/{app_id}/entity/{entity_type}/{key}/history",
    ),
];

/// The operations that need no token.
pub const PUBLIC_ROUTES: &[(&str, &str)] =
    &[("GET", "/api/v1/health"), ("GET", "/api/v1/health/ping")];

/// Where ingest sources' senders post: public, and 404 for a token no source has (tested
/// in `ingest`).
pub const INGEST_RECEIVE_ROUTE: (&str, &str) = ("POST", "/ingest/in/{token}");

/// Readiness: public too, but it answers 200 with a JSON body (tested in `metrics`).
pub const READY_ROUTE: (&str, &str) = ("GET", "/api/v1/health/ready");

/// `template` with every `{param}` replaced by `value`.
pub fn fill(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("unclosed {") + start;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
