//! The attempt-log and delivery-state list queries, built once for both backends.
//!
//! The SQL is the same on SQLite and PostgreSQL except for the message filters (JSON
//! functions), which the caller appends through `push_filter`; each backend runs the query
//! on its own pool and decodes with the shared [`super::rows`] decoders.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::page::push_page;
use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_STATE, prefixed};
use super::{AttemptFilter, PageQuery};
use crate::domain::time::to_micros;
use crate::domain::{AppId, DeliveryStatus, EndpointId, MessageId};

/// Attempts of an application matching `filter`, one page.
pub fn attempts<'a, DB>(
    app: &AppId,
    filter: &AttemptFilter,
    page: &PageQuery,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE app_id = "
    ));
    qb.push_bind(app.as_str().to_owned());
    if let Some(msg) = &filter.msg_id {
        qb.push(" AND msg_id = ").push_bind(msg.as_str().to_owned());
    }
    if let Some(endpoint) = &filter.endpoint_id {
        qb.push(" AND endpoint_id = ")
            .push_bind(endpoint.as_str().to_owned());
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.code());
    }
    if let Some(class) = filter.status_code_class {
        let low = i64::from(class);
        let high = if class == 0 { 1 } else { low + 100 };
        qb.push(" AND response_status_code >= ")
            .push_bind(low)
            .push(" AND response_status_code < ")
            .push_bind(high);
    }
    if let Some(before) = filter.before {
        qb.push(" AND created_at < ").push_bind(to_micros(before));
    }
    if let Some(after) = filter.after {
        qb.push(" AND created_at > ").push_bind(to_micros(after));
    }
    push_page(&mut qb, "id", page);
    qb
}

/// The messages delivered to an endpoint (message `m`, delivery `d`), one page;
/// `push_filter` appends the backend's message filters for alias `m`.
pub fn endpoint_messages<'a, DB>(
    endpoint: &EndpointId,
    status: Option<DeliveryStatus>,
    page: &PageQuery,
    push_filter: impl FnOnce(&mut QueryBuilder<'a, DB>),
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN message m ON m.id = d.msg_id \
         WHERE d.endpoint_id = ",
        prefixed(rows::MESSAGE_COLUMNS, "m")
    ));
    qb.push_bind(endpoint.as_str().to_owned());
    if let Some(status) = status {
        qb.push(" AND d.status = ").push_bind(status.code());
    }
    push_filter(&mut qb);
    push_page(&mut qb, "d.msg_id", page);
    qb
}

/// The endpoints a message is delivered to (endpoint `e`, delivery `d`), one page.
pub fn message_endpoints<'a, DB>(msg: &MessageId, page: &PageQuery) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!(
        "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
         WHERE d.msg_id = ",
        prefixed(rows::ENDPOINT_COLUMNS, "e")
    ));
    qb.push_bind(msg.as_str().to_owned());
    push_page(&mut qb, "d.endpoint_id", page);
    qb
}
