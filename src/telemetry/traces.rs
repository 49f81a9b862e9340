//! Traces: an OpenTelemetry span for each message accepted (`message.create`, with its
//! fan-out) and each delivery attempt (`message.attempt`), exported over OTLP/HTTP by
//! [`super::otlp`]. Off unless `otlp_endpoint` is set.
//!
//! # One trace per message
//!
//! A message's attempts are made later than its acceptance, maybe by another node, so no
//! span context can be handed over in memory. Both sides derive it from the message id
//! instead ([`MessageTrace`]): the SHA-256 of the id's text, whose first 16 bytes are the
//! trace id and next 8 the span id of the ingest span. The ingest span is the root of its
//! message's trace; every attempt span, on whichever node and however much later, is a child
//! of it (its parent span id is the ingest span's) with a random span id of its own. Resends,
//! retries and replays join the same trace.
//!
//! Sampling (`otlp_sample_ratio`) is decided from the trace id too (its last 8 bytes, read
//! as an integer, below ratio × 2⁶⁴), so every node keeps or drops the same messages whole.
//!
//! # Cost
//!
//! Off, the [`Tracer`] is a `None`: the hot path pays one branch on it (no clock read, no
//! hashing, no allocation, no formatting). On, [`Tracer::start`] reads the wall clock, and
//! a span costs a SHA-256 of the message id, a few small strings (ids, the URL) in a `Vec`
//! of attributes, and a non-blocking push onto a bounded queue: about 4,500 instructions
//! (`bench/callgrind.sh`), and nothing that waits. Encoding (about 17,000 instructions a
//! span) and sending are the exporter task's, in the background; a full queue drops the
//! span (counted in `hookd_trace_spans_dropped_total`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::Counter;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::delivery::measure::{ATTEMPT_CLASSES, class_index};
use crate::delivery::sender::SendResult;
use crate::domain::{Attempt, Message, MessageId, Trigger};
use crate::store::{ClaimedDelivery, NextStep};

/// Span names.
pub const INGEST_SPAN: &str = "message.create";
pub const ATTEMPT_SPAN: &str = "message.attempt";

/// Hands spans to the exporter; [`Tracer::off`] (the default) records nothing. Cloning is
/// an `Arc` clone (a copy of `None` when off).
#[derive(Clone, Default)]
pub struct Tracer(Option<Arc<Shared>>);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Tracer(on)"
        } else {
            "Tracer(off)"
        })
    }
}

struct Shared {
    queue: mpsc::Sender<Span>,
    /// Messages whose trace id's last 8 bytes are below this are traced; `None`: all.
    sample_below: Option<u64>,
    dropped: Counter,
}

/// When a span began, in nanoseconds since the Unix epoch (wall clock, whatever clock the
/// dispatcher runs on).
#[derive(Debug, Clone, Copy)]
pub struct SpanStart(u64);

impl Tracer {
    pub fn off() -> Self {
        Self(None)
    }

