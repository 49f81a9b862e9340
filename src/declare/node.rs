//! The file as a tree of values that each know their line, from YAML, JSON or TOML, so that
//! validation can name the line of every error it finds.
//!
//! YAML and JSON go through `saphyr-parser` (JSON is YAML 1.2), TOML through the `toml`
//! crate's spanned tables.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A value and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in the file's order, duplicates kept (validation reports them).
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

impl Value {
    /// What the value is, for "expected …, found …" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A syntax error: the file cannot be read as a tree at all.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// The formats, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Toml,
}

impl Format {
    /// `.yaml`/`.yml`, `.json` or `.toml`; anything else is not a format hookd reads.
    pub fn of(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

/// YAML (or JSON) text as a JSON value, for the API's `specRaw`.
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, SyntaxError> {
    parse_yaml(text).map(|node| super::fields::to_json(&node))
}

pub fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    match format {
        Format::Yaml | Format::Json => parse_yaml(text),
        Format::Toml => parse_toml(text),
    }
}

fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let mut reader = YamlReader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
    };
    let mut root = None;
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(SyntaxError {
                        line: span.start.line(),
                        message: "the file holds more than one YAML document; use one".into(),
                    });
                }
                let (event, span) = reader.next()?;
                root = Some(reader.node(event, span)?);
            }
            _ => {
                return Err(SyntaxError {
                    line: span.start.line(),
                    message: "unexpected content".into(),
                });
            }
        }
    }
    Ok(root.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

struct YamlReader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
}

impl<'a> YamlReader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(SyntaxError {
                line: e.marker().line(),
                message: e.info().to_owned(),
            }),
            None => Err(SyntaxError {
                line: 0,
                message: "unexpected end of the file".into(),
            }),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, SyntaxError> {
        let line = span.start.line();
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, _tag) => (scalar(&text, style), anchor),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                (Value::Seq(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(event, span)?;
                    let name = match key.value {
                        Value::Str(s) => s,
                        Value::Int(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Null => "null".into(),
                        _ => {
                            return Err(SyntaxError {
                                line: key.line,
                                message: "a key must be a plain value, not a list or mapping"
                                    .into(),
                            });
                        }
                    };
                    let (event, span) = self.next()?;
                    let value = self.node(event, span)?;
                    entries.push((
                        Key {
                            name,
                            line: key.line,
                        },
                        value,
                    ));
                }
                (Value::Map(entries), anchor)
            }
            Event::Alias(id) => {
                return match self.anchors.get(&id) {
                    Some(node) => Ok(Node {
                        line,
                        value: node.value.clone(),
                    }),
                    None => Err(SyntaxError {
                        line,
                        message: "an alias to an unknown anchor".into(),
                    }),
                };
            }
            _ => {
                return Err(SyntaxError {
                    line,
                    message: "unexpected content".into(),
                });
            }
        };
        let node = Node { line, value };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// YAML 1.2's core schema: plain scalars may be null, booleans and numbers; quoted ones are
/// strings.
fn scalar(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Int(n);
    }
    let numeric = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    match text.parse::<f64>() {
        Ok(f) if numeric => Value::Float(f),
        _ => Value::Str(text.to_owned()),
    }
}

fn parse_toml(text: &str) -> Result<Node, SyntaxError> {
    use toml::de::{DeTable, DeValue};
    let lines = LineIndex::new(text);
    let table = DeTable::parse(text).map_err(|e| SyntaxError {
        line: e.span().map_or(0, |s| lines.line(s.start)),
        message: e.message().to_owned(),
    })?;
    fn convert(value: &DeValue<'_>, line: usize, lines: &LineIndex) -> Result<Value, SyntaxError> {
        Ok(match value {
            DeValue::String(s) => Value::Str(s.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                let n = i64::from_str_radix(&digits, i.radix()).map_err(|_| SyntaxError {
                    line,
                    message: format!("{} is not an integer hookd can hold", i.as_str()),
                })?;
                Value::Int(n)
            }
            DeValue::Float(f) => Value::Float(f.as_str().replace('_', "").parse().map_err(
                |_| SyntaxError {
                    line,
                    message: format!("{} is not a number", f.as_str()),
                },
            )?),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::Str(d.to_string()),
            DeValue::Array(items) => Value::Seq(
                items
                    .iter()
                    .map(|item| {
                        let line = lines.line(item.span().start);
                        Ok(Node {
                            line,
                            value: convert(item.get_ref(), line, lines)?,
                        })
                    })
                    .collect::<Result<_, SyntaxError>>()?,
            ),
            DeValue::Table(table) => Value::Map(table_entries(table, lines)?),
        })
    }
    fn table_entries(
        table: &DeTable<'_>,
        lines: &LineIndex,
    ) -> Result<Vec<(Key, Node)>, SyntaxError> {
        let mut entries = table
            .iter()
            .map(|(k, v)| {
                let line = lines.line(v.span().start);
                Ok((
                    Key {
                        name: k.get_ref().to_string(),
                        line: lines.line(k.span().start),
                    },
                    Node {
                        line,
                        value: convert(v.get_ref(), line, lines)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, SyntaxError>>()?;
        entries.sort_by_key(|(k, _)| k.line);
        Ok(entries)
    }
    Ok(Node {
        line: 1,
        value: Value::Map(table_entries(table.get_ref(), &lines)?),
    })
}

/// Byte offset to line number.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_values_know_their_lines() {
        let node = parse(
            "a: 1\nb:\n  - x\n  - 'true'\nc: true\nd: ~\ne: 1.5\n",
            Format::Yaml,
        )
        .unwrap();
        let Value::Map(entries) = node.value else {
            panic!("not a map")
        };
        let lines: Vec<(String, usize)> = entries
            .iter()
            .map(|(k, v)| (k.name.clone(), v.line))
            .collect();
        assert_eq!(lines[0], ("a".into(), 1));
        assert_eq!(lines[2], ("c".into(), 5));
        assert_eq!(entries[0].1.value, Value::Int(1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(items[1].value, Value::Str("true".into()));
        assert_eq!(entries[2].1.value, Value::Bool(true));
        assert_eq!(entries[3].1.value, Value::Null);
        assert_eq!(entries[4].1.value, Value::Float(1.5));
    }

    #[test]
    fn json_and_toml_know_their_lines() {
        let json = parse("{\n  \"a\": [\n    1,\n    \"x\"\n  ]\n}\n", Format::Json).unwrap();
        let Value::Map(entries) = json.value else {
            panic!()
        };
        let Value::Seq(items) = &entries[0].1.value else {
            panic!()
        };
        assert_eq!(
            (items[1].line, &items[1].value),
            (4, &Value::Str("x".into()))
        );
        let toml = parse("z = 1\n\n[[apps]]\nuid = \"a\"\n", Format::Toml).unwrap();
        let Value::Map(entries) = toml.value else {
            panic!()
        };
        assert_eq!(entries[0].0.name, "z");
        let Value::Seq(apps) = &entries[1].1.value else {
            panic!()
        };
        let Value::Map(app) = &apps[0].value else {
            panic!()
        };
        assert_eq!((app[0].0.name.as_str(), app[0].1.line), ("uid", 4));
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n", Format::Yaml).unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        let e = parse("a = 1\nb = = 2\n", Format::Toml).unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
    }
}
