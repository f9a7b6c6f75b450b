//! The OpenAPI keywords of a structural schema, checked as the API server's schema validator
//! checks them, with its messages and its field paths (`spec.services.Frontend.replicas`).
//!
//! On an update, a field whose value is unchanged from the old object keeps its errors only as
//! warnings, as the API server's validation ratcheting allows it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use regex::Regex;
use serde_json::{Map, Number, Value};

use super::field_error::{ErrorType, FieldError, go_float, go_quote, go_value};
use super::formats;
use super::path::FieldPath;
use super::structural::Structural;

/// The schema errors of `object` (already pruned and defaulted), on an update from `old`.
pub(crate) fn validate(
    object: &Value,
    old: Option<&Value>,
    schema: &JSONSchemaProps,
) -> Vec<FieldError> {
    node(schema, object, old, &FieldPath::root())
}

fn node(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let name = path.schema_style();
    let mut errors: Vec<FieldError> = type_error(schema, value, &name).into_iter().collect();
    errors.extend(composition_errors(schema, value, old, path));
    match value {
        Value::Null => {}
        Value::String(text) => errors.extend(string_errors(schema, text, &name)),
        Value::Number(number) => errors.extend(number_errors(schema, number, value, &name)),
        Value::Array(items) => errors.extend(list_errors(schema, items, old, path)),
        Value::Bool(_) | Value::Object(_) => {}
    }
    errors.extend(enum_error(schema, value, &name));
    if let Value::Object(fields) = value {
        errors.extend(object_errors(schema, fields, old, path));
    }
    if old == Some(value) {
        errors.iter_mut().for_each(|error| error.warning = true);
    }
    errors
}

