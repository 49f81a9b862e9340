//! Fills hookd's own tables directly with SQL, to measure hookd on a store that already holds
//! millions of rows without sending them through the API first.
//!
//! The rows are copies of rows hookd itself wrote: a scenario creates an application, an
//! endpoint and a message through the API, waits for the message's attempt, stops hookd,
//! reads those rows back ([`Templates::read`]) and writes copies of them with new ids (in
//! hookd's format: prefix and ULID), past timestamps, payloads and links. Every column the
//! copies do not set keeps the value hookd gave it, so a filled row is one hookd could have
//! written, and columns added by later migrations are carried along without changes here.
//!
//! SQLite: one connection, `synchronous = OFF`, foreign keys checked, one transaction per
//! chunk of rows. PostgreSQL: `COPY … FROM STDIN` through `psql`, one per table and chunk.
//! Either way hookd is stopped while its store is filled.

mod postgres;
pub mod shapes;
mod sqlite;

use std::path::PathBuf;

/// Where a stopped hookd keeps its store.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// The SQLite file (`hookd.db` in its data directory).
    Sqlite(PathBuf),
    /// The PostgreSQL database's URL.
    Postgres(String),
}

/// Rows given to one table: the columns set (the others keep the template's values) and,
/// per row, their values (`None`: NULL).
pub struct Rows<'t> {
    pub template: &'t Template,
    pub set: Vec<&'static str>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// One row hookd wrote, every column as text (`None`: NULL), in the table's column order.
#[derive(Debug, Clone)]
pub struct Template {
    pub table: &'static str,
    pub columns: Vec<String>,
    pub values: Vec<Option<String>>,
}

impl Template {
    /// The column list and, for a row, the values to write: the template's, with `set`
    /// columns taking `row`'s.
    fn merge<'a>(&'a self, set: &[usize], row: &'a [Option<String>]) -> Vec<Option<&'a str>> {
        let mut values: Vec<Option<&str>> = self.values.iter().map(|v| v.as_deref()).collect();
        for (i, &column) in set.iter().enumerate() {
            values[column] = row[i].as_deref();
        }
        values
    }

    fn value(&self, column: &str) -> anyhow::Result<Option<&str>> {
        Ok(self.values[self.index_of(column)?].as_deref())
    }

    fn index_of(&self, column: &str) -> anyhow::Result<usize> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| anyhow::anyhow!("{} has no column {column}", self.table))
    }

    /// Without a column: the generated keys (`delivery.id`) the store assigns itself.
    fn without(mut self, column: &str) -> Self {
        if let Some(i) = self.columns.iter().position(|c| c == column) {
            self.columns.remove(i);
            self.values.remove(i);
        }
        self
    }
}

/// The rows a scenario copies from.
#[derive(Debug, Clone)]
pub struct Templates {
    pub application: Template,
    pub endpoint: Template,
    pub message: Template,
    /// Without its `id`, which the store numbers.
    pub delivery: Template,
    pub attempt: Template,
}

/// What identifies the rows to copy: a delivered message of `app`'s endpoint.
pub struct Originals<'a> {
    pub app_id: &'a str,
    pub endpoint_id: &'a str,
    pub msg_id: &'a str,
}

impl Templates {
    pub fn read(store: &StoreAt, o: &Originals<'_>) -> anyhow::Result<Self> {
        let read = |table: &'static str, keys: &[(&str, &str)]| match store {
            StoreAt::Sqlite(path) => sqlite::read_row(path, table, keys),
            StoreAt::Postgres(url) => postgres::read_row(url, table, keys),
        };
        let delivery = [("msg_id", o.msg_id), ("endpoint_id", o.endpoint_id)];
        let templates = Self {
            application: read("application", &[("id", o.app_id)])?,
            endpoint: read("endpoint", &[("id", o.endpoint_id)])?,
            message: read("message", &[("id", o.msg_id)])?,
            delivery: read("delivery", &delivery)?.without("id"),
            attempt: read("attempt", &delivery)?,
        };
        for (row, column) in [
            (&templates.endpoint, "app_id"),
            (&templates.message, "app_id"),
            (&templates.application, "id"),
        ] {
            anyhow::ensure!(
                row.value(column)? == Some(o.app_id),
                "the template {} is not of application {}",
                row.table,
                o.app_id
            );
        }
        Ok(templates)
    }
}

