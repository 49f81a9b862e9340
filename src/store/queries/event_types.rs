//! Event types: keyed and listed by name, so no list lock is needed.

use async_trait::async_trait;

use super::changed_one;
use crate::domain::{EventType, EventTypeName, RetryPolicy};
use crate::store::engine::Engine;
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, EVENT_TYPE_COLUMNS, opt_to_json, retry_policy_json};
use crate::store::sql::{Conn, Sql};
use crate::store::{Conflict, EventTypeStore, PageQuery, Result};

#[async_trait]
impl<E: Engine> EventTypeStore for E {
    async fn insert_event_type(&self, et: &EventType) -> Result<()> {
        let insert = event_type_fields(
            Sql::new(
                "INSERT INTO event_type (name, description, archived, deprecated, feature_flags,
                 group_name, schemas, updated_at, validate_payloads, retry_policy, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            ),
            et,
        )
        .bind(et.created_at);
        let mut conn = self.writes().acquire().await?;
        conn.exec(&insert)
            .await
            .map_err(unique_as(Conflict::EventType))?;
        Ok(())
    }

    async fn get_event_type(&self, name: &EventTypeName) -> Result<Option<EventType>> {
        let get = Sql::new(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE name = $1"
        ))
        .bind(name.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::event_type).transpose()
    }

    async fn update_event_type(&self, et: &EventType) -> Result<()> {
        let update = event_type_fields(
            Sql::new(
                "UPDATE event_type SET description = $2, archived = $3, deprecated = $4,
                 feature_flags = $5, group_name = $6, schemas = $7, updated_at = $8,
                 validate_payloads = $9, retry_policy = $10
                 WHERE name = $1",
            ),
            et,
        );
        changed_one(self.writes().acquire().await?.exec(&update).await?)
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<()> {
        let delete = Sql::new("DELETE FROM event_type WHERE name = $1").bind(name.as_str());
        changed_one(self.writes().acquire().await?.exec(&delete).await?)
    }

    async fn event_type_retry_policies(&self) -> Result<Vec<(EventTypeName, RetryPolicy)>> {
        let list = Sql::new(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE retry_policy IS NOT NULL"
        ));
        let found = self.reads().acquire().await?.rows(&list).await?;
        Ok(rows::all(&found, rows::event_type)?
            .into_iter()
            .filter_map(|et| Some((et.name, et.retry_policy?)))
            .collect())
    }

    async fn list_event_types(
        &self,
        page: &PageQuery,
        include_archived: bool,
    ) -> Result<Vec<EventType>> {
        let mut list = Sql::new(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE TRUE"
        ));
        if !include_archived {
            list.push(" AND archived = ").push_bind(false);
        }
        push_page(&mut list, "name", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::event_type)
    }
}

/// Binds `$1 … $10` of an insert or update: the name, then every stored field but the
/// creation time.
fn event_type_fields(sql: Sql, et: &EventType) -> Sql {
    sql.bind(et.name.as_str())
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(opt_to_json(et.feature_flags.as_ref()))
        .bind(et.group_name.as_deref())
        .bind(opt_to_json(et.schemas.as_ref()))
        .bind(et.updated_at)
        .bind(et.validate_payloads)
        .bind(retry_policy_json(et.retry_policy.as_ref()))
}
