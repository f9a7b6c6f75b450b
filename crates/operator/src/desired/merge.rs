//! User overrides over generated defaults, with upstream's override semantics (mergo with
//! override: a field the user sets replaces the default, a field the user leaves out keeps it)
//! and a few rules that keep the result a valid object.
//!
//! - Objects merge key by key, recursively; scalars and lists from the user replace the default.
//!   At the top level of a container or pod override, an empty list counts as "not set", as it
//!   does upstream (so a templated `args: []` keeps the default arguments).
//! - Lists of named items merge by key instead ([`CONTAINER_KEYED_LISTS`], [`POD_KEYED_LISTS`]):
//!   a user item with the key of a default item replaces it in place, other user items are
//!   appended. Container `ports` are keyed by `name`; `volumeMounts` by `mountPath` (two mounts
//!   may use one volume at different paths); pod `volumes` and `imagePullSecrets` by `name`.
//!   Upstream replaces these lists wholesale; merging keeps every manifest's own items and only
//!   adds the defaults the manifest did not restate.
//! - `env` merges by variable name across precedence levels ([`merge_env`]).
//! - Probes of `extraPodSpec.mainContainer` (`livenessProbe`, `readinessProbe`, `startupProbe`)
//!   merge field by field, with one handler per probe: a probe that sets only timing fields
//!   keeps the default handler (`startupProbe: {initialDelaySeconds: 180}`, as in upstream's
//!   GKE examples, stays a valid probe), and a probe that names a handler (`exec`, `httpGet`,
//!   `tcpSocket`, `grpc`) replaces the default handler while its unset timing fields keep the
//!   defaults. Upstream replaces a startup probe wholesale and deep-merges the others, which
//!   yields probes the API server refuses ("must specify a handler type", or two handlers).
//! - The service-level `livenessProbe`/`readinessProbe` replace the probe wholesale, as
//!   upstream does; the pod builder applies them after this merge.
//! - A user `command` without `args` drops the default `args` (Kubernetes' own rule for an
//!   image's entrypoint and CMD); upstream keeps them, which runs a complete user command
//!   line with `-m dynamo.frontend` appended.
//! - The container `name` always stays `main`; the `containers` of a pod override are handled
//!   by the pod builder (the `main` entry is merged like `mainContainer`, others are appended).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::BuildError;

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];
/// The handler fields of a probe; a valid probe has exactly one.
const PROBE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];
/// Container lists merged by key: (list field, key field of its items).
pub const CONTAINER_KEYED_LISTS: [(&str, &str); 2] =
    [("ports", "name"), ("volumeMounts", "mountPath")];
/// Pod spec lists merged by key: (list field, key field of its items).
pub const POD_KEYED_LISTS: [(&str, &str); 2] = [("volumes", "name"), ("imagePullSecrets", "name")];

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

/// The user's container fields merged over the default container (see the module rules). The
/// user's `name` and `env` are ignored here: the name stays, env goes through [`merge_env`].
pub fn merge_container(base: &Container, overlay: &Container) -> Result<Container, BuildError> {
    const WHAT: &str = "extraPodSpec.mainContainer";
    let mut merged = to_value(base, WHAT)?;
    let mut overlay = to_value(overlay, WHAT)?;
    if let (Value::Object(merged), Value::Object(overlay)) = (&mut merged, &mut overlay) {
        overlay.remove("name");
        overlay.remove("env");
        drop_unset(overlay);
        if overlay.contains_key("command") && !overlay.contains_key("args") {
            // A command of the user's own brings its own arguments, as a container `command`
            // drops the image's CMD: `command: [python3, -m, dynamo.frontend, ...]` alone must
            // not get the default `-m dynamo.frontend` appended (upstream appends it).
            merged.remove("args");
        }
        for probe in PROBES {
            if let (Some(Value::Object(user)), Some(Value::Object(default))) =
                (overlay.get(probe), merged.get_mut(probe))
                && PROBE_HANDLERS.iter().any(|h| user.contains_key(*h))
            {
                for handler in PROBE_HANDLERS {
                    default.remove(handler);
                }
            }
        }
        merge_keyed_lists(merged, overlay, &CONTAINER_KEYED_LISTS);
    }
    merge_values(&mut merged, overlay);
    from_value(merged, WHAT)
}

/// The user's PodSpec fields merged over the base pod spec (see the module rules). The base
/// `containers` are kept; the user's `containers` are left to the caller.
pub fn merge_pod_spec(base: &PodSpec, overlay: &PodSpec) -> Result<PodSpec, BuildError> {
    const WHAT: &str = "extraPodSpec";
    let mut merged = to_value(base, WHAT)?;
    let mut overlay = to_value(overlay, WHAT)?;
    if let (Value::Object(merged), Value::Object(overlay)) = (&mut merged, &mut overlay) {
        overlay.remove("containers");
        drop_unset(overlay);
        merge_keyed_lists(merged, overlay, &POD_KEYED_LISTS);
    }
    merge_values(&mut merged, overlay);
    from_value(merged, WHAT)
}

