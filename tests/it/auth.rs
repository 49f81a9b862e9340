//! Bearer-token authentication on every `/api/v1` route but health and the OpenAPI document.

use hookd::api::generate_token;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{TestApp, assert_http_error, send};
use crate::routes::{PROTECTED_ROUTES, fill};

async fn list_apps_with(app: &TestApp, authorization: Option<&str>) -> StatusCode {
    let mut request = app.raw_request(Method::GET, "/api/v1/app");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let (status, body) = send(request).await;
    if status == StatusCode::UNAUTHORIZED {
        assert_http_error(&body, "authentication_failed");
    }
    status
}

#[tokio::test]
async fn the_admin_token_is_accepted_as_a_bearer_token() {
    let app = TestApp::spawn().await;
    let bearer = format!("Bearer {}", app.token);
    assert_eq!(list_apps_with(&app, Some(&bearer)).await, StatusCode::OK);
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_are_401() {
    let app = TestApp::spawn().await;
    let token = app.token.clone();
    let wrong = generate_token();
    let cases = [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {token}x")),
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some(format!("Token {token}")),
    ];
    for authorization in cases {
        assert_eq!(
            list_apps_with(&app, authorization.as_deref()).await,
            StatusCode::UNAUTHORIZED,
            "Authorization: {authorization:?}"
        );
    }
}

#[tokio::test]
async fn every_protected_route_checks_the_token_first() {
    let app = TestApp::spawn().await;
    for (method, template) in PROTECTED_ROUTES {
        let path = fill(template, "x");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // A body that would be a 400 if it were read: authentication comes first.
        let request = app
            .raw_request(method.clone(), &path)
            .header(header::AUTHORIZATION, "Bearer wrong")
            .header(header::CONTENT_TYPE, "application/json")
            .body("{not json");
        let (status, body) = send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_http_error(&body, "authentication_failed");
    }
}

#[tokio::test]
async fn a_rejected_request_changes_nothing() {
    let app = TestApp::spawn().await;
    let request = app
        .raw_request(Method::POST, "/api/v1/app")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .json(&json!({"name": "sneaky"}));
    let (status, _) = send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(app.list_all("/api/v1/app").await.is_empty());
}

#[tokio::test]
async fn tokens_created_in_the_store_are_accepted() {
    let app = TestApp::spawn().await;
    // What `hookd token create` does, against the running server's database.
    let store = hookd::app::open_store(app.config()).await.unwrap();
    let (new, token) = hookd::api::new_token(|hash, hint| {
        hookd::api::NamedToken {
            name: "cli".into(),
            abilities: hookd::domain::Abilities::of([hookd::domain::Ability::Admin]),
            app_id: None,
            expires_at: None,
            rate_limit: None,
        }
        .into_new(hash, hint)
    });
    let bearer = format!("Bearer {token}");
    assert_eq!(
        list_apps_with(&app, Some(&bearer)).await,
        StatusCode::UNAUTHORIZED
    );
    store.insert_token(new).await.unwrap();
    assert_eq!(list_apps_with(&app, Some(&bearer)).await, StatusCode::OK);
}

#[tokio::test]
async fn an_empty_admin_token_accepts_nothing() {
    let app = TestApp::builder()
        .with_config(|c| c.admin_token = String::new())
        .spawn()
        .await;
    assert_eq!(
        list_apps_with(&app, Some("Bearer ")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        list_apps_with(&app, Some("Bearer x")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(list_apps_with(&app, None).await, StatusCode::UNAUTHORIZED);
}
