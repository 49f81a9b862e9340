//! Endpoint signature schemes (`signature` on endpoints): what each sends, checked with an
//! HMAC computed here from the scheme's definition, and what each refuses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::delivery::SECRET;
use crate::helpers::{TestApp, assert_validation_error};
use crate::receiver::{Received, Receiver};

/// HMAC-SHA256 keyed with the secret's whole text, as Stripe's libraries and PHP's
/// `hash_hmac` use it.
fn text_hmac(secret: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An application with an endpoint signed with `signature` at `receiver.url(path)`; returns
/// (app id, endpoint).
async fn endpoint(
    app: &TestApp,
    receiver: &Receiver,
    path: &str,
    signature: Value,
) -> (String, Value) {
    let created = app.create_app(json!({"name": "schemes"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let endpoint = app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url(path), "secret": SECRET, "signature": signature}),
        )
        .await;
    (app_id, endpoint)
}

async fn deliver_one(app: &TestApp, receiver: &Receiver, app_id: &str, path: &str) -> Received {
    app.create_message(
        app_id,
        json!({"eventType": "order.paid", "payload": {"n": 1}}),
    )
    .await;
    receiver.wait_for(path, 1).await.remove(0)
}

#[tokio::test]
async fn stripe_signs_t_and_body_with_one_v1_per_secret() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, ep) = endpoint(
        &app,
        &receiver,
        "/s",
        json!({"scheme": "stripe", "header": "X-Obsrv-Signature"}),
    )
    .await;
    assert_eq!(
        ep["signature"],
        json!({"scheme": "stripe", "header": "x-obsrv-signature"})
    );
    let got = deliver_one(&app, &receiver, &app_id, "/s").await;
    assert!(
        got.headers.contains_key("webhook-id"),
        "the id is always sent"
    );
    assert!(!got.headers.contains_key("webhook-signature"));
    let header = got.header("x-obsrv-signature");
    let (t, v1) = header.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let signed = [t.as_bytes(), b".", &got.body].concat();
    assert_eq!(v1, format!("v1={}", hex(&text_hmac(SECRET, &signed))));

    // After a rotation with a grace period, one v1 per secret, the new one first.
    let ep_id = ep["id"].as_str().unwrap();
    let (status, rotated) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret/rotate"),
            Some(json!({"gracePeriodSeconds": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new = rotated["key"].as_str().unwrap();
    app.create_message(
        &app_id,
        json!({"eventType": "order.paid", "payload": {"n": 2}}),
    )
    .await;
    let got = receiver.wait_for("/s", 2).await.remove(1);
    let header = got.header("x-obsrv-signature");
    let parts: Vec<&str> = header.split(',').collect();
    assert_eq!(parts.len(), 3, "{header}");
    let t = parts[0].strip_prefix("t=").unwrap();
    let signed = [t.as_bytes(), b".", &got.body].concat();
    assert_eq!(parts[1], format!("v1={}", hex(&text_hmac(new, &signed))));
    assert_eq!(parts[2], format!("v1={}", hex(&text_hmac(SECRET, &signed))));
}

#[tokio::test]
async fn hmac_sha256_signs_the_raw_body_laravel_style_and_optionally_a_timestamp() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, ep) = endpoint(&app, &receiver, "/h", json!({"scheme": "hmac-sha256"})).await;
    assert_eq!(
        ep["signature"],
        json!({"scheme": "hmac-sha256", "header": "x-webhook-signature", "prefix": "sha256=", "encoding": "hex"})
    );
    let got = deliver_one(&app, &receiver, &app_id, "/h").await;
    // What the Laravel middleware does: hash_hmac('sha256', $rawBody, $secret).
    assert_eq!(
        got.header("x-webhook-signature"),
        format!("sha256={}", hex(&text_hmac(SECRET, &got.body)))
    );
    assert!(got.headers.contains_key("webhook-id"));

    // GitHub's header, base64 and a timestamp header: "{t}.{body}" is signed.
    let (app_id, _) = endpoint(
        &app,
        &receiver,
        "/g",
        json!({"scheme": "hmac-sha256", "header": "X-Hub-Signature-256", "encoding": "base64",
               "timestampHeader": "X-Webhook-Timestamp", "prefix": ""}),
    )
    .await;
    let got = deliver_one(&app, &receiver, &app_id, "/g").await;
    let t = got.header("x-webhook-timestamp");
    let signed = [t.as_bytes(), b".", &got.body].concat();
    assert_eq!(
        got.header("x-hub-signature-256"),
        STANDARD.encode(text_hmac(SECRET, &signed))
    );
}

