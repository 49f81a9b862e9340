use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::SqliteStore;
use super::deliveries::park_or_unpark;
use crate::domain::time::{now, to_micros};
use crate::domain::{AppId, Endpoint, EndpointId, EndpointKey, ResourceKey};
use crate::store::error::unique_as;
use crate::store::page::push_page;
use crate::store::rows::{self, ENDPOINT_COLUMNS, opt_to_json, previous_secrets_json, to_json};
use crate::store::{Conflict, EndpointStore, NewEndpoint, PageQuery, Result, StoreError};

#[async_trait]
impl EndpointStore for SqliteStore {
    async fn insert_endpoint(&self, new: NewEndpoint) -> Result<Endpoint> {
        let mut conn = self.writer.acquire().await?;
        let now = now();
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            app_id: new.app_id,
            uid: new.uid,
            url: new.url,
            description: new.description,
            disabled: new.disabled,
            rate_limit: new.rate_limit,
            subscription: new.subscription,
            metadata: new.metadata,
            headers: new.headers,
            secret: new.secret,
            previous_secrets: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let done = sqlx::query(
            "INSERT INTO endpoint (id, app_id, uid, url, description, disabled, rate_limit,
             event_types, channels, metadata, headers, secret, previous_secrets, created_at,
             updated_at)
             SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14
             FROM application WHERE id = $2",
        )
        .bind(endpoint.id.as_str())
        .bind(endpoint.app_id.as_str())
        .bind(endpoint.uid.as_ref().map(|u| u.as_str()))
        .bind(endpoint.url.as_str())
        .bind(&endpoint.description)
        .bind(endpoint.disabled)
        .bind(endpoint.rate_limit.map(i64::from))
        .bind(opt_to_json(endpoint.subscription.event_types.as_ref()))
        .bind(opt_to_json(endpoint.subscription.channels.as_ref()))
        .bind(to_json(&endpoint.metadata))
        .bind(to_json(&endpoint.headers))
        .bind(endpoint.secret.expose())
        .bind(previous_secrets_json(&endpoint.previous_secrets))
        .bind(to_micros(now))
        .execute(&mut *conn)
        .await
        .map_err(unique_as(Conflict::Uid))?;
        // The application was deleted between the caller's lookup and this insert.
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(endpoint)
    }

    async fn get_endpoint(&self, app: &AppId, key: &EndpointKey) -> Result<Option<Endpoint>> {
        let (column, value) = match key {
            ResourceKey::Id(id) => ("id", id.as_str()),
            ResourceKey::Uid(uid) => ("uid", uid.as_str()),
        };
        let sql =
            format!("SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = $1 AND {column} = $2");
        let row = sqlx::query(&sql)
            .bind(app.as_str())
            .bind(value)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::endpoint).transpose()
    }

    async fn update_endpoint(&self, mut endpoint: Endpoint) -> Result<Endpoint> {
        endpoint.updated_at = now();
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE endpoint SET uid = $3, url = $4, description = $5, disabled = $6,
             rate_limit = $7, event_types = $8, channels = $9, metadata = $10, headers = $11,
             secret = $12, previous_secrets = $13, updated_at = $14
             WHERE app_id = $1 AND id = $2",
        )
        .bind(endpoint.app_id.as_str())
        .bind(endpoint.id.as_str())
        .bind(endpoint.uid.as_ref().map(|u| u.as_str()))
        .bind(endpoint.url.as_str())
        .bind(&endpoint.description)
        .bind(endpoint.disabled)
        .bind(endpoint.rate_limit.map(i64::from))
        .bind(opt_to_json(endpoint.subscription.event_types.as_ref()))
        .bind(opt_to_json(endpoint.subscription.channels.as_ref()))
        .bind(to_json(&endpoint.metadata))
        .bind(to_json(&endpoint.headers))
        .bind(endpoint.secret.expose())
        .bind(previous_secrets_json(&endpoint.previous_secrets))
        .bind(to_micros(endpoint.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::Uid))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        park_or_unpark(
            &mut tx,
            &endpoint.id,
            endpoint.disabled,
            endpoint.updated_at,
        )
        .await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()> {
        let done = sqlx::query("DELETE FROM endpoint WHERE app_id = $1 AND id = $2")
            .bind(app.as_str())
            .bind(id.as_str())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_endpoints(&self, app: &AppId, page: &PageQuery) -> Result<Vec<Endpoint>> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE app_id = "
        ));
        qb.push_bind(app.as_str().to_owned());
        push_page(&mut qb, "id", page);
        let found = qb.build().fetch_all(&self.reader).await?;
        rows::all(&found, rows::endpoint)
    }
}
