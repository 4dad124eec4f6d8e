//! Tool input schemas and the checking of a call's arguments against them.
//!
//! Every argument is checked as its schema says: no unknown names, required ones present and not
//! blank, strings are strings (`5` is not a name), integers are integers, booleans are booleans,
//! enums hold one of their values. One leniency, on purpose: an array of strings may come as one
//! comma-separated string, which models often send. `null` counts as absent.

use serde_json::{Map, Value, json};

/// A string property.
pub fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// An integer property.
pub fn int(description: &str) -> Value {
    json!({"type": "integer", "description": description})
}

/// A boolean property.
#[cfg_attr(not(test), allow(dead_code))] // for boolean arguments; no tool has one yet
pub fn flag(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

/// An array-of-strings property.
pub fn list(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": description})
}

/// A string property with fixed values.
pub fn one_of(values: &[&str], description: &str) -> Value {
    json!({"type": "string", "enum": values, "description": description})
}

/// An object schema that takes only `properties`.
pub fn schema(properties: Value, required: &[&str]) -> Value {
    let mut s = json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = json!(required);
    }
    s
}

/// A tool's checked arguments.
pub struct Args(Map<String, Value>);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Args {
    pub fn check(tool: &str, schema: &Value, args: Map<String, Value>) -> Result<Args, String> {
        let empty = Map::new();
        let props = schema["properties"].as_object().unwrap_or(&empty);
        let names = || props.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut out = Map::new();
        for (key, value) in args {
            let Some(prop) = props.get(&key) else {
                return Err(if props.is_empty() {
                    format!("{tool} takes no arguments (got {key:?})")
                } else {
                    format!("{tool}: unknown argument {key:?}; it takes: {}", names())
                });
            };
            let wrong = |want: &str, got: &Value| {
                format!(
                    "{tool}: argument {key:?} must be {want}, not {}",
                    type_name(got)
                )
            };
            let value = match (prop["type"].as_str(), value) {
                (_, Value::Null) => continue,
                (Some("string"), v @ Value::String(_)) => v,
                (Some("string"), other) => return Err(wrong("a string", &other)),
                (Some("integer"), Value::Number(n)) if n.is_i64() => Value::Number(n),
                (Some("integer"), other) => return Err(wrong("an integer", &other)),
                (Some("boolean"), v @ Value::Bool(_)) => v,
                (Some("boolean"), other) => return Err(wrong("true or false", &other)),
                (Some("array"), Value::String(s)) => Value::Array(
                    s.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ),
                (Some("array"), Value::Array(items)) if items.iter().all(Value::is_string) => {
                    Value::Array(items)
                }
                (Some("array"), _) => {
                    return Err(format!(
                        "{tool}: argument {key:?} must be an array of strings"
                    ));
                }
                (_, v) => v,
            };
            if let (Some(allowed), Some(v)) = (prop["enum"].as_array(), value.as_str())
                && !allowed
                    .iter()
                    .any(|a| a.as_str() == Some(v.to_ascii_lowercase().as_str()))
            {
                let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                return Err(format!(
                    "{tool}: invalid {key} {v:?}: must be one of {}",
                    allowed.join(", ")
                ));
            }
            out.insert(key, value);
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for req in &required {
            let blank = match out.get(*req) {
                None => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if blank {
                let hint = props[*req]["description"].as_str().unwrap_or_default();
                return Err(format!(
                    "{tool}: missing required argument {req:?} ({hint}); required: {}",
                    required.join(", ")
                ));
            }
        }
        Ok(Args(out))
    }

    /// A string argument, `""` when absent.
    pub fn text(&self, name: &str) -> String {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// A string argument that is present and not blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name).trim().to_owned()).filter(|s| !s.is_empty())
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Value::as_bool)
    }

    /// The raw value, as a REST body would carry it.
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The lower-cased `action` argument.
    pub fn action(&self) -> String {
        self.text("action").trim().to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(props: Value, required: &[&str], v: Value) -> Result<Args, String> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        Args::check("t", &schema(props, required), m)
    }

    #[test]
    fn arguments_are_checked_against_the_schema_with_full_messages() {
        let props = json!({"name": text("Name"), "caps": list("Caps"), "n": int("N"),
                           "b": flag("B"), "level": one_of(&["error", "warning"], "L")});
        let e = check(props.clone(), &["name"], json!({}))
            .err()
            .expect("missing");
        assert!(e.contains("missing required argument \"name\""), "{e}");
        let e = check(props.clone(), &["name"], json!({"name": "  "}))
            .err()
            .expect("blank");
        assert!(e.contains("\"name\""), "{e}");
        let e = check(props.clone(), &[], json!({"nme": "b"}))
            .err()
            .expect("unknown");
        assert!(
            e.contains("unknown argument \"nme\"") && e.contains("caps"),
            "{e}"
        );
        let e = check(props.clone(), &[], json!({"name": 5}))
            .err()
            .expect("type");
        assert!(e.contains("must be a string, not a number"), "{e}");
        let e = check(props.clone(), &[], json!({"n": "5"}))
            .err()
            .expect("int");
        assert!(e.contains("must be an integer"), "{e}");
        let e = check(props.clone(), &[], json!({"n": 1.5}))
            .err()
            .expect("int");
        assert!(e.contains("must be an integer"), "{e}");
        let e = check(props.clone(), &[], json!({"b": "yes"}))
            .err()
            .expect("bool");
        assert!(e.contains("true or false"), "{e}");
        let e = check(props.clone(), &[], json!({"level": "fatal"}))
            .err()
            .expect("enum");
        assert!(e.contains("error, warning"), "{e}");
        let e = check(props.clone(), &[], json!({"caps": [1]}))
            .err()
            .expect("array");
        assert!(e.contains("array of strings"), "{e}");
        let e = check(json!({}), &[], json!({"x": 1})).err().expect("none");
        assert!(e.contains("takes no arguments"), "{e}");

        let a = check(
            props,
            &["name"],
            json!({"name": "a", "caps": "code, review", "n": 3, "b": true, "level": null}),
        )
        .expect("valid");
        assert_eq!(a.list("caps"), ["code", "review"]);
        assert_eq!(a.int("n"), Some(3));
        assert_eq!(a.flag("b"), Some(true));
        assert_eq!(a.text("level"), "");
    }
}
