//! `POST /api/v1/environment/export` and `/import`: the Svix SDK's environment shapes.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn export_gives_every_event_type_and_import_adds_and_replaces() {
    let app = TestApp::spawn().await;
    for name in ["a.one", "b.two"] {
        let (status, _) = app
            .post(
                "/api/v1/event-type",
                Some(json!({"name": name, "description": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.delete("/api/v1/event-type/b.two").await;

    let (status, env) = app.post("/api/v1/environment/export", None).await;
    assert_eq!(status, StatusCode::OK, "{env}");
    assert_eq!(env["version"], 1);
    assert_eq!(env["connectors"], json!([]));
    assert!(env["settings"].is_null());
    assert!(env["createdAt"].is_string());
    let names: Vec<_> = env["eventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|et| (et["name"].clone(), et["archived"].clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            (json!("a.one"), json!(false)),
            (json!("b.two"), json!(true))
        ]
    );

    let (status, body) = app
        .post(
            "/api/v1/environment/import",
            Some(json!({
                "eventTypes": [
                    {"name": "a.one", "description": "replaced", "schemas": {"1": {"type": "object"}}},
                    {"name": "c.three", "description": "first"},
                    {"name": "c.three", "description": "new"}
                ],
                "settings": {},
                "connectors": []
            })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, a) = app.get("/api/v1/event-type/a.one").await;
    assert_eq!(a["description"], "replaced");
    assert_eq!(a["schemas"]["1"]["type"], "object");
    let (_, c) = app.get("/api/v1/event-type/c.three").await;
    assert_eq!(c["description"], "new", "given twice, the last one counts");
    // Import deletes nothing.
    let (status, _) = app.get("/api/v1/event-type/b.two").await;
    assert_eq!(status, StatusCode::OK);

    // An export imports back as it is (its extra fields are read past) and changes nothing.
    let (_, env) = app.post("/api/v1/environment/export", None).await;
    let (status, body) = app
        .post("/api/v1/environment/import", Some(env.clone()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, again) = app.post("/api/v1/environment/export", None).await;
    let strip = |v: &serde_json::Value| {
        v["eventTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|et| {
                (
                    et["name"].clone(),
                    et["description"].clone(),
                    et["archived"].clone(),
                    et["schemas"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&env), strip(&again));
}

#[tokio::test]
async fn import_refuses_what_hookd_has_not_and_writes_nothing_then() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"settings": {"colorPaletteDark": {}}}), "settings"),
        (
            json!({"connectors": [{"name": "x", "transformation": "function handler(w) { return w }"}]}),
            "connectors",
        ),
        (
            json!({"eventTypes": [{"name": "ok.one", "description": ""}, {"name": "bad name", "description": ""}]}),
            "name",
        ),
        (
            json!({"eventTypes": [{"name": "ok.one", "description": ""}, {"name": "ok.two", "description": "", "schemas": {"1": 5}}]}),
            "1",
        ),
    ] {
        let (status, err) = app.post("/api/v1/environment/import", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        let loc = err["detail"][0]["loc"].as_array().unwrap();
        assert_eq!(loc.last().unwrap(), field, "{err}");
        if loc.len() > 2 {
            assert_eq!(loc[1], "eventTypes", "{err}");
            assert_eq!(loc[2], "1", "the failing item's index: {err}");
        }
    }
    let (_, list) = app.get("/api/v1/event-type").await;
    assert_eq!(list["data"], json!([]), "nothing half-imported");
    let (status, _) = app
        .raw_request(reqwest::Method::POST, "/api/v1/environment/export")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