/// The JSON type of a decoded value as the validator names it, and the format it implies.
fn data_type(value: &Value) -> (&'static str, &'static str) {
    match value {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        // Integers past int64 decode as float64 in the API server.
        Value::Number(number) if number.as_i64().is_some() => ("integer", "int64"),
        Value::Number(_) => ("number", "double"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

fn type_error(schema: &JSONSchemaProps, value: &Value, name: &str) -> Option<FieldError> {
    let types = schema.types();
    let format = schema.format.as_deref().unwrap_or("");
    if types.is_empty() && format.is_empty() {
        return None;
    }
    let mismatch = |expected: &str, actual: &str| {
        Some(FieldError::new(
            name,
            ErrorType::TypeInvalid,
            Some(go_quote(actual)),
            format!(
                "{name} in body must be of type {expected}: {}",
                go_quote(actual)
            ),
            "type",
        ))
    };
    if value.is_null() {
        let refused = !types.is_empty() && !schema.is_nullable();
        return if refused {
            mismatch(&types.join(","), "null")
        } else {
            None
        };
    }
    let (data_type, data_format) = data_type(value);
    let float_is_integer = data_type == "number"
        && types.contains(&"integer")
        && value
            .as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.abs() <= 2f64.powi(53));
    let integer_is_number = data_type == "integer" && types.contains(&"number");
    let textual = matches!(value, Value::String(_) | Value::Array(_));
    let type_matches = types.contains(&data_type) || float_is_integer || integer_is_number;
    let format_matches = format.is_empty() || data_format == format;
    // A non-text value is first held to the format (`true` for an int32 field is "not an int32").
    if !textual && !type_matches && !format_matches {
        return mismatch(format, data_format);
    }
    let numeric = types.contains(&"number") || types.contains(&"integer");
    if (!numeric && !format.is_empty() && textual) || types.is_empty() {
        return None;
    }
    if !type_matches {
        return mismatch(&types.join(","), data_type);
    }
    None
}

/// `allOf`, `anyOf`, `oneOf` and `not` (value validations only, in a structural schema).
fn composition_errors(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let name = path.schema_style();
    let passes = |branch: &JSONSchemaProps| node(branch, value, None, path).is_empty();
    let composite = |detail: String, rule: &str| {
        FieldError::new(&name, ErrorType::Invalid, Some(go_quote("")), detail, rule)
    };
    let mut errors = Vec::new();
    for branch in schema.all_of.iter().flatten() {
        errors.extend(node(branch, value, old, path));
    }
    if let Some(branches) = &schema.any_of
        && !branches.iter().any(passes)
    {
        errors.push(composite(
            format!("{name} must validate at least one schema (anyOf)"),
            "anyOf",
        ));
    }
    if let Some(branches) = &schema.one_of
        && branches.iter().filter(|b| passes(b)).count() != 1
    {
        errors.push(composite(
            format!("{name} must validate one and only one schema (oneOf)"),
            "oneOf",
        ));
    }
    if let Some(not) = &schema.not
        && passes(not)
    {
        errors.push(composite(
            format!("{name} must not validate the schema (not)"),
            "not",
        ));
    }
    errors
}

fn string_errors(schema: &JSONSchemaProps, text: &str, name: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let length = text.chars().count() as i64;
    if let Some(max) = schema.max_length
        && length > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        errors.push(FieldError::new(
            name,
            ErrorType::TooLong,
            None,
            format!("may not be more than {max} {unit}"),
            "maxLength",
        ));
    }
    if let Some(min) = schema.min_length
        && length < min
    {
        errors.push(FieldError::new(
            name,
            ErrorType::Invalid,
            Some(go_quote(text)),
            format!("{name} in body should be at least {min} chars long"),
            "minLength",
        ));
    }
    if let Some(pattern) = &schema.pattern
        && let Ok(regex) = Regex::new(pattern)
        && !regex.is_match(text)
    {
        errors.push(FieldError::new(
            name,
            ErrorType::Invalid,
            Some(go_quote(text)),
            format!("{name} in body should match '{pattern}'"),
            "pattern",
        ));
    }
    let date_time = matches!(schema.format.as_deref(), Some("date-time" | "datetime"));
    if date_time && !formats::is_date_time(text) {
        let format = schema.format.as_deref().unwrap_or_default();
        errors.push(FieldError::new(
            name,
            ErrorType::TypeInvalid,
            Some(go_quote(text)),
            format!(
                "{name} in body must be of type {format}: {}",
                go_quote(text)
            ),
            "format",
        ));
    }
    errors
}

fn number_errors(
    schema: &JSONSchemaProps,
    number: &Number,
    value: &Value,
    name: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let invalid = |detail: String, rule: &str| {
        FieldError::new(
            name,
            ErrorType::Invalid,
            Some(go_value(value)),
            detail,
            rule,
        )
    };
    let types = schema.types();
    let format = schema.format.as_deref().unwrap_or("");
    let type_name = types.first().copied().unwrap_or("");
    let fits = match type_name {
        "integer" => formats::integer_fits(number, format),
        _ => formats::number_fits(number, format),
    };
    if !fits {
        let with_format = if format.is_empty() {
            String::new()
        } else {
            format!(" with format {format}")
        };
        errors.push(FieldError::new(
            name,
            ErrorType::Invalid,
            Some(go_quote("")),
            format!("Checked value must be of type {type_name}{with_format} in {name}"),
            "format",
        ));
    }
    let Some(number) = number.as_f64() else {
        return errors;
    };
    if let Some(factor) = schema.multiple_of
        && factor != 0.0
        && (number / factor).fract() != 0.0
    {
        errors.push(invalid(
            format!(
                "{name} in body should be a multiple of {}",
                go_float(factor)
            ),
            "multipleOf",
        ));
    }
    if let Some(max) = schema.maximum {
        let exclusive = schema.exclusive_maximum == Some(true);
        if number > max || (exclusive && number == max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(
                format!("{name} in body should be {relation} {}", go_float(max)),
                "maximum",
            ));
        }
    }
    if let Some(min) = schema.minimum {
        let exclusive = schema.exclusive_minimum == Some(true);
        if number < min || (exclusive && number == min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(
                format!("{name} in body should be {relation} {}", go_float(min)),
                "minimum",
            ));
        }
    }
    errors
}

