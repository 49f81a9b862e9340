//! API tokens: stored by the SHA-256 of the token, never the token. Each token's rate-limit
//! window lives in its row (`window_start`, `window_count`), where every node adds the
//! requests it counted (`sync_token_usage`, once a second per node), so the limit holds
//! for all nodes together.

use async_trait::async_trait;

use crate::domain::time::to_micros;
use crate::domain::{ApiToken, AppId, Timestamp, TokenId};
use crate::store::engine::Engine;
use crate::store::page::push_page;
use crate::store::rows::{self, StoredRow, TOKEN_COLUMNS};
use crate::store::sql::{Conn, Sql};
use crate::store::{NewToken, PageQuery, Result, TokenState, TokenStore, TokenUse};

#[async_trait]
impl<E: Engine> TokenStore for E {
    async fn insert_token(&self, new: NewToken) -> Result<ApiToken> {
        let token = ApiToken {
            id: TokenId::generate(),
            name: new.name,
            kind: new.kind,
            abilities: new.abilities,
            app_id: new.app_id,
            session_id: new.session_id,
            rate_limit: new.rate_limit,
            hint: new.hint,
            expires_at: new.expires_at,
            last_used_at: None,
            created_at: crate::domain::time::now(),
        };
        let insert = Sql::new(
            "INSERT INTO api_token (id, token_hash, name, kind, abilities, app_id, session_id,
             rate_limit, hint, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(token.id.as_str())
        .bind(new.token_hash)
        .bind(&token.name)
        .bind(token.kind.to_stored())
        .bind(token.abilities.to_stored())
        .bind(token.app_id.as_ref().map(AppId::as_str))
        .bind(token.session_id.as_deref())
        .bind(token.rate_limit.map(i64::from))
        .bind(&token.hint)
        .bind(token.expires_at)
        .bind(token.created_at);
        self.writes().acquire().await?.exec(&insert).await?;
        Ok(token)
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<(ApiToken, TokenState)>> {
        let find = Sql::new(format!(
            "SELECT {TOKEN_COLUMNS}, window_start, window_count FROM api_token
             WHERE token_hash = $1"
        ))
        .bind(token_hash);
        let Some(row) = self.reads().acquire().await?.row(&find).await? else {
            return Ok(None);
        };
        Ok(Some((rows::api_token(&row)?, rows::token_state(&row)?)))
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<ApiToken>> {
        let get = Sql::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_token WHERE id = $1"
        ))
        .bind(id.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::api_token).transpose()
    }

    async fn list_tokens(&self, page: &PageQuery) -> Result<Vec<ApiToken>> {
        let mut list = Sql::new(format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE 1 = 1"));
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::api_token)
    }

    async fn delete_token(&self, id: &TokenId) -> Result<bool> {
        let delete = Sql::new("DELETE FROM api_token WHERE id = $1").bind(id.as_str());
        Ok(self.writes().acquire().await?.exec(&delete).await? > 0)
    }

    async fn expire_app_tokens(
        &self,
        app: &AppId,
        at: Timestamp,
        sessions: &[String],
    ) -> Result<Vec<TokenId>> {
        let at = to_micros(at);
        let mut select = Sql::new(
            "SELECT id FROM api_token WHERE app_id = $1
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(app.as_str())
        .bind(at);
        if !sessions.is_empty() {
            select
                .push(" AND session_id IN (")
                .push_list(sessions.iter().map(String::as_str))
                .push(")");
        }
        let mut tx = self.writes().begin().await?;
        let ids = tx
            .rows(&select)
            .await?
            .iter()
            .map(|row| row.text("id").map(TokenId::from_stored))
            .collect::<Result<Vec<_>>>()?;
        if !ids.is_empty() {
            let mut expire =
                Sql::new("UPDATE api_token SET expires_at = $1 WHERE id IN (").bind(at);
            expire.push_list(ids.iter().map(TokenId::as_str)).push(")");
            tx.exec(&expire).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn sync_token_usage(&self, uses: &[TokenUse]) -> Result<Vec<TokenState>> {
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        let used: Vec<&TokenUse> = uses.iter().filter(|u| u.count > 0).collect();
        let mut select = Sql::new(
            "SELECT id, expires_at, window_start, window_count FROM api_token WHERE id IN (",
        );
        select
            .push_list(uses.iter().map(|u| u.id.as_str()))
            .push(")");
        let found = if used.is_empty() {
            self.reads().acquire().await?.rows(&select).await?
        } else {
            let mut tx = self.writes().begin().await?;
            for u in used {
                // A window later than ours (a node whose clock is ahead moved on) keeps its
                // count: ours belongs to a window that is over.
                let add = Sql::new(
                    "UPDATE api_token SET
                     window_count = CASE WHEN window_start = $2 THEN window_count + $3
                                         WHEN window_start < $2 THEN $3
                                         ELSE window_count END,
                     window_start = CASE WHEN window_start < $2 THEN $2 ELSE window_start END,
                     last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $4 THEN $4
                                         ELSE last_used_at END
                     WHERE id = $1",
                )
                .bind(u.id.as_str())
                .bind(u.window_start)
                .bind(i64::try_from(u.count).unwrap_or(i64::MAX))
                .bind(u.last_used_at);
                tx.exec(&add).await?;
            }
            let found = tx.rows(&select).await?;
            tx.commit().await?;
            found
        };
        rows::all(&found, rows::token_state)
    }

    async fn prune_expired_tokens(&self, before: Timestamp) -> Result<u64> {
        let prune = Sql::new("DELETE FROM api_token WHERE expires_at < $1").bind(before);
        Ok(self.writes().acquire().await?.exec(&prune).await?)
    }
}
