//! Column lists, row decoding and the keyset-pagination clause shared by the SQLite queries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::domain::time::{from_micros, to_micros};
use crate::domain::{
    AppId, Application, Attempt, AttemptError, AttemptId, Channel, DeliveryStatus, Endpoint,
    EndpointHeaders, EndpointId, EndpointUrl, ErrorClass, EventId, EventType, EventTypeName,
    FeatureFlag, Message, MessageId, Payload, PreviousSecret, SigningSecret, Subscription,
    Timestamp, Trigger, Uid,
};
use crate::store::{MessageFilter, PageQuery, Result, StoreError};

pub const APPLICATION_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";
pub const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, feature_flags, group_name, schemas, created_at, \
     updated_at";
pub const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, disabled, rate_limit, \
     event_types, channels, metadata, headers, secret, previous_secrets, created_at, updated_at";
pub const MESSAGE_COLUMNS: &str = "id, app_id, event_type, event_id, channels, payload, created_at";
pub const ATTEMPT_COLUMNS: &str = "id, msg_id, endpoint_id, app_id, url, status, \
     response_status_code, response, response_headers, duration_ms, trigger_type, error_class, \
     error, created_at";

/// `a, b` with alias `t` → `t.a, t.b`: the columns of a joined table, still named `a`, `b`.
pub fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Appends the message list filters, for the `message` table under `alias`.
pub fn push_message_filter(qb: &mut QueryBuilder<'_, Sqlite>, filter: &MessageFilter, alias: &str) {
    if let Some(types) = &filter.event_types {
        qb.push(format!(
            " AND {alias}.event_type IN (SELECT value FROM json_each("
        ))
        .push_bind(to_json(types))
        .push("))");
    }
    if let Some(channel) = &filter.channel {
        qb.push(format!(
            " AND EXISTS (SELECT 1 FROM json_each({alias}.channels) WHERE value = "
        ))
        .push_bind(channel.as_str().to_owned())
        .push(")");
    }
    if let Some(before) = filter.before {
        qb.push(format!(" AND {alias}.created_at < "))
            .push_bind(to_micros(before));
    }
    if let Some(after) = filter.after {
        qb.push(format!(" AND {alias}.created_at > "))
            .push_bind(to_micros(after));
    }
}

