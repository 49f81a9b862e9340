//! Change detection: the rules of an entity type and what they make of two snapshots of
//! one entity (its previous state and its new one).
//!
//! A rule watches one field, named by a JSON pointer (RFC 6901; `""` is the whole state). A
//! field a state does not have reads as `null`. Rules only compare: they never see the
//! clock or the store, so the store can run them inside the snapshot's transaction.
//!
//! - `changed`: the field's value differs (`null` and absent are the same).
//! - `threshold`: the old and new values are both numbers and `|new - old| > minAbs` (if
//!   given) or `|new - old| / |old| * 100 > minPct` (if given); at least one is given.
//!   From an old value of 0, any change exceeds every percentage (`changePct` is then
//!   `null`); if either value is not a number (or the field is missing), the rule does not
//!   fire.
//! - `transition`: the value differs, and the old one equals `from` (if given) and the new
//!   one equals `to` (if given); values are compared as JSON.
//! - `created`: the key's first snapshot (the event has `old: null`).
//!
//! Only `created` fires on a key's first snapshot; the others need a previous state.

use serde_json::{Map, Value};

use super::{AppId, EntityKey, EntityTypeName, EventTypeName, Timestamp};

/// An entity type's rules, shared by every application.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityType {
    pub name: EntityTypeName,
    pub description: Option<String>,
    pub rules: Vec<Rule>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One version of an entity: its current state, or an entry of its history.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityVersion {
    pub app_id: AppId,
    pub entity_type: EntityTypeName,
    pub key: EntityKey,
    /// 1 for the first snapshot, one more for each snapshot that changed the state.
    pub version: i64,
    pub state: Map<String, Value>,
    pub observed_at: Timestamp,
    /// The events this version fired.
    pub events: Vec<FiredEvent>,
}

/// Most rules an entity type may have.
pub const MAX_RULES: usize = 100;

/// When a rule fires (see the module note).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Changed,
    Threshold {
        min_abs: Option<f64>,
        min_pct: Option<f64>,
    },
    Transition {
        from: Option<Value>,
        to: Option<Value>,
    },
    Created,
}

impl Condition {
    pub fn name(&self) -> &'static str {
        match self {
            Condition::Changed => "changed",
            Condition::Threshold { .. } => "threshold",
            Condition::Transition { .. } => "transition",
            Condition::Created => "created",
        }
    }
}

/// One rule: the event it fires, the field it watches, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub event_type: EventTypeName,
    /// A JSON pointer, checked by [`valid_pointer`].
    pub field: String,
    pub when: Condition,
}

/// A rule that fired on a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredEvent {
    pub event_type: EventTypeName,
    pub field: String,
    pub old: Value,
    pub new: Value,
    /// `(new - old) / |old| * 100` when both are numbers and old is not 0.
    pub change_pct: Option<f64>,
}

impl Rule {
    /// The rule as the API writes it (and the store keeps it).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("eventType".into(), self.event_type.as_str().into());
        out.insert("field".into(), self.field.clone().into());
        out.insert("when".into(), self.when.name().into());
        match &self.when {
            Condition::Threshold { min_abs, min_pct } => {
                if let Some(v) = min_abs {
                    out.insert("minAbs".into(), (*v).into());
                }
                if let Some(v) = min_pct {
                    out.insert("minPct".into(), (*v).into());
                }
            }
            Condition::Transition { from, to } => {
                if let Some(v) = from {
                    out.insert("from".into(), v.clone());
                }
                if let Some(v) = to {
                    out.insert("to".into(), v.clone());
                }
            }
            Condition::Changed | Condition::Created => {}
        }
        Value::Object(out)
    }

    /// A rule [`Rule::to_json`] wrote; `None` if it is not one.
    pub fn from_json(v: &Value) -> Option<Rule> {
        let event_type = EventTypeName::from_stored(v.get("eventType")?.as_str()?.to_owned());
        let field = v.get("field")?.as_str()?.to_owned();
        let when = match v.get("when")?.as_str()? {
            "changed" => Condition::Changed,
            "created" => Condition::Created,
            "threshold" => Condition::Threshold {
                min_abs: v.get("minAbs").and_then(Value::as_f64),
                min_pct: v.get("minPct").and_then(Value::as_f64),
            },
            "transition" => Condition::Transition {
                from: v.get("from").cloned(),
                to: v.get("to").cloned(),
            },
            _ => return None,
        };
        Some(Rule {
            event_type,
            field,
            when,
        })
    }
}

impl FiredEvent {
    /// `{eventType, field, old, new, changePct}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "eventType": self.event_type.as_str(),
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "changePct": self.change_pct,
        })
    }

    /// An event [`FiredEvent::to_json`] wrote; `None` if it is not one.
    pub fn from_json(v: &Value) -> Option<FiredEvent> {
        Some(FiredEvent {
            event_type: EventTypeName::from_stored(v.get("eventType")?.as_str()?.to_owned()),
            field: v.get("field")?.as_str()?.to_owned(),
            old: v.get("old").cloned().unwrap_or(Value::Null),
            new: v.get("new").cloned().unwrap_or(Value::Null),
            change_pct: v.get("changePct").and_then(Value::as_f64),
        })
    }
}

/// Whether `s` is a JSON pointer: empty, or `/`-separated tokens where `~` is only ever
/// followed by `0` or `1`.
pub fn valid_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

