//! The routes without authentication: health checks and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, send};
use crate::routes::{INGEST_RECEIVE_ROUTE, PROTECTED_ROUTES, PUBLIC_ROUTES, READY_ROUTE};

#[tokio::test]
async fn health_answers_204_without_a_token() {
    let app = TestApp::spawn().await;
    for (_, path) in PUBLIC_ROUTES {
        let (status, body) = send(app.raw_request(Method::GET, path)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(body, Value::Null, "{path}");
        // A client that sends its token anyway is not refused.
        let (status, _) = app.get(path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
    }
}

async fn openapi(app: &TestApp) -> Value {
    let (status, doc) = send(app.raw_request(Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

#[tokio::test]
async fn the_openapi_document_is_public_and_version_3_1() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "openapi {version}");
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut expected = 0;
    let every = PROTECTED_ROUTES.iter().chain(PUBLIC_ROUTES);
    for (method, path) in every.chain([&READY_ROUTE, &INGEST_RECEIVE_ROUTE]) {
        let operation = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing"))[method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is missing");
        expected += 1;
    }
    let documented: usize = paths
        .values()
        .map(|item| {
            ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert_eq!(documented, expected, "undocumented test or untested route");
}

#[tokio::test]
async fn the_openapi_document_states_the_statuses_the_server_answers() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let op = |method: &str, path: &str| doc["paths"][path][method]["responses"].clone();
    for (method, path, status) in [
        ("post", "/api/v1/app", "201"),
        ("put", "/api/v1/app/{app_id}", "201"),
        ("delete", "/api/v1/app/{app_id}", "204"),
        ("post", "/api/v1/app/{app_id}/msg", "202"),
        (
            "post",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
            "200",
        ),
        (
            "put",
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
            "204",
        ),
        ("get", "/api/v1/health", "204"),
    ] {
        assert!(
            op(method, path).get(status).is_some(),
            "{method} {path} {status}"
        );
    }
}

/// Every operation that needs a token documents the error responses it can give, with the
/// body shapes the SDK parses.
#[tokio::test]
async fn the_openapi_document_states_the_error_responses() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    assert_eq!(doc["security"], json!([{"HTTPBearer": []}]));
    let mut missing = Vec::new();
    for (method, path) in PROTECTED_ROUTES {
        let responses = &doc["paths"][path][method.to_lowercase()]["responses"];
        for (status, schema) in [
            ("401", "HttpErrorOut"),
            ("404", "HttpErrorOut"),
            ("422", "HttpValidationError"),
        ] {
            let reference = &responses[status]["content"]["application/json"]["schema"]["$ref"];
            if reference != &json!(format!("#/components/schemas/{schema}")) {
                missing.push(format!("{method} {path} {status}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} undocumented error responses, such as {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
}

/// Every `$ref` in the document names a schema it holds (the `order` parameters once
/// pointed at a missing `Ordering`).
#[tokio::test]
async fn every_reference_in_the_openapi_document_resolves() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let mut references = Vec::new();
    collect_references(&doc, &mut references);
    assert!(
        references.len() > 50,
        "only {} references",
        references.len()
    );
    let dangling: Vec<_> = references
        .iter()
        .filter(|r| {
            r.strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                out.push(reference.clone());
            }
            map.values().for_each(|v| collect_references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// OpenAPI requires operation ids to be unique; client generators name methods after them.
#[tokio::test]
async fn the_openapi_operation_ids_are_unique() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            seen.entry(id).or_default().push(format!("{method} {path}"));
        }
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
    assert!(
        duplicates.is_empty(),
        "operationIds used more than once: {duplicates:?}"
    );
}
