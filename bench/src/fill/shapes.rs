//! What the scenarios fill a store with, in chunks: delivered history (messages, each with
//! its succeeded delivery and its attempt), a backlog (messages whose one delivery is
//! pending and due), tenants (applications, each with endpoints).

use std::time::Instant;

use super::{Ids, Rows, StoreAt, Templates, payload, write};

/// Messages per write: one SQLite transaction, or one COPY per table.
const CHUNK: u64 = 50_000;

/// An endpoint filled rows refer to.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub url: String,
    /// The event type of the messages it gets (it subscribes to it, or to everything).
    pub event_type: String,
}

/// `count` messages of one application created evenly from `from` to `to` (µs since the
/// epoch); message `i` goes to `endpoints[i % len]`.
pub struct Messages<'a> {
    pub app_id: &'a str,
    pub endpoints: &'a [Target],
    pub count: u64,
    pub from_micros: i64,
    pub to_micros: i64,
    /// Bytes of padding in each payload, as the driver's `--pad`.
    pub pad: usize,
}

/// Ids of filled rows that listings can start from.
#[derive(Debug, Clone, Default)]
pub struct Landmarks {
    /// The message in the middle of the fill, and its attempt (delivered history only).
    pub middle_msg: String,
    pub middle_attempt: Option<String>,
}

/// Delivered history: per message its delivery (as hookd left the template's: succeeded)
/// and one attempt a few milliseconds later.
pub fn history(store: &StoreAt, t: &Templates, m: &Messages<'_>) -> anyhow::Result<Landmarks> {
    let status = t.delivery.values[t.delivery.index_of("status")?].as_deref();
    anyhow::ensure!(
        status == Some("0"),
        "the template delivery is not a succeeded one (status {status:?})"
    );
    fill_messages(store, t, m, true)
}

/// A backlog: per message one delivery, pending and due since the message was created, as
/// hookd writes a delivery it could not claim at once; no attempt yet.
pub fn backlog(store: &StoreAt, t: &Templates, m: &Messages<'_>) -> anyhow::Result<Landmarks> {
    fill_messages(store, t, m, false)
}

fn fill_messages(
    store: &StoreAt,
    t: &Templates,
    m: &Messages<'_>,
    delivered: bool,
) -> anyhow::Result<Landmarks> {
    anyhow::ensure!(!m.endpoints.is_empty(), "no endpoint to fill messages for");
    let mut ids = Ids::new();
    let pad = "x".repeat(m.pad);
    let step = (m.to_micros - m.from_micros) / i64::try_from(m.count.max(1)).unwrap_or(1);
    let mut landmarks = Landmarks::default();
    let started = Instant::now();
    let mut next_report = m.count / 10;
    let mut start = 0;
    while start < m.count {
        let end = (start + CHUNK).min(m.count);
        let mut messages = Vec::new();
        let mut deliveries = Vec::new();
        let mut attempts = Vec::new();
        for i in start..end {
            let created = m.from_micros + step * i64::try_from(i).unwrap_or(0);
            let target = &m.endpoints[(i % m.endpoints.len() as u64) as usize];
            let msg_id = ids.next("msg_", created);
            let at = created.to_string();
            messages.push(vec![
                Some(msg_id.clone()),
                Some(m.app_id.to_owned()),
                Some(target.event_type.clone()),
                None,
                Some(payload(i, created, &pad)),
                Some(at.clone()),
            ]);
            if delivered {
                let attempted = created + 30_000;
                let attempt_id = ids.next("atmpt_", attempted);
                if i == m.count / 2 {
                    landmarks.middle_attempt = Some(attempt_id.clone());
                }
                deliveries.push(vec![
                    Some(msg_id.clone()),
                    Some(target.id.clone()),
                    Some(m.app_id.to_owned()),
                    Some(at.clone()),
                    Some(attempted.to_string()),
                ]);
                attempts.push(vec![
                    Some(attempt_id),
                    Some(msg_id.clone()),
                    Some(target.id.clone()),
                    Some(m.app_id.to_owned()),
                    Some(target.url.clone()),
                    Some(attempted.to_string()),
                ]);
            } else {
                deliveries.push(vec![
                    Some(msg_id.clone()),
                    Some(target.id.clone()),
                    Some(m.app_id.to_owned()),
                    Some("1".into()),
                    Some("0".into()),
                    Some(at.clone()),
                    None,
                    Some("0".into()),
                    Some(at.clone()),
                    Some(at),
                ]);
            }
            if i == m.count / 2 {
                landmarks.middle_msg = msg_id;
            }
        }
        let mut tables = vec![
            Rows {
                template: &t.message,
                set: vec![
                    "id",
                    "app_id",
                    "event_type",
                    "event_id",
                    "payload",
                    "created_at",
                ],
                rows: messages,
            },
            Rows {
                template: &t.delivery,
                set: if delivered {
                    vec![
                        "msg_id",
                        "endpoint_id",
                        "app_id",
                        "created_at",
                        "updated_at",
                    ]
                } else {
                    vec![
                        "msg_id",
                        "endpoint_id",
                        "app_id",
                        "status",
                        "attempts",
                        "next_attempt_at",
                        "lease_until",
                        "trigger_type",
                        "created_at",
                        "updated_at",
                    ]
                },
                rows: deliveries,
            },
        ];
        if delivered {
            tables.push(Rows {
                template: &t.attempt,
                set: vec!["id", "msg_id", "endpoint_id", "app_id", "url", "created_at"],
                rows: attempts,
            });
        }
        write(store, &tables)?;
        start = end;
        if start >= next_report || start == m.count {
            eprintln!(
                "  filled {start} of {} messages ({:.0} s)",
                m.count,
                started.elapsed().as_secs_f64()
            );
            next_report = start + m.count / 10;
        }
    }
    Ok(landmarks)
}

/// Applications `uid_of(a)` for `a` in `apps`, each with one endpoint per URL of
/// `urls`; returns their uids.
pub fn tenants(
    store: &StoreAt,
    t: &Templates,
    apps: std::ops::Range<usize>,
    uid_of: impl Fn(usize) -> String,
    urls: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut ids = Ids::new();
    let now = crate::now_micros() as i64;
    let at = now.to_string();
    let mut uids = Vec::new();
    let chunk = (CHUNK as usize / urls.len().max(1)).max(1);
    let all: Vec<usize> = apps.collect();
    for group in all.chunks(chunk) {
        let mut applications = Vec::new();
        let mut endpoints = Vec::new();
        for &a in group {
            let app_id = ids.next("app_", now);
            let uid = uid_of(a);
            applications.push(vec![
                Some(app_id.clone()),
                Some(uid.clone()),
                Some(uid.clone()),
                Some(at.clone()),
                Some(at.clone()),
            ]);
            for url in urls {
                endpoints.push(vec![
                    Some(ids.next("ep_", now)),
                    Some(app_id.clone()),
                    None,
                    Some(url.clone()),
                    Some(at.clone()),
                    Some(at.clone()),
                ]);
            }
            uids.push(uid);
        }
        write(
            store,
            &[
                Rows {
                    template: &t.application,
                    set: vec!["id", "uid", "name", "created_at", "updated_at"],
                    rows: applications,
                },
                Rows {
                    template: &t.endpoint,
                    set: vec!["id", "app_id", "uid", "url", "created_at", "updated_at"],
                    rows: endpoints,
                },
            ],
        )?;
    }
    Ok(uids)
}
