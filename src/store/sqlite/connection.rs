//! The write batches' own connection: a `rusqlite::Connection`, used only by the writer
//! thread (`writer`).
//!
//! It opens the database file the sqlx pools use, once they have migrated it, with the same
//! pragmas except `synchronous`: the writer makes its commits durable itself. Its rows
//! decode with the shared decoders of [`crate::store::rows`], through [`StoredRow`].

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, WAL_AUTOCHECKPOINT_PAGES};
use crate::store::Result;
use crate::store::rows::StoredRow;

/// Distinct statements the batch prepares; the cache keeps them all, so each is compiled
/// once per connection rather than once per batch.
const STATEMENT_CACHE: usize = 32;

/// Opens the (existing, migrated) database at `path` for the writer thread.
pub(super) fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!("SQLite refused WAL mode (journal_mode is {mode})");
    }
    // Its commits do not wait for the disk: the writer's sync thread fsyncs the WAL before
    // anyone hears of them (see `writer`). Checkpoints still sync as they must.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Whether the statement broke a unique constraint (or a primary key), as sqlx tells it.
pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl StoredRow for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.get(column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.get(column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.get(column)?)
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.get(column)?)
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(column)?)
    }
}
