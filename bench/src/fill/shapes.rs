//! What the scenarios fill a store with, in chunks: delivered history (messages, each with
//! its succeeded delivery and its attempt), a backlog (messages whose one delivery is
//! pending and due), tenants (applications, each with endpoints).

use std::time::Instant;

use super::{Ids, Rows, StoreAt, Templates, Writer, payload};

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

type Row = Vec<Option<String>>;

/// The columns each kind of row sets; the rest keep the template's values.
const MESSAGE: &[&str] = &[
    "id",
    "app_id",
    "event_type",
    "event_id",
    "payload",
    "created_at",
];
const DELIVERED: &[&str] = &[
    "msg_id",
    "endpoint_id",
    "app_id",
    "created_at",
    "updated_at",
];
/// As `INSERT_DELIVERY` in hookd's SQLite enqueue writes a delivery it does not claim.
const PENDING: &[&str] = &[
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
];
const ATTEMPT: &[&str] = &["id", "msg_id", "endpoint_id", "app_id", "url", "created_at"];
/// An attempt is recorded this long after its message was created (µs).
const ATTEMPT_AFTER: i64 = 30_000;

/// The rows of one chunk of messages, table by table.
#[derive(Default)]
struct Chunk {
    messages: Vec<Row>,
    deliveries: Vec<Row>,
    attempts: Vec<Row>,
}

impl Chunk {
    /// Message `i`'s rows; returns its id and its attempt's, if it has one.
    fn push(
        &mut self,
        m: &Messages<'_>,
        ids: &mut Ids,
        i: u64,
        pad: &str,
        delivered: bool,
    ) -> (String, Option<String>) {
        let step = (m.to_micros - m.from_micros) / i64::try_from(m.count.max(1)).unwrap_or(1);
        let created = m.from_micros + step * i64::try_from(i).unwrap_or(0);
        let target = &m.endpoints[(i % m.endpoints.len() as u64) as usize];
        let msg_id = ids.next("msg_", created);
        let at = Some(created.to_string());
        let (app, endpoint) = (Some(m.app_id.to_owned()), Some(target.id.clone()));
        let msg = Some(msg_id.clone());
        self.messages.push(vec![
            msg.clone(),
            app.clone(),
            Some(target.event_type.clone()),
            None,
            Some(payload(i, created, pad)),
            at.clone(),
        ]);
        if !delivered {
            let (pending, none, zero) = (Some("1".to_owned()), None, Some("0".to_owned()));
            self.deliveries.push(vec![
                msg,
                endpoint,
                app,
                pending,
                zero.clone(),
                at.clone(),
                none,
                zero,
                at.clone(),
                at,
            ]);
            return (msg_id, None);
        }
        let attempted = created + ATTEMPT_AFTER;
        let attempt_id = ids.next("atmpt_", attempted);
        let attempted = Some(attempted.to_string());
        self.deliveries.push(vec![
            msg.clone(),
            endpoint.clone(),
            app.clone(),
            at,
            attempted.clone(),
        ]);
        self.attempts.push(vec![
            Some(attempt_id.clone()),
            msg,
            endpoint,
            app,
            Some(target.url.clone()),
            attempted,
        ]);
        (msg_id, Some(attempt_id))
    }

    fn tables(self, t: &Templates, delivered: bool) -> Vec<Rows<'_>> {
        let mut tables = vec![
            Rows {
                template: &t.message,
                set: MESSAGE.to_vec(),
                rows: self.messages,
            },
            Rows {
                template: &t.delivery,
                set: if delivered { DELIVERED } else { PENDING }.to_vec(),
                rows: self.deliveries,
            },
        ];
        if delivered {
            tables.push(Rows {
                template: &t.attempt,
                set: ATTEMPT.to_vec(),
                rows: self.attempts,
            });
        }
        tables
    }
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
    let mut landmarks = Landmarks::default();
    let mut writer = Writer::open(store)?;
    let started = Instant::now();
    let mut next_report = m.count / 10;
    let mut start = 0;
    while start < m.count {
        let end = (start + CHUNK).min(m.count);
        let mut chunk = Chunk::default();
        for i in start..end {
            let (msg_id, attempt_id) = chunk.push(m, &mut ids, i, &pad, delivered);
            if i == m.count / 2 {
                landmarks.middle_msg = msg_id;
                landmarks.middle_attempt = attempt_id;
            }
        }
        writer.write(&chunk.tables(t, delivered))?;
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
    let mut writer = Writer::open(store)?;
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
        writer.write(&[
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
        ])?;
    }
    Ok(uids)
}
