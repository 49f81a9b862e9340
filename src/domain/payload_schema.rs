//! An event type's JSON Schema, compiled once, and the problems of a payload checked
//! against it.
//!
//! The schema used is the event type's latest version: of `schemas`' keys, the greatest
//! that is a whole number ("2" over "1"; keys that are not numbers count below any that
//! are, and among themselves by text). The draft is the schema's `$schema`, 2020-12 when it
//! names none. References are resolved only within the schema itself: hookd never fetches
//! a schema from the network or the disk, so a `$ref` elsewhere makes the schema invalid.

use serde_json::{Map, Value};

use super::Payload;

/// The most problems reported for one payload.
const MAX_PROBLEMS: usize = 20;

/// A compiled schema.
#[derive(Debug)]
pub struct PayloadSchema {
    validator: jsonschema::Validator,
}

/// What is wrong with a payload at one place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// A JSON pointer into the payload (`""` for the payload itself, `/items/0/price`).
    pub pointer: String,
    pub message: String,
}

impl PayloadSchema {
    /// Compiles one schema; the error says what is wrong with it.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        if !schema.is_object() {
            return Err("must be a JSON object (a JSON Schema)".into());
        }
        jsonschema::validator_for(schema)
            .map(|validator| PayloadSchema { validator })
            .map_err(|e| format!("is not a valid JSON Schema: {e}"))
    }

    /// The latest version's schema of `schemas`, compiled; `None` when there is none.
    pub fn latest(schemas: &Map<String, Value>) -> Option<Result<Self, String>> {
        latest_version(schemas).map(|(_, schema)| Self::compile(schema))
    }

    /// The payload's problems (at most [`MAX_PROBLEMS`]); empty when it is valid.
    pub fn check(&self, payload: &Payload) -> Vec<SchemaProblem> {
        let Ok(value) = serde_json::from_str::<Value>(payload.as_str()) else {
            // A `Payload` is valid JSON by construction.
            return vec![SchemaProblem {
                pointer: String::new(),
                message: "is not JSON".into(),
            }];
        };
        if self.validator.is_valid(&value) {
            return Vec::new();
        }
        self.validator
            .iter_errors(&value)
            .take(MAX_PROBLEMS)
            .map(|e| SchemaProblem {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }
}

/// Every version's schema, compiled: the first that fails, with its version and why.
pub fn check_all(schemas: &Map<String, Value>) -> Result<(), (String, String)> {
    for (version, schema) in schemas {
        PayloadSchema::compile(schema).map_err(|e| (version.clone(), e))?;
    }
    Ok(())
}

fn latest_version(schemas: &Map<String, Value>) -> Option<(&String, &Value)> {
    schemas
        .iter()
        .max_by(|(a, _), (b, _)| version_key(a).cmp(&version_key(b)))
}

/// Numbers above other text, then by number (or text).
fn version_key(version: &str) -> (bool, u64, &str) {
    match version.parse::<u64>() {
        Ok(n) => (true, n, ""),
        Err(_) => (false, 0, version),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;

    fn payload(v: Value) -> Payload {
        let raw = RawValue::from_string(v.to_string()).unwrap();
        Payload::parse(&raw, 64).unwrap()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_latest_numbered_version_is_used() {
        let schemas = map(json!({
            "1": {"type": "object", "required": ["a"]},
            "10": {"type": "object", "required": ["c"]},
            "2": {"type": "object", "required": ["b"]},
            "draft": {"type": "object", "required": ["d"]},
        }));
        let schema = PayloadSchema::latest(&schemas).unwrap().unwrap();
        assert!(schema.check(&payload(json!({"c": 1}))).is_empty());
        assert_eq!(schema.check(&payload(json!({"b": 1}))).len(), 1);
        assert!(PayloadSchema::latest(&Map::new()).is_none());
    }

    #[test]
    fn problems_point_into_the_payload() {
        let schema = PayloadSchema::compile(&json!({
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}},
                    "required": ["price"],
                }},
            },
        }))
        .unwrap();
        let problems = schema.check(&payload(
            json!({"items": [{"price": 1}, {"price": "x"}, {}]}),
        ));
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/items/1/price", "/items/2"], "{problems:?}");
        assert!(problems[0].message.contains("number"), "{problems:?}");
    }

    #[test]
    fn invalid_schemas_and_outside_references_are_refused() {
        assert!(PayloadSchema::compile(&json!({"type": "nope"})).is_err());
        assert!(PayloadSchema::compile(&json!({"minLength": -1})).is_err());
        assert!(PayloadSchema::compile(&json!([])).is_err());
        assert!(PayloadSchema::compile(&json!({"$ref": "https://example.com/s.json"})).is_err());
        assert!(
            PayloadSchema::compile(&json!({
                "$defs": {"id": {"type": "string"}},
                "properties": {"id": {"$ref": "#/$defs/id"}},
            }))
            .is_ok()
        );
        let bad = map(json!({"1": {"type": "object"}, "2": {"type": 7}}));
        assert_eq!(check_all(&bad).unwrap_err().0, "2");
    }

    #[test]
    fn problems_are_capped() {
        let schema = PayloadSchema::compile(&json!({
            "type": "object",
            "additionalProperties": {"type": "string"},
        }))
        .unwrap();
        let many: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            schema.check(&payload(Value::Object(many))).len(),
            MAX_PROBLEMS
        );
    }
}
