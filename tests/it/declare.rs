//! Endpoints as code: `hookd apply` (the binary) against a test server, and
//! `serve --apply` with `POST /api/v1/hookd/reload`.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn file(dir: &Path, text: &str) -> PathBuf {
    std::fs::write(dir.join("main.secret"), SECRET).unwrap();
    let path = dir.join("hookd.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const FIRST: &str = "\
eventTypes:
  - name: invoice.paid
    description: An invoice was paid
    validatePayloads: true
  - name: invoice.voided
    description: An invoice was voided
applications:
  - uid: acme
    name: Acme
    metadata: {tier: gold}
    endpoints:
      - uid: main
        url: https://hooks.acme.example/in
        description: Main
        eventTypes: [invoice.paid]
        headers: {X-Env: prod}
        secret: file:main.secret
        signature: {scheme: stripe}
        ordering: fifo
      - uid: old
        url: https://old.acme.example/in
operationalEndpoints:
  - uid: ops
    url: https://ops.example/hookd
";

/// The same, with the main endpoint's URL and description changed, the old endpoint and
/// `invoice.voided` gone.
const SECOND: &str = "\
eventTypes:
  - name: invoice.paid
    description: An invoice was paid
    validatePayloads: true
applications:
  - uid: acme
    name: Acme
    metadata: {tier: gold}
    endpoints:
      - uid: main
        url: https://hooks.acme.example/v2
        description: Main, v2
        eventTypes: [invoice.paid]
        headers: {X-Env: prod}
        secret: file:main.secret
        signature: {scheme: stripe}
        ordering: fifo
operationalEndpoints:
  - uid: ops
    url: https://ops.example/hookd
";

/// Runs `hookd apply` against `app`; (success, stdout, stderr).
async fn run(app: &TestApp, path: &Path, flags: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("apply")
        .arg(path)
        .args(flags)
        .args(["--url", &app.base_url(), "--token", &app.token])
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
async fn apply_creates_then_changes_nothing_then_diffs_and_prunes() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), FIRST);

    let (ok, out, err) = run(&app, &path, &[]).await;
    assert!(ok, "{out}{err}");
    for line in [
        "create eventType invoice.paid",
        "create eventType invoice.voided",
        "create application acme",
        "create endpoint acme/main",
        "create endpoint acme/old",
        "create operationalEndpoint ops",
        "6 changes applied",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    let (_, ep) = app.get("/api/v1/app/acme/endpoint/main").await;
    assert_eq!(ep["url"], "https://hooks.acme.example/in");
    assert_eq!(ep["signature"]["scheme"], "stripe");
    assert_eq!(ep["ordering"], "fifo");
    assert_eq!(ep["eventTypes"], json!(["invoice.paid"]));
    let (_, secret) = app.get("/api/v1/app/acme/endpoint/main/secret").await;
    assert_eq!(secret["key"], SECRET);
    let (_, et) = app.get("/api/v1/event-type/invoice.paid").await;
    assert_eq!(et["validatePayloads"], true);
    let (_, headers) = app.get("/api/v1/app/acme/endpoint/main/headers").await;
    assert_eq!(headers["headers"], json!({"X-Env": "prod"}));

    let (ok, out, err) = run(&app, &path, &[]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "no changes: 6 objects already as declared");

    let path = file(dir.path(), SECOND);
    let (ok, out, err) = run(&app, &path, &["--dry-run", "--prune"]).await;
    assert!(ok, "{err}");
    for line in [
        "update endpoint acme/main (description, url)",
        "delete endpoint acme/old",
        "archive eventType invoice.voided",
        "dry run: 3 changes would be made, nothing changed",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    let (_, ep) = app.get("/api/v1/app/acme/endpoint/main").await;
    assert_eq!(
        ep["url"], "https://hooks.acme.example/in",
        "dry run changed nothing"
    );
    let (status, _) = app.get("/api/v1/app/acme/endpoint/old").await;
    assert_eq!(status, StatusCode::OK);

    // Without --prune, what the file no longer lists stays.
    let (ok, out, _) = run(&app, &path, &[]).await;
    assert!(ok);
    assert!(out.contains("1 changes applied"), "{out}");
    let (status, _) = app.get("/api/v1/app/acme/endpoint/old").await;
    assert_eq!(status, StatusCode::OK);

    let (ok, out, err) = run(&app, &path, &["--prune"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("2 changes applied"), "{out}");
    let (status, _) = app.get("/api/v1/app/acme/endpoint/old").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, et) = app.get("/api/v1/event-type/invoice.voided").await;
    assert_eq!(et["archived"], true);
    let (_, ep) = app.get("/api/v1/app/acme/endpoint/main").await;
    assert_eq!(ep["url"], "https://hooks.acme.example/v2");

    let (ok, out, _) = run(&app, &path, &["--prune"]).await;
    assert!(ok);
    assert!(out.starts_with("no changes"), "{out}");
}

#[tokio::test]
async fn apply_refuses_an_invalid_file_whole() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "applications:\n  - uid: fine\n    name: Fine\n  - name: No uid\n    endpoints:\n      - uid: e\n        url: https://x.example\n        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    );
    let (ok, out, err) = run(&app, &path, &[]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("(2 errors), nothing was applied"), "{err}");
    assert!(
        err.contains("line 4: applications[1].uid: missing"),
        "{err}"
    );
    assert!(
        err.contains("line 8: applications[1].endpoints[0].secret"),
        "{err}"
    );
    let (_, apps) = app.get("/api/v1/app").await;
    assert_eq!(apps["data"], json!([]), "nothing half-applied");
}

