//! Keyset pagination shared by every list.

use super::sql::Sql;

/// The order items are listed in, by their sort key (id or name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Ascending,
    Descending,
}

/// Where a page starts, relative to the sort key of an item on another page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cursor {
    #[default]
    Start,
    /// The items that come after this key in list order (the `iterator` of a page).
    After(String),
    /// The items that come before this key in list order (the `prevIterator`).
    Before(String),
}

/// One page of a list. Store `list_*` operations return up to `limit + 1` rows in *scan*
/// order (the direction the key index is walked); the extra row tells the caller that the
/// list goes on, and callers reverse `Before` pages into list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: usize,
    pub cursor: Cursor,
    pub order: Order,
}

impl PageQuery {
    /// Whether the query walks the key space upwards. `Before` walks against list order;
    /// the backend then reverses what it fetched so items always come back in list order.
    pub fn scans_ascending(&self) -> bool {
        matches!(
            (&self.cursor, self.order),
            (Cursor::Start | Cursor::After(_), Order::Ascending)
                | (Cursor::Before(_), Order::Descending)
        )
    }

    /// The bound on the key, if any: `(key, true)` for `key > bound`, `false` for `<`.
    pub fn key_bound(&self) -> Option<(&str, bool)> {
        match &self.cursor {
            Cursor::Start => None,
            Cursor::After(k) | Cursor::Before(k) => Some((k.as_str(), self.scans_ascending())),
        }
    }

    /// How many rows to fetch: one more than the page, to know whether it is the last.
    pub fn fetch(&self) -> i64 {
        i64::try_from(self.limit).unwrap_or(i64::MAX - 1) + 1
    }

    pub fn reverses(&self) -> bool {
        matches!(self.cursor, Cursor::Before(_))
    }
}

/// Appends `AND key > / < bound ORDER BY key LIMIT n` for `page`; rows come back in scan
/// order (see [`PageQuery::scans_ascending`]).
pub fn push_page(sql: &mut Sql, key_column: &str, page: &PageQuery) {
    if let Some((bound, greater)) = page.key_bound() {
        sql.push(" AND ")
            .push(key_column)
            .push(if greater { " > " } else { " < " })
            .push_bind(bound);
    }
    sql.push(" ORDER BY ")
        .push(key_column)
        .push(if page.scans_ascending() {
            " ASC"
        } else {
            " DESC"
        })
        .push(" LIMIT ")
        .push_bind(page.fetch());
}
