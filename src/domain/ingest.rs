//! Ingest sources: URLs on hookd where third parties post webhooks, checked the way their
//! sender signs them and forwarded to the source's endpoints; and `cron` sources, which post
//! a fixed payload on a schedule. See `crate::ingest`.
//!
//! Each source owns an internal application (uid [`app_uid`]) whose endpoints are the
//! source's endpoints and whose messages are what the source received: they are stored,
//! signed, delivered, retried and logged by the same engine as every other message.

use chrono::{DateTime, Utc};

use http::HeaderName;

use super::{AppId, Deadline, IngestLogId, MacEncoding, Metadata, SourceId, Timestamp, Uid};

/// Every internal application of an ingest source has a uid starting with this.
pub const INGEST_APP_UID_PREFIX: &str = "hookd-ingest-";

/// The uid of source `id`'s internal application.
pub fn app_uid(id: &SourceId) -> String {
    format!("{INGEST_APP_UID_PREFIX}{id}")
}

/// Whether `uid` is one of hookd's internal applications (the operational webhooks' or an
/// ingest source's): no list shows them and no path reaches them by uid.
pub fn is_internal_app_uid(uid: &str) -> bool {
    uid == super::events::OPERATIONAL_APP_UID || uid.starts_with(INGEST_APP_UID_PREFIX)
}

/// The source an internal application's uid belongs to, if it is one.
pub fn source_of_app_uid(uid: &str) -> Option<SourceId> {
    uid.strip_prefix(INGEST_APP_UID_PREFIX)
        .and_then(SourceId::parse)
}

/// How a source checks what it receives, by the source `type` of the Svix SDK (plus
/// hookd's own `hookd-hmac`, `hookd-basic` and `hookd-bearer`).
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// `generic-webhook`, and `github` without a secret: anything is accepted.
    None,
    /// `svix` and the senders that sign as Standard Webhooks do (`webhook-*`/`svix-*`
    /// headers) with a `whsec_` secret.
    StandardWebhooks { secret: String },
    /// `Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of `{t}.{body}` keyed with the secret's text.
    Stripe { secret: String },
    /// An HMAC-SHA256 of the body (or of `{timestamp}.{body}` when `timestamp_header` is
    /// set) in one header: `github` (`X-Hub-Signature-256: sha256=<hex>`), `shopify`
    /// (`X-Shopify-Hmac-Sha256: <base64>`) and `hookd-hmac` (any header, prefix and
    /// encoding).
    Hmac {
        secret: String,
        header: HeaderName,
        prefix: String,
        encoding: MacEncoding,
        timestamp_header: Option<HeaderName>,
    },
    /// `slack`: `X-Slack-Signature: v0=<hex>` of `v0:{X-Slack-Request-Timestamp}:{body}`.
    Slack { secret: String },
    /// `hookd-basic`: `Authorization: Basic …` with this user and password.
    Basic { username: String, password: String },
    /// `hookd-bearer`: `Authorization: Bearer <token>`.
    Bearer { token: String },
}