/// Merges the user's `items` into `list` by the `key` field: an item whose key is already in
/// the list replaces that entry in place; items without the key, or with a new key, are
/// appended.
pub fn merge_by_key(list: &mut Vec<Value>, items: Vec<Value>, key: &str) {
    for item in items {
        let existing = item
            .get(key)
            .filter(|k| !k.is_null())
            .and_then(|k| list.iter().position(|entry| entry.get(key) == Some(k)));
        match existing {
            Some(index) => list[index] = item,
            None => list.push(item),
        }
    }
}

/// Moves each keyed list of `overlay` into `merged` with [`merge_by_key`].
fn merge_keyed_lists(
    merged: &mut Map<String, Value>,
    overlay: &mut Map<String, Value>,
    lists: &[(&str, &str)],
) {
    for (field, key) in lists {
        let Some(Value::Array(items)) = overlay.remove(*field) else {
            continue;
        };
        match merged.get_mut(*field) {
            Some(Value::Array(list)) => merge_by_key(list, items, key),
            _ => {
                let mut list = Vec::new();
                merge_by_key(&mut list, items, key);
                merged.insert((*field).to_owned(), Value::Array(list));
            }
        }
    }
}

/// Removes the top-level fields an override leaves unset: `null` and empty lists.
fn drop_unset(overlay: &mut Map<String, Value>) {
    overlay.retain(|_, value| match value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        _ => true,
    });
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

    fn merged_container(base: Value, user: Value) -> Value {
        serde_json::to_value(merge_container(&container(base), &container(user)).unwrap()).unwrap()
    }

    #[test]
    fn container_merge_keeps_name_and_env_and_merges_fields() {
        let base = json!({
            "name": "main",
            "command": ["python3"],
            "args": ["-m", "dynamo.frontend"],
            "env": [{"name": "A", "value": "1"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        });
        let user = json!({
            "name": "",
            "command": ["my-frontend"],
            "image": "img:1",
            "env": [{"name": "B", "value": "2"}],
            "resources": {"limits": {"cpu": "2"}},
        });
        assert_eq!(
            merged_container(base, user),
            json!({
                "name": "main",
                "command": ["my-frontend"],
                "image": "img:1",
                "env": [{"name": "A", "value": "1"}],
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            })
        );
    }

    #[test]
    fn probes_merge_field_by_field_with_one_handler() {
        let live = json!({"httpGet": {"path": "/live", "port": "system"}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 720});
        // (case, default probe, user probe, merged probe)
        let cases = [
            (
                "timing only keeps the default handler",
                live.clone(),
                json!({"initialDelaySeconds": 120}),
                json!({"httpGet": {"path": "/live", "port": "system"}, "initialDelaySeconds": 120,
                       "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 720}),
            ),
            (
                "a user handler replaces the default one, timing still merges",
                live.clone(),
                json!({"exec": {"command": ["true"]}, "failureThreshold": 3}),
                json!({"exec": {"command": ["true"]}, "periodSeconds": 10, "timeoutSeconds": 5,
                       "failureThreshold": 3}),
            ),
            (
                "a handler of the same kind is replaced, not merged",
                live.clone(),
                json!({"httpGet": {"path": "/health", "port": 9345, "scheme": "HTTPS"}}),
                json!({"httpGet": {"path": "/health", "port": 9345, "scheme": "HTTPS"},
                       "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 720}),
            ),
            (
                "tcpSocket and grpc are handlers too",
                json!({"grpc": {"port": 9003}, "periodSeconds": 10}),
                json!({"tcpSocket": {"port": 9002}}),
                json!({"tcpSocket": {"port": 9002}, "periodSeconds": 10}),
            ),
            (
                "zero is a value, not unset",
                live.clone(),
                json!({"initialDelaySeconds": 0, "periodSeconds": 1}),
                json!({"httpGet": {"path": "/live", "port": "system"}, "initialDelaySeconds": 0,
                       "periodSeconds": 1, "timeoutSeconds": 5, "failureThreshold": 720}),
            ),
        ];
        for probe in PROBES {
            for (case, default, user, expected) in &cases {
                let merged = merged_container(
                    json!({"name": "main", probe: default}),
                    json!({"name": "main", probe: user}),
                );
                assert_eq!(merged[probe], *expected, "{probe}: {case}");
            }
            let merged = merged_container(
                json!({"name": "main"}),
                json!({"name": "main", probe: {"exec": {"command": ["true"]}}}),
            );
            assert_eq!(
                merged[probe],
                json!({"exec": {"command": ["true"]}}),
                "{probe}"
            );
            let merged = merged_container(json!({"name": "main", probe: live}), json!({}));
            assert_eq!(merged[probe], live, "{probe}: untouched");
        }
    }

    #[test]
    fn container_lists_merge_by_key_or_replace() {
        let base = json!({
            "name": "main",
            "ports": [{"name": "system", "containerPort": 9090, "protocol": "TCP"}],
            "volumeMounts": [{"name": "shared-memory", "mountPath": "/dev/shm"}],
            "args": ["-m", "dynamo.frontend"],
        });
        // (case, user fields, field, merged list)
        let cases = [
            (
                "a port with a default's name replaces it",
                json!({"ports": [{"name": "system", "containerPort": 9345}]}),
                "ports",
                json!([{"name": "system", "containerPort": 9345}]),
            ),
            (
                "new ports are appended, unnamed ones too",
                json!({"ports": [{"name": "metrics", "containerPort": 8081}, {"containerPort": 7000}]}),
                "ports",
                json!([{"name": "system", "containerPort": 9090, "protocol": "TCP"},
                       {"name": "metrics", "containerPort": 8081}, {"containerPort": 7000}]),
            ),
            (
                "an empty list keeps the defaults",
                json!({"ports": []}),
                "ports",
                json!([{"name": "system", "containerPort": 9090, "protocol": "TCP"}]),
            ),
            (
                "a mount at a default's path replaces it",
                json!({"volumeMounts": [{"name": "big-shm", "mountPath": "/dev/shm"}]}),
                "volumeMounts",
                json!([{"name": "big-shm", "mountPath": "/dev/shm"}]),
            ),
            (
                "one volume at two paths keeps both mounts",
                json!({"volumeMounts": [{"name": "shared-memory", "mountPath": "/tmp/shm", "subPath": "a"}]}),
                "volumeMounts",
                json!([{"name": "shared-memory", "mountPath": "/dev/shm"},
                       {"name": "shared-memory", "mountPath": "/tmp/shm", "subPath": "a"}]),
            ),
            (
                "other lists are replaced",
                json!({"args": ["-m", "dynamo.frontend", "--router-mode", "kv"]}),
                "args",
                json!(["-m", "dynamo.frontend", "--router-mode", "kv"]),
            ),
            (
                "an empty args list keeps the default arguments",
                json!({"args": []}),
                "args",
                json!(["-m", "dynamo.frontend"]),
            ),
        ];
        for (case, mut user, field, expected) in cases {
            user["name"] = json!("main");
            let merged = merged_container(base.clone(), user);
            assert_eq!(merged[field], expected, "{case}");
        }
        let merged = merged_container(
            json!({"name": "main"}),
            json!({"ports": [{"name": "a", "containerPort": 1}, {"name": "a", "containerPort": 2}]}),
        );
        assert_eq!(
            merged["ports"],
            json!([{"name": "a", "containerPort": 2}]),
            "a key repeated by the user: the later item wins"
        );
    }

    fn pod_spec(value: Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pod_spec_merge_leaves_containers_alone() {
        let base = pod_spec(json!({
            "containers": [{"name": "main"}],
            "restartPolicy": "Always",
            "nodeSelector": {"a": "1"},
            "tolerations": [{"key": "x", "operator": "Exists"}],
        }));
        let user = pod_spec(json!({
            "containers": [{"name": "sidecar"}],
            "nodeSelector": {"b": "2"},
            "tolerations": [{"key": "y", "operator": "Exists"}],
        }));
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
    fn pod_lists_merge_by_name_or_replace() {
        let base = pod_spec(json!({
            "containers": [{"name": "main"}],
            "volumes": [{"name": "shared-memory", "emptyDir": {"medium": "Memory"}},
                        {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}],
            "imagePullSecrets": [{"name": "ngc"}],
            "tolerations": [{"key": "x", "operator": "Exists"}],
        }));
        // (case, user fields, field, merged list)
        let cases = [
            (
                "a volume with a default's name replaces it, whole",
                json!({"volumes": [{"name": "shared-memory", "hostPath": {"path": "/dev/shm"}}]}),
                "volumes",
                json!([{"name": "shared-memory", "hostPath": {"path": "/dev/shm"}},
                       {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}]),
            ),
            (
                "new volumes are appended",
                json!({"volumes": [{"name": "extra", "emptyDir": {}}]}),
                "volumes",
                json!([{"name": "shared-memory", "emptyDir": {"medium": "Memory"}},
                       {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}},
                       {"name": "extra", "emptyDir": {}}]),
            ),
            (
                "image pull secrets by name",
                json!({"imagePullSecrets": [{"name": "ngc"}, {"name": "mine"}]}),
                "imagePullSecrets",
                json!([{"name": "ngc"}, {"name": "mine"}]),
            ),
            (
                "tolerations are replaced",
                json!({"tolerations": [{"key": "y", "operator": "Exists"}]}),
                "tolerations",
                json!([{"key": "y", "operator": "Exists"}]),
            ),
            (
                "an empty list keeps the defaults",
                json!({"tolerations": []}),
                "tolerations",
                json!([{"key": "x", "operator": "Exists"}]),
            ),
        ];
        for (case, mut user, field, expected) in cases {
            user["containers"] = json!([]);
            let merged = merge_pod_spec(&base, &pod_spec(user)).unwrap();
            assert_eq!(
                serde_json::to_value(merged).unwrap()[field],
                expected,
                "{case}"
            );
        }
        let merged = merge_pod_spec(
            &pod_spec(json!({"containers": []})),
            &pod_spec(json!({"containers": [], "volumes": [{"name": "v", "emptyDir": {}}]})),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(merged).unwrap()["volumes"],
            json!([{"name": "v", "emptyDir": {}}])
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
