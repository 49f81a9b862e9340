//! ed25519 endpoint secrets (`whsk_`): deliveries carry `v1a` signatures that a receiver
//! verifies with the public key alone (`publicKey` of `GET …/secret`), checked here with
//! ed25519-dalek directly rather than hookd's own verifier; a rotation mixes `v1` and
//! `v1a`; the other schemes refuse such secrets.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use hookd::signing::at_rest::generate_main_key;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::SECRET;
use crate::helpers::{TestApp, assert_validation_error};
use crate::receiver::{Received, Receiver};

/// The seed bytes 0..32 and its public key, computed with Python's `cryptography`.
const WHSK: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WHPK: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

/// Whether `received` carries a `v1a` signature of `{id}.{timestamp}.{body}` under `whpk`.
fn v1a_verifies(received: &Received, whpk: &str) -> bool {
    let key: [u8; 32] = STANDARD
        .decode(whpk.strip_prefix("whpk_").unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&key).unwrap();
    let content = [
        received.header("webhook-id").as_bytes(),
        b".",
        received.header("webhook-timestamp").as_bytes(),
        b".",
        &received.body,
    ]
    .concat();
    received
        .header("webhook-signature")
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1a,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .filter_map(|bytes| Signature::from_slice(&bytes).ok())
        .any(|signature| key.verify_strict(&content, &signature).is_ok())
}

async fn app_with_endpoint(app: &TestApp, receiver: &Receiver, body: Value) -> (String, String) {
    let created = app.create_app(json!({"name": "ed25519"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let mut body = body;
    body["url"] = json!(receiver.url("/e"));
    let ep = app.create_endpoint(&app_id, body).await;
    (app_id, ep["id"].as_str().unwrap().to_owned())
}

async fn deliver(app: &TestApp, receiver: &Receiver, app_id: &str, n: usize) -> Received {
    app.create_message(
        app_id,
        json!({"eventType": "order.paid", "payload": {"n": n}}),
    )
    .await;
    receiver.wait_for("/e", n).await.remove(n - 1)
}

#[tokio::test]
async fn a_whsk_endpoint_is_signed_v1a_and_verifies_with_its_public_key_alone() {
    // With a main key, so the secret also goes through the sealed store path.
    let key = generate_main_key();
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| c.main_key = key)
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, ep_id) = app_with_endpoint(&app, &receiver, json!({"secret": WHSK})).await;
    let (status, secret) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(secret, json!({"key": WHSK, "publicKey": WHPK}));

    let got = deliver(&app, &receiver, &app_id, 1).await;
    let header = got.header("webhook-signature").to_owned();
    assert!(
        header.starts_with("v1a,") && !header.contains(' '),
        "{header}"
    );
    assert!(v1a_verifies(&got, WHPK));
    let mut tampered = got.clone();
    tampered.body = [&got.body[..], b" "].concat().into();
    assert!(!v1a_verifies(&tampered, WHPK), "a changed body must fail");

    // Rotating back to a whsec_ secret: both signatures during the grace period.
    let (status, rotated) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret/rotate"),
            Some(json!({"key": SECRET, "gracePeriodSeconds": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rotated, json!({"key": SECRET, "publicKey": null}));
    let got = deliver(&app, &receiver, &app_id, 2).await;
    let header = got.header("webhook-signature");
    let versions: Vec<&str> = header
        .split(' ')
        .map(|e| e.split(',').next().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v1a"], "{header}");
    assert!(v1a_verifies(&got, WHPK));
    let secret = hookd::domain::SigningSecret::parse(SECRET).unwrap();
    let (id, ts) = (got.header("webhook-id"), got.header("webhook-timestamp"));
    assert!(hookd::signing::verify(
        &secret,
        id,
        ts.parse().unwrap(),
        &got.body,
        header
    ));
}

#[tokio::test]
async fn whsk_secrets_are_refused_by_the_other_schemes_and_bad_ones_say_which_field() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "ed25519"})).await;
    let app_id = created["id"].as_str().unwrap();
    let endpoints = format!("/api/v1/app/{app_id}/endpoint");
    let (status, body) = app
        .post(
            &endpoints,
            Some(json!({"url": "https://example.com/h", "secret": WHSK, "signature": {"scheme": "stripe"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "secret"]);
    assert!(body.to_string().contains("standard scheme"), "{body}");
    for bad in [
        "whsk_AAAA",
        "whsk_not base64!",
        &format!("whsk_{}", STANDARD.encode([9u8; 64])),
    ] {
        let (status, body) = app
            .post(
                &endpoints,
                Some(json!({"url": "https://example.com/h", "secret": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_validation_error(&body, &["body", "secret"]);
    }

    // A stripe endpoint cannot rotate to a whsk_ key.
    let ep = app
        .create_endpoint(
            app_id,
            json!({"url": "https://example.com/h", "signature": {"scheme": "hmac-sha256"}}),
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("{endpoints}/{ep_id}/secret/rotate"),
            Some(json!({"key": WHSK})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "key"]);
    let (status, body) = app
        .post(
            &format!("{endpoints}/{ep_id}/secret/rotate"),
            Some(json!({"key": "whsk_AA=="})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "key"]);

    // A whsk_ endpoint cannot switch to another scheme.
    let ep = app
        .create_endpoint(
            app_id,
            json!({"url": "https://example.com/h", "secret": WHSK}),
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let (status, body) = app
        .patch(
            &format!("{endpoints}/{ep_id}"),
            Some(json!({"signature": {"scheme": "stripe"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "signature", "scheme"]);
    let (_, secret) = app.get(&format!("{endpoints}/{ep_id}/secret")).await;
    assert_eq!(
        secret["key"],
        json!(WHSK),
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn hookd_verify_checks_v1a_with_the_public_key_or_the_secret_and_says_why_not() {
    use crate::signature_schemes::{saved, verify};

    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, json!({"secret": WHSK})).await;
    let got = deliver(&app, &receiver, &app_id, 1).await;
    let file = saved(&got, b"");

    for key in [WHPK, WHSK] {
        let (ok, text) = verify(&file, &["--secret", key]);
        assert!(ok, "{key}: {text}");
        assert!(text.contains("v1a signature"), "{text}");
    }
    let other = hookd::domain::SigningSecret::generate_ed25519()
        .public_key()
        .unwrap()
        .expose();
    let (ok, text) = verify(&file, &["--secret", &other]);
    assert!(!ok);
    assert!(
        text.contains("no v1a signature in webhook-signature is this request's"),
        "{text}"
    );
    let (ok, text) = verify(&file, &["--secret", SECRET]);
    assert!(!ok);
    assert!(text.contains("has no v1 signature"), "{text}");
    let (ok, text) = verify(&file, &["--scheme", "stripe", "--secret", WHPK]);
    assert!(!ok);
    assert!(text.contains("only the standard scheme"), "{text}");
    let (ok, text) = verify(&file, &["--secret", "whpk_AAAA"]);
    assert!(!ok);
    assert!(text.contains("whpk_"), "{text}");
}