#[tokio::test]
async fn serve_applies_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), FIRST);
    let given = path.clone();
    let app = TestApp::builder()
        .with_config(move |c| c.apply_file = Some(given))
        .spawn()
        .await;
    let (_, ep) = app.get("/api/v1/app/acme/endpoint/main").await;
    assert_eq!(
        ep["url"], "https://hooks.acme.example/in",
        "applied at start"
    );

    let (status, summary) = app.post("/api/v1/hookd/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["changes"], json!([]));
    assert_eq!(summary["unchanged"], 6);

    file(dir.path(), SECOND);
    let (status, summary) = app.post("/api/v1/hookd/reload", None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(
        summary["changes"],
        json!([{"action": "update", "kind": "endpoint", "id": "acme/main", "fields": ["description", "url"]}]),
        "reload never prunes"
    );

    // An invalid file: 422 with every error and its line, nothing changed.
    std::fs::write(&path, "applications:\n  - uid: acme\n    nme: Acme\n").unwrap();
    let (status, err) = app.post("/api/v1/hookd/reload", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let messages: Vec<&str> = err["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["msg"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("line 3: applications[0].nme: unknown key")),
        "{err}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("line 2: applications[0].name: missing")),
        "{err}"
    );
    let (_, acme) = app.get("/api/v1/app/acme").await;
    assert_eq!(acme["name"], "Acme");

    // A change the API refuses part way: 409 saying where it stopped.
    std::fs::write(
        &path,
        "applications:\n  - uid: zeta\n    name: Zeta\n  - uid: app_01ARZ3NDEKTSV4RRFFQ69G5FAV\n    name: Id-like\n",
    )
    .unwrap();
    let (status, err) = app.post("/api/v1/hookd/reload", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let detail = err["detail"].as_str().unwrap();
    assert!(detail.contains("applied 1 of 2 changes"), "{detail}");
    assert!(
        detail.contains("create application app_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "{detail}"
    );
}

#[tokio::test]
async fn reload_without_apply_is_a_conflict() {
    let app = TestApp::spawn().await;
    let (status, err) = app.post("/api/v1/hookd/reload", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("--apply"), "{err}");
}

/// The binary: `hookd serve --apply` applies at start and again on SIGHUP.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_applies_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), FIRST);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = hookd::api::generate_token();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("serve")
        .arg("--apply")
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("HOOKD_DATABASE_URL", "")
        .env("HOOKD_DATA_DIR", dir.path().join("data"))
        .env("HOOKD_ADMIN_TOKEN", &token)
        .env("HOOKD_LOG_LEVEL", "warn")
        .env_remove("HOOKD_CONFIG")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let endpoint_url = || async {
        let r = client
            .get(url("/api/v1/app/acme/endpoint/main"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = r.json().await.ok()?;
        body["url"].as_str().map(str::to_owned)
    };
    let mut seen = None;
    for _ in 0..100 {
        seen = endpoint_url().await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("https://hooks.acme.example/in"));

    file(dir.path(), SECOND);
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        seen = endpoint_url().await;
        if seen.as_deref() == Some("https://hooks.acme.example/v2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("https://hooks.acme.example/v2"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not end hookd"
    );
    child.kill().await.unwrap();
}

/// What the server refuses part way (here its `https_only`, which the local configuration
/// does not have): the changes before it stay, the error says where it stopped, and a rerun
/// once the file is fixed converges.
#[tokio::test]
async fn apply_reports_a_refusal_part_way_and_a_rerun_converges() {
    let app = TestApp::builder()
        .with_config(|c| c.https_only = true)
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let text = "\
applications:
  - uid: acme
    name: Acme
    endpoints:
      - uid: plain
        url: http://plain.example/in
";
    let path = file(dir.path(), text);
    let (ok, out, err) = run(&app, &path, &[]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("applied 1 of 2 changes; then `create endpoint acme/plain` was refused"),
        "{err}"
    );
    assert!(err.contains("POST /api/v1/app/acme/endpoint: 422"), "{err}");
    assert!(
        err.contains("body.url: "),
        "the API's reason, by field: {err}"
    );
    assert!(err.contains("run it again"), "{err}");
    let (status, _) = app.get("/api/v1/app/acme").await;
    assert_eq!(status, StatusCode::OK, "the change before stays");

    let path = file(dir.path(), &text.replace("http://", "https://"));
    let (ok, out, err) = run(&app, &path, &[]).await;
    assert!(ok, "{err}");
    assert!(out.contains("create endpoint acme/plain"), "{out}");
    assert!(
        out.contains("1 changes applied; 1 objects already as declared"),
        "{out}"
    );
}

/// A file that does not apply at start stops hookd there, with every error and its line;
/// so does `--apply` without an admin token to apply it with.
#[tokio::test]
async fn serve_refuses_to_start_on_a_file_that_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "applications:\n  - uid: acme\n    name: Acme\n    endpoints:\n      - uid: e\n        url: https://x.example\n        secret: env:HOOKD_TEST_UNSET_SECRET\n      - url: https://y.example\n",
    );
    let mut config = hookd::config::Config::defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = dir.path().join("data");
    config.admin_token = hookd::api::generate_token();
    config.apply_file = Some(path.clone());
    let err = match hookd::app::Server::start(config.clone()).await {
        Ok(_) => panic!("started with an invalid file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("line 7: applications[0].endpoints[0].secret: environment variable HOOKD_TEST_UNSET_SECRET is not set"), "{err}");
    assert!(
        err.contains("line 8: applications[0].endpoints[1].uid: missing"),
        "{err}"
    );

    config.admin_token = String::new();
    let err = match hookd::app::Server::start(config).await {
        Ok(_) => panic!("started without a token to apply with"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("admin_token"), "{err}");
}
