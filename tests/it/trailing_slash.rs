//! Every route answers with a trailing slash as it does without one, as on the Svix server:
//! older SDKs and hand-written clients call `POST /api/v1/app/`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, send};
use crate::routes::fill;

/// The `(method, path template)` of every operation in the served OpenAPI document, which
/// `public::the_openapi_document_lists_every_route` holds to the router's routes.
async fn documented_operations(app: &TestApp) -> Vec<(Method, String)> {
    let (status, doc) = send(app.raw_request(Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            operations.push((method, path.clone()));
        }
    }
    operations
}

/// Sends `[]` as the body: a route that takes a body refuses it with a 422, which only a
/// matched route can give; the others ignore it. Nothing is created or changed.
async fn answer(app: &TestApp, method: Method, path: &str) -> (StatusCode, Value) {
    send(
        app.raw_request(method, path)
            .bearer_auth(&app.token)
            .json(&json!([])),
    )
    .await
}

#[tokio::test]
async fn every_route_answers_the_same_with_a_trailing_slash() {
    let app = TestApp::spawn().await;
    let operations = documented_operations(&app).await;
    assert!(
        operations.len() > 30,
        "only {} operations",
        operations.len()
    );
    for (method, template) in operations {
        let path = fill(&template, "no-such-thing");
        let mut plain = answer(&app, method.clone(), &path).await;
        let mut slashed = answer(&app, method.clone(), &format!("{path}/")).await;
        if template == "/api/v1/environment/export" {
            // The time of the export: the one thing two exports may not share.
            for body in [&mut plain.1, &mut slashed.1] {
                body.as_object_mut().map(|o| o.remove("createdAt"));
            }
        }
        assert_eq!(
            slashed, plain,
            "{method} {path}/ and {method} {path} differ"
        );
        assert_ne!(plain.0, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            plain.1["detail"],
            json!("no such route"),
            "{method} {path} is not routed"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_trailing_slash_keeps_the_query_and_the_body() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/api/v1/app/",
            Some(json!({"name": "slash", "uid": "slash"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "slash");
    let (status, page) = app.get("/api/v1/app/?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let (status, got) = app.get("/api/v1/app/slash/").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["id"], created["id"]);
    app.stop().await;
}
