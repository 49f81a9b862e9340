//! Applications. Inserts take the global `application` list lock and draw the id after the
//! greatest stored one, so ids are in commit order. The operational application
//! (`OPERATIONAL_APP_UID`) and those of ingest sources (`INGEST_APP_UID_PREFIX`) are stored
//! like any other but never listed.

use async_trait::async_trait;

use super::operational::{endpoint_ref, write_events};
use super::{changed_one, greatest_id, key_column};
use crate::domain::events::{EndpointRef, OPERATIONAL_APP_UID, OperationalEvent};
use crate::domain::ingest::INGEST_APP_UID_PREFIX;
use crate::domain::time::now;
use crate::domain::{AppId, AppKey, Application, EndpointId, Uid};
use crate::store::engine::Engine;
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, APPLICATION_COLUMNS, StoredRow, to_json};
use crate::store::sql::{Conn, Sql};
use crate::store::{ApplicationStore, Conflict, NewApplication, PageQuery, Result};

#[async_trait]
impl<E: Engine> ApplicationStore for E {
    async fn insert_application(&self, new: NewApplication) -> Result<Application> {
        let mut tx = self.writes().begin().await?;
        E::lock_lists(&mut tx, &["application".to_owned()]).await?;
        let last = greatest_id(&mut *tx, Sql::new("SELECT max(id) AS id FROM application")).await?;
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
        let insert = Sql::new(
            "INSERT INTO application (id, uid, name, rate_limit, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_ref().map(|u| u.as_str()))
        .bind(&app.name)
        .bind(app.rate_limit.map(i64::from))
        .bind(to_json(&app.metadata))
        .bind(now);
        tx.exec(&insert).await.map_err(unique_as(Conflict::Uid))?;
        tx.commit().await?;
        Ok(app)
    }

    async fn get_application(&self, key: &AppKey) -> Result<Option<Application>> {
        let (column, value) = key_column(key);
        let get = Sql::new(format!(
            "SELECT {APPLICATION_COLUMNS} FROM application WHERE {column} = $1"
        ))
        .bind(value);
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::application).transpose()
    }

    async fn update_application(&self, mut app: Application) -> Result<Application> {
        app.updated_at = now();
        let update = Sql::new(
            "UPDATE application SET uid = $2, name = $3, rate_limit = $4, metadata = $5,
             updated_at = $6 WHERE id = $1",
        )
        .bind(app.id.as_str())
        .bind(app.uid.as_ref().map(|u| u.as_str()))
        .bind(&app.name)
        .bind(app.rate_limit.map(i64::from))
        .bind(to_json(&app.metadata))
        .bind(app.updated_at);
        let mut conn = self.writes().acquire().await?;
        changed_one(conn.exec(&update).await.map_err(unique_as(Conflict::Uid))?)?;
        Ok(app)
    }

    async fn delete_application(&self, id: &AppId) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        // Its endpoints go with it: each is reported deleted.
        let endpoints = Sql::new("SELECT id, uid FROM endpoint WHERE app_id = $1 ORDER BY id")
            .bind(id.as_str());
        let mut events = Vec::new();
        let rows = tx.rows(&endpoints).await?;
        if let Some(first) = rows.first() {
            let first = EndpointId::from_stored(first.text("id")?);
            // `None`: the operational application, whose endpoints report nothing.
            if let Some(about) = endpoint_ref(&mut *tx, id, &first, None).await? {
                for row in &rows {
                    events.push(OperationalEvent::EndpointDeleted(EndpointRef {
                        endpoint_id: EndpointId::from_stored(row.text("id")?),
                        endpoint_uid: row.opt_text("uid")?.map(Uid::from_stored),
                        ..about.clone()
                    }));
                }
            }
        }
        write_events(&mut *tx, &events).await?;
        // The token buckets of the application and its endpoints (`throttleRate`).
        let buckets = Sql::new(
            "DELETE FROM throttle WHERE key = 'application:' || $1
             OR key IN (SELECT 'endpoint:' || id FROM endpoint WHERE app_id = $1)",
        )
        .bind(id.as_str());
        tx.exec(&buckets).await?;
        let delete = Sql::new("DELETE FROM application WHERE id = $1").bind(id.as_str());
        changed_one(tx.exec(&delete).await?)?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_applications(&self, page: &PageQuery) -> Result<Vec<Application>> {
        let mut list = Sql::new(format!(
            "SELECT {APPLICATION_COLUMNS} FROM application
             WHERE (uid IS NULL OR (uid <> $1 AND uid NOT LIKE $2))"
        ))
        .bind(OPERATIONAL_APP_UID)
        .bind(format!("{INGEST_APP_UID_PREFIX}%"));
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::application)
    }
}
