//! hookd's HTTP API as `hookd apply` uses it: JSON in and out, every refusal turned into an
//! error that says which request failed and why.

use reqwest::{Method, StatusCode};
use serde_json::Value as Json;

/// A request the API refused, or that did not reach it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {path}: {detail}")]
pub struct RemoteError {
    pub method: Method,
    pub path: String,
    pub detail: String,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// `base` is hookd's address (`http://127.0.0.1:8071`); `token` an API token.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// Sends one request; a 404 is `Ok(None)` when `missing_ok`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        missing_ok: bool,
    ) -> Result<Option<Json>, RemoteError> {
        let fail = |detail: String| RemoteError {
            method: method.clone(),
            path: path.to_owned(),
            detail,
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && missing_ok {
            return Ok(None);
        }
        let text = response.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            let detail = serde_json::from_str::<Json>(&text)
                .ok()
                .and_then(|j| j.get("detail").map(detail_text))
                .unwrap_or(text);
            return Err(fail(format!("{status}: {detail}")));
        }
        if text.is_empty() {
            return Ok(Some(Json::Null));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| fail(format!("the answer is not JSON: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Option<Json>, RemoteError> {
        self.call(Method::GET, path, None, true).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, RemoteError> {
        self.call(method, path, body, false)
            .await
            .map(Option::unwrap_or_default)
    }

    /// Every item of a list route, page after page (`query` without `limit`/`iterator`).
    pub async fn list(&self, path: &str, query: &str) -> Result<Vec<Json>, RemoteError> {
        let mut items = Vec::new();
        let mut iterator: Option<String> = None;
        loop {
            let mut url = format!("{path}?limit=250{query}");
            if let Some(it) = &iterator {
                url.push_str("&iterator=");
                url.push_str(&form_urlencoded::byte_serialize(it.as_bytes()).collect::<String>());
            }
            let page = self.send(Method::GET, &url, None).await?;
            if let Some(data) = page.get("data").and_then(Json::as_array) {
                items.extend(data.iter().cloned());
            }
            let done = page.get("done").and_then(Json::as_bool).unwrap_or(true);
            iterator = page
                .get("iterator")
                .and_then(Json::as_str)
                .map(str::to_owned);
            if done || iterator.is_none() {
                return Ok(items);
            }
        }
    }
}

/// A path segment, escaped.
pub fn segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An error body's `detail`: a string, or a 422's list of `{loc, msg}` as `body.url: msg`.
fn detail_text(detail: &Json) -> String {
    match detail {
        Json::String(s) => s.clone(),
        Json::Array(items) => items
            .iter()
            .map(|item| {
                let loc: Vec<String> = item["loc"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                format!(
                    "{}: {}",
                    loc.join("."),
                    item["msg"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
