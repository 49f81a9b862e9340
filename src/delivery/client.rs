//! The HTTP client deliveries go out on: hyper's pooled HTTP/1.1 client, over TCP or
//! rustls (web PKI roots), resolving names through the SSRF guard.
//!
//! Deliveries used to go through reqwest, which is hyper's client with layers hookd does
//! not use (redirects, retries, a URL type of its own). Those layers parsed every
//! request's URL twice more, into a `Uri` and back into a `Url` for the redirect policy
//! and for the response: about 12,000 instructions per delivery, 4 % of hookd's cost of a
//! message (`bench/callgrind.sh`). What hookd used of them is here:
//! - **timeouts**: the connect timeout, and a deadline for the whole exchange that the
//!   caller holds (the response's head here, its body in the sender);
//! - **the URL's credentials** (`https://user:pass@host/`) sent as `Authorization: Basic`
//!   and left out of the request line, unless the endpoint's headers set `Authorization`;
//! - **default headers**: `User-Agent: hookd/<version>` and `Accept: */*`, unless the
//!   endpoint's headers set them;
//! - **no redirects, no proxy**: a 3xx is an answer like any other, and no `HTTP_PROXY`
//!   is read, so the address the guard checks is the one connected to (see `ssrf`).

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use url::Url;

use super::ssrf::{AddressPolicy, GuardedResolver};

const USER_AGENT_VALUE: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

/// An idle pooled connection is closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why an exchange produced no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be a request target (it parsed as a URL, not as an HTTP URI).
    #[error("the endpoint URL is not a valid request target: {0}")]
    Uri(#[from] http::uri::InvalidUri),
    /// The deadline passed before the response's head arrived.
    #[error("no response within {0:?}")]
    TimedOut(Duration),
    /// Connecting, the TLS handshake, sending or reading the head failed; the source chain
    /// says why (a [`super::ssrf::Refusal`] among them when the guard refused every
    /// address of the name).
    #[error(transparent)]
    Exchange(#[from] hyper_util::client::legacy::Error),
}

/// A pooled client for deliveries. Cloning shares the pool.
#[derive(Clone)]
pub struct DeliveryClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
}

impl DeliveryClient {
    /// A client whose names resolve through `policy` and whose connections time out after
    /// `connect_timeout`.
    pub fn new(policy: Arc<AddressPolicy>, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(policy));
        // https:// URLs reach the TLS layer through this connector.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(https);
        Self { inner }
    }

    /// POSTs `body` to `url` with `headers` (and the defaults above), and waits for the
    /// response's head until `deadline`. The body is the caller's to read, by the same
    /// deadline.
    pub async fn post(
        &self,
        url: &Url,
        mut headers: HeaderMap,
        body: Bytes,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        let uri = request_target(url, &mut headers)?;
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        match tokio::time::timeout_at(deadline, self.inner.request(request)).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(ClientError::TimedOut(timeout)),
        }
    }
}

/// The URI to send `url` to. Credentials in the URL become `Authorization: Basic` (unless
/// `headers` has one already) and are left out of the URI.
fn request_target(url: &Url, headers: &mut HeaderMap) -> Result<Uri, ClientError> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(Uri::try_from(url.as_str())?);
    }
    if !headers.contains_key(AUTHORIZATION) {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
        let mut credentials = decode(url.username());
        credentials.push(b':');
        credentials.extend(decode(url.password().unwrap_or("")));
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        if let Ok(mut value) = HeaderValue::try_from(format!("Basic {encoded}")) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
    }
    let mut bare = url.clone();
    // Neither can fail on an http(s) URL with a host, which every endpoint URL is.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    Ok(Uri::try_from(bare.as_str())?)
}

/// hyper's resolver interface: a name's permitted addresses, or the first refusal.
impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move { Ok(resolver.lookup(name.as_str()).await?.into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (Uri, HeaderMap) {
        let mut headers = HeaderMap::new();
        let uri = request_target(&Url::parse(url).unwrap(), &mut headers).unwrap();
        (uri, headers)
    }

    #[test]
    fn a_plain_url_is_its_own_target() {
        let (uri, headers) = target("https://example.com:8443/hooks/in?a=1");
        assert_eq!(uri, "https://example.com:8443/hooks/in?a=1");
        assert!(headers.is_empty());
    }

    #[test]
    fn credentials_in_the_url_are_sent_as_basic_auth() {
        let (uri, headers) = target("https://us%40er:p%3Ass@example.com/hook");
        assert_eq!(uri, "https://example.com/hook");
        // base64("us@er:p:ss")
        assert_eq!(headers[AUTHORIZATION], "Basic dXNAZXI6cDpzcw==");

        let (uri, headers) = target("http://token@example.com/");
        assert_eq!(uri, "http://example.com/");
        assert_eq!(headers[AUTHORIZATION], "Basic dG9rZW46");
    }

    #[test]
    fn an_authorization_header_wins_over_the_urls_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer mine"));
        let url = Url::parse("https://user:pass@example.com/").unwrap();
        let uri = request_target(&url, &mut headers).unwrap();
        assert_eq!(uri, "https://example.com/");
        assert_eq!(headers[AUTHORIZATION], "Bearer mine");
    }
}
