//! Row decoding shared by both backends: column lists, and decoders from a stored row to
//! the domain types.
//!
//! Both schemas have the same shape (integer microsecond times, JSON as text, the same
//! column names), so one decoder per type serves both; [`StoredRow`] is the little each
//! backend must provide: reading a column as text, integer, flag or bytes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row, TypeInfo};

use crate::domain::retry::PolicySource;
use crate::domain::sealed::SecretsAtRest;
use crate::domain::time::{from_micros, to_micros};
use crate::domain::{
    AppId, Application, Attempt, AttemptError, AttemptId, BackgroundTask, Channel, DeliveryCounts,
    DeliveryOrder, DeliveryStatus, Endpoint, EndpointHeaders, EndpointId, EndpointUrl, ErrorClass,
    EventId, EventType, EventTypeName, FeatureFlag, Message, MessageId, Payload, PreviousSecret,
    Priority, RetryPolicy, RetryPolicySpec, SignatureScheme, SignatureSpec, SigningSecret,
    Subscription, TaskId, TaskKind, TaskStatus, Timestamp, Trigger, Uid,
};
use crate::store::{DeliveryState, Result, StoreError};

pub const TOKEN_COLUMNS: &str = "id, name, kind, abilities, app_id, session_id, rate_limit, hint, \
     expires_at, last_used_at, created_at";
pub const APPLICATION_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";
pub const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, feature_flags, group_name, schemas, created_at, \
     updated_at, validate_payloads, retry_policy";
pub const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, disabled, rate_limit, \
     event_types, channels, metadata, headers, secret, previous_secrets, signature, created_at, \
     updated_at, auto_disable_after_failures, auto_disable_after_secs, retry_policy, ordering";
pub const MESSAGE_COLUMNS: &str =
    "id, app_id, event_type, event_id, channels, payload, created_at, deliver_at, priority";
pub const ATTEMPT_COLUMNS: &str = "id, msg_id, endpoint_id, app_id, url, status, \
     response_status_code, response, response_headers, duration_ms, trigger_type, error_class, \
     error, created_at, policy, timeout_ms, request_headers";
pub const TASK_COLUMNS: &str =
    "id, kind, status, app_id, data, cursor, lease_until, created_at, updated_at";
/// A delivery's state next to a joined message or endpoint (`d` is the delivery).
pub const DELIVERY_STATE: &str = "d.status AS delivery_status, d.next_attempt_at AS delivery_next, d.updated_at AS delivery_updated";

/// What the decoders read from a row, whichever database it came from.
pub trait StoredRow {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;

    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?
            .ok_or_else(|| corrupt(column, "unexpected NULL"))
    }
}