/// Writes chunks of rows into one store, each chunk's tables in order, in one transaction
/// (SQLite) or one COPY per table (PostgreSQL): rows that others refer to come in an
/// earlier table. SQLite's connection, and so its page cache, is kept from chunk to chunk.
pub struct Writer {
    store: StoreAt,
    sqlite: Option<rusqlite::Connection>,
}

impl Writer {
    pub fn open(store: &StoreAt) -> anyhow::Result<Self> {
        let sqlite = match store {
            StoreAt::Sqlite(path) => Some(sqlite::open(path)?),
            StoreAt::Postgres(_) => None,
        };
        Ok(Self {
            store: store.clone(),
            sqlite,
        })
    }

    pub fn write(&mut self, tables: &[Rows<'_>]) -> anyhow::Result<()> {
        match (&mut self.sqlite, &self.store) {
            (Some(conn), _) => sqlite::write(conn, tables),
            (None, StoreAt::Postgres(url)) => postgres::write(url, tables),
            (None, StoreAt::Sqlite(path)) => {
                anyhow::bail!("no connection to {}", path.display())
            }
        }
    }
}

/// After a fill: brings the store to the state it would settle in (statistics gathered,
/// the WAL folded in) and returns its size on disk in bytes.
///
/// Then writes the operating system's dirty pages to disk (`sync`): a fill leaves up to
/// gigabytes of them, and the kernel writing them back under hookd's first fsyncs made the
/// first second of a scenario a stall of hundreds of milliseconds that was the filler's,
/// not hookd's.
pub fn settle(store: &StoreAt) -> anyhow::Result<u64> {
    let bytes = match store {
        StoreAt::Sqlite(path) => sqlite::settle(path),
        StoreAt::Postgres(url) => postgres::settle(url),
    }?;
    let synced = std::process::Command::new("sync").status()?;
    anyhow::ensure!(synced.success(), "sync failed: {synced}");
    Ok(bytes)
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Ids in hookd's format (`msg_` and a ULID), made at given times: the 48-bit time in
/// milliseconds, then a salt drawn once per generator and a counter, so ids of one fill sort
/// in the order they are made and never meet another fill's.
pub struct Ids {
    salt: u128,
    counter: u128,
}

impl Ids {
    pub fn new() -> Self {
        // Not cryptographic: only distinct from other fills of the same store.
        let salt = u128::from(crate::now_micros()) ^ (u128::from(std::process::id()) << 20);
        Self {
            salt: (salt & 0xFF_FFFF_FFFF) << 40,
            counter: 0,
        }
    }

    pub fn next(&mut self, prefix: &str, micros: i64) -> String {
        self.counter += 1;
        let ms = u128::try_from(micros / 1000).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        let random = self.salt | (self.counter & 0xFF_FFFF_FFFF);
        format!("{prefix}{}", ulid_text((ms << 80) | random))
    }
}

fn ulid_text(mut value: u128) -> String {
    let mut out = [0u8; 26];
    for c in out.iter_mut().rev() {
        *c = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A payload as the driver sends it, so the receiver reads `seq` and `sent` from it.
pub fn payload(seq: u64, sent_micros: i64, pad: &str) -> String {
    format!(r#"{{"seq":{seq},"sent":{sent_micros},"pad":"{pad}"}}"#)
}

/// Runs a query returning one integer (a count, `EXISTS`) on the store.
pub fn query_int(store: &StoreAt, sql: &str) -> anyhow::Result<i64> {
    match store {
        StoreAt::Sqlite(path) => sqlite::query_int(path, sql),
        StoreAt::Postgres(url) => postgres::query_int(url, sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_in_crockford_base32() {
        assert_eq!(ulid_text(0), "00000000000000000000000000");
        assert_eq!(ulid_text(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
        // 1 ms: the time's last character ends 80 bits up, in the tenth character.
        assert_eq!(ulid_text(1 << 80), "00000000010000000000000000");
    }

    #[test]
    fn ids_sort_by_time_then_order_made() {
        let mut ids = Ids::new();
        let a = ids.next("msg_", 1_700_000_000_000_000);
        let b = ids.next("msg_", 1_700_000_000_000_000);
        let c = ids.next("msg_", 1_700_000_000_001_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), 4 + 26);
    }

    #[test]
    fn merge_sets_only_the_named_columns() {
        let t = Template {
            table: "t",
            columns: vec!["a".into(), "b".into(), "c".into()],
            values: vec![Some("1".into()), None, Some("3".into())],
        };
        let row = vec![Some("x".into())];
        assert_eq!(t.merge(&[1], &row), vec![Some("1"), Some("x"), Some("3")]);
    }
}
