//! Event types on PostgreSQL: keyed and listed by name, so no list lock is needed.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{PgStore, micros};
use crate::domain::{EventType, EventTypeName};
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, EVENT_TYPE_COLUMNS, opt_to_json};
use crate::store::{Conflict, EventTypeStore, PageQuery, Result, StoreError};

#[async_trait]
impl EventTypeStore for PgStore {
    async fn insert_event_type(&self, et: &EventType) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_type (name, description, archived, deprecated, feature_flags,
             group_name, schemas, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(et.name.as_str())
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(opt_to_json(et.feature_flags.as_ref()))
        .bind(et.group_name.as_deref())
        .bind(opt_to_json(et.schemas.as_ref()))
        .bind(micros(et.created_at))
        .bind(micros(et.updated_at))
        .execute(&self.pool)
        .await
        .map_err(unique_as(Conflict::EventType))?;
        Ok(())
    }

    async fn get_event_type(&self, name: &EventTypeName) -> Result<Option<EventType>> {
        let sql = format!("SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::event_type).transpose()
    }

    async fn update_event_type(&self, et: &EventType) -> Result<()> {
        let done = sqlx::query(
            "UPDATE event_type SET description = $2, archived = $3, deprecated = $4,
             feature_flags = $5, group_name = $6, schemas = $7, updated_at = $8
             WHERE name = $1",
        )
        .bind(et.name.as_str())
        .bind(&et.description)
        .bind(et.archived)
        .bind(et.deprecated)
        .bind(opt_to_json(et.feature_flags.as_ref()))
        .bind(et.group_name.as_deref())
        .bind(opt_to_json(et.schemas.as_ref()))
        .bind(micros(et.updated_at))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<()> {
        let done = sqlx::query("DELETE FROM event_type WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_event_types(
        &self,
        page: &PageQuery,
        include_archived: bool,
    ) -> Result<Vec<EventType>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {EVENT_TYPE_COLUMNS} FROM event_type WHERE TRUE"
        ));
        if !include_archived {
            qb.push(" AND NOT archived");
        }
        push_page(&mut qb, "name", page);
        let found = qb.build().fetch_all(&self.pool).await?;
        rows::all(&found, rows::event_type)
    }
}
