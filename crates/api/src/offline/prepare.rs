//! What the API server does to an object before it validates it: drop the fields the schema does
//! not declare (pruning), drop `null`s of fields that may not be null, and fill in defaults.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use super::structural::Structural;

/// Fields of a resource's root that are never pruned: the API server handles them itself.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// `object` as the API server stores it, and the paths of the unknown fields it dropped
/// (`spec.services.Frontend.replica`), sorted.
pub(crate) fn as_decoded(object: &Value, schema: &JSONSchemaProps) -> (Value, Vec<String>) {
    let mut object = object.clone();
    let mut unknown = Vec::new();
    if let Value::Object(fields) = &mut object {
        let mut root_fields = Vec::new();
        for name in ROOT_FIELDS {
            if let Some(value) = fields.remove(name) {
                root_fields.push((name, value));
            }
        }
        prune_unknown(&mut object, Some(schema), "", &mut unknown);
        prune_nulls(&mut object, schema);
        apply_defaults(&mut object, schema);
        if let Value::Object(fields) = &mut object {
            for (name, value) in root_fields {
                fields.insert(name.to_owned(), value);
            }
        }
    }
    unknown.sort();
    (object, unknown)
}

/// Drops the fields `schema` does not declare, recording their paths.
fn prune_unknown(
    value: &mut Value,
    schema: Option<&JSONSchemaProps>,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::Object(fields) => {
            let Some(schema) = schema else {
                unknown.extend(fields.keys().map(|name| join(name)));
                fields.clear();
                return;
            };
            fields.retain(|name, child| {
                let child_schema = schema.property(name).or_else(|| schema.map_values());
                match child_schema {
                    Some(child_schema) => {
                        prune_unknown(child, Some(child_schema), &join(name), unknown);
                        true
                    }
                    None if schema.additional_properties.is_some() => true,
                    None if schema.preserves_unknown_fields() => true,
                    None => {
                        unknown.push(join(name));
                        false
                    }
                }
            });
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(Structural::list_items);
            if item_schema.is_none() && schema.is_some_and(Structural::preserves_unknown_fields) {
                return;
            }
            for (index, item) in items.iter_mut().enumerate() {
                prune_unknown(item, item_schema, &format!("{path}[{index}]"), unknown);
            }
        }
        _ => {}
    }
}

/// Drops `null` values of fields that may not be null and have no default.
fn prune_nulls(value: &mut Value, schema: &JSONSchemaProps) {
    match value {
        Value::Object(fields) => fields.retain(|name, child| {
            let Some(child_schema) = schema.property(name).or_else(|| schema.map_values()) else {
                return true;
            };
            if child.is_null() && child_schema.default.is_none() && !child_schema.is_nullable() {
                return false;
            }
            prune_nulls(child, child_schema);
            true
        }),
        Value::Array(items) => {
            if let Some(item_schema) = schema.list_items() {
                items
                    .iter_mut()
                    .for_each(|item| prune_nulls(item, item_schema));
            }
        }
        _ => {}
    }
}

/// Fills in the schema's defaults for absent fields (and for `null`s of non-nullable ones).
fn apply_defaults(value: &mut Value, schema: &JSONSchemaProps) {
    let replaces = |child: Option<&Value>, child_schema: &JSONSchemaProps| match child {
        None => true,
        Some(child) => child.is_null() && !child_schema.is_nullable(),
    };
    match value {
        Value::Object(fields) => {
            for (name, property) in schema.properties.iter().flatten() {
                if let Some(default) = property.default_value()
                    && replaces(fields.get(name), property)
                {
                    fields.insert(name.clone(), default.clone());
                }
            }
            for (name, child) in fields.iter_mut() {
                if let Some(property) = schema.property(name) {
                    apply_defaults(child, property);
                } else if let Some(values) = schema.map_values() {
                    if let Some(default) = values.default_value()
                        && replaces(Some(child), values)
                    {
                        *child = default.clone();
                    }
                    apply_defaults(child, values);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.list_items() {
                for item in items {
                    if let Some(default) = item_schema.default_value()
                        && replaces(Some(item), item_schema)
                    {
                        *item = default.clone();
                    }
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> JSONSchemaProps {
        serde_json::from_value(value).unwrap()
    }

    fn root() -> JSONSchemaProps {
        schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "mode": {"type": "string"},
                        "note": {"type": "string", "nullable": true},
                        "multinode": {
                            "type": "object",
                            "properties": {"nodeCount": {"type": "integer", "default": 2}}
                        },
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "list": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"name": {"type": "string"}, "on": {"type": "boolean", "default": false}}
                            }
                        }
                    }
                }
            }
        }))
    }

    #[test]
    fn prunes_defaults_and_keeps_what_the_server_keeps() {
        let cases = [
            (
                "unknown fields go, with their paths",
                json!({"spec": {"replica": 2, "list": [{"name": "a", "nam": "b"}]}, "extra": 1}),
                json!({"spec": {"replicas": 1, "list": [{"name": "a", "on": false}]}}),
                vec!["extra", "spec.list[0].nam", "spec.replica"],
            ),
            (
                "maps and preserved objects keep every key",
                json!({"spec": {"labels": {"a": "b"}, "config": {"any": {"thing": 1}}}}),
                json!({"spec": {"replicas": 1, "labels": {"a": "b"}, "config": {"any": {"thing": 1}}}}),
                vec![],
            ),
            (
                "an object's defaults apply only when the object is present",
                json!({"spec": {"multinode": {}}}),
                json!({"spec": {"replicas": 1, "multinode": {"nodeCount": 2}}}),
                vec![],
            ),
            (
                "a set value wins over the default",
                json!({"spec": {"replicas": 0, "multinode": {"nodeCount": 4}}}),
                json!({"spec": {"replicas": 0, "multinode": {"nodeCount": 4}}}),
                vec![],
            ),
            (
                "nulls: dropped, defaulted, or kept when nullable",
                json!({"spec": {"mode": null, "replicas": null, "note": null}}),
                json!({"spec": {"replicas": 1, "note": null}}),
                vec![],
            ),
            (
                "apiVersion, kind and metadata are never pruned",
                json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n", "x": 1}}),
                json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n", "x": 1}}),
                vec![],
            ),
        ];
        for (name, input, expected, unknown) in cases {
            let (decoded, dropped) = as_decoded(&input, &root());
            assert_eq!(decoded, expected, "{name}");
            assert_eq!(dropped, unknown, "{name}");
        }
    }
}
