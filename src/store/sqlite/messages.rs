use async_trait::async_trait;
use sqlx::QueryBuilder;
use tokio::sync::oneshot;

use super::SqliteStore;
use super::rows::{self, MESSAGE_COLUMNS};
use super::writer::EnqueueJob;
use crate::domain::time::to_micros;
use crate::domain::{AppId, Message, MessageId, MessageKey};
use crate::store::{MessageFilter, MessageStore, NewMessage, PageQuery, Result, StoreError};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn enqueue_message(&self, new: NewMessage) -> Result<Message> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.enqueue
            .send(EnqueueJob { new, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
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
            .fetch_optional(&self.reader)
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
        if let Some(types) = &filter.event_types {
            qb.push(" AND event_type IN (");
            let mut names = qb.separated(", ");
            for name in types {
                names.push_bind(name.as_str().to_owned());
            }
            qb.push(")");
        }
        if let Some(channel) = &filter.channel {
            qb.push(" AND EXISTS (SELECT 1 FROM json_each(message.channels) WHERE value = ")
                .push_bind(channel.as_str().to_owned())
                .push(")");
        }
        if let Some(before) = filter.before {
            qb.push(" AND created_at < ").push_bind(to_micros(before));
        }
        if let Some(after) = filter.after {
            qb.push(" AND created_at > ").push_bind(to_micros(after));
        }
        rows::push_page(&mut qb, "id", page);
        let found = qb.build().fetch_all(&self.reader).await?;
        rows::all(&found, rows::message)
    }

    async fn expunge_message_content(&self, app: &AppId, id: &MessageId) -> Result<()> {
        let done = sqlx::query("UPDATE message SET payload = NULL WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
