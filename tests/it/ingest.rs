//! Ingest sources: `/ingest/api/v1/source…` (sources, their endpoints and logs), requests
//! posted to a source's `ingestUrl` verified by type (signed here by hand-written signers,
//! independent of hookd's code), forwarded byte for byte or refused with 401 and logged,
//! URL token rotation, and cron sources (runs on schedule, exactly once with several
//! runners, a missed run made once at start).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{
    TestApp, TestAppBuilder, assert_validation_error, eventually, on_both_backends,
};
use crate::receiver::Receiver;

const SOURCES: &str = "/ingest/api/v1/source";

on_both_backends!(
    sources_are_created_read_changed_and_deleted,
    bad_sources_are_refused_naming_the_field,
    signed_requests_are_forwarded_byte_for_byte_and_bad_ones_refused,
    rotated_tokens_keep_working_for_a_while,
    cron_sources_post_on_schedule,
    a_cron_run_missed_while_down_runs_once_at_start,
    a_monitor_watches_a_source,
);

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn source(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post(SOURCES, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Adds an endpoint on `receiver`'s `path` to the source.
async fn forward_to(app: &TestApp, source: &Value, receiver: &Receiver, path: &str) -> Value {
    let id = source["id"].as_str().unwrap();
    let (status, endpoint) = app
        .post(
            &format!("{SOURCES}/{id}/endpoint"),
            Some(json!({"url": receiver.url(path)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    endpoint
}

/// Posts `body` with `headers` to the source's ingest URL.
async fn post_to(
    app: &TestApp,
    source: &Value,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, Value) {
    let url = source["ingestUrl"].as_str().expect("an ingestUrl");
    let mut request = app.client.post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn logs(app: &TestApp, source: &Value) -> Vec<Value> {
    let id = source["id"].as_str().unwrap();
    app.list_all(&format!("{SOURCES}/{id}/log")).await
}

async fn sources_are_created_read_changed_and_deleted(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    let created = source(
        &app,
        json!({"name": "Stripe payments", "uid": "stripe-payments", "type": "stripe",
               "config": {"secret": "whsec_test_secret"}, "metadata": {"team": "billing"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("src_"), "{created}");
    assert_eq!(created["type"], "stripe");
    // The secret is never shown back.
    assert_eq!(created["config"], json!({}));
    assert!(!created.to_string().contains("whsec_test_secret"));
    let url = created["ingestUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/ingest/in/", app.base_url())),
        "{url}"
    );

    for key in [id.as_str(), "stripe-payments"] {
        let (status, got) = app.get(&format!("{SOURCES}/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["id"], id.as_str());
        assert_eq!(got["metadata"], json!({"team": "billing"}));
    }
    let listed = app.list_all(SOURCES).await;
    assert_eq!(listed.len(), 1);
    // The source's internal application is not an application anyone sees.
    assert!(app.list_all("/api/v1/app").await.is_empty());

    let (status, patched) = app
        .patch(
            &format!("{SOURCES}/{id}"),
            Some(json!({"name": "Payments"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Payments");
    assert_eq!(patched["uid"], "stripe-payments");

    // Becoming a cron source: no URL any more.
    let (status, cron) = app
        .put(
            &format!("{SOURCES}/{id}"),
            Some(json!({"name": "Nightly crawl", "type": "cron",
                        "config": {"schedule": "0 2 * * *", "payload": "{\"job\":\"crawl\"}"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cron}");
    assert_eq!(cron["ingestUrl"], Value::Null);
    assert_eq!(
        cron["config"],
        json!({"schedule": "0 2 * * *", "payload": "{\"job\":\"crawl\"}"})
    );
    // PUT on an unknown uid creates.
    let (status, put) = app
        .put(
            &format!("{SOURCES}/github-repo"),
            Some(json!({"name": "Repository", "type": "github", "config": {"secret": "s3cret"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{put}");
    assert_eq!(put["uid"], "github-repo");

    // Endpoints of the source.
    let receiver = Receiver::start().await;
    let endpoint = forward_to(&app, &put, &receiver, "/gh").await;
    let ep = endpoint["id"].as_str().unwrap();
    let base = format!("{SOURCES}/github-repo/endpoint");
    assert_eq!(app.list_all(&base).await.len(), 1);
    let (status, secret) = app.get(&format!("{base}/{ep}/secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(secret["key"].as_str().unwrap().starts_with("whsec_"));
    let (status, _) = app
        .put(
            &format!("{base}/{ep}/headers"),
            Some(json!({"headers": {"X-Team": "platform"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, headers) = app.get(&format!("{base}/{ep}/headers")).await;
    assert_eq!(headers["headers"], json!({"X-Team": "platform"}));
    let (status, _) = app
        .post(&format!("{base}/{ep}/secret/rotate"), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, updated) = app
        .put(
            &format!("{base}/{ep}"),
            Some(json!({"url": receiver.url("/gh2"), "description": "moved"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["description"], "moved");
    // Another source's endpoint is not found through this one.
    let (status, _) = app.get(&format!("{SOURCES}/{id}/endpoint/{ep}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = app.delete(&format!("{SOURCES}/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{SOURCES}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&format!("{base}/{ep}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.list_all(SOURCES).await.len(), 1);
}

async fn bad_sources_are_refused_naming_the_field(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    for (body, loc) in [
        (json!({"name": "x1", "type": "nonsense"}), "type"),
        (
            json!({"name": "x1", "type": "zoom", "config": {"secret": "s"}}),
            "type",
        ),
        (
            json!({"name": "x1", "type": "stripe", "config": {}}),
            "config.secret",
        ),
        (json!({"name": "x1", "type": "stripe"}), "config.secret"),
        (
            json!({"name": "x1", "type": "svix", "config": {"secret": "not-a-whsec"}}),
            "config.secret",
        ),
        (
            json!({"name": "x1", "type": "stripe", "config": {"secret": "s", "extra": 1}}),
            "config.extra",
        ),
        (
            json!({"name": "x1", "type": "cron", "config": {"schedule": "every day", "payload": "{}"}}),
            "config.schedule",
        ),
        (
            json!({"name": "x1", "type": "cron", "config": {"schedule": "0 2 * * *", "payload": "[1]"}}),
            "config.payload",
        ),
        (
            json!({"name": "x1", "type": "cron", "config": {"schedule": "0 2 * * *", "payload": "{}", "contentType": "text/plain"}}),
            "config.contentType",
        ),
        (
            json!({"name": "x1", "type": "hookd-hmac", "config": {"secret": "s"}}),
            "config.header",
        ),
        (
            json!({"name": "x1", "type": "hookd-hmac", "config": {"secret": "s", "header": "X-Sig", "toleranceSeconds": 60}}),
            "config.toleranceSeconds",
        ),
        (
            json!({"name": "x1", "type": "generic-webhook", "uid": "src_01JEXAMPXE0000000000000000"}),
            "uid",
        ),
        (
            json!({"name": "x1", "type": "generic-webhook", "uid": "has.dot"}),
            "uid",
        ),
        (json!({"name": "x", "type": "generic-webhook"}), "name"),
    ] {
        let (status, error) = app.post(SOURCES, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_validation_error(&error, &["body", loc]);
    }
    let (status, error) = app
        .post(
            SOURCES,
            Some(json!({"name": "x1", "type": "generic-webhook", "color": "red"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error.to_string().contains("color"), "{error}");
    // Nothing was stored, and no internal application is left behind.
    assert!(app.list_all(SOURCES).await.is_empty());
    source(
        &app,
        json!({"name": "taken", "uid": "dup", "type": "generic-webhook"}),
    )
    .await;
    let (status, _) = app
        .post(
            SOURCES,
            Some(json!({"name": "again", "uid": "dup", "type": "generic-webhook"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.list_all(SOURCES).await.len(), 1);
}

/// The headers a signer adds to a body.
type Signer = Box<dyn Fn(&str) -> Vec<(&'static str, String)>>;

/// One source type: how to sign a body well, and how to sign it wrong.
struct Case {
    source: Value,
    sign: Signer,
    forge: Signer,
}

fn cases() -> Vec<Case> {
    let standard_key = [7u8; 24];
    let standard_secret = format!("whsec_{}", STANDARD.encode(standard_key));
    let standard = move |key: [u8; 24], ts: i64| {
        move |body: &str| {
            let id = "msg_inbound_1";
            let sig = STANDARD.encode(mac(
                &key,
                &[format!("{id}.{ts}.").as_bytes(), body.as_bytes()],
            ));
            vec![
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", format!("v1,{sig}")),
            ]
        }
    };
    let stripe = |secret: &'static str, ts: i64| {
        move |body: &str| {
            let sig = hex::encode(mac(
                secret.as_bytes(),
                &[format!("{ts}.").as_bytes(), body.as_bytes()],
            ));
            vec![("stripe-signature", format!("t={ts},v1={sig}"))]
        }
    };
    let github = |secret: &'static str| {
        move |body: &str| {
            vec![
                (
                    "x-hub-signature-256",
                    format!(
                        "sha256={}",
                        hex::encode(mac(secret.as_bytes(), &[body.as_bytes()]))
                    ),
                ),
                ("x-github-event", "push".to_owned()),
            ]
        }
    };
    let shopify = |secret: &'static str| {
        move |body: &str| {
            vec![
                (
                    "x-shopify-hmac-sha256",
                    STANDARD.encode(mac(secret.as_bytes(), &[body.as_bytes()])),
                ),
                ("x-shopify-topic", "orders/create".to_owned()),
            ]
        }
    };
    let slack = |secret: &'static str, ts: i64| {
        move |body: &str| {
            let sig = hex::encode(mac(
                secret.as_bytes(),
                &[format!("v0:{ts}:").as_bytes(), body.as_bytes()],
            ));
            vec![
                ("x-slack-request-timestamp", ts.to_string()),
                ("x-slack-signature", format!("v0={sig}")),
            ]
        }
    };
    let hmac_ts = |secret: &'static str, ts: i64| {
        move |body: &str| {
            let sig = STANDARD.encode(mac(
                secret.as_bytes(),
                &[format!("{ts}.").as_bytes(), body.as_bytes()],
            ));
            vec![
                ("x-sig", format!("sha256={sig}")),
                ("x-time", ts.to_string()),
            ]
        }
    };
    let now = unix_now();
    vec![
        Case {
            source: json!({"type": "svix", "config": {"secret": standard_secret}}),
            sign: Box::new(standard(standard_key, now)),
            forge: Box::new(standard([8u8; 24], now)),
        },
        Case {
            source: json!({"type": "clerk", "config": {"secret": standard_secret}}),
            sign: Box::new(standard(standard_key, now)),
            // A replay from an hour ago, correctly signed.
            forge: Box::new(standard(standard_key, now - 3600)),
        },
        Case {
            source: json!({"type": "stripe", "config": {"secret": "whsec_stripe_abc"}}),
            sign: Box::new(stripe("whsec_stripe_abc", now)),
            forge: Box::new(stripe("whsec_stripe_abc", now - 600)),
        },
        Case {
            source: json!({"type": "github", "config": {"secret": "gh-secret"}}),
            sign: Box::new(github("gh-secret")),
            forge: Box::new(github("other-secret")),
        },
        Case {
            source: json!({"type": "shopify", "config": {"secret": "shpss_123"}}),
            sign: Box::new(shopify("shpss_123")),
            forge: Box::new(shopify("shpss_456")),
        },
        Case {
            source: json!({"type": "slack", "config": {"secret": "slack-signing"}}),
            sign: Box::new(slack("slack-signing", now)),
            forge: Box::new(slack("slack-signing", now - 400)),
        },
        Case {
            source: json!({"type": "hookd-hmac", "config": {"secret": "k", "header": "X-Sig",
                "prefix": "sha256=", "encoding": "base64", "timestampHeader": "X-Time",
                "toleranceSeconds": 60}}),
            sign: Box::new(hmac_ts("k", now)),
            forge: Box::new(hmac_ts("k", now - 120)),
        },
        Case {
            source: json!({"type": "hookd-basic", "config": {"username": "u", "password": "p"}}),
            sign: Box::new(|_: &str| {
                vec![("authorization", format!("Basic {}", STANDARD.encode("u:p")))]
            }),
            forge: Box::new(|_: &str| {
                vec![("authorization", format!("Basic {}", STANDARD.encode("u:q")))]
            }),
        },
        Case {
            source: json!({"type": "hookd-bearer", "config": {"token": "tkn"}}),
            sign: Box::new(|_: &str| vec![("authorization", "Bearer tkn".to_owned())]),
            forge: Box::new(|_: &str| vec![]),
        },
    ]
}

async fn signed_requests_are_forwarded_byte_for_byte_and_bad_ones_refused(builder: TestAppBuilder) {
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    // Whitespace and key order kept: the receiver gets the very bytes.
    let body = "{ \"type\": \"order.paid\",  \"id\": 42, \"z\": [1, 2] }\n";
    for (i, case) in cases().into_iter().enumerate() {
        let mut spec = case.source.clone();
        spec["name"] = json!(format!("source {i}"));
        let created = source(&app, spec).await;
        let path = format!("/in{i}");
        forward_to(&app, &created, &receiver, &path).await;
        let what = created["type"].to_string();

        let (status, answer) = post_to(&app, &created, &(case.forge)(body), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        let (status, answer) = post_to(&app, &created, &(case.sign)(body), body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {answer}");
        let msg_id = answer["msgId"].as_str().unwrap().to_owned();

        let got = receiver.wait_for(&path, 1).await;
        assert_eq!(got[0].body.as_ref(), body.as_bytes(), "{what}");
        assert_eq!(got[0].header("webhook-id"), msg_id, "{what}");
        assert!(got[0].header("webhook-signature").starts_with("v1,"));

        // What was forwarded is a message of the source's application, attempts and all.
        let app_id = created["appId"].as_str().unwrap();
        let attempts = format!("/api/v1/app/{app_id}/attempt/msg/{msg_id}");
        let listed = crate::helpers::eventually("the attempt to be recorded", || async {
            let listed = app.list_all(&attempts).await;
            (!listed.is_empty()).then_some(listed)
        })
        .await;
        assert_eq!(listed[0]["responseStatusCode"], 200, "{what}");
        // By its id only: the uid is hookd's, and no list shows the application.
        let (status, _) = app
            .get(&format!(
                "/api/v1/app/hookd-ingest-{}",
                created["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let entries = logs(&app, &created).await;
        assert_eq!(entries.len(), 2, "{what}: {entries:?}");
        // Newest first.
        assert_eq!(entries[0]["status_code"], 200);
        assert_eq!(entries[0]["msg_id"], msg_id.as_str());
        assert_eq!(entries[0]["payload"], body);
        assert_eq!(entries[1]["status_code"], 401);
        assert!(
            entries[1]["error_text"]
                .as_str()
                .unwrap()
                .starts_with("not verified"),
            "{what}: {}",
            entries[1]
        );
        assert_eq!(entries[1]["msg_id"], Value::Null);
        if let Some(auth) = entries[1]["headers"].get("authorization") {
            assert_eq!(auth, "[redacted]");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..cases().len() {
        assert_eq!(receiver.requests(&format!("/in{i}")).len(), 1, "source {i}");
    }

    // A generic source takes anything that is a JSON object.
    let generic = source(&app, json!({"name": "any", "type": "generic-webhook"})).await;
    forward_to(&app, &generic, &receiver, "/generic").await;
    let (status, _) = post_to(&app, &generic, &[], "{\"a\":1}").await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = post_to(&app, &generic, &[], "a=1&b=2").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    let (status, _) = post_to(&app, &generic, &[], "[1,2]").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(app.config().max_payload_bytes)
    );
    let (status, _) = post_to(&app, &generic, &[], &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let statuses: Vec<Value> = logs(&app, &generic)
        .await
        .iter()
        .map(|e| e["status_code"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![json!(413), json!(422), json!(415), json!(200)]
    );
    assert_eq!(receiver.wait_for("/generic", 1).await.len(), 1);

    // Slack's URL check is answered, not forwarded.
    let slack = source(
        &app,
        json!({"name": "slack", "type": "slack", "config": {"secret": "sl"}}),
    )
    .await;
    let challenge = "{\"type\":\"url_verification\",\"challenge\":\"abc123\"}";
    let ts = unix_now();
    let sig = hex::encode(mac(
        b"sl",
        &[format!("v0:{ts}:").as_bytes(), challenge.as_bytes()],
    ));
    let (status, answer) = post_to(
        &app,
        &slack,
        &[
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", format!("v0={sig}")),
        ],
        challenge,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"challenge": "abc123"}));

    // A URL no source has.
    let (status, _) = send_raw(&app, "/ingest/in/nothing-here", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn send_raw(app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}{path}", app.base_url()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn rotated_tokens_keep_working_for_a_while(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    let created = source(&app, json!({"name": "gen", "type": "generic-webhook"})).await;
    let id = created["id"].as_str().unwrap();
    let mut urls = vec![created["ingestUrl"].as_str().unwrap().to_owned()];
    for _ in 0..3 {
        let (status, rotated) = app
            .post(&format!("{SOURCES}/{id}/token/rotate"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        urls.push(rotated["ingestUrl"].as_str().unwrap().to_owned());
    }
    // The fourth within 48 hours is refused.
    let (status, refused) = app
        .post(&format!("{SOURCES}/{id}/token/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (_, current) = app.get(&format!("{SOURCES}/{id}")).await;
    assert_eq!(current["ingestUrl"], urls[3].as_str());
    for url in &urls {
        let status = app
            .client
            .post(url)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{url}");
    }
    assert_eq!(logs(&app, &created).await.len(), 4);
}

async fn cron_sources_post_on_schedule(builder: TestAppBuilder) {
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let payload = "{\"job\": \"crawl\",  \"site\": \"shop\"}";
    let created = source(
        &app,
        json!({"name": "every second", "type": "cron",
               "config": {"schedule": "* * * * * *", "payload": payload,
                          "contentType": "application/json"}}),
    )
    .await;
    forward_to(&app, &created, &receiver, "/cron").await;
    let started = std::time::Instant::now();
    let got = receiver.wait_for("/cron", 2).await;
    assert_eq!(got[0].body.as_ref(), payload.as_bytes());
    // More runners (other nodes) at once: still one run per scheduled second.
    let store = hookd::app::open_store(app.config()).await.unwrap();
    let mut runners = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        runners.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                hookd::ingest::run_due(&*store, None).await.unwrap();
                tokio::time::sleep(Duration::from_millis(7)).await;
            }
        }));
    }
    for r in runners {
        r.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // On a loaded machine a run's delivery can lag its second: wait for the fourth, then
    // count against the time it took.
    receiver.wait_for("/cron", 4).await;
    let elapsed = started.elapsed().as_secs_f64();
    let runs = receiver.requests("/cron");
    let ids: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), runs.len(), "a message delivered twice");
    assert!(
        (runs.len() as f64) <= elapsed + 2.0,
        "{} runs in {elapsed:.1} s",
        runs.len()
    );
    assert!(runs.len() >= 4, "{} runs in {elapsed:.1} s", runs.len());
}

async fn a_cron_run_missed_while_down_runs_once_at_start(builder: TestAppBuilder) {
    let mut app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let created = source(
        &app,
        json!({"name": "yearly", "type": "cron",
               "config": {"schedule": "0 0 1 1 *", "payload": "{\"run\":true}"}}),
    )
    .await;
    forward_to(&app, &created, &receiver, "/missed").await;
    app.stop_keeping_data().await;
    {
        // While hookd was down, three runs were due (the last three days at midnight).
        let store = hookd::app::open_store(app.config()).await.unwrap();
        let key = hookd::domain::ResourceKey::Id(hookd::domain::SourceId::from_stored(
            created["id"].as_str().unwrap().to_owned(),
        ));
        let mut s = store.get_source(&key).await.unwrap().unwrap();
        s.next_run_at = Some(chrono::Utc::now() - chrono::TimeDelta::days(3));
        store.update_source(&s).await.unwrap();
    }
    app.restart().await;
    let got = receiver.wait_for("/missed", 1).await;
    assert_eq!(got[0].body.as_ref(), b"{\"run\":true}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.requests("/missed").len(), 1);
    let (_, after) = app
        .get(&format!("{SOURCES}/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(after["type"], "cron");
}

async fn a_monitor_watches_a_source(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    let created = source(
        &app,
        json!({"name": "scraper runs", "uid": "scraper", "type": "hookd-bearer",
               "config": {"token": "run-token"}}),
    )
    .await;
    let (status, monitor) = app
        .post(
            "/api/v1/monitor",
            Some(json!({"name": "scraper silent", "source": "scraper", "maxSilence": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{monitor}");
    assert_eq!(monitor["source"], created["id"]);
    assert_eq!(monitor["app"], Value::Null);
    let path = format!("/api/v1/monitor/{}", monitor["id"].as_str().unwrap());
    eventually("the monitor goes stale", || async {
        let (_, m) = app.get(&path).await;
        (m["state"] == "stale").then_some(())
    })
    .await;
    // A refused request is not a run.
    let (status, _) = post_to(&app, &created, &[], "{\"done\":true}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.get(&path).await.1["state"], "stale");
    let (status, _) = post_to(
        &app,
        &created,
        &[("authorization", "Bearer run-token".to_owned())],
        "{\"done\":true}",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually("the monitor recovers", || async {
        let (_, m) = app.get(&path).await;
        (m["state"] == "ok").then_some(())
    })
    .await;
    for body in [
        json!({"name": "m", "maxSilence": 60}),
        json!({"name": "m", "app": "x", "source": "scraper", "maxSilence": 60}),
    ] {
        let (status, error) = app.post("/api/v1/monitor", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    }
    let (status, _) = app
        .post(
            "/api/v1/monitor",
            Some(json!({"name": "m", "source": "no-such-source", "maxSilence": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
