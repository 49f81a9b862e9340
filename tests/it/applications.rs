//! `/api/v1/app`: create, get by id or uid, get_if_exists, PUT upsert, PATCH, DELETE, list.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_http_error, assert_validation_error, ids};

#[tokio::test]
async fn create_returns_the_application_and_get_finds_it_by_id_and_uid() {
    let app = TestApp::spawn().await;
    let created = app
        .create_app(json!({
            "name": "Acme", "uid": "acme", "throttleRate": 10, "metadata": {"tier": "gold"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("app_"), "{created}");
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["uid"], "acme");
    assert_eq!(created["throttleRate"], 10);
    assert_eq!(created["metadata"], json!({"tier": "gold"}));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["createdAt"], created["updatedAt"]);

    let (status, by_id) = app.get(&format!("/api/v1/app/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id, created);
    let (status, by_uid) = app.get("/api/v1/app/acme").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_uid, created);
}

#[tokio::test]
async fn optional_fields_default_to_null_and_an_empty_metadata_object() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "Bare"})).await;
    assert_eq!(created["uid"], json!(null));
    assert_eq!(created["throttleRate"], json!(null));
    // The SDK refuses `metadata: null`.
    assert_eq!(created["metadata"], json!({}));
}

#[tokio::test]
async fn a_taken_uid_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "same"})).await;
    let (status, body) = app
        .post("/api/v1/app", Some(json!({"name": "B", "uid": "same"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&body, "conflict");
}

#[tokio::test]
async fn invalid_names_and_uids_are_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post("/api/v1/app", Some(json!({"name": ""}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "name"]);

    let (status, body) = app
        .post(
            "/api/v1/app",
            Some(json!({"name": "x", "uid": "has space"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "uid"]);

    // A uid shaped like an app id would be read as an id in paths.
    let other = app.create_app(json!({"name": "other"})).await;
    let id_shaped = other["id"].as_str().unwrap();
    let (status, body) = app
        .post("/api/v1/app", Some(json!({"name": "x", "uid": id_shaped})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "uid"]);
}

#[tokio::test]
async fn get_if_exists_returns_the_existing_application_or_creates_it() {
    let app = TestApp::spawn().await;
    let first = app.create_app(json!({"name": "Acme", "uid": "acme"})).await;

    let (status, again) = app
        .post(
            "/api/v1/app?get_if_exists=true",
            Some(json!({"name": "Other name", "uid": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first, "the existing app is returned unchanged");

    let (status, new) = app
        .post(
            "/api/v1/app?get_if_exists=true",
            Some(json!({"name": "Fresh", "uid": "fresh"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(new["uid"], "fresh");
    assert_eq!(app.list_all("/api/v1/app").await.len(), 2);
}

#[tokio::test]
async fn unknown_applications_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/app/nope",
        "/api/v1/app/app_01ARZ3NDEKTSV4RRFFQ69G5FAV",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_http_error(&body, "not_found");
    }
}

#[tokio::test]
async fn put_creates_with_the_path_as_uid_then_replaces() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .put(
            "/api/v1/app/by-put",
            Some(json!({"name": "First", "throttleRate": 5, "metadata": {"a": "1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["uid"], "by-put");
    assert_eq!(created["name"], "First");

    // A full replacement: fields left out are reset, the uid stays.
    let (status, updated) = app
        .put("/api/v1/app/by-put", Some(json!({"name": "Second"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["uid"], "by-put");
    assert_eq!(updated["name"], "Second");
    assert_eq!(updated["throttleRate"], json!(null));
    assert_eq!(updated["metadata"], json!({}));
    assert_eq!(updated["createdAt"], created["createdAt"]);

    let (_, fetched) = app.get("/api/v1/app/by-put").await;
    assert_eq!(fetched, updated);
    assert_eq!(app.list_all("/api/v1/app").await.len(), 1);
}

#[tokio::test]
async fn put_by_id_updates_and_refuses_to_create() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "A"})).await;
    let id = created["id"].as_str().unwrap();
    let (status, updated) = app
        .put(
            &format!("/api/v1/app/{id}"),
            Some(json!({"name": "B", "uid": "b-uid"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["uid"], "b-uid");
    assert_eq!(updated["name"], "B");

    // An id names an existing application; it cannot be created.
    let (status, _) = app
        .put(
            "/api/v1/app/app_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            Some(json!({"name": "C"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Created, the body's uid wins over the path's.
    let (status, body) = app
        .put(
            "/api/v1/app/path-uid",
            Some(json!({"name": "C", "uid": "body-uid"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["uid"], "body-uid");
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    let created = app
        .create_app(json!({
            "name": "A", "uid": "patch-me", "throttleRate": 3, "metadata": {"k": "v"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();

    let (status, renamed) = app
        .patch("/api/v1/app/patch-me", Some(json!({"name": "B"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "B");
    assert_eq!(renamed["uid"], "patch-me");
    assert_eq!(renamed["throttleRate"], 3);
    assert_eq!(renamed["metadata"], json!({"k": "v"}));

    let (status, cleared) = app
        .patch(
            "/api/v1/app/patch-me",
            Some(json!({"uid": null, "throttleRate": null, "metadata": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["uid"], json!(null));
    assert_eq!(cleared["throttleRate"], json!(null));
    assert_eq!(cleared["metadata"], json!({}));
    assert_eq!(cleared["name"], "B");

    let (status, _) = app.get("/api/v1/app/patch-me").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the old uid no longer resolves"
    );
    let (_, fetched) = app.get(&format!("/api/v1/app/{id}")).await;
    assert_eq!(fetched, cleared);

    let (status, _) = app
        .patch("/api/v1/app/nope", Some(json!({"name": "x"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn taking_another_application_uid_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    let b = app.create_app(json!({"name": "B", "uid": "b"})).await;
    let (status, body) = app.patch("/api/v1/app/b", Some(json!({"uid": "a"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&body, "conflict");
    let (status, body) = app
        .put("/api/v1/app/b", Some(json!({"name": "B", "uid": "a"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&body, "conflict");
    assert_eq!(app.get("/api/v1/app/b").await, (StatusCode::OK, b));
}

#[tokio::test]
async fn delete_removes_the_application_and_what_it_owns() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "doomed"})).await;
    let kept = app.create_app(json!({"name": "Kept"})).await;
    app.create_endpoint("doomed", json!({"url": "https://example.com/hook"}))
        .await;
    app.create_message("doomed", json!({"eventType": "a.b", "payload": {}}))
        .await;

    let (status, body) = app.delete("/api/v1/app/doomed").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(null));
    let (status, _) = app.get("/api/v1/app/doomed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/app/doomed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A new application with the same uid starts empty.
    app.create_app(json!({"name": "Again", "uid": "doomed"}))
        .await;
    assert!(app.list_all("/api/v1/app/doomed/endpoint").await.is_empty());
    assert!(app.list_all("/api/v1/app/doomed/msg").await.is_empty());
    let remaining = app.list_all("/api/v1/app").await;
    assert_eq!(remaining.len(), 2);
    assert!(remaining.contains(&kept));
}

#[tokio::test]
async fn list_returns_every_application_oldest_first() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for name in ["one", "two", "three"] {
        created.push(app.create_app(json!({"name": name})).await);
    }
    let (status, page) = app.get("/api/v1/app").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!(created));
    assert_eq!(page["done"], true);
    assert_eq!(ids(&created), {
        let mut sorted = ids(&created);
        sorted.sort();
        sorted
    });
}