impl StoredRow for SqliteRow {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

impl StoredRow for PgRow {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    /// Small codes are SMALLINT or INTEGER columns on PostgreSQL; times and counts BIGINT.
    /// The column is looked up by name once, then read by position (a claim reads these for
    /// every row of the queue's head).
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        let found = self.try_column(column)?;
        let at = found.ordinal();
        let value = match found.type_info().name() {
            "INT2" => self.try_get::<Option<i16>, _>(at).map(|v| v.map(i64::from)),
            "INT4" => self.try_get::<Option<i32>, _>(at).map(|v| v.map(i64::from)),
            _ => self.try_get(at),
        };
        value.map_err(|e| corrupt(column, e))
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

/// `a, b` with alias `t` → `t.a, t.b`: the columns of a joined table, still named `a`, `b`.
pub fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn time(row: &impl StoredRow, column: &str) -> Result<Timestamp> {
    Ok(from_micros(row.int(column)?))
}

fn rate_limit(row: &impl StoredRow) -> Result<Option<u16>> {
    row.opt_int("rate_limit")?
        .map(|v| u16::try_from(v).map_err(|e| corrupt("rate_limit", e)))
        .transpose()
}

fn json<T: for<'de> Deserialize<'de>>(row: &impl StoredRow, column: &str) -> Result<T> {
    serde_json::from_str(&row.text(column)?).map_err(|e| corrupt(column, e))
}

fn opt_json<T: for<'de> Deserialize<'de>>(row: &impl StoredRow, column: &str) -> Result<Option<T>> {
    row.opt_text(column)?
        .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

pub fn to_json(value: &impl Serialize) -> String {
    // Serialising maps of strings, sets of names and JSON values cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub fn opt_to_json(value: Option<&impl Serialize>) -> Option<String> {
    value.map(to_json)
}

pub fn application(row: &impl StoredRow) -> Result<Application> {
    Ok(Application {
        id: AppId::from_stored(row.text("id")?),
        uid: row.opt_text("uid")?.map(Uid::from_stored),
        name: row.text("name")?,
        rate_limit: rate_limit(row)?,
        metadata: json(row, "metadata")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn api_token(row: &impl StoredRow) -> Result<crate::domain::ApiToken> {
    let kind = row.int("kind")?;
    Ok(crate::domain::ApiToken {
        id: crate::domain::TokenId::from_stored(row.text("id")?),
        name: row.text("name")?,
        kind: crate::domain::TokenKind::from_stored(kind).ok_or_else(|| corrupt("kind", kind))?,
        abilities: crate::domain::Abilities::from_stored(&row.text("abilities")?)
            .map_err(|name| corrupt("abilities", format!("unknown ability {name}")))?,
        app_id: row.opt_text("app_id")?.map(AppId::from_stored),
        session_id: row.opt_text("session_id")?,
        rate_limit: row
            .opt_int("rate_limit")?
            .map(|v| u32::try_from(v).map_err(|e| corrupt("rate_limit", e)))
            .transpose()?,
        hint: row.text("hint")?,
        expires_at: row.opt_int("expires_at")?.map(from_micros),
        last_used_at: row.opt_int("last_used_at")?.map(from_micros),
        created_at: time(row, "created_at")?,
    })
}

pub fn token_state(row: &impl StoredRow) -> Result<crate::store::TokenState> {
    Ok(crate::store::TokenState {
        id: crate::domain::TokenId::from_stored(row.text("id")?),
        expires_at: row.opt_int("expires_at")?.map(from_micros),
        window_start: row.int("window_start")?,
        window_count: u64::try_from(row.int("window_count")?).unwrap_or(0),
    })
}

pub fn event_type(row: &impl StoredRow) -> Result<EventType> {
    Ok(EventType {
        name: EventTypeName::from_stored(row.text("name")?),
        description: row.text("description")?,
        archived: row.flag("archived")?,
        deprecated: row.flag("deprecated")?,
        feature_flags: opt_json::<Vec<String>>(row, "feature_flags")?
            .map(|flags| flags.into_iter().map(FeatureFlag::from_stored).collect()),
        group_name: row.opt_text("group_name")?,
        schemas: opt_json(row, "schemas")?,
        validate_payloads: row.flag("validate_payloads")?,
        retry_policy: retry_policy(row)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A secret replaced by a rotation, as stored in `endpoint.previous_secrets`.
#[derive(Serialize, Deserialize)]
pub struct StoredPreviousSecret {
    key: String,
    #[serde(rename = "expiresAt")]
    expires_at: i64,
}

/// `endpoint.signature`: NULL for the standard scheme.
pub fn signature_json(scheme: &SignatureScheme) -> Option<String> {
    match scheme {
        SignatureScheme::Standard => None,
        other => Some(to_json(&other.spec())),
    }
}

pub fn previous_secrets_json(secrets: &[PreviousSecret]) -> String {
    let stored: Vec<StoredPreviousSecret> = secrets
        .iter()
        .map(|p| StoredPreviousSecret {
            key: p.secret.expose(),
            expires_at: to_micros(p.expires_at),
        })
        .collect();
    to_json(&stored)
}

/// The endpoint columns that hold credentials, sealed under the main key when there is one:
/// the secret, the previous secrets (each column's whole JSON text) and the headers (the
/// whole JSON object, names too: which headers an endpoint sends is nobody's business
/// either).
pub const SEALED_ENDPOINT_COLUMNS: [&str; 3] = ["secret", "previous_secrets", "headers"];

/// What a sealed endpoint column is bound to: its column and its endpoint's id.
pub fn endpoint_binding(column: &str, id: &str) -> String {
    format!("endpoint.{column}:{id}")
}

/// The stored text of an endpoint's credential column: sealed, except for an empty list or
/// map (`[]`, `{}`), kept as is: it holds no secret, and reading it then costs no
/// decryption on the claim path (most endpoints have no headers and no previous secret).
pub fn seal_endpoint_column(
    at_rest: &dyn SecretsAtRest,
    column: &str,
    id: &str,
    text: &str,
) -> String {
    if holds_nothing(text) {
        return text.to_owned();
    }
    at_rest.seal(text, &endpoint_binding(column, id))
}

/// An empty list or map: stored as plaintext whatever the main key.
pub fn holds_nothing(text: &str) -> bool {
    text == "[]" || text == "{}"
}

fn opened_text(
    row: &impl StoredRow,
    at_rest: &dyn SecretsAtRest,
    column: &str,
    id: &str,
) -> Result<String> {
    let stored = row.text(column)?;
    match at_rest.open(&stored, &endpoint_binding(column, id)) {
        Ok(std::borrow::Cow::Borrowed(_)) => Ok(stored),
        Ok(std::borrow::Cow::Owned(plain)) => Ok(plain),
        Err(e) => Err(StoreError::Sealed(format!("endpoint {id}: {column} {e}"))),
    }
}

fn secret(text: &str) -> Result<SigningSecret> {
    SigningSecret::parse(text).map_err(|e| corrupt("secret", e))
}

/// An endpoint row for a claim: `None`, logged as an error, when its credentials cannot be
/// opened (a main key missing, or the value altered), so that one such endpoint does not fail
/// the claim, and with it every other endpoint's deliveries (and on SQLite the write batch
/// the claim is part of). Its deliveries stay claimed until their lease runs out, and are
/// then tried again: nothing is sent without its secret, nothing is lost.
pub fn claimable_endpoint(
    row: &impl StoredRow,
    at_rest: &dyn SecretsAtRest,
) -> Result<Option<Endpoint>> {
    match endpoint(row, at_rest) {
        Ok(endpoint) => Ok(Some(endpoint)),
        Err(StoreError::Sealed(problem)) => {
            tracing::error!(%problem, "deliveries to an endpoint wait: its secrets cannot be read");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// An endpoint row, its credential columns opened with `at_rest`.
pub fn endpoint(row: &impl StoredRow, at_rest: &dyn SecretsAtRest) -> Result<Endpoint> {
    let id = row.text("id")?;
    let url = row.text("url")?;
    let previous = opened_text(row, at_rest, "previous_secrets", &id)?;
    let previous: Vec<StoredPreviousSecret> =
        serde_json::from_str(&previous).map_err(|e| corrupt("previous_secrets", e))?;
    let headers = opened_text(row, at_rest, "headers", &id)?;
    let headers: EndpointHeaders =
        serde_json::from_str(&headers).map_err(|e| corrupt("headers", e))?;
    let secret_text = opened_text(row, at_rest, "secret", &id)?;
    Ok(Endpoint {
        id: EndpointId::from_stored(id),
        app_id: AppId::from_stored(row.text("app_id")?),
        uid: row.opt_text("uid")?.map(Uid::from_stored),
        url: EndpointUrl::parse(&url).map_err(|e| corrupt("url", e))?,
        description: row.text("description")?,
        disabled: row.flag("disabled")?,
        rate_limit: rate_limit(row)?,
        subscription: subscription(row)?,
        metadata: json(row, "metadata")?,
        headers,
        secret: secret(&secret_text)?,
        previous_secrets: previous
            .iter()
            .map(|p| {
                Ok(PreviousSecret {
                    secret: secret(&p.key)?,
                    expires_at: from_micros(p.expires_at),
                })
            })
            .collect::<Result<_>>()?,
        signature: opt_json::<SignatureSpec>(row, "signature")?
            .map(|spec| SignatureScheme::parse(spec).map_err(|e| corrupt("signature", e)))
            .transpose()?
            .unwrap_or_default(),
        auto_disable_after_failures: row
            .opt_int("auto_disable_after_failures")?
            .map(|n| u32::try_from(n).map_err(|e| corrupt("auto_disable_after_failures", e)))
            .transpose()?,
        auto_disable_after_secs: row
            .opt_int("auto_disable_after_secs")?
            .map(|n| u64::try_from(n).map_err(|e| corrupt("auto_disable_after_secs", e)))
            .transpose()?,
        retry_policy: retry_policy(row)?.map(Arc::new),
        ordering: DeliveryOrder::from_code(row.int("ordering")?)
            .ok_or_else(|| corrupt("ordering", "not 0 or 1"))?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// `retry_policy`: the policy as the API took it (checked then; timeouts above a since
/// lowered `max_request_timeout_secs` are capped when attempts run).
fn retry_policy(row: &impl StoredRow) -> Result<Option<RetryPolicy>> {
    opt_json::<RetryPolicySpec>(row, "retry_policy")?
        .map(|spec| {
            RetryPolicy::parse(&spec, Duration::MAX).map_err(|e| corrupt("retry_policy", e))
        })
        .transpose()
}

/// `retry_policy` as stored: NULL for none.
pub fn retry_policy_json(policy: Option<&RetryPolicy>) -> Option<String> {
    policy.map(|p| to_json(&p.spec()))
}

pub fn subscription(row: &impl StoredRow) -> Result<Subscription> {
    let event_types: Option<BTreeSet<String>> = opt_json(row, "event_types")?;
    let channels: Option<BTreeSet<String>> = opt_json(row, "channels")?;
    Ok(Subscription {
        event_types: event_types.map(|s| s.into_iter().map(EventTypeName::from_stored).collect()),
        channels: channels.map(|s| s.into_iter().map(Channel::from_stored).collect()),
    })
}

pub fn message(row: &impl StoredRow) -> Result<Message> {
    let channels: Option<Vec<String>> = opt_json(row, "channels")?;
    Ok(Message {
        id: MessageId::from_stored(row.text("id")?),
        app_id: AppId::from_stored(row.text("app_id")?),
        event_type: EventTypeName::from_stored(row.text("event_type")?),
        event_id: row.opt_text("event_id")?.map(EventId::from_stored),
        channels: channels.map(|c| c.into_iter().map(Channel::from_stored).collect()),
        payload: row.opt_text("payload")?.map(Payload::from_stored),
        created_at: time(row, "created_at")?,
        deliver_at: row.opt_int("deliver_at")?.map(from_micros),
        priority: row.opt_int("priority")?.and_then(Priority::from_code),
    })
}

pub fn task(row: &impl StoredRow) -> Result<BackgroundTask> {
    let kind = row.text("kind")?;
    let status = row.int("status")?;
    Ok(BackgroundTask {
        id: TaskId::from_stored(row.text("id")?),
        kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("kind", kind))?,
        status: TaskStatus::from_code(status).ok_or_else(|| corrupt("status", status))?,
        app_id: row.opt_text("app_id")?.map(AppId::from_stored),
        data: json(row, "data")?,
        cursor: row.opt_text("cursor")?,
        lease_until: time(row, "lease_until")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Decodes every row with `decode`.
pub fn all<R, T>(rows: &[R], decode: fn(&R) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

pub fn attempt(row: &impl StoredRow) -> Result<Attempt> {
    let status = row.int("status")?;
    let error = match row.opt_text("error_class")? {
        None => None,
        Some(class) => Some(AttemptError {
            class: ErrorClass::parse(&class).ok_or_else(|| corrupt("error_class", &class))?,
            message: row.opt_text("error")?.unwrap_or_default(),
        }),
    };
    Ok(Attempt {
        id: AttemptId::from_stored(row.text("id")?),
        msg_id: MessageId::from_stored(row.text("msg_id")?),
        endpoint_id: EndpointId::from_stored(row.text("endpoint_id")?),
        app_id: AppId::from_stored(row.text("app_id")?),
        url: row.text("url")?,
        status: DeliveryStatus::from_code(status).ok_or_else(|| corrupt("status", status))?,
        response_status_code: u16::try_from(row.int("response_status_code")?)
            .map_err(|e| corrupt("response_status_code", e))?,
        response_body: row.text("response")?,
        response_headers: json(row, "response_headers")?,
        request_headers: json(row, "request_headers")?,
        duration_ms: u64::try_from(row.int("duration_ms")?).unwrap_or(0),
        trigger: Trigger::from_code(row.int("trigger_type")?),
        error,
        created_at: time(row, "created_at")?,
        policy: row
            .opt_text("policy")?
            .as_deref()
            .and_then(PolicySource::parse),
        timeout_ms: row
            .opt_int("timeout_ms")?
            .and_then(|t| u64::try_from(t).ok()),
    })
}

/// The delivery columns selected as [`DELIVERY_STATE`].
pub fn delivery_state(row: &impl StoredRow) -> Result<DeliveryState> {
    let code = row.int("delivery_status")?;
    Ok(DeliveryState {
        status: DeliveryStatus::from_code(code).ok_or_else(|| corrupt("delivery status", code))?,
        next_attempt: row.opt_int("delivery_next")?.map(from_micros),
        updated_at: from_micros(row.int("delivery_updated")?),
    })
}

/// Rows of `SELECT status, COUNT(*) AS n ... GROUP BY status`, added up.
pub fn counts<R: StoredRow>(found: &[R]) -> Result<DeliveryCounts> {
    let mut counts = DeliveryCounts::default();
    for row in found {
        let n = u64::try_from(row.int("n")?).unwrap_or(0);
        match DeliveryStatus::from_code(row.int("status")?) {
            Some(DeliveryStatus::Success) => counts.success += n,
            Some(DeliveryStatus::Pending) => counts.pending += n,
            Some(DeliveryStatus::Fail) => counts.fail += n,
            Some(DeliveryStatus::Sending) => counts.sending += n,
            None => {}
        }
    }
    Ok(counts)
}
