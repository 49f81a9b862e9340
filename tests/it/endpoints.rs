//! `/api/v1/app/{app_id}/endpoint`: create, get by id or uid, PUT upsert, PATCH, DELETE, list.
//! Custom headers and signing secrets have their own modules.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_http_error, assert_validation_error, ids};

async fn app_with(uid: &str) -> TestApp {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": uid})).await;
    app
}

#[tokio::test]
async fn create_returns_every_field_and_get_finds_it_by_id_and_uid() {
    let app = app_with("owner").await;
    let endpoint = app
        .create_endpoint(
            "owner",
            json!({
                "url": "https://example.com/hook",
                "uid": "main",
                "description": "primary",
                "throttleRate": 20,
                "eventTypes": ["b.two", "a.one"],
                "channels": ["eu"],
                "metadata": {"team": "x"}
            }),
        )
        .await;
    assert!(
        endpoint["id"].as_str().unwrap().starts_with("ep_"),
        "{endpoint}"
    );
    assert_eq!(endpoint["url"], "https://example.com/hook");
    assert_eq!(endpoint["uid"], "main");
    assert_eq!(endpoint["description"], "primary");
    assert_eq!(endpoint["disabled"], false);
    assert_eq!(endpoint["throttleRate"], 20);
    let mut types: Vec<Value> = endpoint["eventTypes"].as_array().unwrap().clone();
    types.sort_by_key(|t| t.as_str().unwrap().to_owned());
    assert_eq!(types, [json!("a.one"), json!("b.two")]);
    assert_eq!(endpoint["channels"], json!(["eu"]));
    assert_eq!(endpoint["metadata"], json!({"team": "x"}));
    assert!(
        endpoint.get("secret").is_none(),
        "the secret is not in EndpointOut"
    );

    let id = endpoint["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/app/owner/endpoint/{id}"),
        "/api/v1/app/owner/endpoint/main".to_owned(),
    ] {
        let (status, fetched) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(fetched, endpoint, "{path}");
    }
}

#[tokio::test]
async fn minimal_endpoint_has_empty_description_and_no_filters() {
    let app = app_with("owner").await;
    let endpoint = app
        .create_endpoint("owner", json!({"url": "http://127.0.0.1:9/x"}))
        .await;
    assert_eq!(endpoint["description"], "");
    assert_eq!(endpoint["metadata"], json!({}));
    assert_eq!(endpoint["eventTypes"], json!(null));
    assert_eq!(endpoint["channels"], json!(null));
    assert_eq!(endpoint["uid"], json!(null));
}

