//! The HTTP side of a delivery: one signed POST, its outcome classified.
//!
//! The body sent is exactly the stored payload text, and that is what is signed. Redirects
//! are not followed (a 3xx is a failed attempt, to be retried), the whole exchange is bounded
//! by `request_timeout`, and only the first `max_response_body_bytes` of the answer are
//! kept. Every address is checked against the SSRF policy: resolved names through
//! [`GuardedResolver`](super::ssrf::GuardedResolver) (so the address checked is the one
//! connected to), IP literals here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::client::{ClientError, DeliveryClient};
use super::policy::parse_retry_after;
use super::ssrf::{AddressPolicy, Refusal};
use crate::domain::EndpointHeaders;
use crate::domain::{AttemptError, Endpoint, ErrorClass, SignatureScheme, Timestamp};
use crate::signing;
use crate::store::ClaimedDelivery;

/// Which signature header names deliveries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureHeaders {
    /// `webhook-*` (Standard Webhooks) and `svix-*`.
    Both,
    Webhook,
    Svix,
}

impl SignatureHeaders {
    /// The `-id`, `-timestamp` and `-signature` header names of each family sent.
    fn names(self) -> &'static [[&'static str; 3]] {
        const WEBHOOK: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
        const SVIX: [&str; 3] = ["svix-id", "svix-timestamp", "svix-signature"];
        match self {
            Self::Both => &[WEBHOOK, SVIX],
            Self::Webhook => &[WEBHOOK],
            Self::Svix => &[SVIX],
        }
    }
}

#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub timeout: Duration,
    pub max_response_body_bytes: usize,
    pub signature_headers: SignatureHeaders,
    pub https_only: bool,
    pub addresses: Arc<AddressPolicy>,
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// `Retry-After`, when given and parseable.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct SendResult {
    pub duration: Duration,
    pub outcome: Result<Response, AttemptError>,
    /// For an attempt that failed, the headers hookd set on the request (credentials among
    /// the endpoint's custom headers as `[redacted]`); empty when it succeeded or no
    /// request was made. The HTTP client adds `Host`, `Content-Length`, `User-Agent` and
    /// `Accept` (see `client`).
    pub request_headers: BTreeMap<String, String>,
}

/// The most response headers kept per attempt.
const MAX_HEADERS: usize = 64;