#[tokio::test]
async fn the_scheme_is_kept_changed_and_reset_by_put_and_patch() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    app.create_endpoint(
        "a",
        json!({"url": "https://example.com/x", "uid": "ep", "signature": {"scheme": "stripe"}}),
    )
    .await;
    let path = "/api/v1/app/a/endpoint/ep";
    // PUT without the field (what the Svix SDKs send) leaves it.
    let (status, put) = app
        .put(path, Some(json!({"url": "https://example.com/y"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["signature"]["scheme"], "stripe");
    let (_, patched) = app
        .patch(
            path,
            Some(json!({"signature": {"scheme": "hmac-sha256", "prefix": "sha1="}})),
        )
        .await;
    assert_eq!(patched["signature"]["prefix"], "sha1=");
    let (_, read) = app.get(path).await;
    assert_eq!(
        read["signature"], patched["signature"],
        "stored as answered"
    );
    let (_, reset) = app.patch(path, Some(json!({"signature": null}))).await;
    assert_eq!(reset["signature"], json!({"scheme": "standard"}));
}

#[tokio::test]
async fn bad_settings_and_clashing_headers_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "A", "uid": "a"})).await;
    for (signature, loc) in [
        (
            json!({"scheme": "sha1"}),
            vec!["body", "signature", "scheme"],
        ),
        (
            json!({"scheme": "stripe", "prefix": "x="}),
            vec!["body", "signature", "prefix"],
        ),
        (
            json!({"scheme": "hmac-sha256", "header": "Webhook-Id"}),
            vec!["body", "signature", "header"],
        ),
        (
            json!({"scheme": "hmac-sha256", "encoding": "base32"}),
            vec!["body", "signature", "encoding"],
        ),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/app/a/endpoint",
                Some(json!({"url": "https://example.com/x", "signature": signature})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{signature}: {body}"
        );
        assert_validation_error(&body, &loc);
    }
    let (status, _) = app
        .post(
            "/api/v1/app/a/endpoint",
            Some(json!({"url": "https://example.com/x", "signature": {"scheme": "stripe", "tolerance": 1}})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown settings are refused"
    );

    // A custom header may not be the scheme's header, whichever is set first.
    let (status, body) = app
        .post(
            "/api/v1/app/a/endpoint",
            Some(
                json!({"url": "https://example.com/x", "headers": {"X-Webhook-Signature": "v"},
                        "signature": {"scheme": "hmac-sha256"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "headers"]);
    app.create_endpoint(
        "a",
        json!({"url": "https://example.com/x", "uid": "ep", "signature": {"scheme": "stripe", "header": "X-Sig"}}),
    )
    .await;
    let (status, body) = app
        .put(
            "/api/v1/app/a/endpoint/ep/headers",
            Some(json!({"headers": {"x-sig": "v"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = app
        .patch(
            "/api/v1/app/a/endpoint/ep/headers",
            Some(json!({"headers": {"X-Other": "v"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .patch(
            "/api/v1/app/a/endpoint/ep",
            Some(json!({"signature": {"scheme": "stripe", "header": "X-Other"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "signature", "header"]);
    let (_, read) = app.get("/api/v1/app/a/endpoint/ep").await;
    assert_eq!(read["signature"]["header"], "x-sig", "nothing was changed");
}

/// Writes a received request as `hookd verify` reads it: headers, an empty line, the body.
pub fn saved(got: &Received, extra: &[u8]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "POST /hook HTTP/1.1").unwrap();
    for (name, value) in &got.headers {
        writeln!(file, "{name}: {}", value.to_str().unwrap()).unwrap();
    }
    writeln!(file).unwrap();
    file.write_all(&got.body).unwrap();
    file.write_all(extra).unwrap();
    file
}

pub fn verify(file: &tempfile::NamedTempFile, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("verify")
        .args(args)
        .arg(file.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn hookd_verify_checks_a_saved_delivery_and_says_why_not() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = endpoint(
        &app,
        &receiver,
        "/v",
        json!({"scheme": "stripe", "header": "X-Obsrv-Signature"}),
    )
    .await;
    let got = deliver_one(&app, &receiver, &app_id, "/v").await;
    let file = saved(&got, b"");
    let stripe = ["--scheme", "stripe", "--header", "X-Obsrv-Signature"];

    let (ok, text) = verify(&file, &[&stripe[..], &["--secret", SECRET]].concat());
    assert!(ok, "{text}");
    assert!(
        text.starts_with("verified: x-obsrv-signature matches"),
        "{text}"
    );

    let other = hookd::domain::SigningSecret::generate().expose();
    let (ok, text) = verify(&file, &[&stripe[..], &["--secret", &other]].concat());
    assert!(!ok);
    assert!(text.contains("none of the 1 v1 signatures"), "{text}");

    let (ok, text) = verify(&file, &["--secret", SECRET]);
    assert!(!ok, "the standard scheme finds no webhook-signature");
    assert!(text.contains("no webhook-signature header"), "{text}");

    let later = (chrono::Utc::now().timestamp() + 600).to_string();
    let (ok, text) = verify(
        &file,
        &[&stripe[..], &["--secret", SECRET, "--now", &later]].concat(),
    );
    assert!(!ok);
    assert!(text.contains("outside the 300 s tolerance"), "{text}");

    let with_newline = saved(&got, b"\n");
    let (ok, text) = verify(
        &with_newline,
        &[&stripe[..], &["--secret", SECRET]].concat(),
    );
    assert!(!ok);
    assert!(text.contains("without the file's final newline"), "{text}");

    let (ok, text) = verify(
        &file,
        &["--scheme", "stripe", "--prefix", "x", "--secret", SECRET],
    );
    assert!(!ok);
    assert!(text.contains("--prefix: does not apply"), "{text}");
}