#[tokio::test]
async fn invalid_urls_are_refused() {
    let app = app_with("owner").await;
    for url in ["not a url", "ftp://example.com/x", "/relative", ""] {
        let (status, body) = app
            .post("/api/v1/app/owner/endpoint", Some(json!({"url": url})))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url:?}: {body}");
        assert_validation_error(&body, &["body", "url"]);
    }
    let (status, body) = app
        .post(
            "/api/v1/app/owner/endpoint",
            Some(json!({"url": "https://ok.example", "eventTypes": ["ok", "not ok"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "eventTypes", "1"]);
    assert!(app.list_all("/api/v1/app/owner/endpoint").await.is_empty());
}

#[tokio::test]
async fn endpoints_belong_to_their_application() {
    let app = app_with("one").await;
    app.create_app(json!({"name": "Two", "uid": "two"})).await;
    let endpoint = app
        .create_endpoint("one", json!({"url": "https://a.example", "uid": "ep"}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/app/two/endpoint/{id}"),
        "/api/v1/app/two/endpoint/ep".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_http_error(&body, "not_found");
    }
    let (status, _) = app
        .post(
            "/api/v1/app/missing/endpoint",
            Some(json!({"url": "https://a.example"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/app/missing/endpoint").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn endpoint_uids_are_unique_within_an_application() {
    let app = app_with("one").await;
    app.create_app(json!({"name": "Two", "uid": "two"})).await;
    let body = json!({"url": "https://a.example", "uid": "shared"});
    app.create_endpoint("one", body.clone()).await;
    let (status, error) = app
        .post("/api/v1/app/one/endpoint", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&error, "conflict");
    // Another application may use the same uid.
    app.create_endpoint("two", body).await;

    let other = app
        .create_endpoint("one", json!({"url": "https://b.example", "uid": "other"}))
        .await;
    let (status, _) = app
        .patch(
            "/api/v1/app/one/endpoint/other",
            Some(json!({"uid": "shared"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        app.get("/api/v1/app/one/endpoint/other").await,
        (StatusCode::OK, other)
    );
}

#[tokio::test]
async fn put_creates_with_the_path_as_uid_then_replaces_keeping_secret_and_headers() {
    let app = app_with("owner").await;
    let path = "/api/v1/app/owner/endpoint/by-put";
    let (status, created) = app
        .put(
            path,
            Some(json!({"url": "https://one.example", "channels": ["c1"], "throttleRate": 4})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["uid"], "by-put");
    let (_, secret) = app.get(&format!("{path}/secret")).await;
    let (status, _) = app
        .put(
            &format!("{path}/headers"),
            Some(json!({"headers": {"X-Custom": "1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, updated) = app
        .put(
            path,
            Some(json!({"url": "https://two.example/", "disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["uid"], "by-put");
    assert_eq!(updated["url"], "https://two.example/");
    assert_eq!(updated["disabled"], true);
    assert_eq!(
        updated["channels"],
        json!(null),
        "PUT replaces the whole endpoint"
    );
    assert_eq!(updated["throttleRate"], json!(null));
    let (_, fetched) = app.get(path).await;
    assert_eq!(fetched, updated);

    let (_, secret_after) = app.get(&format!("{path}/secret")).await;
    assert_eq!(secret_after, secret, "PUT leaves the secret alone");
    let (_, headers) = app.get(&format!("{path}/headers")).await;
    assert_eq!(headers["headers"], json!({"X-Custom": "1"}));

    let (status, _) = app
        .put(
            "/api/v1/app/owner/endpoint/ep_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            Some(json!({"url": "https://x.example"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unknown id cannot be created"
    );
    assert_eq!(app.list_all("/api/v1/app/owner/endpoint").await.len(), 1);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_null_clears() {
    let app = app_with("owner").await;
    let endpoint = app
        .create_endpoint(
            "owner",
            json!({
                "url": "https://a.example", "uid": "p", "channels": ["c1", "c2"],
                "eventTypes": ["t"], "throttleRate": 9, "description": "d"
            }),
        )
        .await;
    let path = "/api/v1/app/owner/endpoint/p";

    let (status, patched) = app
        .patch(path, Some(json!({"description": "new", "disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "new");
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["url"], endpoint["url"]);
    assert_eq!(patched["channels"], json!(["c1", "c2"]));
    assert_eq!(patched["eventTypes"], json!(["t"]));
    assert_eq!(patched["throttleRate"], 9);

    let (status, cleared) = app
        .patch(
            path,
            Some(json!({"channels": null, "eventTypes": null, "throttleRate": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["channels"], json!(null));
    assert_eq!(cleared["eventTypes"], json!(null));
    assert_eq!(cleared["throttleRate"], json!(null));
    assert_eq!(cleared["description"], "new");

    let (status, renamed) = app.patch(path, Some(json!({"uid": null}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["uid"], json!(null));
    let (status, _) = app.get(path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = endpoint["id"].as_str().unwrap();
    let (_, fetched) = app.get(&format!("/api/v1/app/owner/endpoint/{id}")).await;
    assert_eq!(fetched, renamed);

    let (status, body) = app
        .patch(
            &format!("/api/v1/app/owner/endpoint/{id}"),
            Some(json!({"url": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "url"]);
}

#[tokio::test]
async fn delete_removes_the_endpoint() {
    let app = app_with("owner").await;
    let gone = app
        .create_endpoint("owner", json!({"url": "https://a.example", "uid": "gone"}))
        .await;
    let kept = app
        .create_endpoint("owner", json!({"url": "https://b.example"}))
        .await;
    let (status, body) = app.delete("/api/v1/app/owner/endpoint/gone").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(null));
    let id = gone["id"].as_str().unwrap();
    let (status, _) = app.get(&format!("/api/v1/app/owner/endpoint/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/app/owner/endpoint/gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.list_all("/api/v1/app/owner/endpoint").await, [kept]);
}

#[tokio::test]
async fn list_returns_the_application_endpoints_oldest_first() {
    let app = app_with("owner").await;
    app.create_app(json!({"name": "Other", "uid": "other"}))
        .await;
    app.create_endpoint("other", json!({"url": "https://other.example"}))
        .await;
    let mut created = Vec::new();
    for i in 0..3 {
        let url = format!("https://e{i}.example/");
        created.push(app.create_endpoint("owner", json!({"url": url})).await);
    }
    let (status, page) = app.get("/api/v1/app/owner/endpoint").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!(created));
    assert_eq!(page["done"], true);
    let (_, reversed) = app.get("/api/v1/app/owner/endpoint?order=descending").await;
    let mut expected = ids(&created);
    expected.reverse();
    assert_eq!(ids(reversed["data"].as_array().unwrap()), expected);
}
