//! `x-kubernetes-list-type: set | map`: no duplicate items (sets) or keys (maps), and every map
//! item has its keys.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

use super::field_error::{ErrorType, FieldError, go_value};
use super::path::FieldPath;
use super::structural::Structural;

pub(crate) fn validate(object: &Value, schema: &JSONSchemaProps) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(schema, object, &FieldPath::root(), &mut errors);
    errors
}

fn walk(schema: &JSONSchemaProps, value: &Value, path: &FieldPath, errors: &mut Vec<FieldError>) {
    match value {
        Value::Array(items) => {
            match schema.x_kubernetes_list_type.as_deref() {
                Some("set") => set_errors(items, path, errors),
                Some("map") => map_errors(schema, items, path, errors),
                _ => {}
            }
            if let Some(item_schema) = schema.list_items() {
                for (index, item) in items.iter().enumerate() {
                    walk(item_schema, item, &path.index(index), errors);
                }
            }
        }
        Value::Object(fields) => {
            for (name, child) in fields {
                if let Some(property) = schema.property(name) {
                    walk(property, child, &path.field(name), errors);
                } else if let Some(values) = schema.map_values() {
                    walk(values, child, &path.key(name), errors);
                }
            }
        }
        _ => {}
    }
}

fn duplicate(path: &FieldPath, value: &Value) -> FieldError {
    FieldError::new(
        path.field_style(),
        ErrorType::Duplicate,
        Some(go_value(value)),
        "",
        "x-kubernetes-list-type",
    )
}

fn set_errors(items: &[Value], path: &FieldPath, errors: &mut Vec<FieldError>) {
    for (index, item) in items.iter().enumerate() {
        if items[..index].contains(item) {
            errors.push(duplicate(&path.index(index), item));
        }
    }
}

fn map_errors(
    schema: &JSONSchemaProps,
    items: &[Value],
    path: &FieldPath,
    errors: &mut Vec<FieldError>,
) {
    let keys = schema
        .x_kubernetes_list_map_keys
        .as_deref()
        .unwrap_or_default();
    let mut seen: Vec<Map<String, Value>> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            continue;
        };
        let missing: Vec<&String> = keys.iter().filter(|k| !fields.contains_key(*k)).collect();
        for key in &missing {
            let field = path.index(index).field(key).field_style();
            errors.push(FieldError::new(
                field,
                ErrorType::Required,
                None,
                "",
                "x-kubernetes-list-map-keys",
            ));
        }
        if !missing.is_empty() {
            continue;
        }
        let key_values: Map<String, Value> = keys
            .iter()
            .map(|key| (key.clone(), fields[key.as_str()].clone()))
            .collect();
        if seen.contains(&key_values) {
            errors.push(duplicate(&path.index(index), &Value::Object(key_values)));
        } else {
            seen.push(key_values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_and_maps_refuse_duplicates() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "properties": {
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {"type": "object"}
                }
            }
        }))
        .unwrap();
        let cases = [
            (
                json!({"tags": ["a", "b"], "conditions": [{"type": "A"}, {"type": "B"}]}),
                vec![],
            ),
            (
                json!({"tags": ["a", "b", "a"]}),
                vec![("tags[2]", r#"Duplicate value: "a""#)],
            ),
            (
                json!({"conditions": [{"type": "A"}, {"type": "A", "status": "x"}, {"status": "y"}]}),
                vec![
                    (
                        "conditions[1]",
                        r#"Duplicate value: map[string]interface {}{"type":"A"}"#,
                    ),
                    ("conditions[2].type", "Required value"),
                ],
            ),
        ];
        for (object, expected) in cases {
            let errors: Vec<(String, String)> = validate(&object, &schema)
                .into_iter()
                .map(|e| (e.path.clone(), e.message()))
                .collect();
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(p, m)| (p.to_owned(), m.to_owned()))
                .collect();
            assert_eq!(errors, expected, "{object}");
        }
    }
}
