//! What the queries written once (`store::queries`) need to know about the engine they run
//! on: where reads and writes go, and the few things SQLite and PostgreSQL do differently.

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::Result;
use super::sql::{Conn, Sql};
use crate::domain::sealed::SecretsAtRest;

/// A connection of engine `E`.
pub type EngineConn<E> = <<E as Engine>::Db as Database>::Connection;

/// An engine the shared queries run on. [`super::sqlite::SqliteStore`] and
/// [`super::postgres::PgStore`] implement it, and get every store trait but the hot path's
/// ([`super::QueueStore`]) from it.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    type Db: Database<Connection: Conn>;

    /// Where reads go.
    fn reads(&self) -> &Pool<Self::Db>;
    /// Where management writes go, each in a transaction of its own.
    fn writes(&self) -> &Pool<Self::Db>;

    /// Seals and opens the credentials the store keeps (endpoint secrets and headers).
    fn secrets(&self) -> &dyn SecretsAtRest;

    /// Takes, until the transaction ends, the locks that order inserts into these lists
    /// (e.g. `endpoint:<app>`), so that ids drawn under them after the greatest stored one
    /// commit in id order (see [`super`]'s invariants).
    async fn lock_lists(conn: &mut EngineConn<Self>, lists: &[String]) -> Result<()>;

    /// Tells every node that deliveries may have become due, when the transaction commits.
    /// The node that made them due wakes its own dispatcher itself.
    async fn notify_due(conn: &mut EngineConn<Self>) -> Result<()>;

    /// Tries to take, until the transaction ends, the lock that lets one node at a time run
    /// a periodic job (`job` names it, e.g. `payload-expiry`); `false` if another holds it.
    async fn try_lock_job(conn: &mut EngineConn<Self>, job: &str) -> Result<bool>;

    /// Appended to a `SELECT` in a transaction to lock the rows it reads until the
    /// transaction ends, passing over rows another transaction holds.
    const SKIP_LOCKED: &'static str;

    /// Appended to a `SELECT` in a transaction to lock the rows it reads until it ends.
    const FOR_UPDATE: &'static str;

    /// Appended to a `SELECT` in a transaction that will insert rows referring to the rows
    /// it reads: keeps them from being deleted until it ends. On PostgreSQL the hot tables
    /// hold no foreign key to what they refer to (its migration 0024): their writers lock
    /// the rows referred to themselves, and a delete waits for them.
    const KEY_SHARE: &'static str;

    /// Whether a statement that fails (a constraint violated) leaves its transaction unable
    /// to go on (PostgreSQL), so that a caller meaning to go on needs a savepoint; SQLite
    /// undoes the failed statement alone.
    const FAILED_STATEMENT_ABORTS: bool;

    /// Appends a condition: the JSON array stored as text in `column` holds `value`.
    fn push_array_holds(sql: &mut Sql, column: &str, value: &str);
}
