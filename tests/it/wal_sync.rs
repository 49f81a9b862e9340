//! A failed fsync of the SQLite WAL stops hookd (exit status 74) without answering the
//! requests it covered; after a restart, a client retrying with the same `eventId`, as the
//! README says, ends up with exactly one message.
//!
//! The failure is real, not simulated: the test checkpoints the database and replaces its
//! WAL, under the running server, by a link to `/dev/null`. SQLite keeps appending to the
//! file it has open; the sync thread, which opens the WAL by name for each sync, gets the
//! device, whose fsync fails (EINVAL), as a failing disk's would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::free_port;

const TOKEN: &str = "wal-sync-test-token";

/// The hookd process, killed if the test ends (or fails) while it runs.
struct Hookd(Child);

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data_dir: &std::path::Path, port: u16) -> Hookd {
    let child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("serve")
        .env_clear()
        .env("HOOKD_DATA_DIR", data_dir)
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKD_ADMIN_TOKEN", TOKEN)
        .env("HOOKD_LOG_LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start hookd");
    Hookd(child)
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = client.get(format!("{base}/api/v1/health")).send().await;
        if health.is_ok_and(|r| r.status() == StatusCode::NO_CONTENT) {
            return;
        }
        assert!(Instant::now() < deadline, "hookd did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failed_wal_sync_exits_and_a_retry_with_the_event_id_makes_one_message() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut hookd = start(data.path(), port);
    wait_healthy(&client, &base).await;
    let created = client
        .post(format!("{base}/api/v1/app"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Owner", "uid": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let db = data.path().join("hookd.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let wal = data.path().join("hookd.db-wal");
    std::fs::remove_file(&wal).unwrap();
    std::os::unix::fs::symlink("/dev/null", &wal).unwrap();

    let message = json!({"eventType": "invoice.paid", "eventId": "evt-1", "payload": {"n": 1}});
    let send = || {
        client
            .post(format!("{base}/api/v1/app/owner/msg"))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10))
            .json(&message)
            .send()
    };
    let first = send().await;
    assert!(first.is_err(), "answered after a failed sync: {first:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = hookd.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "hookd did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(74), "{status:?}");
    // The operator replaces the failed disk: the WAL is whatever the file system kept (here,
    // none, as its frames went to an unlinked file).
    std::fs::remove_file(&wal).unwrap();

    let _hookd = start(data.path(), port);
    wait_healthy(&client, &base).await;
    let retry = send().await.unwrap();
    assert!(
        matches!(retry.status(), StatusCode::ACCEPTED | StatusCode::CONFLICT),
        "{}",
        retry.status()
    );
    let list: Value = client
        .get(format!("{base}/api/v1/app/owner/msg"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
}