    /// A tracer that puts spans on `queue`, keeping a `ratio` of messages (0 to 1); spans
    /// that find the queue full are counted in `dropped`.
    pub(super) fn new(queue: mpsc::Sender<Span>, ratio: f64, dropped: Counter) -> Self {
        let sample_below = if ratio >= 1.0 {
            None
        } else {
            // Saturating cast: 0 keeps nothing.
            Some((ratio.max(0.0) * 18_446_744_073_709_551_616.0) as u64)
        };
        Self(Some(Arc::new(Shared {
            queue,
            sample_below,
            dropped,
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The start of a span, or `None` when tracing is off (then nothing else is done).
    #[inline]
    pub fn start(&self) -> Option<SpanStart> {
        self.0
            .as_ref()
            .map(|_| SpanStart(unix_nanos(SystemTime::now())))
    }

    /// A message was accepted (durable) with `deliveries` deliveries, `direct` of them
    /// handed straight to this node's dispatcher.
    pub fn ingest(&self, start: SpanStart, message: &Message, deliveries: usize, direct: usize) {
        let Some(shared) = &self.0 else {
            return;
        };
        let ids = MessageTrace::of(&message.id);
        if !shared.sampled(&ids) {
            return;
        }
        let mut attributes = Vec::with_capacity(7);
        attributes.push(("hookd.message.id", Value::from(message.id.as_str())));
        attributes.push(("hookd.app.id", Value::from(message.app_id.as_str())));
        attributes.push(("hookd.event_type", Value::from(message.event_type.as_str())));
        if let Some(event_id) = &message.event_id {
            attributes.push(("hookd.message.event_id", Value::from(event_id.as_str())));
        }
        attributes.push(("hookd.message.deliveries", Value::count(deliveries)));
        attributes.push(("hookd.message.deliveries_direct", Value::count(direct)));
        if let Some(at) = message.deliver_at {
            attributes.push(("hookd.message.deliver_at", Value::Str(at.to_rfc3339())));
        }
        shared.push(Span {
            trace_id: ids.trace_id,
            span_id: ids.ingest_span_id,
            parent_span_id: None,
            name: INGEST_SPAN,
            kind: SpanKind::Producer,
            start: start.0,
            end: unix_nanos(SystemTime::now()).max(start.0),
            attributes,
            status: Status::Ok,
        });
    }

    /// An attempt of `delivery` was made (`result`), recorded as `attempt`, and the delivery
    /// goes on to `next`.
    pub fn attempt(
        &self,
        start: SpanStart,
        delivery: &ClaimedDelivery,
        result: &SendResult,
        attempt: &Attempt,
        next: NextStep,
    ) {
        let Some(shared) = &self.0 else {
            return;
        };
        let ids = MessageTrace::of(&attempt.msg_id);
        if !shared.sampled(&ids) {
            return;
        }
        let url = delivery.endpoint.url.url();
        let mut attributes = Vec::with_capacity(16);
        attributes.push(("hookd.message.id", Value::from(attempt.msg_id.as_str())));
        attributes.push(("hookd.app.id", Value::from(attempt.app_id.as_str())));
        attributes.push((
            "hookd.endpoint.id",
            Value::from(attempt.endpoint_id.as_str()),
        ));
        attributes.push(("hookd.attempt.id", Value::from(attempt.id.as_str())));
        let number = i64::from(delivery.attempts).saturating_add(1);
        attributes.push(("hookd.attempt.number", Value::Int(number)));
        let trigger = match attempt.trigger {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
        };
        attributes.push(("hookd.attempt.trigger", Value::Static(trigger)));
        attributes.push(("http.request.method", Value::Static("POST")));
        attributes.push(("url.full", Value::Str(shown_url(url))));
        if let Some(host) = url.host_str() {
            attributes.push(("server.address", Value::from(host)));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(("server.port", Value::Int(i64::from(port))));
        }
        if let Ok(response) = &result.outcome {
            let code = i64::from(response.status);
            attributes.push(("http.response.status_code", Value::Int(code)));
        }
        let class = ATTEMPT_CLASSES[class_index(result)];
        let succeeded = class_index(result) == 0;
        let outcome = if succeeded { "success" } else { "failure" };
        attributes.push(("hookd.attempt.outcome", Value::Static(outcome)));
        if !succeeded {
            attributes.push(("error.type", Value::Static(class)));
        }
        let next = match next {
            NextStep::Delivered => "delivered",
            NextStep::RetryAt(_) => "retry",
            NextStep::Failed => "failed",
            NextStep::DisableEndpoint => "endpoint_disabled",
        };
        attributes.push(("hookd.delivery.next", Value::Static(next)));
        let status = match &attempt.error {
            Some(error) => Status::Error(error.message.clone()),
            None => Status::Ok,
        };
        shared.push(Span {
            trace_id: ids.trace_id,
            span_id: random_span_id(),
            parent_span_id: Some(ids.ingest_span_id),
            name: ATTEMPT_SPAN,
            kind: SpanKind::Client,
            start: start.0,
            end: start.0.saturating_add(nanos(result.duration)),
            attributes,
            status,
        });
    }
}

impl Shared {
    fn sampled(&self, ids: &MessageTrace) -> bool {
        self.sample_below.is_none_or(|below| {
            let low: [u8; 8] = ids.trace_id[8..].try_into().expect("8 bytes");
            u64::from_be_bytes(low) < below
        })
    }

    fn push(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// The trace of a message, as every node derives it from the message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTrace {
    pub trace_id: [u8; 16],
    /// The span id of the message's ingest span, the parent of its attempt spans.
    pub ingest_span_id: [u8; 8],
}

impl MessageTrace {
    pub fn of(id: &MessageId) -> Self {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let mut trace_id: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        let mut ingest_span_id: [u8; 8] = digest[16..24].try_into().expect("8 bytes");
        // All zeros is not a valid id (a 2⁻¹²⁸ chance, handled all the same).
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if ingest_span_id == [0; 8] {
            ingest_span_id[7] = 1;
        }
        Self {
            trace_id,
            ingest_span_id,
        }
    }
}

/// The endpoint URL as a span shows it: without credentials, query or fragment, which may
/// carry secrets.
fn shown_url(url: &url::Url) -> String {
    let clean = url.password().is_none() && url.username().is_empty();
    if clean && url.query().is_none() && url.fragment().is_none() {
        return url.as_str().to_owned();
    }
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One finished span, as queued for export.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: &'static str,
    pub kind: SpanKind,
    /// Nanoseconds since the Unix epoch.
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: Status,
}

/// OTLP's span kinds (the numbers are the protocol's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Client = 3,
    Producer = 4,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error(String),
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Static(&'static str),
    Int(i64),
}

impl Value {
    fn count(n: usize) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_one_trace_wherever_it_is_derived() {
        let id = MessageId::generate();
        let a = MessageTrace::of(&id);
        let b = MessageTrace::of(&MessageId::parse(id.as_str()).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, MessageTrace::of(&MessageId::generate()));
        assert_ne!(a.trace_id, [0; 16]);
    }

    #[test]
    fn sampling_keeps_about_the_ratio_and_is_the_same_every_time() {
        let (queue, _rx) = mpsc::channel(1);
        let tracer = Tracer::new(queue, 0.25, Counter::noop());
        let shared = tracer.0.as_ref().unwrap();
        let ids: Vec<_> = (0..4000).map(|_| MessageId::generate()).collect();
        let kept = ids
            .iter()
            .filter(|id| shared.sampled(&MessageTrace::of(id)))
            .count();
        assert!((800..1200).contains(&kept), "kept {kept} of 4000");
        for id in &ids[..100] {
            let trace = MessageTrace::of(id);
            assert_eq!(shared.sampled(&trace), shared.sampled(&trace));
        }
        let none = Tracer::new(mpsc::channel(1).0, 0.0, Counter::noop());
        let all = Tracer::new(mpsc::channel(1).0, 1.0, Counter::noop());
        let trace = MessageTrace::of(&ids[0]);
        assert!(!none.0.as_ref().unwrap().sampled(&trace));
        assert!(all.0.as_ref().unwrap().sampled(&trace));
    }

    #[test]
    fn urls_lose_credentials_and_queries() {
        let url = |s: &str| shown_url(&url::Url::parse(s).unwrap());
        assert_eq!(url("https://example.com/hook"), "https://example.com/hook");
        assert_eq!(
            url("https://user:pw@example.com:8443/hook?token=s3cret#x"),
            "https://example.com:8443/hook"
        );
    }

    #[test]
    fn off_starts_nothing() {
        assert!(Tracer::off().start().is_none());
        assert!(!Tracer::default().is_on());
    }
}
