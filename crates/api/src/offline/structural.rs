//! Reading a structural schema node: the parts the offline checks walk.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// Accessors over one node of a CRD's `openAPIV3Schema`.
pub(crate) trait Structural {
    /// The schema of property `name`, if declared.
    fn property(&self, name: &str) -> Option<&JSONSchemaProps>;
    /// The schema of every value of a map (`additionalProperties`).
    fn map_values(&self) -> Option<&JSONSchemaProps>;
    /// The schema of every list item.
    fn list_items(&self) -> Option<&JSONSchemaProps>;
    fn has_properties(&self) -> bool;
    fn is_nullable(&self) -> bool;
    fn preserves_unknown_fields(&self) -> bool;
    fn is_int_or_string(&self) -> bool;
    /// The types a value may have: `["integer", "string"]` for int-or-string, else `type`.
    fn types(&self) -> Vec<&str>;
    fn default_value(&self) -> Option<&Value>;
}

impl Structural for JSONSchemaProps {
    fn property(&self, name: &str) -> Option<&JSONSchemaProps> {
        self.properties.as_ref()?.get(name)
    }

    fn map_values(&self) -> Option<&JSONSchemaProps> {
        match self.additional_properties.as_ref()? {
            JSONSchemaPropsOrBool::Schema(schema) => Some(schema),
            JSONSchemaPropsOrBool::Bool(_) => None,
        }
    }

    fn list_items(&self) -> Option<&JSONSchemaProps> {
        match self.items.as_ref()? {
            JSONSchemaPropsOrArray::Schema(schema) => Some(schema),
            JSONSchemaPropsOrArray::Schemas(schemas) => schemas.first(),
        }
    }

    fn has_properties(&self) -> bool {
        self.properties.as_ref().is_some_and(|p| !p.is_empty())
    }

    fn is_nullable(&self) -> bool {
        self.nullable == Some(true)
    }

    fn preserves_unknown_fields(&self) -> bool {
        self.x_kubernetes_preserve_unknown_fields == Some(true)
    }

    fn is_int_or_string(&self) -> bool {
        self.x_kubernetes_int_or_string == Some(true)
    }

    fn types(&self) -> Vec<&str> {
        if self.is_int_or_string() {
            vec!["integer", "string"]
        } else {
            self.type_.as_deref().into_iter().collect()
        }
    }

    fn default_value(&self) -> Option<&Value> {
        self.default.as_ref().map(|json| &json.0)
    }
}
