//! User overrides over generated defaults.
//!
//! The rule is the same everywhere: objects merge key by key (recursively), lists and scalars
//! from the user replace the default, and a field the user leaves out keeps the default.
//! Exceptions, because a partial merge would produce an invalid or surprising object:
//! - probes (`livenessProbe`, `readinessProbe`, `startupProbe`) are replaced wholesale, so a
//!   user `exec` probe never ends up next to a default `httpGet` handler;
//! - `env` is merged by variable name across precedence levels ([`merge_env`]);
//! - the container `name` always stays `main`; `containers` of a pod override are handled by
//!   the pod builder (extra containers are appended).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::BuildError;

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];

/// Merges `overlay` into `base`: objects recursively, everything else replaced. A `null` in the
/// overlay means "not set" and keeps the base value.
pub fn merge_values(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (_, Value::Null) => {}
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge_values(existing, value),
                    None if value.is_null() => {}
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// `base` with `overlay` merged over it by [`merge_values`], converted back to `T`.
pub fn merge_over<T, O>(base: &T, overlay: &O, what: &'static str) -> Result<T, BuildError>
where
    T: Serialize + DeserializeOwned,
    O: Serialize,
{
    let mut merged = to_value(base, what)?;
    merge_values(&mut merged, to_value(overlay, what)?);
    from_value(merged, what)
}

/// The user's container fields merged over the default container. The user's `name` and `env`
/// are ignored here (the name stays, env goes through [`merge_env`]); probes replace wholesale.
pub fn merge_container(base: &Container, overlay: &Container) -> Result<Container, BuildError> {
    const WHAT: &str = "extraPodSpec.mainContainer";
    let mut merged = to_value(base, WHAT)?;
    let mut overlay = to_value(overlay, WHAT)?;
    if let (Value::Object(merged), Value::Object(overlay)) = (&mut merged, &mut overlay) {
        overlay.remove("name");
        overlay.remove("env");
        for probe in PROBES {
            if overlay.get(probe).is_some_and(|p| !p.is_null()) {
                merged.remove(probe);
            }
        }
    }
    merge_values(&mut merged, overlay);
    from_value(merged, WHAT)
}

/// The user's PodSpec fields merged over the base pod spec. The base `containers` are kept;
/// the user's `containers` are left to the caller.
pub fn merge_pod_spec(base: &PodSpec, overlay: &PodSpec) -> Result<PodSpec, BuildError> {
    const WHAT: &str = "extraPodSpec";
    let mut overlay = to_value(overlay, WHAT)?;
    if let Value::Object(overlay) = &mut overlay {
        overlay.remove("containers");
    }
    let mut merged = to_value(base, WHAT)?;
    merge_values(&mut merged, overlay);
    from_value(merged, WHAT)
}

/// Environment variables from several precedence levels, lowest first: a later level replaces
/// an earlier variable of the same name. The result is sorted by name.
pub fn merge_env<'a, I>(levels: I) -> Vec<EnvVar>
where
    I: IntoIterator<Item = &'a [EnvVar]>,
{
    let mut merged = BTreeMap::new();
    for level in levels {
        for var in level {
            merged.insert(var.name.clone(), var.clone());
        }
    }
    merged.into_values().collect()
}

/// Appends the `items` whose key is not in `list` yet (entries already there win).
pub fn append_missing<T, K, F>(list: &mut Vec<T>, items: impl IntoIterator<Item = T>, key: F)
where
    K: PartialEq,
    F: Fn(&T) -> K,
{
    for item in items {
        let item_key = key(&item);
        if !list.iter().any(|existing| key(existing) == item_key) {
            list.push(item);
        }
    }
}

fn to_value<T: Serialize>(value: &T, what: &'static str) -> Result<Value, BuildError> {
    serde_json::to_value(value).map_err(|e| BuildError::Merge {
        what,
        message: e.to_string(),
    })
}

fn from_value<T: DeserializeOwned>(value: Value, what: &'static str) -> Result<T, BuildError> {
    serde_json::from_value(value).map_err(|e| BuildError::Merge {
        what,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_merge_objects_and_replace_lists_and_scalars() {
        let cases = [
            (json!({"a": 1}), json!({"b": 2}), json!({"a": 1, "b": 2})),
            (json!({"a": 1}), json!({"a": 2}), json!({"a": 2})),
            (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
            (
                json!({"o": {"x": 1, "y": 1}}),
                json!({"o": {"y": 2}}),
                json!({"o": {"x": 1, "y": 2}}),
            ),
            (json!({"a": 1}), json!({"a": null}), json!({"a": 1})),
            (json!({"a": 1}), json!({"n": null}), json!({"a": 1})),
            (json!({"a": {"x": 1}}), json!({"a": "s"}), json!({"a": "s"})),
        ];
        for (mut base, overlay, expected) in cases {
            let shown = format!("{base} <- {overlay}");
            merge_values(&mut base, overlay);
            assert_eq!(base, expected, "{shown}");
        }
    }

    fn container(value: Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn container_merge_keeps_name_and_replaces_probes_wholesale() {
        let base = container(json!({
            "name": "main",
            "command": ["python3", "-m", "dynamo.frontend"],
            "env": [{"name": "A", "value": "1"}],
            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 10},
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        }));
        let user = container(json!({
            "name": "",
            "command": ["my-frontend"],
            "image": "img:1",
            "env": [{"name": "B", "value": "2"}],
            "livenessProbe": {"exec": {"command": ["true"]}},
            "resources": {"limits": {"cpu": "2"}},
        }));
        let merged = merge_container(&base, &user).unwrap();
        assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            json!({
                "name": "main",
                "command": ["my-frontend"],
                "image": "img:1",
                "env": [{"name": "A", "value": "1"}],
                "livenessProbe": {"exec": {"command": ["true"]}},
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            })
        );
    }

    #[test]
    fn pod_spec_merge_leaves_containers_alone() {
        let base: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "main"}],
            "restartPolicy": "Always",
            "nodeSelector": {"a": "1"},
            "tolerations": [{"key": "x", "operator": "Exists"}],
        }))
        .unwrap();
        let user: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "sidecar"}],
            "nodeSelector": {"b": "2"},
            "tolerations": [{"key": "y", "operator": "Exists"}],
        }))
        .unwrap();
        let merged = serde_json::to_value(merge_pod_spec(&base, &user).unwrap()).unwrap();
        assert_eq!(
            merged,
            json!({
                "containers": [{"name": "main"}],
                "restartPolicy": "Always",
                "nodeSelector": {"a": "1", "b": "2"},
                "tolerations": [{"key": "y", "operator": "Exists"}],
            })
        );
    }

    #[test]
    fn an_override_of_the_wrong_shape_is_an_error() {
        let err = merge_over(&json!({"a": 1}), &json!({"a": "x"}), "thing")
            .map(|_: Value| ())
            .err();
        assert!(err.is_none(), "values always merge");
        let err = merge_over::<Container, _>(
            &Container::default(),
            &json!({"ports": "eighty"}),
            "extraPodSpec.mainContainer",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot merge extraPodSpec.mainContainer:"),
            "{err}"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(name, value)| EnvVar {
                name: (*name).into(),
                value: Some((*value).into()),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn env_later_levels_win_and_result_is_sorted() {
        let low = env(&[("Z", "low"), ("A", "low")]);
        let high = env(&[("A", "high"), ("M", "high")]);
        let merged = merge_env([low.as_slice(), high.as_slice()]);
        assert_eq!(merged, env(&[("A", "high"), ("M", "high"), ("Z", "low")]));
        assert!(merge_env(std::iter::empty()).is_empty());
    }

    #[test]
    fn append_missing_keeps_existing_entries() {
        let mut list = vec![("a", 1), ("b", 1)];
        append_missing(&mut list, [("b", 2), ("c", 2)], |(k, _)| *k);
        assert_eq!(list, vec![("a", 1), ("b", 1), ("c", 2)]);
    }
}