/// A request's headers as an attempt keeps them: credentials among the endpoint's custom
/// headers as `[redacted]`.
fn recorded_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if EndpointHeaders::is_sensitive(name.as_str()) {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

pub struct Sender {
    client: DeliveryClient,
    settings: SenderSettings,
}

impl Sender {
    pub fn new(settings: SenderSettings) -> Self {
        let connect_timeout = settings.timeout.min(Duration::from_secs(10));
        let client = DeliveryClient::new(settings.addresses.clone(), connect_timeout);
        Self { client, settings }
    }

    /// Sends one attempt of `delivery`, signed for `now`, bounded by `timeout` (its retry
    /// policy's for this attempt; the client's own, `settings.timeout`, is the most any may
    /// take).
    pub async fn send(
        &self,
        delivery: &ClaimedDelivery,
        now: Timestamp,
        timeout: Duration,
    ) -> SendResult {
        let started = Instant::now();
        let mut request_headers = BTreeMap::new();
        let outcome = self
            .exchange(delivery, now, timeout, &mut request_headers)
            .await;
        SendResult {
            duration: started.elapsed(),
            outcome,
            request_headers,
        }
    }

    async fn exchange(
        &self,
        delivery: &ClaimedDelivery,
        now: Timestamp,
        timeout: Duration,
        recorded: &mut BTreeMap<String, String>,
    ) -> Result<Response, AttemptError> {
        let endpoint = &delivery.endpoint;
        let url = endpoint.url.url();
        if self.settings.https_only && !endpoint.url.is_https() {
            return Err(AttemptError {
                class: ErrorClass::Connect,
                message: "https_only is set and the endpoint URL is http://".into(),
            });
        }
        if let Err(refusal) = self.settings.addresses.check_url_host(url) {
            return Err(refused(&refusal));
        }
        // An expunged payload is delivered as an empty object.
        let body = Bytes::from(
            delivery
                .message
                .payload
                .as_ref()
                .map_or("{}", |p| p.as_str())
                .to_owned(),
        );
        let headers = self.headers(delivery, now, &body);
        let timeout = timeout.min(self.settings.timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = self
            .client
            .post(url, headers, body.clone(), deadline, timeout)
            .await;
        let answer = match sent {
            Ok(response) => Ok(self.read(response, deadline).await),
            Err(e) => Err(classify(&e)),
        };
        // Kept for the attempts people look into, those that failed; built again (the same
        // time and secrets give the same values) so that a delivery that succeeds costs
        // nothing more.
        if !answer
            .as_ref()
            .is_ok_and(|r| (200..300).contains(&r.status))
        {
            *recorded = recorded_headers(&self.headers(delivery, now, &body));
        }
        answer
    }

    fn headers(&self, delivery: &ClaimedDelivery, now: Timestamp, body: &[u8]) -> HeaderMap {
        let endpoint = &delivery.endpoint;
        let msg_id = delivery.message.id.as_str();
        let timestamp = now.timestamp();
        let mut headers = HeaderMap::new();
        // Custom headers were validated when stored, and cannot use the names set below.
        for (name, value) in endpoint.headers.iter() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Message ids are ASCII by construction. Were one not, no receiver could verify or
        // de-duplicate the delivery, so it goes without signature headers.
        let Ok(id) = HeaderValue::from_str(msg_id) else {
            return headers;
        };
        let families = self.settings.signature_headers.names();
        let signature = match &endpoint.signature {
            SignatureScheme::Standard => {
                signing::signature_header(msg_id, timestamp, body, endpoint.signing_secrets(now))
            }
            other => {
                // Every scheme sends the message id, so receivers can de-duplicate.
                for [id_name, ..] in families {
                    headers.insert(HeaderName::from_static(id_name), id.clone());
                }
                insert_scheme_headers(&mut headers, other, endpoint, now, body);
                return headers;
            }
        };
        // Built once and shared between the two header families (a clone is a reference
        // count): a delivery allocates no header names and formats nothing.
        let Ok(signature) = HeaderValue::try_from(signature) else {
            return headers;
        };
        let values = [id, HeaderValue::from(timestamp), signature];
        for names in families {
            for (name, value) in names.iter().zip(values.iter()) {
                headers.insert(HeaderName::from_static(name), value.clone());
            }
        }
        headers
    }

    /// The status, headers and the first `max_response_body_bytes` of the body, read
    /// until `deadline`.
    async fn read(
        &self,
        response: http::Response<Incoming>,
        deadline: tokio::time::Instant,
    ) -> Response {
        let status = response.status().as_u16();
        let headers: BTreeMap<String, String> = response
            .headers()
            .iter()
            .take(MAX_HEADERS)
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let cap = self.settings.max_response_body_bytes;
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        // A body that fails or times out half-way still leaves a status code: the attempt
        // is judged on the status, with what was read of the body.
        while body.len() < cap {
            match tokio::time::timeout_at(deadline, incoming.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(chunk) = frame.data_ref() {
                        let room = cap - body.len();
                        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                Ok(None | Some(Err(_))) | Err(_) => break,
            }
        }
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            retry_after,
        }
    }
}

/// The headers of the `stripe` and `hmac-sha256` schemes. `hmac-sha256` signs with the
/// current secret only: its receivers compare the header with one value, so a second one
/// would fail them all.
fn insert_scheme_headers(
    headers: &mut HeaderMap,
    scheme: &SignatureScheme,
    endpoint: &Endpoint,
    now: Timestamp,
    body: &[u8],
) {
    let timestamp = now.timestamp();
    match scheme {
        SignatureScheme::Standard => {}
        SignatureScheme::Stripe { header } => {
            let value = signing::stripe_header(timestamp, body, endpoint.signing_secrets(now));
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(header.clone(), value);
            }
        }
        SignatureScheme::HmacSha256 {
            header,
            prefix,
            encoding,
            timestamp_header,
        } => {
            let signed_time = timestamp_header.as_ref().map(|_| timestamp);
            let value =
                signing::hmac_header(&endpoint.secret, prefix, *encoding, signed_time, body);
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(header.clone(), value);
            }
            if let Some(name) = timestamp_header {
                headers.insert(name.clone(), HeaderValue::from(timestamp));
            }
        }
    }
}

fn refused(refusal: &Refusal) -> AttemptError {
    AttemptError {
        class: ErrorClass::SsrfRefused,
        message: refusal.to_string(),
    }
}

/// Sorts a transport failure into an error class, from the error's cause chain.
fn classify(e: &ClientError) -> AttemptError {
    let mut chain = Vec::new();
    let mut timed_out = matches!(e, ClientError::TimedOut(_));
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return refused(refusal);
        }
        // The connect timeout, or the system's.
        timed_out |= err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        chain.push(err.to_string());
        source = err.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    let class = if timed_out {
        ErrorClass::Timeout
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no address")
    {
        ErrorClass::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
    {
        ErrorClass::Tls
    } else {
        ErrorClass::Connect
    };
    AttemptError {
        class,
        message: text,
    }
}