fn list_errors(
    schema: &JSONSchemaProps,
    items: &[Value],
    old: Option<&Value>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let name = path.schema_style();
    let mut errors = Vec::new();
    let count = items.len() as i64;
    if let Some(max) = schema.max_items
        && count > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errors.push(FieldError::new(
            &name,
            ErrorType::TooMany,
            Some(count.to_string()),
            format!("must have at most {max} {unit}"),
            "maxItems",
        ));
    }
    if let Some(min) = schema.min_items
        && count < min
    {
        errors.push(FieldError::new(
            &name,
            ErrorType::Invalid,
            Some(count.to_string()),
            format!("{name} in body should have at least {min} items"),
            "minItems",
        ));
    }
    if let Some(item_schema) = schema.list_items() {
        for (index, item) in items.iter().enumerate() {
            let old_item = old.and_then(|old| correlated_item(schema, item, old));
            errors.extend(node(item_schema, item, old_item, &path.index(index)));
        }
    }
    errors
}

/// The old item an item of a `x-kubernetes-list-type: map` list replaces (same key values);
/// items of other lists are not matched to old ones.
pub(crate) fn correlated_item<'a>(
    schema: &JSONSchemaProps,
    item: &Value,
    old_list: &'a Value,
) -> Option<&'a Value> {
    if schema.x_kubernetes_list_type.as_deref() != Some("map") {
        return None;
    }
    let keys = schema
        .x_kubernetes_list_map_keys
        .as_deref()
        .unwrap_or_default();
    let key_of = |value: &Value| -> Vec<Option<Value>> {
        keys.iter().map(|key| value.get(key).cloned()).collect()
    };
    let wanted = key_of(item);
    old_list
        .as_array()?
        .iter()
        .find(|candidate| key_of(candidate) == wanted)
}

fn enum_error(schema: &JSONSchemaProps, value: &Value, name: &str) -> Option<FieldError> {
    let allowed = schema.enum_.as_ref()?;
    if allowed.iter().any(|json| same_json(&json.0, value)) {
        return None;
    }
    let listed: Vec<String> = allowed
        .iter()
        .map(|json| match &json.0 {
            Value::String(text) => go_quote(text),
            other => go_quote(&other.to_string()),
        })
        .collect();
    Some(FieldError::new(
        name,
        ErrorType::NotSupported,
        Some(go_value(value)),
        format!("supported values: {}", listed.join(", ")),
        "enum",
    ))
}

/// JSON equality where `1` and `1.0` are the same number.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, value)| y.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => a == b,
    }
}

