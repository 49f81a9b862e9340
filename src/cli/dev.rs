//! Commands for developers building against hookd: `hookd listen` (a local receiver that
//! prints each delivery and whether its signature verifies), `hookd send` (one message) and
//! `hookd tail` (follow an application's messages and attempts as they happen).

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

use super::SchemeArgs;
use crate::signing::{VerifyKey, verify_request};

#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// The port to listen on, on 127.0.0.1.
    #[arg(long, default_value_t = 8072)]
    pub port: u16,
    /// The endpoint's secret (`whsec_…`, `whsk_…` or `whpk_…`): each delivery's signature is
    /// checked with it. Without it, deliveries are printed unchecked.
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// A file holding the secret.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub check: SchemeArgs,
    /// The status every request is answered with (e.g. 500, to watch hookd retry).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    pub status: u16,
}

/// Where the API is and the token to call it with: flags, else `HOOKD_URL`/`HOOKD_TOKEN`,
/// else the configuration's `listen` and `admin_token`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// hookd's URL. [env: HOOKD_URL] [default: http://<listen>]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An API token. [env: HOOKD_TOKEN] [default: the configured admin_token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The application (id or uid).
    #[arg(long, value_name = "APP")]
    pub app: String,
    #[arg(long, value_name = "NAME")]
    pub event_type: String,
    /// The payload, a JSON object.
    #[arg(
        long,
        value_name = "JSON",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub data: Option<String>,
    /// A file holding the payload, or - for standard input.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The message's eventId (sending the same one twice makes one message).
    #[arg(long, value_name = "ID")]
    pub event_id: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The application (id or uid).
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// How often to look, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub interval_ms: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The application (id or uid).
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// The endpoint (id or uid).
    #[arg(long, value_name = "ENDPOINT")]
    pub endpoint: String,
    /// Messages created at or after this time (RFC 3339), or this long ago (`2h`, `3d`).
    #[arg(long, value_name = "WHEN")]
    pub since: String,
    /// … and before this time (RFC 3339 or `1h` ago); default: now.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only the messages the endpoint never had a delivery for (replay-missing).
    #[arg(long, conflicts_with = "failed")]
    pub missing: bool,
    /// Only the endpoint's failed deliveries (recover).
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// The API's URL and token from the flags, the environment or the configuration.
pub fn api_target(
    api: &ApiArgs,
    config: &crate::config::Config,
) -> anyhow::Result<(String, String)> {
    let url = api
        .url
        .clone()
        .or_else(|| std::env::var("HOOKD_URL").ok())
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let token = api
        .token
        .clone()
        .or_else(|| std::env::var("HOOKD_TOKEN").ok())
        .unwrap_or_else(|| config.admin_token.clone());
    if token.is_empty() {
        anyhow::bail!("give an API token with --token, HOOKD_TOKEN or admin_token");
    }
    Ok((url.trim_end_matches('/').to_owned(), token))
}

/// `hookd listen`: prints every request it gets until interrupted.
pub async fn listen(args: &ListenArgs) -> anyhow::Result<()> {
    let key = match (&args.secret, &args.secret_file) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the secret from {}", path.display()))?,
        ),
        (None, None) => None,
    }
    .map(|s| VerifyKey::parse(s.trim()))
    .transpose()
    .context("--secret")?;
    let scheme = args.check.scheme()?;
    let tolerance = args.check.tolerance;
    let status = StatusCode::from_u16(args.status)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on http://{addr}/ (any path); Ctrl-C to stop");
    let printer = std::sync::Arc::new(std::sync::Mutex::new(()));
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let verdict = key.as_ref().map(|key| {
            let now = crate::domain::time::now().timestamp();
            verify_request(&scheme, key, &headers, &body, now, tolerance)
        });
        let text = render_request(&method, &uri, &headers, &body, verdict);
        let printer = printer.clone();
        async move {
            let _one_at_a_time = printer.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            status
        }
    };
    let app = axum::Router::new().fallback(handler);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// One request as `hookd listen` prints it: the request line, the headers, the body (pretty