fn at(state: &Map<String, Value>, pointer: &str) -> Value {
    if pointer.is_empty() {
        return Value::Object(state.clone());
    }
    // `Value::pointer` needs a `Value`; the first token is looked up in the map itself to
    // avoid copying the whole state.
    let rest = &pointer[1..];
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let first = first.replace("~1", "/").replace("~0", "~");
    match state.get(&first) {
        None => Value::Null,
        Some(v) if tail.is_empty() => v.clone(),
        Some(v) => v.pointer(tail).cloned().unwrap_or(Value::Null),
    }
}

/// The signed change in percent of `old`, when both are numbers and `old` is not 0.
fn change_pct(old: &Value, new: &Value) -> Option<f64> {
    let (o, n) = (old.as_f64()?, new.as_f64()?);
    (o != 0.0).then(|| (n - o) / o.abs() * 100.0)
}

fn threshold_met(old: &Value, new: &Value, min_abs: Option<f64>, min_pct: Option<f64>) -> bool {
    let (Some(o), Some(n)) = (old.as_f64(), new.as_f64()) else {
        return false;
    };
    let diff = (n - o).abs();
    let abs = min_abs.is_some_and(|min| diff > min);
    let pct = min_pct.is_some_and(|min| {
        if o == 0.0 {
            diff > 0.0
        } else {
            diff / o.abs() * 100.0 > min
        }
    });
    abs || pct
}

/// The events `rules` fire for a snapshot `new` of a key whose previous state is `old`
/// (`None`: its first snapshot), in rule order.
pub fn evaluate(
    rules: &[Rule],
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
) -> Vec<FiredEvent> {
    let mut fired = Vec::new();
    for rule in rules {
        let new_value = at(new, &rule.field);
        let Some(old) = old else {
            if rule.when == Condition::Created {
                fired.push(FiredEvent {
                    event_type: rule.event_type.clone(),
                    field: rule.field.clone(),
                    old: Value::Null,
                    new: new_value,
                    change_pct: None,
                });
            }
            continue;
        };
        let old_value = at(old, &rule.field);
        let fires = match &rule.when {
            Condition::Created => false,
            Condition::Changed => old_value != new_value,
            Condition::Threshold { min_abs, min_pct } => {
                threshold_met(&old_value, &new_value, *min_abs, *min_pct)
            }
            Condition::Transition { from, to } => {
                old_value != new_value
                    && from.as_ref().is_none_or(|f| *f == old_value)
                    && to.as_ref().is_none_or(|t| *t == new_value)
            }
        };
        if fires {
            fired.push(FiredEvent {
                event_type: rule.event_type.clone(),
                field: rule.field.clone(),
                change_pct: change_pct(&old_value, &new_value),
                old: old_value,
                new: new_value,
            });
        }
    }
    fired
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn rule(field: &str, when: Condition) -> Rule {
        Rule {
            event_type: EventTypeName::parse("x.changed").unwrap(),
            field: field.into(),
            when,
        }
    }

    #[test]
    fn pointers() {
        for ok in ["", "/", "/a", "/a/0", "/a~0b", "/a~1b"] {
            assert!(valid_pointer(ok), "{ok}");
        }
        for bad in ["a", "/a~", "/a~2", "price"] {
            assert!(!valid_pointer(bad), "{bad}");
        }
    }

    #[test]
    fn threshold_by_percent_and_absolute() {
        let pct = [rule(
            "/price",
            Condition::Threshold {
                min_abs: None,
                min_pct: Some(1.0),
            },
        )];
        let old = obj(json!({"price": 100}));
        assert!(evaluate(&pct, Some(&old), &obj(json!({"price": 100.5}))).is_empty());
        let fired = evaluate(&pct, Some(&old), &obj(json!({"price": 102})));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].change_pct, Some(2.0));
        let fired = evaluate(&pct, Some(&old), &obj(json!({"price": 98})));
        assert_eq!(fired[0].change_pct, Some(-2.0));
        // Not numbers, or missing: no event.
        assert!(evaluate(&pct, Some(&old), &obj(json!({"price": "102"}))).is_empty());
        assert!(evaluate(&pct, Some(&old), &obj(json!({}))).is_empty());
        // From 0 any change exceeds a percentage, with no changePct.
        let zero = obj(json!({"price": 0}));
        let fired = evaluate(&pct, Some(&zero), &obj(json!({"price": 0.01})));
        assert_eq!(fired[0].change_pct, None);
        let abs = [rule(
            "/price",
            Condition::Threshold {
                min_abs: Some(5.0),
                min_pct: None,
            },
        )];
        assert!(evaluate(&abs, Some(&old), &obj(json!({"price": 105}))).is_empty());
        assert_eq!(
            evaluate(&abs, Some(&old), &obj(json!({"price": 94}))).len(),
            1
        );
    }

    #[test]
    fn transitions_changes_and_created() {
        let rules = [
            rule(
                "/stockStatus",
                Condition::Transition {
                    from: Some(json!("in_stock")),
                    to: Some(json!("out_of_stock")),
                },
            ),
            rule("/a/b", Condition::Changed),
            rule("", Condition::Created),
        ];
        let old = obj(json!({"stockStatus": "in_stock", "a": {"b": 1}}));
        let new = obj(json!({"stockStatus": "out_of_stock", "a": {"b": 1}}));
        let fired = evaluate(&rules, Some(&old), &new);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].old, json!("in_stock"));
        let back = evaluate(&rules, Some(&new), &old);
        assert!(back.is_empty());
        let nested = obj(json!({"stockStatus": "in_stock", "a": {"b": 2}}));
        assert_eq!(evaluate(&rules, Some(&old), &nested)[0].field, "/a/b");
        let first = evaluate(&rules, None, &old);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].old, Value::Null);
        assert_eq!(first[0].new, Value::Object(old.clone()));
    }
}
