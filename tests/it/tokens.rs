//! API tokens: abilities, one-application scope, rate limits, expiry, revocation, the app
//! portal, expire-all, logout, whoami and `hookd token`.
//!
//! The route matrix walks every route of the OpenAPI document (`routes::PROTECTED_ROUTES`)
//! with a token limited to another application and with tokens lacking the route's
//! ability: 404 or 403, never data.

use std::time::Duration;

use hookd::api::scopes::{self, Need};
use hookd::domain::Ability;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_http_error, assert_validation_error, eventually};
use crate::routes::{PROTECTED_ROUTES, fill};

/// Sends `body` with `token`; (status, headers, body).
async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.raw_request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// A named token made through the API with the admin token; (token, id).
async fn named_token(app: &TestApp, body: Value) -> (String, String) {
    let (status, created) = app.post("/api/v1/auth/token", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["token"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

fn non_admin_abilities() -> Vec<&'static str> {
    Ability::ALL
        .into_iter()
        .filter(|a| *a != Ability::Admin)
        .map(Ability::as_str)
        .collect()
}

/// An application with an endpoint and a message; (app id, uid, endpoint id, message id).
async fn populated_app(app: &TestApp, uid: &str) -> (String, String, String, String) {
    let created = app.create_app(json!({"name": uid, "uid": uid})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let endpoint = app
        .create_endpoint(&app_id, json!({"url": "https://example.com/hook"}))
        .await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a.b", "payload": {"k": uid}}))
        .await;
    (
        app_id,
        uid.to_owned(),
        endpoint["id"].as_str().unwrap().to_owned(),
        msg["id"].as_str().unwrap().to_owned(),
    )
}

/// The template with the application's resources in place of its parameters.
fn fill_for(template: &str, app: &str, endpoint: &str, msg: &str) -> String {
    template
        .replace("{app_id}", app)
        .replace("{endpoint_id}", endpoint)
        .replace("{msg_id}", msg)
        .replace("{attempt_id}", "atmpt_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        .replace("{event_type_name}", "a.b")
        .replace("{task_id}", "qtask_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        .replace("{token_id}", "tok_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        .replace("{entity_type}", "product")
        .replace("{key}", "sku-1")
}

#[tokio::test]
async fn a_token_limited_to_one_application_never_reaches_another() {
    let app = TestApp::spawn().await;
    let (a_id, a_uid, a_ep, a_msg) = populated_app(&app, "tenant-a").await;
    let (b_id, ..) = populated_app(&app, "tenant-b").await;
    let (limited, _) = named_token(
        &app,
        json!({"name": "b only", "abilities": non_admin_abilities(), "app": b_id, "rateLimit": 0}),
    )
    .await;
    for (method, template) in PROTECTED_ROUTES {
        if *template == "/api/v1/auth/logout" {
            continue;
        }
        let reachable = scopes::reachable_when_limited(
            &Method::from_bytes(method.as_bytes()).unwrap(),
            template,
        );
        for key in [&a_id, &a_uid] {
            let path = fill_for(template, key, &a_ep, &a_msg);
            let (status, _, body) = call(&app, &limited, method, &path, Some(json!({}))).await;
            let text = body.to_string();
            if template.starts_with("/api/v1/app/{app_id}") {
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            } else if reachable {
                // The shared reads: event types, whoami.
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {path}: {status} {body}"
                );
                continue;
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
                assert_http_error(&body, "forbidden");
            }
            for secret in [a_id.as_str(), a_ep.as_str(), a_msg.as_str(), "tenant-a"] {
                assert!(
                    !text.contains(secret) || status == StatusCode::NOT_FOUND,
                    "{method} {path} told {secret}: {body}"
                );
            }
        }
    }
    // The same token reaches its own application.
    let (status, _, body) = call(&app, &limited, "GET", &format!("/api/v1/app/{b_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) =
        call(&app, &limited, "GET", "/api/v1/app/tenant-b/endpoint", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_route_refuses_a_token_without_its_ability() {
    let app = TestApp::spawn().await;
    // One token per ability, holding every other one (admin never).
    let mut lacking = std::collections::HashMap::new();
    for ability in Ability::ALL {
        let others: Vec<&str> = non_admin_abilities()
            .into_iter()
            .filter(|a| *a != ability.as_str())
            .collect();
        let (token, _) = named_token(
            &app,
            json!({"name": format!("no {ability}"), "abilities": others, "rateLimit": 0}),
        )
        .await;
        lacking.insert(ability, token);
    }
    let mut exactly = std::collections::HashMap::new();
    for ability in Ability::ALL {
        let (token, _) = named_token(
            &app,
            json!({"name": format!("just {ability}"), "abilities": [ability.as_str()], "rateLimit": 0}),
        )
        .await;
        exactly.insert(ability, token);
    }
    for (method, template) in PROTECTED_ROUTES {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let Need::Ability(needed) = scopes::need(&m, template) else {
            continue;
        };
        let path = fill(template, "x");
        let (status, _, body) = call(&app, &lacking[&needed], method, &path, Some(json!({}))).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} without {needed}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(needed.as_str()),
            "{body}"
        );
        // With the ability alone the request gets past authorization (to a 404 or a 422
        // for the made-up ids and empty body, or through).
        let (status, _, body) = call(&app, &exactly[&needed], method, &path, Some(json!({}))).await;
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{method} {path} with {needed}: {status} {body}"
        );
    }
}

#[tokio::test]
async fn a_token_over_its_hourly_limit_gets_429_with_the_rate_headers() {
    let app = TestApp::builder()
        .with_config(|c| c.token_rate_limit = 2)
        .spawn()
        .await;
    let (own, _) = named_token(
        &app,
        json!({"name": "three an hour", "abilities": ["app:read"], "rateLimit": 3}),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = call(&app, &own, "GET", "/api/v1/app", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], remaining);
        let reset: i64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            reset > now && reset <= now + 3601 && reset % 3600 == 0,
            "{reset}"
        );
    }
    let (status, headers, body) = call(&app, &own, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_http_error(&body, "rate_limited");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    // A 403 counts too, and carries the headers.
    let (defaulted, _) =
        named_token(&app, json!({"name": "default", "abilities": ["app:read"]})).await;
    let (status, headers, _) = call(
        &app,
        &defaulted,
        "POST",
        "/api/v1/app",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-ratelimit-limit"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "1");
    call(&app, &defaulted, "GET", "/api/v1/app", None).await;
    let (status, ..) = call(&app, &defaulted, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // rateLimit 0: none. The admin token has none either, and no headers.
    let (unlimited, _) = named_token(
        &app,
        json!({"name": "free", "abilities": ["app:read"], "rateLimit": 0}),
    )
    .await;
    for _ in 0..5 {
        let (status, headers, _) = call(&app, &unlimited, "GET", "/api/v1/app", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key("x-ratelimit-limit"));
    }
    let (status, headers, _) = call(&app, &app.token, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key("x-ratelimit-limit"));
}

#[tokio::test]
async fn a_rate_limit_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let (own, _) = named_token(
        &app,
        json!({"name": "two", "abilities": ["app:read"], "rateLimit": 2}),
    )
    .await;
    call(&app, &own, "GET", "/api/v1/app", None).await;
    call(&app, &own, "GET", "/api/v1/app", None).await;
    // The count reaches the store at the next sync (or at shutdown).
    app.restart().await;
    let (status, ..) = call(&app, &own, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn tokens_are_listed_without_the_token_and_revoked_at_once() {
    let app = TestApp::spawn().await;
    let shop = app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let (token, id) = named_token(
        &app,
        json!({"name": "ci deploys", "abilities": ["message:create", "app:read"], "app": "shop",
               "rateLimit": 500}),
    )
    .await;
    let (status, got) = app.get(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "ci deploys");
    assert_eq!(got["kind"], "named");
    assert_eq!(got["abilities"], json!(["app:read", "message:create"]));
    assert_eq!(got["app"], shop["id"]);
    assert_eq!(got["rateLimit"], 500);
    assert_eq!(got["lastUsedAt"], Value::Null);
    assert!(got.get("token").is_none());
    let censored = got["censoredToken"].as_str().unwrap();
    assert!(token.starts_with(censored.trim_end_matches('…')) && censored.len() < 16);
    let listed = app.list_all("/api/v1/auth/token").await;
    assert!(listed.iter().any(|t| t["id"] == id.as_str()));
    assert!(!serde_json::to_string(&listed).unwrap().contains(&token));

    let (status, ..) = call(
        &app,
        &token,
        "POST",
        "/api/v1/app/shop/msg",
        Some(json!({"eventType": "a", "payload": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually("the last use recorded", || async {
        let (_, got) = app.get(&format!("/api/v1/auth/token/{id}")).await;
        got["lastUsedAt"].is_string().then_some(())
    })
    .await;

    let (status, _) = app.delete(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = call(&app, &token, "GET", "/api/v1/app/shop", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app.get(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_token_requests_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let past = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let cases = [
        (json!({"name": "x", "abilities": []}), "abilities"),
        (json!({"name": "x", "abilities": ["fly"]}), "abilities"),
        (json!({"name": "", "abilities": ["app:read"]}), "name"),
        (
            json!({"name": "x", "abilities": ["app:read"], "expiresAt": past}),
            "expiresAt",
        ),
        (
            json!({"name": "x", "abilities": ["app:read"], "rateLimit": -1}),
            "rateLimit",
        ),
        (
            json!({"name": "x", "abilities": ["app:read"], "scopes": ["y"]}),
            "scopes",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/v1/auth/token", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    let (status, _) = app.get("/api/v1/auth/token/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .post(
            "/api/v1/auth/token",
            Some(json!({"name": "x", "abilities": ["app:read"], "app": "nowhere"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("nowhere"));
    // admin limited to an application: everything within it, nothing outside.
    let (token, _) = named_token(
        &app,
        json!({"name": "a", "abilities": ["admin"], "app": "shop"}),
    )
    .await;
    let (status, _, body) = call(
        &app,
        &token,
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(json!({"url": "https://example.com/a"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        call(&app, &token, "GET", "/api/v1/auth/token", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, &token, "GET", "/api/v1/app", None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
    let (token, _) = named_token(
        &app,
        json!({"name": "brief", "abilities": ["app:read"], "expiresAt": soon}),
    )
    .await;
    let (status, ..) = call(&app, &token, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, _, body) = call(&app, &token, "GET", "/api/v1/app", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

async fn portal(app: &TestApp, app_key: &str, body: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/auth/app-portal-access/{app_key}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn app_portal_tokens_follow_their_capabilities() {
    let app = TestApp::spawn().await;
    let (shop_id, _, ep, _) = populated_app(&app, "shop").await;
    let (status, access) = portal(&app, "shop", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    let full = access["token"].as_str().unwrap().to_owned();
    let url = access["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/ui/portal/{shop_id}#token={full}")),
        "{url}"
    );
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Every capability: endpoints, secrets, attempts, but no messages of its own, nor admin.
    let secret = format!("/api/v1/app/shop/endpoint/{ep}/secret");
    assert_eq!(
        call(&app, &full, "GET", &secret, None).await.0,
        StatusCode::OK
    );
    let (status, ..) = call(
        &app,
        &full,
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(json!({"url": "https://example.com/2"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, ..) = call(
        &app,
        &full,
        "POST",
        "/api/v1/app/shop/msg",
        Some(json!({"eventType": "a", "payload": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, ..) = call(
        &app,
        &full,
        "POST",
        "/api/v1/auth/app-portal-access/shop",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, access) = portal(
        &app,
        &shop_id,
        json!({"capabilities": ["ViewBase"], "expiry": 3600}),
    )
    .await;
    let view = access["token"].as_str().unwrap().to_owned();
    let (status, _, body) = call(&app, &view, "GET", "/api/v1/app/shop/endpoint", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        call(&app, &view, "GET", "/api/v1/app/shop/msg", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, &view, "GET", "/api/v1/event-type", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, &view, "GET", &secret, None).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, ..) = call(
        &app,
        &view,
        "POST",
        "/api/v1/app/shop/endpoint",
        Some(json!({"url": "https://example.com/3"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, access) = portal(&app, "shop", json!({"readOnly": true})).await;
    let read_only = access["token"].as_str().unwrap();
    assert_eq!(
        call(&app, read_only, "GET", &secret, None).await.0,
        StatusCode::OK
    );
    let rotate_it = format!("/api/v1/app/shop/endpoint/{ep}/secret/rotate");
    let (status, ..) = call(&app, read_only, "POST", &rotate_it, Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // ViewBase is always given.
    let (_, access) = portal(&app, "shop", json!({"capabilities": ["CreateAttempts"]})).await;
    let attempts = access["token"].as_str().unwrap();
    let (status, ..) = call(&app, attempts, "GET", "/api/v1/app/shop/endpoint", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, access) = portal(
        &app,
        "shop",
        json!({"capabilities": ["ViewBase", "ViewEndpointSecret"]}),
    )
    .await;
    let secrets = access["token"].as_str().unwrap();
    assert_eq!(
        call(&app, secrets, "GET", &secret, None).await.0,
        StatusCode::OK
    );
    let rotate = format!("/api/v1/app/shop/endpoint/{ep}/secret/rotate");
    assert_eq!(
        call(&app, secrets, "POST", &rotate, Some(json!({})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // whoami tells what the token is.
    let (status, _, who) = call(&app, &view, "GET", "/api/v1/auth/whoami", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["appId"], shop_id.as_str());
    assert_eq!(who["permissionSource"], "RegionalAuthToken");
    assert_eq!(
        who["abilities"],
        json!([
            "app:read",
            "event-type:read",
            "endpoint:read",
            "message:read"
        ])
    );
    let (_, _, who) = call(&app, &app.token, "GET", "/api/v1/auth/whoami", None).await;
    assert_eq!(who["permissionSource"], "GlobalAuthToken");
    assert_eq!(who["appId"], Value::Null);
}

#[tokio::test]
async fn app_portal_access_checks_its_input_and_can_create_the_application() {
    let app = TestApp::builder()
        .with_config(|c| c.public_url = "https://hooks.example.com".into())
        .spawn()
        .await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    for (body, field) in [
        (json!({"capabilities": ["ViewBase", "Fly"]}), "capabilities"),
        (json!({"featureFlags": ["beta"]}), "featureFlags"),
        (json!({"expiry": 10}), "expiry"),
        (json!({"expiry": 604801}), "expiry"),
        (json!({"sessionId": "no spaces"}), "sessionId"),
    ] {
        let (status, answer) = portal(&app, "shop", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }
    let (status, _) = portal(&app, "new-shop", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, access) = portal(
        &app,
        "new-shop",
        json!({"application": {"name": "New shop"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{access}");
    assert!(
        access["url"]
            .as_str()
            .unwrap()
            .starts_with("https://hooks.example.com/ui/portal/app_")
    );
    let (status, created) = app.get("/api/v1/app/new-shop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["name"], "New shop");
    let token = access["token"].as_str().unwrap();
    assert_eq!(
        call(&app, token, "GET", "/api/v1/app/new-shop", None)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expire_all_and_logout_end_an_applications_tokens() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    app.create_app(json!({"name": "other", "uid": "other"}))
        .await;
    let token = |access: Value| access["token"].as_str().unwrap().to_owned();
    let alice = token(portal(&app, "shop", json!({"sessionId": "alice"})).await.1);
    let bob = token(portal(&app, "shop", json!({"sessionId": "bob"})).await.1);
    let elsewhere = token(portal(&app, "other", json!({})).await.1);
    let (named, _) = named_token(
        &app,
        json!({"name": "n", "abilities": ["app:read"], "app": "shop"}),
    )
    .await;
    let works = |t: String, key: &'static str| {
        let app = &app;
        async move {
            call(app, &t, "GET", &format!("/api/v1/app/{key}"), None)
                .await
                .0
        }
    };
    assert_eq!(works(alice.clone(), "shop").await, StatusCode::OK);
    assert_eq!(works(bob.clone(), "shop").await, StatusCode::OK);

    let (status, body) = app
        .post(
            "/api/v1/auth/app/shop/expire-all",
            Some(json!({"sessionIds": ["alice"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(works(alice.clone(), "shop").await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(bob.clone(), "shop").await, StatusCode::OK);
    assert_eq!(works(named.clone(), "shop").await, StatusCode::OK);

    let (status, _) = app
        .post(
            "/api/v1/auth/app/shop/expire-all",
            Some(json!({"expiry": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(works(bob.clone(), "shop").await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(named.clone(), "shop").await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(elsewhere.clone(), "other").await, StatusCode::OK);
    let (status, body) = app
        .post(
            "/api/v1/auth/app/shop/expire-all",
            Some(json!({"expiry": -1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "expiry"]);

    // Logout ends the token it is made with; the admin token cannot log out.
    let (status, ..) = call(&app, &elsewhere, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(works(elsewhere, "other").await, StatusCode::UNAUTHORIZED);
    let (status, ..) = call(&app, &app.token, "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deleting_an_application_ends_its_tokens() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let (token, id) = named_token(
        &app,
        json!({"name": "n", "abilities": ["app:read", "event-type:read"], "app": "shop"}),
    )
    .await;
    assert_eq!(
        call(&app, &token, "GET", "/api/v1/event-type", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = app.delete("/api/v1/app/shop").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Every node lets go of it at its next sync.
    eventually("the token to stop working", || async {
        let (status, ..) = call(&app, &token, "GET", "/api/v1/event-type", None).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

/// `hookd token …` against the running server's database.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let config = app.config();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("token")
        .args(args)
        .env("HOOKD_DATABASE_URL", &config.database_url)
        .env("HOOKD_DATA_DIR", &config.data_dir)
        .env("HOOKD_LOG_LEVEL", "warn")
        .env_remove("HOOKD_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn hookd_token_creates_lists_and_revokes() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let (ok, out, err) = cli(
        &app,
        &[
            "create",
            "--name",
            "deploy bot",
            "--ability",
            "message:create,app:read",
            "--app",
            "shop",
            "--expires",
            "30d",
            "--rate-limit",
            "50",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let token = out.trim();
    assert!(token.starts_with("hk_"), "{out}");
    let (status, _, body) = call(
        &app,
        token,
        "POST",
        "/api/v1/app/shop/msg",
        Some(json!({"eventType": "a", "payload": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, headers, _) = call(&app, token, "GET", "/api/v1/app/shop", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ratelimit-limit"], "50");
    assert_eq!(
        call(&app, token, "GET", "/api/v1/app", None).await.0,
        StatusCode::FORBIDDEN
    );

    let (ok, listed, err) = cli(&app, &["list"]).await;
    assert!(ok, "{err}");
    let line = listed
        .lines()
        .find(|l| l.contains("deploy bot"))
        .expect(&listed);
    assert!(
        line.contains("app:read,message:create") && !listed.contains(token),
        "{listed}"
    );
    let id = line.split('\t').next().unwrap();

    let (ok, _, err) = cli(&app, &["revoke", id]).await;
    assert!(ok, "{err}");
    // The server learns of it at its next sync.
    eventually("the revoked token to stop working", || async {
        let (status, ..) = call(&app, token, "GET", "/api/v1/app/shop", None).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    for bad in [
        vec!["create", "--ability", "fly"],
        vec!["create", "--app", "nowhere", "--ability", "app:read"],
        vec!["create", "--expires", "soon"],
        vec!["revoke", "tok_nope"],
    ] {
        let (ok, _, err) = cli(&app, &bad).await;
        assert!(!ok && !err.is_empty(), "{bad:?}");
    }
}

#[tokio::test]
async fn expire_all_keeps_what_the_tokens_it_spares_have_counted() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let (token, _) = named_token(
        &app,
        json!({"name": "n", "abilities": ["app:read"], "app": "shop", "rateLimit": 3}),
    )
    .await;
    for _ in 0..2 {
        let (status, ..) = call(&app, &token, "GET", "/api/v1/app/shop", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Expires no token, but lets go of the application's tokens held in memory.
    let (status, _) = app
        .post(
            "/api/v1/auth/app/shop/expire-all",
            Some(json!({"sessionIds": ["nobody"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers, _) = call(&app, &token, "GET", "/api/v1/app/shop", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let (status, ..) = call(&app, &token, "GET", "/api/v1/app/shop", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_largest_rate_limit_is_stored() {
    let app = TestApp::spawn().await;
    let (_, id) = named_token(
        &app,
        json!({"name": "big", "abilities": ["app:read"], "rateLimit": 4294967295u64}),
    )
    .await;
    let (status, got) = app.get(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["rateLimit"], 4294967295u64);
}

/// A token made by `hookd token create` before tokens had abilities (migration 0019) stays
/// an admin token without a rate limit, on both backends.
#[tokio::test]
async fn tokens_from_before_abilities_stay_unlimited_admin_tokens() {
    use sqlx::Executor;
    use std::borrow::Cow;

    let token = hookd::api::generate_token();
    let hash = hookd::api::hash_hex(&hookd::api::hash_token(&token));
    let insert = format!("INSERT INTO api_token (token_hash, created_at) VALUES ('{hash}', 1)");
    let before = |mut m: sqlx::migrate::Migrator| {
        m.migrations = Cow::Owned(
            m.migrations
                .iter()
                .filter(|m| m.version < 19)
                .cloned()
                .collect(),
        );
        m
    };
    // SQLite: a database migrated up to 0018, with a token in the old table.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    before(sqlx::migrate!("migrations/sqlite"))
        .run(&pool)
        .await
        .unwrap();
    pool.execute(insert.as_str()).await.unwrap();
    pool.close().await;
    let app = TestApp::builder()
        .with_config({
            let url = url.clone();
            move |c| {
                c.database_url = url;
                c.token_rate_limit = 1;
            }
        })
        .spawn()
        .await;
    check_legacy_token(&app, &token).await;

    // PostgreSQL, the same.
    let Some(database) = crate::pg::TestDatabase::create().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    before(sqlx::migrate!("migrations/postgres"))
        .run(&pool)
        .await
        .unwrap();
    pool.execute(insert.as_str()).await.unwrap();
    pool.close().await;
    let app = TestApp::builder()
        .with_config({
            let url = database.url.clone();
            move |c| {
                c.database_url = url;
                c.token_rate_limit = 1;
            }
        })
        .spawn()
        .await;
    check_legacy_token(&app, &token).await;
}

async fn check_legacy_token(app: &TestApp, token: &str) {
    for _ in 0..3 {
        let (status, headers, body) = call(
            app,
            token,
            "POST",
            "/api/v1/app",
            Some(json!({"name": "a"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(!headers.contains_key("x-ratelimit-limit"));
    }
    let (_, _, who) = call(app, token, "GET", "/api/v1/auth/whoami", None).await;
    assert_eq!(who["abilities"], json!(["admin"]));
    let listed = app.list_all("/api/v1/auth/token").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["rateLimit"], 0);
    assert_eq!(listed[0]["name"], "admin");
    let id = listed[0]["id"].as_str().unwrap();
    let (status, _) = app.get(&format!("/api/v1/auth/token/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}