/// when it is JSON) and the signature's verdict.
fn render_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    verdict: Option<crate::signing::Verdict>,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let at = crate::domain::time::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let _ = writeln!(out, "── {method} {uri}  {at}  {} bytes", body.len());
    for (name, value) in headers {
        let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    out.push('\n');
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        Err(_) => {
            let _ = writeln!(out, "{}", String::from_utf8_lossy(body));
        }
    }
    match verdict {
        None => out.push_str("signature: not checked (no --secret)\n"),
        Some(Ok(how)) => {
            let _ = writeln!(out, "signature: verified: {how}");
        }
        Some(Err(why)) => {
            let _ = writeln!(out, "signature: NOT verified: {why}");
        }
    }
    out.push('\n');
    out
}

async fn call(
    http: &reqwest::Client,
    (url, token): &(String, String),
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut request = http
        .request(method.clone(), format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach hookd at {url}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        anyhow::bail!("{method} {path}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `hookd send`: sends one message and prints what hookd answered.
pub async fn send(args: &SendArgs, target: (String, String)) -> anyhow::Result<()> {
    let text = match (&args.data, &args.file) {
        (Some(data), _) => data.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        (None, None) => anyhow::bail!("give the payload with --data or --file"),
    };
    let payload: Value = serde_json::from_str(&text).context("the payload is not JSON")?;
    if !payload.is_object() {
        anyhow::bail!("the payload must be a JSON object");
    }
    let mut body = serde_json::json!({"eventType": args.event_type, "payload": payload});
    if let Some(id) = &args.event_id {
        body["eventId"] = Value::String(id.clone());
    }
    let http = reqwest::Client::new();
    let path = format!("/api/v1/app/{}/msg", urlencode(&args.app));
    let answer = call(&http, &target, reqwest::Method::POST, &path, Some(&body)).await?;
    println!(
        "{} {} accepted",
        answer["id"].as_str().unwrap_or("?"),
        args.event_type
    );
    Ok(())
}

/// A time given as RFC 3339, or as an age (`90s`, `15m`, `2h`, `3d`) before now.
fn parse_when(flag: &str, text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| {
        anyhow::anyhow!("--{flag} {text:?}: give an RFC 3339 time or an age such as 2h or 3d")
    })?;
    let age = match unit {
        "s" => chrono::TimeDelta::try_seconds(n),
        "m" => chrono::TimeDelta::try_minutes(n),
        "h" => chrono::TimeDelta::try_hours(n),
        "d" => chrono::TimeDelta::try_days(n),
        _ => None,
    }
    .ok_or_else(|| anyhow::anyhow!("--{flag} {text:?}: the unit is s, m, h or d"))?;
    Ok(chrono::Utc::now() - age)
}

/// How often `replay` reads its task's progress.
const TASK_POLL: Duration = Duration::from_millis(250);

/// `hookd replay`: starts the background task, then follows its `messagesSent` on a
/// terminal until it is done; prints what it did.
pub async fn replay(args: &ReplayArgs, target: (String, String)) -> anyhow::Result<()> {
    let since = parse_when("since", &args.since)?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_when("until", u))
        .transpose()?;
    let route = if args.missing {
        "replay-missing"
    } else if args.failed {
        "recover"
    } else {
        "bulk-replay"
    };
    let mut body = serde_json::json!({"since": since.to_rfc3339()});
    if let Some(until) = until {
        body["until"] = Value::String(until.to_rfc3339());
    }
    let http = reqwest::Client::new();
    let path = format!(
        "/api/v1/app/{}/endpoint/{}/{route}",
        urlencode(&args.app),
        urlencode(&args.endpoint)
    );
    let started = call(&http, &target, reqwest::Method::POST, &path, Some(&body)).await?;
    let id = started["id"]
        .as_str()
        .context("hookd answered without a task id")?
        .to_owned();
    let mut progress = super::progress::Progress::on_terminal("messages sent");
    let task_path = format!("/api/v1/background-task/{id}");
    loop {
        let task = call(&http, &target, reqwest::Method::GET, &task_path, None).await?;
        let sent = task["data"][crate::replay::SENT].as_u64().unwrap_or(0);
        progress.set(sent, None);
        match task["status"].as_str() {
            Some("running") => tokio::time::sleep(TASK_POLL).await,
            Some("finished") => {
                progress.finish();
                println!("{id} finished: {sent} messages sent again ({route})");
                return Ok(());
            }
            other => {
                progress.finish();
                anyhow::bail!("{id} ended {}: {}", other.unwrap_or("?"), task["data"]);
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// How long `tail` keeps looking for a message's attempts.
const WATCH_FOR: Duration = Duration::from_secs(600);
/// Messages whose attempts `tail` follows at once, at most (the newest).
const WATCHED: usize = 100;

/// `hookd tail`: prints the application's new messages, then each attempt to deliver them,
/// as they happen, until interrupted.
pub async fn tail(args: &TailArgs, target: (String, String)) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let app = urlencode(&args.app);
    let every = Duration::from_millis(args.interval_ms.max(50));
    // Start after the newest message there is.
    let first = call(
        &http,
        &target,
        reqwest::Method::GET,
        &format!("/api/v1/app/{app}/msg?limit=1"),
        None,
    )
    .await?;
    let mut last = first["data"][0]["id"].as_str().map(str::to_owned);
    println!("following {} (Ctrl-C to stop)", args.app);
    // The messages whose attempts are followed, with the attempts printed already.
    let mut watched: VecDeque<(String, Instant, HashSet<String>)> = VecDeque::new();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        // New messages: the newest page, down to the last one printed, oldest first.
        let page = call(
            &http,
            &target,
            reqwest::Method::GET,
            &format!("/api/v1/app/{app}/msg?limit=250&with_content=false"),
            None,
        )
        .await;
        match page {
            Ok(page) => {
                let mut fresh: Vec<&Value> = page["data"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .take_while(|m| m["id"].as_str() != last.as_deref())
                            .collect()
                    })
                    .unwrap_or_default();
                fresh.reverse();
                for m in fresh {
                    let id = m["id"].as_str().unwrap_or("").to_owned();
                    println!(
                        "{}  {}  {}{}",
                        m["timestamp"].as_str().unwrap_or(""),
                        id,
                        m["eventType"].as_str().unwrap_or(""),
                        m["eventId"]
                            .as_str()
                            .map(|e| format!("  (eventId {e})"))
                            .unwrap_or_default()
                    );
                    last = Some(id.clone());
                    watched.push_back((id, Instant::now(), HashSet::new()));
                    if watched.len() > WATCHED {
                        watched.pop_front();
                    }
                }
            }
            Err(e) => eprintln!("hookd tail: {e:#}"),
        }
        watched.retain(|(_, since, _)| since.elapsed() < WATCH_FOR);
        for (msg, _, printed) in &mut watched {
            let path = format!("/api/v1/app/{app}/attempt/msg/{msg}?limit=250");
            let msg = msg.as_str();
            let Ok(attempts) = call(&http, &target, reqwest::Method::GET, &path, None).await else {
                continue;
            };
            let mut list: Vec<&Value> = attempts["data"]
                .as_array()
                .map(|d| d.iter().collect())
                .unwrap_or_default();
            list.reverse();
            for a in list {
                let id = a["id"].as_str().unwrap_or("").to_owned();
                if !printed.insert(id.clone()) {
                    continue;
                }
                let status = a["responseStatusCode"].as_i64().unwrap_or(0);
                let outcome = if (200..300).contains(&status) {
                    "delivered"
                } else {
                    "failed"
                };
                println!(
                    "{}    {} {} → {}  {}  {} ({} ms)",
                    a["timestamp"].as_str().unwrap_or(""),
                    id,
                    msg,
                    a["endpointId"].as_str().unwrap_or(""),
                    outcome,
                    status,
                    a["responseDurationMs"].as_i64().unwrap_or(0)
                );
            }
        }
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}