/// Appends `AND key > / < bound ORDER BY key LIMIT n` for `page`; rows come back in scan
/// order (see [`PageQuery::scans_ascending`]).
pub fn push_page(qb: &mut QueryBuilder<'_, Sqlite>, key_column: &str, page: &PageQuery) {
    if let Some((bound, greater)) = page.key_bound() {
        qb.push(" AND ")
            .push(key_column)
            .push(if greater { " > " } else { " < " })
            .push_bind(bound.to_owned());
    }
    qb.push(" ORDER BY ")
        .push(key_column)
        .push(if page.scans_ascending() {
            " ASC"
        } else {
            " DESC"
        })
        .push(" LIMIT ")
        .push_bind(page.fetch());
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn time(row: &SqliteRow, column: &str) -> Result<Timestamp> {
    Ok(from_micros(row.try_get(column)?))
}

fn rate_limit(row: &SqliteRow) -> Result<Option<u16>> {
    row.try_get::<Option<i64>, _>("rate_limit")?
        .map(|v| u16::try_from(v).map_err(|e| corrupt("rate_limit", e)))
        .transpose()
}

fn json<T: for<'de> Deserialize<'de>>(row: &SqliteRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn opt_json<T: for<'de> Deserialize<'de>>(row: &SqliteRow, column: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

pub fn to_json(value: &impl Serialize) -> String {
    // Serialising maps of strings, sets of names and JSON values cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub fn opt_to_json(value: Option<&impl Serialize>) -> Option<String> {
    value.map(to_json)
}

pub fn application(row: &SqliteRow) -> Result<Application> {
    Ok(Application {
        id: AppId::from_stored(row.try_get("id")?),
        uid: row
            .try_get::<Option<String>, _>("uid")?
            .map(Uid::from_stored),
        name: row.try_get("name")?,
        rate_limit: rate_limit(row)?,
        metadata: json(row, "metadata")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn event_type(row: &SqliteRow) -> Result<EventType> {
    Ok(EventType {
        name: EventTypeName::from_stored(row.try_get("name")?),
        description: row.try_get("description")?,
        archived: row.try_get("archived")?,
        deprecated: row.try_get("deprecated")?,
        feature_flags: opt_json::<Vec<String>>(row, "feature_flags")?
            .map(|flags| flags.into_iter().map(FeatureFlag::from_stored).collect()),
        group_name: row.try_get("group_name")?,
        schemas: opt_json(row, "schemas")?,
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

fn secret(text: &str) -> Result<SigningSecret> {
    SigningSecret::parse(text).map_err(|e| corrupt("secret", e))
}

pub fn endpoint(row: &SqliteRow) -> Result<Endpoint> {
    let url: String = row.try_get("url")?;
    let previous: Vec<StoredPreviousSecret> = json(row, "previous_secrets")?;
    Ok(Endpoint {
        id: EndpointId::from_stored(row.try_get("id")?),
        app_id: AppId::from_stored(row.try_get("app_id")?),
        uid: row
            .try_get::<Option<String>, _>("uid")?
            .map(Uid::from_stored),
        url: EndpointUrl::parse(&url).map_err(|e| corrupt("url", e))?,
        description: row.try_get("description")?,
        disabled: row.try_get("disabled")?,
        rate_limit: rate_limit(row)?,
        subscription: subscription(row)?,
        metadata: json(row, "metadata")?,
        headers: json::<EndpointHeaders>(row, "headers")?,
        secret: secret(&row.try_get::<String, _>("secret")?)?,
        previous_secrets: previous
            .iter()
            .map(|p| {
                Ok(PreviousSecret {
                    secret: secret(&p.key)?,
                    expires_at: from_micros(p.expires_at),
                })
            })
            .collect::<Result<_>>()?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub fn subscription(row: &SqliteRow) -> Result<Subscription> {
    let event_types: Option<BTreeSet<String>> = opt_json(row, "event_types")?;
    let channels: Option<BTreeSet<String>> = opt_json(row, "channels")?;
    Ok(Subscription {
        event_types: event_types.map(|s| s.into_iter().map(EventTypeName::from_stored).collect()),
        channels: channels.map(|s| s.into_iter().map(Channel::from_stored).collect()),
    })
}

pub fn message(row: &SqliteRow) -> Result<Message> {
    let channels: Option<Vec<String>> = opt_json(row, "channels")?;
    Ok(Message {
        id: MessageId::from_stored(row.try_get("id")?),
        app_id: AppId::from_stored(row.try_get("app_id")?),
        event_type: EventTypeName::from_stored(row.try_get("event_type")?),
        event_id: row
            .try_get::<Option<String>, _>("event_id")?
            .map(EventId::from_stored),
        channels: channels.map(|c| c.into_iter().map(Channel::from_stored).collect()),
        payload: row
            .try_get::<Option<String>, _>("payload")?
            .map(Payload::from_stored),
        created_at: time(row, "created_at")?,
    })
}

/// Decodes every row with `decode`.
pub fn all<T>(rows: &[SqliteRow], decode: fn(&SqliteRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

pub fn attempt(row: &SqliteRow) -> Result<Attempt> {
    let status: i64 = row.try_get("status")?;
    let error = match row.try_get::<Option<String>, _>("error_class")? {
        None => None,
        Some(class) => Some(AttemptError {
            class: ErrorClass::parse(&class).ok_or_else(|| corrupt("error_class", &class))?,
            message: row
                .try_get::<Option<String>, _>("error")?
                .unwrap_or_default(),
        }),
    };
    Ok(Attempt {
        id: AttemptId::from_stored(row.try_get("id")?),
        msg_id: MessageId::from_stored(row.try_get("msg_id")?),
        endpoint_id: EndpointId::from_stored(row.try_get("endpoint_id")?),
        app_id: AppId::from_stored(row.try_get("app_id")?),
        url: row.try_get("url")?,
        status: DeliveryStatus::from_code(status).ok_or_else(|| corrupt("status", status))?,
        response_status_code: u16::try_from(row.try_get::<i64, _>("response_status_code")?)
            .map_err(|e| corrupt("response_status_code", e))?,
        response_body: row.try_get("response")?,
        response_headers: json(row, "response_headers")?,
        duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
        trigger: Trigger::from_code(row.try_get("trigger_type")?),
        error,
        created_at: time(row, "created_at")?,
    })
}
