//! `limit` / `iterator` / `order` in, `{data, iterator, prevIterator, done}` out.
//!
//! The iterator is the sort key (id, or name for event types) of the last item of a page;
//! `prevIterator` is `-` followed by the key of the first item and pages backwards. Because
//! keys are unique and assigned in commit order, following `iterator` visits every item
//! exactly once, and items created meanwhile show up at the end (ascending lists) or not at
//! all (lists newest first, whose later pages are older).

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::store::{Cursor, Order, PageQuery};

pub const DEFAULT_LIMIT: u64 = 50;
/// Larger `limit`s are lowered to this rather than refused, as the Svix server does.
pub const MAX_LIMIT: u64 = 250;

/// `limit` from a query string: any whole number the contract allows (`minimum: 0`, no
/// maximum), including one past `u64::MAX`, which is read as `u64::MAX` (and then lowered to
/// [`MAX_LIMIT`]). Use with `#[serde(default, deserialize_with = "limit")]`.
pub fn limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom("must be a whole number"));
    }
    Ok(Some(text.parse().unwrap_or(u64::MAX)))
}

/// Sort order of a list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Ascending,
    Descending,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// How many items to return (default 50; 0 is read as 1, and values over 250 as 250).
    #[serde(default, deserialize_with = "limit")]
    #[param(minimum = 0)]
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
        // The contract allows 0; a page of nothing could not be paged on, so it gets one item.
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
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
    fn limit_defaults_and_is_clamped() {
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
        assert_eq!(p.page(Order::Ascending).unwrap().limit, 1);
    }

    #[test]
    fn limit_reads_any_whole_number() {
        let read = |query: &str| -> Result<ListParams, _> {
            let de = serde_html_form::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
            ListParams::deserialize(de)
        };
        assert_eq!(read("limit=7").unwrap().limit, Some(7));
        assert_eq!(read("limit=").unwrap().limit, None);
        assert_eq!(read("").unwrap().limit, None);
        assert_eq!(
            read("limit=123456789012345678901234567890").unwrap().limit,
            Some(u64::MAX)
        );
        assert!(read("limit=-1").is_err());
        assert!(read("limit=ten").is_err());
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
