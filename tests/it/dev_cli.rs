//! `hookd send`, `hookd listen` and `hookd tail`, run as the binary against a running hookd.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::helpers::{TestApp, eventually, free_port};
use crate::receiver::Receiver;

fn hookd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookd"));
    command
        .env_remove("HOOKD_CONFIG")
        .env_remove("HOOKD_URL")
        .env_remove("HOOKD_TOKEN")
        .env("HOOKD_LOG_LEVEL", "warn")
        .kill_on_drop(true);
    command
}

/// A running command and its output, line by line.
struct Running {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            _child: child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `text`; panics after 20 s, showing what came.
    async fn until(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no line with {text:?} in:\n{}", self.seen.join("\n")))
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("output ended before {text:?}:\n{}", self.seen.join("\n"))
                });
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }
}

#[tokio::test]
async fn hookd_send_sends_a_message() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let out = hookd()
        .args(["send", "--app", "shop", "--event-type", "order.created"])
        .args(["--data", r#"{"order": 7}"#, "--event-id", "order-7"])
        .args(["--url", &app.base_url(), "--token", &app.token])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let id = printed.split_whitespace().next().unwrap();
    let (status, msg) = app.get(&format!("/api/v1/app/shop/msg/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{printed}");
    assert_eq!(msg["payload"], json!({"order": 7}));
    assert_eq!(msg["eventId"], "order-7");
    // Bad input says what is wrong and sends nothing.
    for (args, says) in [
        (vec!["--data", "[1]"], "JSON object"),
        (vec!["--data", "{nope"], "not JSON"),
    ] {
        let out = hookd()
            .args(["send", "--app", "shop", "--event-type", "x"])
            .args(args)
            .env("HOOKD_URL", app.base_url())
            .env("HOOKD_TOKEN", &app.token)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
    let out = hookd()
        .args([
            "send",
            "--app",
            "nowhere",
            "--event-type",
            "x",
            "--data",
            "{}",
        ])
        .args(["--url", &app.base_url(), "--token", &app.token])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[tokio::test]
async fn hookd_listen_prints_deliveries_and_checks_their_signatures() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let port = free_port();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut listen = Running::start({
        let mut c = hookd();
        c.args(["listen", "--port", &port.to_string(), "--secret", secret]);
        c
    });
    listen.until("listening on").await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    app.create_endpoint(
        "shop",
        json!({"url": format!("http://127.0.0.1:{port}/hook"), "secret": secret}),
    )
    .await;
    app.create_message(
        "shop",
        json!({"eventType": "order.created", "payload": {"order": 7}}),
    )
    .await;
    listen.until("── POST /hook").await;
    listen.until("\"order\": 7").await;
    let verdict = listen.until("signature:").await;
    assert!(verdict.contains("signature: verified"), "{verdict}");
    // A request signed with another secret is printed, and said not to verify.
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/other"))
        .header("webhook-id", "msg_x")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,AAAA")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    listen.until("── POST /other").await;
    listen.until("not json").await;
    let verdict = listen.until("signature:").await;
    assert!(verdict.contains("NOT verified"), "{verdict}");
}

#[tokio::test]
async fn hookd_tail_follows_messages_and_attempts() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    let endpoint = app
        .create_endpoint("shop", json!({"url": receiver.url("/hook")}))
        .await;
    // A message from before the tail starts is not shown.
    let old = app
        .create_message("shop", json!({"eventType": "order.old", "payload": {}}))
        .await;
    eventually("the old message delivered", || async {
        (!receiver.requests("/hook").is_empty()).then_some(())
    })
    .await;
    let mut tail = Running::start({
        let mut c = hookd();
        c.args(["tail", "--app", "shop", "--interval-ms", "100"])
            .env("HOOKD_URL", app.base_url())
            .env("HOOKD_TOKEN", &app.token);
        c
    });
    tail.until("following shop").await;
    let msg = app
        .create_message(
            "shop",
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    let id = msg["id"].as_str().unwrap();
    let line = tail.until(id).await;
    assert!(line.contains("order.created"), "{line}");
    let attempt = tail.until("delivered").await;
    assert!(
        attempt.contains(id)
            && attempt.contains(endpoint["id"].as_str().unwrap())
            && attempt.contains("200"),
        "{attempt}"
    );
    assert!(
        !tail
            .seen
            .iter()
            .any(|l| l.contains(old["id"].as_str().unwrap())),
        "{:?}",
        tail.seen
    );
}

#[tokio::test]
async fn hookd_replay_sends_an_endpoints_messages_again_and_waits_for_the_task() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    app.create_app(json!({"name": "shop", "uid": "shop"})).await;
    app.create_endpoint("shop", json!({"url": receiver.url("/r"), "uid": "ep"}))
        .await;
    let mut sent = Vec::new();
    for n in 0..3 {
        let message = app
            .create_message("shop", json!({"eventType": "a", "payload": {"n": n}}))
            .await;
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    receiver.wait_for("/r", 3).await;
    // The replay sends again what was delivered: wait until each attempt is recorded (the
    // receiver sees a request before its outcome is written).
    for msg_id in &sent {
        crate::delivery::delivery_state(&app, "shop", msg_id, "success").await;
    }
    let replay = |extra: &[&str]| {
        let mut command = hookd();
        command
            .args([
                "replay",
                "--app",
                "shop",
                "--endpoint",
                "ep",
                "--since",
                "1h",
            ])
            .args(extra)
            .args(["--url", &app.base_url(), "--token", &app.token]);
        command
    };
    let out = replay(&[]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("finished: 3 messages sent again (bulk-replay)"),
        "{printed}"
    );
    receiver.wait_for("/r", 6).await;
    // Nothing is missing and nothing failed: both find nothing to send.
    for (flag, route) in [("--missing", "replay-missing"), ("--failed", "recover")] {
        let out = replay(&[flag]).output().await.unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains(&format!("finished: 0 messages sent again ({route})")),
            "{printed} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = hookd()
        .args([
            "replay",
            "--app",
            "shop",
            "--endpoint",
            "ep",
            "--since",
            "yesterday",
        ])
        .args(["--url", &app.base_url(), "--token", &app.token])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}