fn object_errors(
    schema: &JSONSchemaProps,
    fields: &Map<String, Value>,
    old: Option<&Value>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let name = path.schema_style();
    let count = fields.len() as i64;
    // Like the API server, a count out of bounds stops the object's validation there.
    if let Some(min) = schema.min_properties
        && count < min
    {
        return vec![FieldError::new(
            &name,
            ErrorType::Invalid,
            Some(count.to_string()),
            format!("{name} in body should have at least {min} properties"),
            "minProperties",
        )];
    }
    if let Some(max) = schema.max_properties
        && count > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        return vec![FieldError::new(
            &name,
            ErrorType::TooMany,
            Some(count.to_string()),
            format!("must have at most {max} {unit}"),
            "maxProperties",
        )];
    }
    let mut errors: Vec<FieldError> = schema
        .required
        .iter()
        .flatten()
        .filter(|required| !fields.contains_key(*required))
        .map(|required| {
            let field = path.field(required).schema_style();
            FieldError::new(field, ErrorType::Required, None, "", "required")
        })
        .collect();
    for (key, child) in fields {
        let old_child = old.and_then(|old| old.get(key));
        if let Some(property) = schema.property(key) {
            errors.extend(node(property, child, old_child, &path.field(key)));
        } else if let Some(values) = schema.map_values() {
            errors.extend(node(values, child, old_child, &path.key(key)));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One schema per keyword, under `spec.<keyword>`, as the table's subjects.
    fn schema() -> JSONSchemaProps {
        serde_json::from_value(json!({
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 5},
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10},
                    "nodeCount": {"type": "integer", "format": "int32", "minimum": 2},
                    "big": {"type": "integer", "format": "int64"},
                    "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0, "multipleOf": 0.5},
                    "backend": {"type": "string", "enum": ["sglang", "vllm", "trtllm"]},
                    "tag": {"type": "string", "pattern": "^v[0-9]+$"},
                    "when": {"type": "string", "format": "date-time"},
                    "flag": {"type": "boolean"},
                    "size": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "pvcs": {"type": "array", "maxItems": 2, "items": {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}}
                    }},
                    "order": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "services": {"type": "object", "maxProperties": 2, "additionalProperties": {
                        "type": "object",
                        "properties": {"replicas": {"type": "integer", "minimum": 0}}
                    }},
                    "labels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            }}
        }))
        .unwrap()
    }

    fn errors_of(spec: Value) -> Vec<(String, String)> {
        let mut object = json!({"spec": spec});
        if object["spec"].get("name").is_none() {
            object["spec"]["name"] = json!("ok");
        }
        validate(&object, None, &schema())
            .into_iter()
            .map(|error| (error.path.clone(), error.message()))
            .collect()
    }

    #[test]
    fn each_keyword_reports_as_the_api_server_does() {
        let one = |path: &str, message: &str| vec![(path.to_owned(), message.to_owned())];
        let cases = [
            ("valid", json!({"replicas": 3, "nodeCount": 2, "backend": "vllm", "tag": "v1", "when": "2026-01-02T03:04:05Z", "size": "1Gi", "note": null, "order": ["a"], "labels": {"a": "b"}, "config": {"x": [1]}, "ratio": 1.5}), vec![]),
            ("type", json!({"replicas": "two"}), one("spec.replicas", r#"Invalid value: "string": spec.replicas in body must be of type integer: "string""#)),
            ("type of an object", json!({"pvcs": {"name": "a"}}), one("spec.pvcs", r#"Invalid value: "object": spec.pvcs in body must be of type array: "object""#)),
            ("type against a format", json!({"replicas": true}), one("spec.replicas", r#"Invalid value: "": spec.replicas in body must be of type int32: """#)),
            ("whole floats are integers", json!({"replicas": 2.0}), vec![]),
            ("fractions are not", json!({"replicas": 2.5}), vec![
                ("spec.replicas".to_owned(), r#"Invalid value: "double": spec.replicas in body must be of type int32: "double""#.to_owned()),
                ("spec.replicas".to_owned(), r#"Invalid value: "": Checked value must be of type integer with format int32 in spec.replicas"#.to_owned()),
            ]),
            ("null where not nullable", json!({"order": [null]}), one("spec.order[0]", r#"Invalid value: "null": spec.order[0] in body must be of type string: "null""#)),
            ("minimum", json!({"nodeCount": 1}), one("spec.nodeCount", "Invalid value: 1: spec.nodeCount in body should be greater than or equal to 2")),
            ("maximum", json!({"replicas": 11}), one("spec.replicas", "Invalid value: 11: spec.replicas in body should be less than or equal to 10")),
            ("exclusive minimum", json!({"ratio": 0}), one("spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0")),
            ("multipleOf", json!({"ratio": 0.7}), one("spec.ratio", "Invalid value: 0.7: spec.ratio in body should be a multiple of 0.5")),
            ("int32 range", json!({"replicas": 2147483648_i64}), vec![
                ("spec.replicas".to_owned(), r#"Invalid value: "": Checked value must be of type integer with format int32 in spec.replicas"#.to_owned()),
                ("spec.replicas".to_owned(), "Invalid value: 2147483648: spec.replicas in body should be less than or equal to 10".to_owned()),
            ]),
            // Past int64 the API server decodes a float, too large to pass as a whole number.
            ("int64 range", json!({"big": 9223372036854775808_u64}), vec![
                ("spec.big".to_owned(), r#"Invalid value: "double": spec.big in body must be of type int64: "double""#.to_owned()),
                ("spec.big".to_owned(), r#"Invalid value: "": Checked value must be of type integer with format int64 in spec.big"#.to_owned()),
            ]),
            ("minLength", json!({"name": ""}), one("spec.name", r#"Invalid value: "": spec.name in body should be at least 1 chars long"#)),
            ("maxLength", json!({"name": "toolong"}), one("spec.name", "Too long: may not be more than 5 bytes")),
            ("pattern", json!({"tag": "x1"}), one("spec.tag", r#"Invalid value: "x1": spec.tag in body should match '^v[0-9]+$'"#)),
            ("date-time", json!({"when": "soon"}), one("spec.when", r#"Invalid value: "soon": spec.when in body must be of type date-time: "soon""#)),
            ("enum", json!({"backend": "tensorflow"}), one("spec.backend", r#"Unsupported value: "tensorflow": supported values: "sglang", "vllm", "trtllm""#)),
            ("enum and type", json!({"backend": 3}), vec![
                ("spec.backend".to_owned(), r#"Invalid value: "integer": spec.backend in body must be of type string: "integer""#.to_owned()),
                ("spec.backend".to_owned(), r#"Unsupported value: 3: supported values: "sglang", "vllm", "trtllm""#.to_owned()),
            ]),
            ("required", json!({"pvcs": [{}]}), one("spec.pvcs[0].name", "Required value")),
            ("maxItems", json!({"pvcs": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}), one("spec.pvcs", "Too many: 3: must have at most 2 items")),
            ("minItems", json!({"order": []}), one("spec.order", "Invalid value: 0: spec.order in body should have at least 1 items")),
            ("maxProperties stops there", json!({"services": {"a": {}, "b": {}, "c": {"replicas": -1}}}), one("spec.services", "Too many: 3: must have at most 2 items")),
            ("map values", json!({"services": {"W": {"replicas": -1}}}), one("spec.services.W.replicas", "Invalid value: -1: spec.services.W.replicas in body should be greater than or equal to 0")),
            ("minProperties", json!({"labels": {}}), one("spec.labels", "Invalid value: 0: spec.labels in body should have at least 1 properties")),
            ("int-or-string", json!({"size": true}), one("spec.size", r#"Invalid value: "boolean": spec.size in body must be of type integer,string: "boolean""#)),
            ("int-or-string number", json!({"size": 10}), vec![]),
            ("preserved fields take anything", json!({"config": {"a": {"b": [null, 1, "x"]}}}), vec![]),
        ];
        for (name, spec, expected) in cases {
            assert_eq!(errors_of(spec), expected, "{name}");
        }
    }

    #[test]
    fn a_missing_spec_is_required() {
        let errors = validate(&json!({}), None, &schema());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].path.as_str(), errors[0].message()),
            ("spec", "Required value".to_owned())
        );
    }

    #[test]
    fn unchanged_fields_are_ratcheted_changed_ones_are_not() {
        let old = json!({"spec": {"name": "n", "nodeCount": 1, "services": {"W": {"replicas": -1}}, "pvcs": [{}]}});
        let cases = [
            ("nothing changed", old.clone(), vec![true, true, true]),
            (
                "a sibling changed",
                json!({"spec": {"name": "m", "nodeCount": 1, "services": {"W": {"replicas": -1}}, "pvcs": [{}]}}),
                vec![true, true, true],
            ),
            (
                "the bad field changed",
                json!({"spec": {"name": "n", "nodeCount": 0, "services": {"W": {"replicas": -2}}, "pvcs": [{}, {}]}}),
                vec![false, false, false, false],
            ),
        ];
        for (name, new, ratcheted) in cases {
            let errors = validate(&new, Some(&old), &schema());
            let flags: Vec<bool> = errors.iter().map(|e| e.warning).collect();
            assert_eq!(flags, ratcheted, "{name}: {errors:?}");
        }
    }

    #[test]
    fn map_lists_match_old_items_by_key() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object"}
        }))
        .unwrap();
        let old = json!([{"type": "A", "v": 1}, {"type": "B", "v": 2}]);
        assert_eq!(
            correlated_item(&schema, &json!({"type": "B"}), &old),
            Some(&json!({"type": "B", "v": 2}))
        );
        assert_eq!(correlated_item(&schema, &json!({"type": "C"}), &old), None);
        let atomic: JSONSchemaProps = serde_json::from_value(json!({"type": "array"})).unwrap();
        assert_eq!(correlated_item(&atomic, &json!({"type": "A"}), &old), None);
    }
}
