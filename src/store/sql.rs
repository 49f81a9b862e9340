//! Statements written once and run on either engine: SQL text with `$1 … $n` parameters and
//! the values bound to them ([`Sql`]), and the three ways of running one on a connection
//! ([`Conn`]), for SQLite's and PostgreSQL's sqlx connections alike.
//!
//! The queries in `store::queries` build a [`Sql`] and hand it to a [`Conn`]; nothing in them
//! names an engine. The values are few kinds on purpose (text, integer, flag, bytes): the
//! two schemas store everything as one of these (see `store::rows`), and a value bound as
//! one of them means the same on both engines.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::rows::StoredRow;
use crate::domain::Timestamp;
use crate::domain::time::to_micros;

/// A value bound to a statement's parameter. `None` binds a typed NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}

/// Times are stored as integer microseconds since the epoch.
impl From<Timestamp> for Arg {
    fn from(v: Timestamp) -> Self {
        Arg::Int(Some(to_micros(v)))
    }
}

impl From<Option<Timestamp>> for Arg {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::Int(v.map(to_micros))
    }
}

/// One statement: its text and its parameters' values, in order.
///
/// Fixed statements number their parameters in the text and [`bind`](Sql::bind) the values
/// in that order; statements built piece by piece [`push`](Sql::push) text and
/// [`push_bind`](Sql::push_bind) values, which writes the next `$n` for them.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next parameter the text already names (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a parameter for `value` (`$n`, numbered after those bound so far).
    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `$a, $b, …`, one parameter per value (at least one value: `IN ()` is no SQL).
    pub fn push_list<V: Into<Arg>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.push_bind(value);
        }
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Arg] {
        &self.args
    }
}

/// A connection a [`Sql`] statement runs on: SQLite's or PostgreSQL's, pooled or inside a
/// transaction (both dereference to the connection). Errors stay sqlx's, so a caller can
/// still tell a unique violation (`store::error::unique_as`) before they become
/// [`super::StoreError`]s.
#[async_trait]
pub trait Conn: Send {
    type Row: StoredRow + Send + Sync;
    /// Runs the statement; returns how many rows it changed.
    async fn exec(&mut self, sql: &Sql) -> Result<u64, sqlx::Error>;
    async fn rows(&mut self, sql: &Sql) -> Result<Vec<Self::Row>, sqlx::Error>;
    async fn row(&mut self, sql: &Sql) -> Result<Option<Self::Row>, sqlx::Error>;
}

/// The same three methods for each engine's connection. A macro rather than one generic
/// impl: sqlx's executor bounds would have to be restated at every generic call site.
macro_rules! conn_for {
    ($connection:ty, $database:ty, $row:ty) => {
        #[async_trait]
        impl Conn for $connection {
            type Row = $row;

            async fn exec(&mut self, sql: &Sql) -> Result<u64, sqlx::Error> {
                let done = bound::<$database>(sql).execute(&mut *self).await?;
                Ok(done.rows_affected())
            }

            async fn rows(&mut self, sql: &Sql) -> Result<Vec<Self::Row>, sqlx::Error> {
                bound::<$database>(sql).fetch_all(&mut *self).await
            }

            async fn row(&mut self, sql: &Sql) -> Result<Option<Self::Row>, sqlx::Error> {
                bound::<$database>(sql).fetch_optional(&mut *self).await
            }
        }
    };
}

conn_for!(SqliteConnection, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
conn_for!(PgConnection, sqlx::Postgres, sqlx::postgres::PgRow);

/// `sql` as a sqlx query with its values bound.
fn bound<DB>(sql: &Sql) -> sqlx::query::Query<'_, DB, <DB as sqlx::Database>::Arguments<'_>>
where
    DB: sqlx::Database,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query(sql.text());
    for arg in sql.args() {
        query = match arg {
            Arg::Text(v) => query.bind(v.as_deref()),
            Arg::Int(v) => query.bind(*v),
            Arg::Bool(v) => query.bind(*v),
            Arg::Bytes(v) => query.bind(v.as_slice()),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_parameters_are_numbered_after_those_bound() {
        let mut sql = Sql::new("SELECT 1 WHERE a = $1").bind("x");
        sql.push(" AND b IN (").push_list([1_i64, 2]).push(")");
        sql.push(" AND c = ").push_bind(true);
        assert_eq!(
            sql.text(),
            "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND c = $4"
        );
        assert_eq!(
            sql.args(),
            [
                Arg::from("x"),
                Arg::Int(Some(1)),
                Arg::Int(Some(2)),
                Arg::Bool(true)
            ]
        );
    }
}
