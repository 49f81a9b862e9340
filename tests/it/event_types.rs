//! `/api/v1/event-type`: create, revive, get, PUT, PATCH, archive, expunge, list.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_http_error, assert_validation_error};

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, et) = app.post("/api/v1/event-type", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{et}");
    et
}

#[tokio::test]
async fn create_returns_every_field_and_get_reads_it_back() {
    let app = TestApp::spawn().await;
    let et = create(
        &app,
        json!({
            "name": "invoice.paid",
            "description": "An invoice was paid",
            "schemas": {"1": {"type": "object"}},
            "featureFlags": ["beta"],
            "groupName": "billing"
        }),
    )
    .await;
    assert_eq!(et["name"], "invoice.paid");
    assert_eq!(et["description"], "An invoice was paid");
    assert_eq!(et["archived"], false);
    assert_eq!(et["deprecated"], false);
    assert_eq!(et["schemas"], json!({"1": {"type": "object"}}));
    assert_eq!(et["featureFlags"], json!(["beta"]));
    assert_eq!(et["featureFlag"], "beta");
    assert_eq!(et["groupName"], "billing");
    assert!(et["createdAt"].is_string() && et["updatedAt"].is_string());

    let (status, fetched) = app.get("/api/v1/event-type/invoice.paid").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, et);

    let (status, body) = app.get("/api/v1/event-type/unknown.type").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_http_error(&body, "not_found");
}

#[tokio::test]
async fn the_single_feature_flag_of_older_clients_is_accepted() {
    let app = TestApp::spawn().await;
    let et = create(
        &app,
        json!({"name": "flagged", "description": "d", "featureFlag": "beta"}),
    )
    .await;
    assert_eq!(et["featureFlag"], "beta");
    assert_eq!(et["featureFlags"], json!(["beta"]));
}

#[tokio::test]
async fn a_live_duplicate_is_a_conflict_and_bad_names_are_refused() {
    let app = TestApp::spawn().await;
    create(&app, json!({"name": "a.b", "description": "first"})).await;
    let (status, body) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "a.b", "description": "second"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&body, "conflict");
    let (_, kept) = app.get("/api/v1/event-type/a.b").await;
    assert_eq!(kept["description"], "first");

    let (status, body) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "not valid!", "description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "name"]);
}

#[tokio::test]
async fn delete_archives_and_list_hides_archived_unless_asked() {
    let app = TestApp::spawn().await;
    create(&app, json!({"name": "keep", "description": "k"})).await;
    create(&app, json!({"name": "old", "description": "o"})).await;

    let (status, body) = app.delete("/api/v1/event-type/old").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(null));

    let (status, archived) = app.get("/api/v1/event-type/old").await;
    assert_eq!(status, StatusCode::OK, "archived event types stay readable");
    assert_eq!(archived["archived"], true);

    let live = app.list_all("/api/v1/event-type").await;
    assert_eq!(names(&live), ["keep"]);
    let all = app
        .list_all("/api/v1/event-type?include_archived=true")
        .await;
    assert_eq!(names(&all), ["keep", "old"]);
    assert_eq!(all[1]["archived"], true);
}

#[tokio::test]
async fn creating_an_archived_name_revives_and_replaces_it() {
    let app = TestApp::spawn().await;
    create(
        &app,
        json!({"name": "phoenix", "description": "before", "schemas": {"1": {}}}),
    )
    .await;
    let (status, _) = app.delete("/api/v1/event-type/phoenix").await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let revived = create(&app, json!({"name": "phoenix", "description": "after"})).await;
    assert_eq!(revived["archived"], false);
    assert_eq!(revived["description"], "after");
    assert_eq!(
        revived["schemas"],
        json!(null),
        "the old fields are replaced"
    );
    assert_eq!(
        names(&app.list_all("/api/v1/event-type").await),
        ["phoenix"]
    );
}

