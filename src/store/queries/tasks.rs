//! Background tasks: created by the API, run step by step by whichever node holds their
//! lease (see [`TaskStore`]).

use async_trait::async_trait;

use crate::domain::time::now;
use crate::domain::{AppId, BackgroundTask, TaskId, TaskKind, TaskStatus, Timestamp};
use crate::store::engine::Engine;
use crate::store::page::push_page;
use crate::store::rows::{self, TASK_COLUMNS, to_json};
use crate::store::sql::{Conn, Sql};
use crate::store::{PageQuery, Result, TaskFilter, TaskStore};

#[async_trait]
impl<E: Engine> TaskStore for E {
    async fn insert_task(
        &self,
        kind: TaskKind,
        app: Option<&AppId>,
        data: serde_json::Map<String, serde_json::Value>,
        cursor: Option<String>,
    ) -> Result<BackgroundTask> {
        let created = now();
        let task = BackgroundTask {
            id: TaskId::generate(),
            kind,
            status: TaskStatus::Running,
            app_id: app.cloned(),
            data,
            cursor,
            lease_until: crate::domain::time::from_micros(0),
            created_at: created,
            updated_at: created,
        };
        let insert = Sql::new(format!(
            "INSERT INTO background_task ({TASK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        ))
        .bind(task.id.as_str())
        .bind(kind.as_str())
        .bind(task.status.code())
        .bind(task.app_id.as_ref().map(|a| a.as_str()))
        .bind(to_json(&task.data))
        .bind(task.cursor.clone())
        .bind(task.lease_until)
        .bind(created);
        self.writes().acquire().await?.exec(&insert).await?;
        Ok(task)
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<BackgroundTask>> {
        let get = Sql::new(format!(
            "SELECT {TASK_COLUMNS} FROM background_task WHERE id = $1"
        ))
        .bind(id.as_str());
        let row = self.reads().acquire().await?.row(&get).await?;
        row.as_ref().map(rows::task).transpose()
    }

    async fn list_tasks(
        &self,
        filter: &TaskFilter,
        page: &PageQuery,
    ) -> Result<Vec<BackgroundTask>> {
        let mut list = Sql::new(format!(
            "SELECT {TASK_COLUMNS} FROM background_task WHERE TRUE"
        ));
        if let Some(status) = filter.status {
            list.push(" AND status = ").push_bind(status.code());
        }
        if let Some(kind) = filter.kind {
            list.push(" AND kind = ").push_bind(kind.as_str());
        }
        push_page(&mut list, "id", page);
        let found = self.reads().acquire().await?.rows(&list).await?;
        rows::all(&found, rows::task)
    }

    /// The oldest runnable task is locked while its lease is set (on PostgreSQL, nodes
    /// claiming at once pass over each other's), so one node runs a given task.
    async fn claim_task(&self, now: Timestamp, lease: Timestamp) -> Result<Option<BackgroundTask>> {
        let mut tx = self.writes().begin().await?;
        let next = Sql::new(format!(
            "SELECT {TASK_COLUMNS} FROM background_task
             WHERE status = 0 AND lease_until <= $1
             ORDER BY lease_until LIMIT 1{}",
            E::SKIP_LOCKED
        ))
        .bind(now);
        let Some(row) = tx.row(&next).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let mut task = rows::task(&row)?;
        let take = Sql::new("UPDATE background_task SET lease_until = $2 WHERE id = $1")
            .bind(task.id.as_str())
            .bind(lease);
        tx.exec(&take).await?;
        tx.commit().await?;
        task.lease_until = lease;
        Ok(Some(task))
    }

    async fn save_task(&self, task: &BackgroundTask, held: Timestamp) -> Result<bool> {
        let save = Sql::new(
            "UPDATE background_task
             SET status = $3, data = $4, cursor = $5, lease_until = $6, updated_at = $7
             WHERE id = $1 AND lease_until = $2",
        )
        .bind(task.id.as_str())
        .bind(held)
        .bind(task.status.code())
        .bind(to_json(&task.data))
        .bind(task.cursor.clone())
        .bind(task.lease_until)
        .bind(task.updated_at);
        Ok(self.writes().acquire().await?.exec(&save).await? == 1)
    }

    async fn prune_tasks(&self, before: Timestamp) -> Result<u64> {
        let prune = Sql::new("DELETE FROM background_task WHERE status <> 0 AND updated_at < $1")
            .bind(before);
        Ok(self.writes().acquire().await?.exec(&prune).await?)
    }
}
