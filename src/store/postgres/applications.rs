//! Applications on PostgreSQL. Inserts take the global `application` list lock and draw the
//! id after the greatest stored one, so ids are in commit order across nodes.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{PgStore, lock_list, micros};
use crate::domain::time::now;
use crate::domain::{AppId, AppKey, Application, ResourceKey};
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, APPLICATION_COLUMNS, to_json};
use crate::store::{ApplicationStore, Conflict, NewApplication, PageQuery, Result, StoreError};

#[async_trait]
impl ApplicationStore for PgStore {
    async fn insert_application(&self, new: NewApplication) -> Result<Application> {
        let mut tx = self.pool.begin().await?;
        // The id is drawn under the list's lock, after the greatest one: id order is commit
        // order on every node.
        lock_list(&mut tx, "application").await?;
        let last: Option<String> = sqlx::query_scalar("SELECT max(id) FROM application")
            .fetch_one(&mut *tx)
            .await?;
        let now = now();
        let app = Application {
            id: AppId::generate_after(last.as_deref()),
            uid: new.uid,
            name: new.name,
            rate_limit: new.rate_limit,
            metadata: new.metadata,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_ref().map(|u| u.as_str()))
        .bind(&app.name)
        .bind(app.rate_limit.map(i32::from))
        .bind(to_json(&app.metadata))
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::Uid))?;
        tx.commit().await?;
        Ok(app)
    }

    async fn get_application(&self, key: &AppKey) -> Result<Option<Application>> {
        let (column, value) = match key {
            ResourceKey::Id(id) => ("id", id.as_str()),
            ResourceKey::Uid(uid) => ("uid", uid.as_str()),
        };
        let sql = format!("SELECT {APPLICATION_COLUMNS} FROM application WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn update_application(&self, mut app: Application) -> Result<Application> {
        app.updated_at = now();
        let done = sqlx::query(
            "UPDATE application SET uid = $2, name = $3, rate_limit = $4, metadata = $5,
             updated_at = $6 WHERE id = $1",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_ref().map(|u| u.as_str()))
        .bind(&app.name)
        .bind(app.rate_limit.map(i32::from))
        .bind(to_json(&app.metadata))
        .bind(micros(app.updated_at))
        .execute(&self.pool)
        .await
        .map_err(unique_as(Conflict::Uid))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(app)
    }

    async fn delete_application(&self, id: &AppId) -> Result<()> {
        let done = sqlx::query("DELETE FROM application WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_applications(&self, page: &PageQuery) -> Result<Vec<Application>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {APPLICATION_COLUMNS} FROM application WHERE TRUE"
        ));
        push_page(&mut qb, "id", page);
        let found = qb.build().fetch_all(&self.pool).await?;
        rows::all(&found, rows::application)
    }
}
