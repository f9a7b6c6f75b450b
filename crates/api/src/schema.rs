//! Schema helpers for the CRD generator.
//!
//! Kubernetes core types (PodSpec, Container, Probe, EnvVar, ...) carry long upstream
//! descriptions. Embedded in every service of every kind they made upstream's CRDs about
//! 2.9 MB, too large for a Helm release Secret (1 MB). The fields keep their full structural
//! schema (types, required lists, int-or-string markers, list/map types) but lose the prose,
//! which is documented by Kubernetes itself. Our own fields keep their descriptions.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

/// Schema of a Kubernetes core type `T` without its descriptions.
pub fn core<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<T>().to_value();
    strip_descriptions(&mut schema);
    Schema::try_from(schema).expect("a JSON schema stays an object or a bool")
}

/// Schema of a Kubernetes core type with its top-level `required` list dropped, for partial
/// overrides such as `extraPodSpec` and `extraPodSpec.mainContainer`.
pub fn core_partial<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = core::<T>(generator);
    if let Some(object) = schema.as_object_mut() {
        object.remove("required");
    }
    schema
}

/// A free-form object whose fields the API server keeps as they are.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Removes the `description` keyword from a schema and all of its subschemas.
///
/// Walks the schema structure (not every JSON key) so a property that happens to be named
/// `description` is kept.
pub fn strip_descriptions(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("description");
    for keyword in ["properties", "patternProperties", "$defs", "definitions"] {
        if let Some(Value::Object(subschemas)) = object.get_mut(keyword) {
            subschemas.values_mut().for_each(strip_descriptions);
        }
    }
    for keyword in ["items", "additionalProperties", "not"] {
        if let Some(subschema) = object.get_mut(keyword) {
            strip_descriptions(subschema);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(Value::Array(subschemas)) = object.get_mut(keyword) {
            subschemas.iter_mut().for_each(strip_descriptions);
        }
    }
}

/// Inserts a property into an object schema.
pub(crate) fn insert_property(schema: &mut Schema, name: &str, property: Schema) {
    let object = schema.ensure_object();
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert(name.to_owned(), property.to_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_nested_descriptions_but_keeps_a_property_named_description() {
        let mut schema = json!({
            "description": "top",
            "type": "object",
            "properties": {
                "description": {"type": "string", "description": "a field called description"},
                "list": {"type": "array", "items": {"description": "item", "type": "string"}},
                "map": {"type": "object", "additionalProperties": {"description": "v", "type": "string"}},
                "either": {"anyOf": [{"description": "a", "type": "integer"}, {"type": "string"}]}
            }
        });
        strip_descriptions(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "list": {"type": "array", "items": {"type": "string"}},
                    "map": {"type": "object", "additionalProperties": {"type": "string"}},
                    "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]}
                }
            })
        );
    }
}