/// What a source does: receive (checked as [`Verification`] says) or post on a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Receive {
        verification: Verification,
        /// How far a signed timestamp may be from hookd's clock, in seconds (replays outside
        /// it are refused).
        tolerance_secs: i64,
    },
    Cron(CronJob),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CronJob {
    pub schedule: Deadline,
    /// Posted as is, byte for byte: a JSON object.
    pub payload: String,
    /// The `contentType` given, if any (always a JSON type).
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestSource {
    pub id: SourceId,
    pub uid: Option<Uid>,
    pub name: String,
    /// The SDK's `type` (`stripe`, `cron`, …).
    pub source_type: String,
    /// The `config` object as given, secrets included (sealed at rest).
    pub config: serde_json::Value,
    pub kind: SourceKind,
    pub metadata: Metadata,
    /// The internal application whose endpoints and messages are the source's.
    pub app_id: AppId,
    /// The current token of the source's ingest URL; `None` for a `cron` source.
    pub token: Option<String>,
    /// `cron`: the next scheduled time not run yet.
    pub next_run_at: Option<Timestamp>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One request an ingest URL received, as the source log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestLog {
    pub id: IngestLogId,
    pub source_id: SourceId,
    /// What hookd answered: 2xx accepted, 401 not verified, 413/415/422 refused.
    pub status_code: u16,
    /// Why it was refused; empty when accepted.
    pub error_text: String,
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as received (lossy UTF-8 for display).
    pub payload: Vec<u8>,
    /// The message it became, when accepted.
    pub msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The source types that sign as Standard Webhooks do, with a `whsec_` secret (the SDK's
/// `SvixConfig`).
pub const STANDARD_WEBHOOKS_TYPES: &[&str] = &[
    "svix",
    "beehiiv",
    "brex",
    "clerk",
    "guesty",
    "incident-io",
    "lithic",
    "nash",
    "open-ai",
    "pleo",
    "psi-fi",
    "render",
    "replicate",
    "resend",
    "safebase",
    "sardine",
    "stych",
];

/// Every source type hookd accepts, for error messages.
pub fn supported_types() -> String {
    let mut all = vec![
        "generic-webhook",
        "cron",
        "stripe",
        "github",
        "shopify",
        "slack",
        "hookd-hmac",
        "hookd-basic",
        "hookd-bearer",
    ];
    all.extend_from_slice(STANDARD_WEBHOOKS_TYPES);
    all.join(", ")
}

/// How far a signed timestamp may be from hookd's clock when the source type does not say:
/// five minutes, what Stripe's, Slack's and the Standard Webhooks libraries allow.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Fields of `config` that hold credentials: never shown back.
pub const SECRET_FIELDS: &[&str] = &["secret", "password", "token"];

/// Why a source's `type` and `config` are refused: the field (`type`, `config.secret`, …)
/// and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn error(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The `config` object's fields, refusing any not in `allowed`.
fn fields<'a>(
    config: &'a serde_json::Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, serde_json::Value>, ConfigError> {
    static EMPTY: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
        std::sync::LazyLock::new(serde_json::Map::new);
    let map = match config {
        serde_json::Value::Null => &*EMPTY,
        serde_json::Value::Object(map) => map,
        _ => return Err(error("config", "must be an object")),
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let expected = if allowed.is_empty() {
            "this type takes no configuration".to_owned()
        } else {
            format!("this type's config has {}", allowed.join(", "))
        };
        return Err(error(
            &format!("config.{unknown}"),
            format!("is not a field: {expected}"),
        ));
    }
    Ok(map)
}

fn string(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    required: bool,
) -> Result<Option<String>, ConfigError> {
    match map.get(name) {
        None | Some(serde_json::Value::Null) if required => {
            Err(error(&format!("config.{name}"), "is required"))
        }
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => {
            Err(error(&format!("config.{name}"), "must not be empty"))
        }
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(error(&format!("config.{name}"), "must be a string")),
    }
}

fn required(
    map: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<String, ConfigError> {
    string(map, name, true).map(|s| s.unwrap_or_default())
}

fn header_name(field: &str, value: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(value.as_bytes())
        .map_err(|_| error(field, format!("{value:?} is not a header name")))
}

fn hmac(secret: String, header: &'static str, prefix: &str, encoding: MacEncoding) -> Verification {
    Verification::Hmac {
        secret,
        header: HeaderName::from_static(header),
        prefix: prefix.to_owned(),
        encoding,
        timestamp_header: None,
    }
}

impl SourceKind {
    /// Parses a source's `type` and `config`, as the SDK's `IngestSourceIn` has them.
    pub fn parse(source_type: &str, config: &serde_json::Value) -> Result<Self, ConfigError> {
        let receive = |verification| SourceKind::Receive {
            verification,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        };
        let secret_only = |config| -> Result<String, ConfigError> {
            required(fields(config, &["secret"])?, "secret")
        };
        Ok(match source_type {
            "generic-webhook" => {
                fields(config, &[])?;
                receive(Verification::None)
            }
            "cron" => SourceKind::Cron(cron(config)?),
            "stripe" => receive(Verification::Stripe {
                secret: secret_only(config)?,
            }),
            "github" => {
                let map = fields(config, &["secret"])?;
                match string(map, "secret", false)? {
                    None => receive(Verification::None),
                    Some(secret) => receive(hmac(
                        secret,
                        "x-hub-signature-256",
                        "sha256=",
                        MacEncoding::Hex,
                    )),
                }
            }
            "shopify" => receive(hmac(
                secret_only(config)?,
                "x-shopify-hmac-sha256",
                "",
                MacEncoding::Base64,
            )),
            "slack" => receive(Verification::Slack {
                secret: secret_only(config)?,
            }),
            "hookd-hmac" => hookd_hmac(config)?,
            "hookd-basic" => {
                let map = fields(config, &["username", "password"])?;
                let username = required(map, "username")?;
                if username.contains(':') {
                    return Err(error(
                        "config.username",
                        "must not contain ':' (HTTP basic auth)",
                    ));
                }
                receive(Verification::Basic {
                    username,
                    password: required(map, "password")?,
                })
            }
            "hookd-bearer" => receive(Verification::Bearer {
                token: required(fields(config, &["token"])?, "token")?,
            }),
            t if STANDARD_WEBHOOKS_TYPES.contains(&t) => {
                let secret = secret_only(config)?;
                super::SigningSecret::parse(&secret).map_err(|e| {
                    error(
                        "config.secret",
                        format!("is not a Standard Webhooks secret (whsec_…): {e}"),
                    )
                })?;
                receive(Verification::StandardWebhooks { secret })
            }
            other => {
                return Err(error(
                    "type",
                    format!(
                        "{other:?} is not a source type hookd verifies; it takes {}",
                        supported_types()
                    ),
                ));
            }
        })
    }
}

fn cron(config: &serde_json::Value) -> Result<CronJob, ConfigError> {
    let map = fields(config, &["schedule", "payload", "contentType"])?;
    let schedule =
        Deadline::parse(&required(map, "schedule")?).map_err(|e| error("config.schedule", e))?;
    let payload = required(map, "payload")?;
    let is_object = payload.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(&payload).is_ok();
    if !is_object {
        return Err(error(
            "config.payload",
            "must be the text of a JSON object (hookd delivers JSON payloads), e.g. \"{\\\"job\\\": \\\"crawl\\\"}\"",
        ));
    }
    let content_type = string(map, "contentType", false)?;
    if let Some(ct) = &content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(error(
                "config.contentType",
                "hookd posts JSON payloads: application/json or a +json type",
            ));
        }
    }
    Ok(CronJob {
        schedule,
        payload,
        content_type,
    })
}

fn hookd_hmac(config: &serde_json::Value) -> Result<SourceKind, ConfigError> {
    let map = fields(
        config,
        &[
            "secret",
            "header",
            "prefix",
            "encoding",
            "timestampHeader",
            "toleranceSeconds",
        ],
    )?;
    let secret = required(map, "secret")?;
    let header = header_name("config.header", &required(map, "header")?)?;
    let prefix = match map.get("prefix") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(error("config.prefix", "must be a string")),
    };
    let encoding = match string(map, "encoding", false)?.as_deref() {
        None | Some("hex") => MacEncoding::Hex,
        Some("base64") => MacEncoding::Base64,
        Some(other) => {
            return Err(error(
                "config.encoding",
                format!("{other:?}: must be hex or base64"),
            ));
        }
    };
    let timestamp_header = string(map, "timestampHeader", false)?
        .map(|h| header_name("config.timestampHeader", &h))
        .transpose()?;
    let tolerance_secs = match map.get("toleranceSeconds") {
        None | Some(serde_json::Value::Null) => DEFAULT_TOLERANCE_SECS,
        Some(v) => match v.as_f64() {
            Some(f)
                if f.fract() == 0.0
                    && (1.0..=86_400.0).contains(&f)
                    && timestamp_header.is_some() =>
            {
                f as i64
            }
            Some(_) if timestamp_header.is_none() => {
                return Err(error(
                    "config.toleranceSeconds",
                    "needs timestampHeader: without a signed timestamp there is nothing to check",
                ));
            }
            _ => {
                return Err(error(
                    "config.toleranceSeconds",
                    "must be a whole number of seconds, 1 to 86400",
                ));
            }
        },
    };
    Ok(SourceKind::Receive {
        verification: Verification::Hmac {
            secret,
            header,
            prefix,
            encoding,
            timestamp_header,
        },
        tolerance_secs,
    })
}

/// `config` without its credentials, as the API shows it.
pub fn public_config(config: &serde_json::Value) -> serde_json::Value {
    match config {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => serde_json::Value::Object(Default::default()),
    }
}
