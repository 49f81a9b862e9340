//! Reading messages. Accepting them is the hot path, in each engine's [`QueueStore`].
//!
//! [`QueueStore`]: crate::store::QueueStore

use async_trait::async_trait;

use super::{changed_one, push_message_filter};
use crate::domain::{AppId, Message, MessageId, MessageKey};
use crate::store::engine::Engine;
use crate::store::page::push_page;
use crate::store::rows::{self, MESSAGE_COLUMNS};
use crate::store::sql::{Conn, Sql};
use crate::store::{MessageFilter, MessageStore, PageQuery, Result};

#[async_trait]
impl<E: Engine> MessageStore for E {
    async fn get_message(&self, app: &AppId, key: &MessageKey) -> Result<Option<Message>> {
        let (column, value) = match key {
            MessageKey::Id(id) => ("id", id.as_str()),
            MessageKey::EventId(event_id) => ("event_id", event_id.as_str()),
        };
        let get = Sql::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = $1 AND {column} = $2"
        ))
        .bind(app.as_str())
        .bind(value);
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::message).transpose()
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageQuery,
    ) -> Result<Vec<Message>> {
        let mut list = Sql::new(format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE app_id = "
        ));
        list.push_bind(app.as_str());
        push_message_filter::<E>(&mut list, filter, "message");
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::message)
    }

    async fn expunge_message_content(&self, app: &AppId, id: &MessageId) -> Result<()> {
        let expunge = Sql::new("UPDATE message SET payload = NULL WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_str());
        changed_one(self.writes().acquire().await?.exec(&expunge).await?)
    }
}