#[tokio::test]
async fn expunge_removes_the_event_type_for_good() {
    let app = TestApp::spawn().await;
    create(&app, json!({"name": "gone", "description": "g"})).await;
    let (status, _) = app.delete("/api/v1/event-type/gone?expunge=true").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/event-type/gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        app.list_all("/api/v1/event-type?include_archived=true")
            .await
            .is_empty()
    );
    let (status, _) = app.delete("/api/v1/event-type/gone").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The name is free again.
    let fresh = create(&app, json!({"name": "gone", "description": "new"})).await;
    assert_eq!(fresh["description"], "new");
}

#[tokio::test]
async fn with_content_false_leaves_out_the_schemas() {
    let app = TestApp::spawn().await;
    let schemas = json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}}});
    create(
        &app,
        json!({"name": "with.schema", "description": "d", "schemas": schemas}),
    )
    .await;

    let (_, full) = app.get("/api/v1/event-type").await;
    assert_eq!(full["data"][0]["schemas"], schemas);
    let (_, bare) = app.get("/api/v1/event-type?with_content=false").await;
    assert_eq!(bare["data"][0]["name"], "with.schema");
    assert_eq!(bare["data"][0]["schemas"], json!(null));
    let (_, explicit) = app.get("/api/v1/event-type?with_content=true").await;
    assert_eq!(explicit["data"][0]["schemas"], schemas);
}

#[tokio::test]
async fn put_creates_then_replaces() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .put(
            "/api/v1/event-type/user.created",
            Some(json!({"description": "v1", "schemas": {"1": {}}, "groupName": "users"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "user.created");
    assert_eq!(created["groupName"], "users");

    let (status, updated) = app
        .put(
            "/api/v1/event-type/user.created",
            Some(json!({"description": "v2", "deprecated": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["description"], "v2");
    assert_eq!(updated["deprecated"], true);
    assert_eq!(updated["schemas"], json!(null));
    assert_eq!(updated["groupName"], json!(null));
    assert_eq!(updated["createdAt"], created["createdAt"]);
    let (_, fetched) = app.get("/api/v1/event-type/user.created").await;
    assert_eq!(fetched, updated);

    let (status, body) = app
        .put(
            "/api/v1/event-type/bad%20name",
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["path", "event_type_name"]);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_null_clears() {
    let app = TestApp::spawn().await;
    create(
        &app,
        json!({
            "name": "p", "description": "d", "schemas": {"1": {}},
            "featureFlags": ["f"], "groupName": "g"
        }),
    )
    .await;

    let (status, patched) = app
        .patch(
            "/api/v1/event-type/p",
            Some(json!({"description": "new", "deprecated": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], "new");
    assert_eq!(patched["deprecated"], true);
    assert_eq!(patched["schemas"], json!({"1": {}}));
    assert_eq!(patched["featureFlags"], json!(["f"]));
    assert_eq!(patched["groupName"], "g");

    let (status, cleared) = app
        .patch(
            "/api/v1/event-type/p",
            Some(json!({"schemas": null, "featureFlags": null, "groupName": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["schemas"], json!(null));
    assert_eq!(cleared["featureFlags"], json!(null));
    assert_eq!(cleared["featureFlag"], json!(null));
    assert_eq!(cleared["groupName"], json!(null));
    assert_eq!(cleared["description"], "new");

    let (status, archived) = app
        .patch("/api/v1/event-type/p", Some(json!({"archived": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(archived["archived"], true);
    assert!(app.list_all("/api/v1/event-type").await.is_empty());

    let (status, _) = app
        .patch(
            "/api/v1/event-type/missing",
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_is_ordered_by_name() {
    let app = TestApp::spawn().await;
    for name in ["c.third", "a.first", "b.second"] {
        create(&app, json!({"name": name, "description": ""})).await;
    }
    let all = app.list_all("/api/v1/event-type").await;
    assert_eq!(names(&all), ["a.first", "b.second", "c.third"]);
    let (_, page) = app.get("/api/v1/event-type?order=descending").await;
    assert_eq!(
        names(page["data"].as_array().unwrap()),
        ["c.third", "b.second", "a.first"]
    );
}
