//! `limit` / `iterator` / `order` in, `{data, iterator, prevIterator, done}` out.
//!
//! The iterator is the sort key (id, or name for event types) of the last item of a page;
//! `prevIterator` is `-` followed by the key of the first item and pages backwards. Because
//! keys are unique and assigned in commit order, following `iterator` visits every item
//! exactly once, and items created meanwhile show up at the end (ascending lists) or not at
//! all (lists newest first, whose later pages are older).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::store::{Cursor, Order, PageQuery};

pub const DEFAULT_LIMIT: u64 = 50;
/// Larger `limit`s are lowered to this rather than refused, as the Svix server does.
pub const MAX_LIMIT: u64 = 250;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Ascending,
    Descending,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// How many items to return (1 to 250, default 50; larger values are lowered to 250).
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of the previous page.
    pub iterator: Option<String>,
    /// Sort order; the default depends on the list.
    pub order: Option<Ordering>,
}

impl ListParams {
    pub fn page(&self, default_order: Order) -> Result<PageQuery, ApiError> {
        Self::page_of(
            self.limit,
            self.iterator.as_deref(),
            self.order,
            default_order,
        )
    }

    /// For parameter structs that add filters to these three. (They list the fields
    /// themselves: `serde(flatten)` would turn numbers in a query string into strings.)
    pub fn page_of(
        limit: Option<u64>,
        iterator: Option<&str>,
        order: Option<Ordering>,
        default_order: Order,
    ) -> Result<PageQuery, ApiError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(ApiError::invalid(&["query", "limit"], "must be at least 1")),
            Some(n) => n.min(MAX_LIMIT),
        };
        let cursor = match iterator {
            None | Some("") => Cursor::Start,
            Some(it) => match it.strip_prefix('-') {
                Some(key) => Cursor::Before(key.to_owned()),
                None => Cursor::After(it.to_owned()),
            },
        };
        let order = match order {
            None => default_order,
            Some(Ordering::Ascending) => Order::Ascending,
            Some(Ordering::Descending) => Order::Descending,
        };
        Ok(PageQuery {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            cursor,
            order,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `iterator` to get the next page. Always present, possibly null.
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    /// True when there is nothing after this page.
    pub done: bool,
}

/// Builds a page from the rows a store returned in scan order (up to `limit + 1`).
pub fn list_response<R, T>(
    mut rows: Vec<R>,
    page: &PageQuery,
    key: impl Fn(&R) -> String,
    out: impl Fn(R) -> T,
) -> ListResponse<T> {
    let has_more = rows.len() > page.limit;
    rows.truncate(page.limit);
    if page.reverses() {
        rows.reverse();
    }
    let (iterator, prev_iterator) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (Some(key(last)), Some(format!("-{}", key(first)))),
        _ => match &page.cursor {
            Cursor::After(k) => (Some(k.clone()), None),
            Cursor::Before(k) => (None, Some(format!("-{k}"))),
            Cursor::Start => (None, None),
        },
    };
    ListResponse {
        data: rows.into_iter().map(out).collect(),
        iterator,
        prev_iterator,
        // Nothing further in the direction this page was fetched.
        done: !has_more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: usize, cursor: Cursor) -> PageQuery {
        PageQuery {
            limit,
            cursor,
            order: Order::Ascending,
        }
    }

    #[test]
    fn limit_defaults_clamps_and_refuses_zero() {
        let p = ListParams::default().page(Order::Ascending).unwrap();
        assert_eq!(p.limit, 50);
        let p = ListParams {
            limit: Some(1000),
            ..Default::default()
        };
        assert_eq!(p.page(Order::Ascending).unwrap().limit, 250);
        let p = ListParams {
            limit: Some(0),
            ..Default::default()
        };
        assert!(p.page(Order::Ascending).is_err());
    }

    #[test]
    fn iterator_sign_selects_direction() {
        let p = ListParams {
            iterator: Some("-k".into()),
            ..Default::default()
        };
        assert_eq!(
            p.page(Order::Ascending).unwrap().cursor,
            Cursor::Before("k".into())
        );
        let p = ListParams {
            iterator: Some("k".into()),
            ..Default::default()
        };
        assert_eq!(
            p.page(Order::Ascending).unwrap().cursor,
            Cursor::After("k".into())
        );
    }

    #[test]
    fn extra_row_means_not_done() {
        let r = list_response(
            vec![1, 2, 3],
            &page(2, Cursor::Start),
            |i| i.to_string(),
            |i| i,
        );
        assert_eq!(r.data, [1, 2]);
        assert!(!r.done);
        assert_eq!(r.iterator.as_deref(), Some("2"));
        assert_eq!(r.prev_iterator.as_deref(), Some("-1"));

        let r = list_response(
            vec![1, 2],
            &page(2, Cursor::Start),
            |i| i.to_string(),
            |i| i,
        );
        assert!(r.done);
    }

    #[test]
    fn backward_pages_come_back_in_list_order() {
        // Scanned downwards from key 5: 4, 3, 2 (2 is the extra row).
        let r = list_response(
            vec![4, 3, 2],
            &page(2, Cursor::Before("5".into())),
            |i| i.to_string(),
            |i| i,
        );
        assert_eq!(r.data, [3, 4]);
        assert!(!r.done);
    }

    #[test]
    fn empty_page_keeps_the_iterator_for_polling() {
        let r = list_response(
            Vec::<i32>::new(),
            &page(2, Cursor::After("9".into())),
            |i| i.to_string(),
            |i| i,
        );
        assert!(r.done);
        assert_eq!(r.iterator.as_deref(), Some("9"));
    }
}
