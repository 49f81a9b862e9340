//! Reading typed fields out of [`Node`]s, collecting every error with its line rather than
//! stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::node::{Node, Value};

/// One thing wrong with the file, at a line (0 when the file as a whole is wrong).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub line: usize,
    /// Where in the file, e.g. `applications[0].endpoints[1].url`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (0, true) => write!(f, "{}", self.message),
            (0, false) => write!(f, "{}: {}", self.path, self.message),
            (line, true) => write!(f, "line {line}: {}", self.message),
            (line, false) => write!(f, "line {line}: {}: {}", self.path, self.message),
        }
    }
}

/// Where secret references are looked up: the environment, and files relative to the
/// declarative file's directory.
pub struct SecretSource<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub base_dir: &'a Path,
}

#[derive(Default)]
pub struct Errors(pub Vec<FileError>);

impl Errors {
    pub fn add(&mut self, line: usize, path: &str, message: impl Into<String>) {
        self.0.push(FileError {
            line,
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

/// A mapping's fields, each key checked against the ones allowed.
pub struct Fields<'a> {
    pub path: String,
    pub line: usize,
    entries: BTreeMap<&'a str, &'a Node>,
}

impl<'a> Fields<'a> {
    /// The mapping at `node`; unknown and duplicate keys are reported (and otherwise
    /// ignored), a node that is not a mapping gives `None`.
    pub fn of(node: &'a Node, path: &str, allowed: &[&str], errors: &mut Errors) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            errors.add(
                node.line,
                path,
                format!("expected a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        let mut fields = Fields {
            path: path.to_owned(),
            line: node.line,
            entries: BTreeMap::new(),
        };
        for (key, value) in entries {
            let at = fields.at(&key.name);
            if !allowed.contains(&key.name.as_str()) {
                // The Svix SDKs' older names for two fields.
                let hint = match key.name.as_str() {
                    "filterTypes" if allowed.contains(&"eventTypes") => {
                        " (hookd's name for filterTypes is eventTypes)"
                    }
                    "rateLimit" if allowed.contains(&"throttleRate") => {
                        " (hookd's name for rateLimit is throttleRate)"
                    }
                    _ => "",
                };
                errors.add(
                    key.line,
                    &at,
                    format!("unknown key{hint}; expected one of {}", allowed.join(", ")),
                );
            } else if fields.entries.insert(&key.name, value).is_some() {
                errors.add(key.line, &at, "key given twice");
            }
        }
        Some(fields)
    }

    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value, absent and null alike giving `None`.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .get(key)
            .copied()
            .filter(|n| n.value != Value::Null)
    }

    pub fn str(&self, key: &str, errors: &mut Errors) -> Option<&'a str> {
        let node = self.get(key)?;
        match &node.value {
            Value::Str(s) => Some(s),
            other => {
                errors.add(
                    node.line,
                    &self.at(key),
                    format!("expected a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    pub fn required_str(&self, key: &str, errors: &mut Errors) -> Option<&'a str> {
        if self.get(key).is_none() {
            errors.add(self.line, &self.at(key), "missing; it is required");
            return None;
        }
        self.str(key, errors)
    }

    pub fn bool(&self, key: &str, errors: &mut Errors) -> bool {
        match self.get(key).map(|n| (n, &n.value)) {
            None => false,
            Some((_, Value::Bool(b))) => *b,
            Some((node, other)) => {
                errors.add(
                    node.line,
                    &self.at(key),
                    format!("expected true or false, found {}", other.kind()),
                );
                false
            }
        }
    }

    /// A whole number from 0 to `max`.
    pub fn number(&self, key: &str, max: u64, errors: &mut Errors) -> Option<u64> {
        let node = self.get(key)?;
        let n = match node.value {
            Value::Int(n) => u64::try_from(n).ok(),
            Value::Float(f) if f.fract() == 0.0 && (0.0..1.9e19).contains(&f) => Some(f as u64),
            _ => None,
        };
        match n.filter(|n| *n <= max) {
            Some(n) => Some(n),
            None => {
                errors.add(
                    node.line,
                    &self.at(key),
                    format!("expected a whole number from 0 to {max}"),
                );
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&self, key: &str, errors: &mut Errors) -> Option<Vec<(usize, &'a str)>> {
        let node = self.get(key)?;
        let Value::Seq(items) = &node.value else {
            errors.add(
                node.line,
                &self.at(key),
                format!("expected a list of strings, found {}", node.value.kind()),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::Str(s) => out.push((item.line, s.as_str())),
                other => errors.add(
                    item.line,
                    &format!("{}[{i}]", self.at(key)),
                    format!("expected a string, found {}", other.kind()),
                ),
            }
        }
        Some(out)
    }

    /// A mapping of strings to strings (metadata, headers).
    pub fn string_map(&self, key: &str, errors: &mut Errors) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = self.get(key) else {
            return out;
        };
        let Value::Map(entries) = &node.value else {
            errors.add(
                node.line,
                &self.at(key),
                format!("expected a mapping, found {}", node.value.kind()),
            );
            return out;
        };
        for (k, v) in entries {
            let at = format!("{}.{}", self.at(key), k.name);
            match &v.value {
                Value::Str(s) => {
                    if out.insert(k.name.clone(), s.clone()).is_some() {
                        errors.add(k.line, &at, "key given twice");
                    }
                }
                other => errors.add(
                    v.line,
                    &at,
                    format!("expected a string, found {}", other.kind()),
                ),
            }
        }
        out
    }

    /// A list of mappings, each with its path (`key[i]`).
    pub fn list(&self, key: &str, errors: &mut Errors) -> Option<Vec<(String, &'a Node)>> {
        let node = self.entries.get(key)?;
        match &node.value {
            Value::Null => Some(Vec::new()),
            Value::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("{}[{i}]", self.at(key)), n))
                    .collect(),
            ),
            other => {
                errors.add(
                    node.line,
                    &self.at(key),
                    format!("expected a list, found {}", other.kind()),
                );
                None
            }
        }
    }
}

/// A node as JSON (event type schemas).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(n) => J::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// A secret given by reference: `env:NAME` or `file:PATH` (relative to the declarative
/// file's directory). An inline `whsec_…` or `whsk_…` is refused: secrets stay out of the
/// file.
pub fn secret(
    text: &str,
    line: usize,
    path: &str,
    source: &SecretSource<'_>,
    errors: &mut Errors,
) -> Option<String> {
    let value = if let Some(name) = text.strip_prefix("env:") {
        match (source.env)(name) {
            Some(v) => v,
            None => {
                errors.add(
                    line,
                    path,
                    format!("environment variable {name} is not set"),
                );
                return None;
            }
        }
    } else if let Some(file) = text.strip_prefix("file:") {
        let file = source.base_dir.join(file);
        match std::fs::read_to_string(&file) {
            Ok(v) => v,
            Err(e) => {
                errors.add(
                    line,
                    path,
                    format!("cannot read the secret file {}: {e}", file.display()),
                );
                return None;
            }
        }
    } else if text.starts_with("whsec_") || text.starts_with("whsk_") {
        errors.add(
            line,
            path,
            "secrets may not be written in the file; give env:NAME or file:PATH",
        );
        return None;
    } else {
        errors.add(
            line,
            path,
            "expected a secret reference, env:NAME or file:PATH",
        );
        return None;
    };
    let value = value.trim();
    match crate::domain::SigningSecret::parse(value) {
        Ok(_) => Some(value.to_owned()),
        Err(e) => {
            errors.add(line, path, format!("the referenced secret {e}"));
            None
        }
    }
}
