//! `extraPodSpec`: any PodSpec field plus a `mainContainer`, merged over the generated pod.
//!
//! Both parts are partial: users write `extraPodSpec: {mainContainer: {image: ...}}` with no
//! `containers` list and no container `name` (the main container is always called `main`).
//! k8s-openapi's types require those fields, so this type fills them in on the way in and
//! leaves them out on the way out when they are empty, keeping a manifest's round trip exact.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::schema;

const MAIN_CONTAINER: &str = "mainContainer";

/// Pod-level overrides and the main container override of a service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtraPodSpec {
    /// PodSpec fields; `containers` is empty unless the user listed extra containers.
    pub pod_spec: Option<Box<PodSpec>>,
    /// Container fields merged over the generated `main` container; `name` may be empty.
    pub main_container: Option<Box<Container>>,
}

impl Serialize for ExtraPodSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = match &self.pod_spec {
            Some(pod_spec) => to_object(pod_spec, "containers").map_err(S::Error::custom)?,
            None => Map::new(),
        };
        if let Some(container) = &self.main_container {
            let container = to_object(container, "name").map_err(S::Error::custom)?;
            object.insert(MAIN_CONTAINER.to_owned(), Value::Object(container));
        }
        object.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExtraPodSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let main_container = match object.remove(MAIN_CONTAINER) {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                from_partial(value, "name", Value::String(String::new()))
                    .map_err(|e| D::Error::custom(format!("{MAIN_CONTAINER}.{e}")))?,
            ),
        };
        let pod_spec = if object.is_empty() {
            None
        } else {
            Some(
                from_partial(
                    Value::Object(object),
                    "containers",
                    Value::Array(Vec::new()),
                )
                .map_err(D::Error::custom)?,
            )
        };
        Ok(Self {
            pod_spec,
            main_container,
        })
    }
}

/// Serializes `value` to a JSON object, dropping `optional_key` when it is empty.
fn to_object<T: Serialize>(value: &T, optional_key: &str) -> Result<Map<String, Value>, String> {
    let Value::Object(mut object) = serde_json::to_value(value).map_err(|e| e.to_string())? else {
        return Err("expected an object".to_owned());
    };
    let empty = match object.get(optional_key) {
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        object.remove(optional_key);
    }
    Ok(object)
}

/// Deserializes an object that may lack the required `key`, inserting `filler` for it.
/// Errors carry the path of the offending field inside the object.
fn from_partial<T: DeserializeOwned>(
    mut value: Value,
    key: &str,
    filler: Value,
) -> Result<T, String> {
    match &mut value {
        Value::Object(object) => {
            object.entry(key).or_insert(filler);
        }
        other => return Err(format!("expected an object, found {other}")),
    }
    serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

impl JsonSchema for ExtraPodSpec {
    fn schema_name() -> Cow<'static, str> {
        "ExtraPodSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut pod_spec = schema::core_partial::<PodSpec>(generator);
        let main_container = schema::core_partial::<Container>(generator);
        schema::insert_property(&mut pod_spec, MAIN_CONTAINER, main_container);
        pod_spec.insert(
            "description".to_owned(),
            "PodSpec fields merged over the generated pod spec, and `mainContainer`, merged over \
             the generated main container."
                .into(),
        );
        pod_spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn main_container_without_name_round_trips() {
        let input = json!({"mainContainer": {"image": "vllm:1", "args": ["--model", "x"]}});
        let parsed: ExtraPodSpec = serde_json::from_value(input.clone()).unwrap();
        let container = parsed.main_container.as_ref().unwrap();
        assert_eq!(container.image.as_deref(), Some("vllm:1"));
        assert!(parsed.pod_spec.is_none());
        assert_eq!(serde_json::to_value(&parsed).unwrap(), input);
    }

    #[test]
    fn pod_fields_without_containers_round_trip() {
        let input = json!({
            "nodeSelector": {"gpu": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "mainContainer": {"name": "main", "workingDir": "/w"}
        });
        let parsed: ExtraPodSpec = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(
            parsed
                .pod_spec
                .as_ref()
                .unwrap()
                .tolerations
                .as_ref()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), input);
    }

    #[test]
    fn bad_field_inside_main_container_is_named() {
        let input = json!({"mainContainer": {"ports": [{"containerPort": "eighty"}]}});
        let err = serde_json::from_value::<ExtraPodSpec>(input)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mainContainer.ports[0].containerPort"),
            "{err}"
        );
    }
}
