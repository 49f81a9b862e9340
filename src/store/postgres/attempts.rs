//! Reading the attempt log and delivery states on PostgreSQL.

use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::micros as to_micros;
use super::sql;
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryStatus, Endpoint, EndpointId, Message, MessageId,
};
use crate::store::page::push_page;
use crate::store::rows::{self, ATTEMPT_COLUMNS, DELIVERY_STATE, delivery_state, prefixed};
use crate::store::{AttemptFilter, DeliveryState, MessageFilter, PageQuery, Result};

impl PgStore {
    pub(super) async fn query_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageQuery,
    ) -> Result<Vec<Attempt>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
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
        let found = qb.build().fetch_all(&self.pool).await?;
        rows::all(&found, rows::attempt)
    }

    pub(super) async fn query_attempt(
        &self,
        app: &AppId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>> {
        let row = sqlx::query(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE app_id = $1 AND id = $2"
        ))
        .bind(app.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::attempt).transpose()
    }

    pub(super) async fn query_endpoint_messages(
        &self,
        endpoint: &EndpointId,
        status: Option<DeliveryStatus>,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<(Message, DeliveryState)>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN message m ON m.id = d.msg_id \
             WHERE d.endpoint_id = ",
            prefixed(rows::MESSAGE_COLUMNS, "m")
        ));
        qb.push_bind(endpoint.as_str().to_owned());
        if let Some(status) = status {
            qb.push(" AND d.status = ").push_bind(status.code());
        }
        sql::push_message_filter(&mut qb, filter, "m");
        push_page(&mut qb, "d.msg_id", page);
        let found = qb.build().fetch_all(&self.pool).await?;
        found
            .iter()
            .map(|row| Ok((rows::message(row)?, delivery_state(row)?)))
            .collect()
    }

    pub(super) async fn query_message_endpoints(
        &self,
        msg: &MessageId,
        page: &PageQuery,
    ) -> Result<Vec<(Endpoint, DeliveryState)>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {}, {DELIVERY_STATE} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id \
             WHERE d.msg_id = ",
            prefixed(rows::ENDPOINT_COLUMNS, "e")
        ));
        qb.push_bind(msg.as_str().to_owned());
        push_page(&mut qb, "d.endpoint_id", page);
        let found = qb.build().fetch_all(&self.pool).await?;
        found
            .iter()
            .map(|row| Ok((rows::endpoint(row)?, delivery_state(row)?)))
            .collect()
    }
}
