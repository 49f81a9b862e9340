//! Error shapes: every error is JSON, `{"code", "detail"}` or, for 422, the FastAPI-style
//! `{"detail": [{"loc", "msg", "type"}]}`; malformed input is never a 500.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_http_error, assert_validation_error, send};

async fn post_raw(app: &TestApp, path: &str, body: &'static str) -> (StatusCode, Value) {
    let request = app
        .raw_request(Method::POST, path)
        .bearer_auth(&app.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    send(request).await
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    for path in [
        "/api/v1/app",
        "/api/v1/event-type",
        "/api/v1/app/owner/endpoint",
        "/api/v1/app/owner/msg",
    ] {
        for body in ["{\"name\": ", "not json", "", "{\"name\": \"a\",}"] {
            let (status, error) = post_raw(&app, path, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body:?}: {error}");
            assert_http_error(&error, "invalid_request");
        }
    }
    // A valid request followed by anything else is not JSON either.
    let (status, error) = post_raw(&app, "/api/v1/app", "{\"name\": \"a\"} trailing").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_http_error(&error, "invalid_request");
    assert_eq!(app.list_all("/api/v1/app").await.len(), 1);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_422_at_its_location() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let cases = [
        ("/api/v1/app", json!({"name": 5}), vec!["body", "name"]),
        ("/api/v1/app", json!({}), vec!["body", "name"]),
        (
            "/api/v1/app",
            json!({"name": "x", "throttleRate": "fast"}),
            vec!["body", "throttleRate"],
        ),
        (
            "/api/v1/app",
            json!({"name": "x", "metadata": {"k": 1}}),
            vec!["body", "metadata", "k"],
        ),
        ("/api/v1/app", json!([]), vec!["body"]),
        (
            "/api/v1/app/owner/endpoint",
            json!({"url": 5}),
            vec!["body", "url"],
        ),
        (
            "/api/v1/app/owner/endpoint",
            json!({"url": "https://x.example", "channels": "eu"}),
            vec!["body", "channels"],
        ),
        (
            "/api/v1/event-type",
            json!({"name": 1, "description": "d"}),
            vec!["body", "name"],
        ),
        (
            "/api/v1/event-type",
            json!({"name": "a"}),
            vec!["body", "description"],
        ),
    ];
    for (path, body, loc) in cases {
        let (status, error) = app.post(path, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {error}"
        );
        assert_validation_error(&error, &loc);
    }
}

/// The event type body shares its fields with PUT's through `#[serde(flatten)]`; a wrong
/// type there must still name the field, as it does everywhere else.
#[tokio::test]
async fn a_wrong_type_in_an_event_type_names_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"name": "a", "description": 5}), "description"),
        (
            json!({"name": "a", "description": "d", "archived": "yes"}),
            "archived",
        ),
        (
            json!({"name": "a", "description": "d", "schemas": []}),
            "schemas",
        ),
    ] {
        let (status, error) = app.post("/api/v1/event-type", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_validation_error(&error, &["body", field]);
    }
}

#[tokio::test]
async fn a_missing_field_is_reported_as_missing() {
    let app = TestApp::spawn().await;
    let (status, error) = app.post("/api/v1/app", Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error,
        json!({"detail": [{
            "loc": ["body", "name"], "msg": "field required", "type": "value_error.missing"
        }]})
    );
}

#[tokio::test]
async fn bad_query_and_path_parameters_are_422() {
    let app = TestApp::spawn().await;
    for (path, loc) in [
        ("/api/v1/app?limit=abc", vec!["query", "limit"]),
        ("/api/v1/app?order=sideways", vec!["query", "order"]),
        (
            "/api/v1/app?get_if_exists=maybe",
            vec!["query", "get_if_exists"],
        ),
        ("/api/v1/app/bad%20uid", vec!["path", "app_id"]),
        (
            "/api/v1/event-type/bad%20name",
            vec!["path", "event_type_name"],
        ),
    ] {
        let method = if path.contains("get_if_exists") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, error) = app.request(method, path, Some(json!({"name": "x"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {error}");
        assert_validation_error(&error, &loc);
    }
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/nope", "/", "/api/v2/app", "/api/v1/app/x/y/z/w"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_http_error(&body, "not_found");
        let (status, body) = send(app.raw_request(Method::POST, path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} without a token");
        assert_http_error(&body, "not_found");
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_accept_is_405_json() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/app"),
        (Method::PATCH, "/api/v1/event-type"),
        (Method::POST, "/api/v1/app/x"),
        (Method::DELETE, "/api/v1/app/x/endpoint/y/headers"),
        (Method::GET, "/api/v1/app/x/endpoint/y/secret/rotate"),
        (Method::PUT, "/api/v1/app/x/msg"),
        (Method::POST, "/api/v1/health"),
        (Method::POST, "/api/v1/openapi.json"),
    ] {
        let (status, body) = app.request(method.clone(), path, None).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_http_error(&body, "method_not_allowed");
    }
    // RFC 9110: a 405 says which methods the route does accept.
    let response = app
        .raw_request(Method::DELETE, "/api/v1/app")
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let allow = response.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
}

#[tokio::test]
async fn unknown_query_parameters_and_body_fields_are_ignored() {
    let app = TestApp::spawn().await;
    // Parameters newer SDKs send that hookd does not implement.
    for path in [
        "/api/v1/app?exclude_apps_with_no_endpoints=true&exclude_apps_with_disabled_endpoints=false",
        "/api/v1/event-type?tag=x&with_content=false",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let created = app
        .create_app(json!({"name": "x", "uid": "x", "unknownField": [1, 2]}))
        .await;
    assert!(created.get("unknownField").is_none());
    let endpoint = app
        .create_endpoint("x", json!({"url": "https://a.example", "version": 1}))
        .await;
    assert_eq!(endpoint["url"], "https://a.example/");
    let (status, _) = app
        .get("/api/v1/app/x/msg?tag=t&with_content=false&expanded_statuses=true")
        .await;
    assert_eq!(status, StatusCode::OK);
}
