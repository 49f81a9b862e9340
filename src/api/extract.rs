//! Extractors that turn malformed input into [`ApiError`]s of the contract's shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::ApiState;
use super::error::{ApiError, ValidationItem};

/// A JSON body. Not JSON → 400; JSON of the wrong shape → 422 naming the field; not all
/// there within `body_read_timeout` → 408.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        let timeout = state.settings.body_read_timeout;
        let read = tokio::time::timeout(timeout, Bytes::from_request(req, state));
        let bytes = read
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))?
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("the request body is too large".into())
                } else {
                    ApiError::BadRequest(e.body_text())
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().clone();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let mut loc = vec!["body".to_owned()];
                loc.extend(path_segments(&path));
                let msg = inner.to_string();
                // "missing field `x` at line …": point at the field itself.
                if let Some(field) = missing_field(&msg) {
                    loc.push(field.to_owned());
                    return ApiError::Validation(vec![ValidationItem {
                        loc,
                        msg: "field required".into(),
                        kind: "value_error.missing".into(),
                    }]);
                }
                ApiError::Validation(vec![ValidationItem {
                    loc,
                    msg: strip_position(&msg),
                    kind: "type_error".into(),
                }])
            }
            _ => ApiError::BadRequest(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

/// serde_json appends " at line 1 column 17"; the `loc` already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Query parameters. Lists may repeat the key (`event_types=a&event_types=b`) or separate
/// values with commas. Wrong types → 422 naming the parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_html_form::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let mut loc = vec!["query".to_owned()];
                loc.extend(path_segments(e.path()));
                ApiError::Validation(vec![ValidationItem {
                    loc,
                    msg: e.inner().to_string(),
                    kind: "type_error".into(),
                }])
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "fields are only deserialised")]
    struct Thing {
        name: String,
        tags: Option<Vec<u8>>,
    }

    fn loc(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(items) => items[0].loc.clone(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_are_400() {
        for body in ["{", "not json", "{\"name\": \"x\"} trailing", ""] {
            assert!(matches!(
                parse_json::<Thing>(body.as_bytes()),
                Err(ApiError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn shape_errors_are_422_with_location() {
        assert_eq!(
            loc(parse_json::<Thing>(br#"{"name": 1}"#).unwrap_err()),
            ["body", "name"]
        );
        assert_eq!(
            loc(parse_json::<Thing>(br#"{"name": "x", "tags": [1, "a"]}"#).unwrap_err()),
            ["body", "tags", "1"]
        );
        assert_eq!(
            loc(parse_json::<Thing>(br#"{}"#).unwrap_err()),
            ["body", "name"]
        );
        assert_eq!(loc(parse_json::<Thing>(br#"[]"#).unwrap_err()), ["body"]);
    }
}
