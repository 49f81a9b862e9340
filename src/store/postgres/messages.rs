//! Messages on PostgreSQL: reads here; accepting them goes through the batching writer
//! ([`super::ingest`]).

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{PgStore, sql};
use crate::domain::{AppId, Message, MessageId, MessageKey};
use crate::store::page::push_page;
use crate::store::rows::{self, MESSAGE_COLUMNS};
use crate::store::{
    Enqueued, MessageFilter, MessageStore, NewMessage, PageQuery, Result, StoreError,
};

#[async_trait]
impl MessageStore for PgStore {
    async fn enqueue_message(&self, new: NewMessage) -> Result<Enqueued> {
        self.ingest.submit(new).await
    }

    async fn get_message(&self, app: &AppId, key: &MessageKey) -> Result<Option<Message>> {
        let (column, value) = match key {
            MessageKey::Id(id) => ("id", id.as_str()),
            MessageKey::EventId(event_id) => ("event_id", event_id.as_str()),
        };
        let sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = $1 AND {column} = $2");
        let row = sqlx::query(&sql)
            .bind(app.as_str())
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::message).transpose()
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<Message>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        sql::push_message_filter(&mut qb, filter, "message");
        push_page(&mut qb, "id", page);
        let found = qb.build().fetch_all(&self.pool).await?;
        rows::all(&found, rows::message)
    }

    async fn expunge_message_content(&self, app: &AppId, id: &MessageId) -> Result<()> {
        let done = sqlx::query("UPDATE message SET payload = NULL WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
