//! Reading the attempt log and delivery states on PostgreSQL.

use sqlx::Postgres;

use super::PgStore;
use super::sql;
use crate::domain::{
    AppId, Attempt, AttemptId, DeliveryStatus, Endpoint, EndpointId, Message, MessageId,
};
use crate::store::log_queries;
use crate::store::rows::{self, ATTEMPT_COLUMNS, delivery_state};
use crate::store::{AttemptFilter, DeliveryState, MessageFilter, PageQuery, Result};

impl PgStore {
    pub(super) async fn query_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageQuery,
    ) -> Result<Vec<Attempt>> {
        let mut qb = log_queries::attempts::<Postgres>(app, filter, page);
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
        let mut qb = log_queries::endpoint_messages::<Postgres>(endpoint, status, page, |qb| {
            sql::push_message_filter(qb, filter, "m")
        });
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
        let mut qb = log_queries::message_endpoints::<Postgres>(msg, page);
        let found = qb.build().fetch_all(&self.pool).await?;
        found
            .iter()
            .map(|row| Ok((rows::endpoint(row)?, delivery_state(row)?)))
            .collect()
    }
}
