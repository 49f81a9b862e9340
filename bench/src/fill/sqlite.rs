//! Filling hookd's SQLite file: prepared inserts in one transaction per call, foreign keys
//! checked, no fsync until the end (hookd is stopped, and a fill cut short is started over).

use std::path::Path;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params_from_iter};

use super::{Rows, Template};

pub(super) fn open(path: &Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(path.exists(), "no SQLite store at {}", path.display());
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;",
    )?;
    Ok(conn)
}

pub fn read_row(
    path: &Path,
    table: &'static str,
    keys: &[(&str, &str)],
) -> anyhow::Result<Template> {
    let conn = open(path)?;
    let filter: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ?{}", i + 1))
        .collect();
    let sql = format!("SELECT * FROM {table} WHERE {}", filter.join(" AND "));
    let mut select = conn.prepare(&sql)?;
    let columns: Vec<String> = select
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut rows = select.query(params_from_iter(keys.iter().map(|(_, v)| *v)))?;
    let row = rows
        .next()?
        .ok_or_else(|| anyhow::anyhow!("no {table} row where {keys:?}"))?;
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => None,
            ValueRef::Integer(n) => Some(n.to_string()),
            ValueRef::Real(x) => Some(x.to_string()),
            ValueRef::Text(t) => Some(String::from_utf8(t.to_vec())?),
            ValueRef::Blob(_) => anyhow::bail!("{table}.{column} is a blob"),
        });
    }
    Ok(Template {
        table,
        columns,
        values,
    })
}

pub fn write(conn: &mut Connection, tables: &[Rows<'_>]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for rows in tables {
        let t = rows.template;
        let set = rows
            .set
            .iter()
            .map(|c| t.index_of(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let marks: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.table,
            t.columns.join(", "),
            marks.join(", ")
        );
        let mut insert = tx.prepare(&sql)?;
        for row in &rows.rows {
            // Text into INTEGER columns is stored as an integer (column affinity), as hookd
            // would have stored it.
            let values = t.merge(&set, row).into_iter().map(|v| match v {
                None => Value::Null,
                Some(text) => Value::Text(text.to_owned()),
            });
            insert.execute(params_from_iter(values))?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn settle(path: &Path) -> anyhow::Result<u64> {
    let conn = open(path)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no directory", path.display()))?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("hookd.db") {
            bytes += entry.metadata()?.len();
        }
    }
    Ok(bytes)
}

pub fn query_int(path: &Path, sql: &str) -> anyhow::Result<i64> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn.query_row(sql, [], |row| row.get(0))?)
}
