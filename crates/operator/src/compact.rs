//! Cached objects in compact form: the whole object as LZ4-compressed JSON, and beside it the
//! few metadata fields the watches route and index by, typed.
//!
//! k8s-openapi's structs reserve room inline for every optional field, and a typed label map
//! costs a B-tree node and two strings per label: a Deployment of ours takes about 14 KiB as a
//! struct and under 4 KiB as JSON, which compresses to about a quarter (field names repeat).
//! The operator only reads a cached object in a reconcile, so the caches keep the compressed
//! JSON and [`Compact::decode`] builds the typed object when it is needed. Objects of one kind
//! are alike (field names, label keys, images, env names, probes), so each is compressed
//! against the first object of its kind the process saw (LZ4's external dictionary): what it
//! shares with that one costs a few bytes.
//!
//! The typed [`ObjectMeta`] (what [`Resource::meta`] gives) holds the identity (name,
//! namespace, uid, resourceVersion, generation), the deletion timestamp, finalizers and owner
//! references, and no labels: the values of the [`ROUTING_LABELS`] are kept beside it
//! ([`Compact::routing_label`]; a typed label map allocates a B-tree node of some 550 bytes
//! even for one label); everything else is read from the decoded object. The watch events
//! carry the typed metadata (controllers route them by owner); a cache read only decoded
//! keeps a copy with only the name typed ([`Compact::name_only`], see [`crate::caches`]).
//! Edits through [`Resource::meta_mut`] do not reach the decoded object: trim with
//! [`Compact::strip`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock, RwLock};

use dynamo_api::labels::label;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The labels watches map events by and indexes group by, kept typed.
pub const ROUTING_LABELS: [&str; 2] = [label::SELECTOR, label::BASE_MODEL_HASH];

/// Annotation no reconcile reads that can be as large as the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object of kind `K`: routing metadata, and the whole object packed.
pub struct Compact<K> {
    metadata: ObjectMeta,
    /// The values of the [`ROUTING_LABELS`] the object has, in that order.
    routing: RoutingLabels,
    /// The object as JSON, LZ4-compressed (size-prefixed block) against `dictionary`, without
    /// `managedFields` and the last-applied annotation.
    packed: Box<[u8]>,
    /// The dictionary of the kind (shared by every object of it; see [`dictionary`]).
    dictionary: Arc<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            routing: self.routing.clone(),
            packed: self.packed.clone(),
            dictionary: self.dictionary.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("object", &String::from_utf8_lossy(&self.json()))
            .finish()
    }
}

impl<K: Resource + DeserializeOwned> Compact<K> {
    /// The typed object.
    pub fn decode(&self) -> serde_json::Result<K> {
        serde_json::from_slice(&self.json())
    }
}

/// The dictionary of each kind, by the kind's Rust type name.
type Dictionaries = RwLock<HashMap<&'static str, Arc<[u8]>>>;

/// LZ4 looks back at most this far, so a longer dictionary is kept by its end.
const DICTIONARY_MAX: usize = 64 * 1024;

/// The dictionary of kind `K`: the JSON of the first object of the kind this process packed
/// (`sample`, if there is none yet). Fixed for the life of the process, as every packed object
/// of the kind needs it to unpack.
fn dictionary<K>(sample: &[u8]) -> Arc<[u8]> {
    static DICTIONARIES: LazyLock<Dictionaries> = LazyLock::new(Default::default);
    let kind = std::any::type_name::<K>();
    if let Some(dictionary) = DICTIONARIES.read().unwrap().get(kind) {
        return dictionary.clone();
    }
    DICTIONARIES
        .write()
        .unwrap()
        .entry(kind)
        .or_insert_with(|| Arc::from(&sample[sample.len().saturating_sub(DICTIONARY_MAX)..]))
        .clone()
}

/// The values of the [`ROUTING_LABELS`] on one object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutingLabels([Option<Box<str>>; ROUTING_LABELS.len()]);

impl RoutingLabels {
    /// Reads the routing labels out of an object's labels.
    pub fn of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Self {
        RoutingLabels(ROUTING_LABELS.map(|key| labels?.get(key).map(|v| v.as_str().into())))
    }

    /// The value of routing label `key`; None for a label that is not one of them.
    pub fn get(&self, key: &str) -> Option<&str> {
        let at = ROUTING_LABELS.iter().position(|k| *k == key)?;
        self.0[at].as_deref()
    }
}

impl<K> Compact<K> {
    /// The value of one of the [`ROUTING_LABELS`] on the object (other labels are in the
    /// decoded object only).
    pub fn routing_label(&self, key: &str) -> Option<&str> {
        self.routing.get(key)
    }

    /// The values of the [`ROUTING_LABELS`] on the object.
    pub fn routing_labels(&self) -> &RoutingLabels {
        &self.routing
    }

    /// A copy that keeps only the name and namespace typed (the cache's key), for a cache read
    /// only through [`Compact::decode`] and the routing labels: each typed field costs its own
    /// allocations (an owner reference five), and the store's key copies the uid and
    /// resourceVersion again.
    pub fn name_only(&self) -> Self {
        Compact {
            metadata: ObjectMeta {
                name: self.metadata.name.clone(),
                namespace: self.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            routing: self.routing.clone(),
            packed: self.packed.clone(),
            dictionary: self.dictionary.clone(),
            kind: PhantomData,
        }
    }

    /// Drops fields the cache never reads, by dotted path from the top (a pod's `spec`, its
    /// `metadata.annotations`).
    pub fn strip(&mut self, paths: &[&str]) {
        let Ok(mut object) = serde_json::from_slice::<Value>(&self.json()) else {
            return;
        };
        let removed = paths
            .iter()
            .filter(|path| remove_path(&mut object, path))
            .count();
        if removed > 0
            && let Ok(json) = serde_json::to_vec(&object)
        {
            self.packed = pack(&json, &self.dictionary);
        }
    }

    /// The object's JSON; empty (which fails to decode, and is logged there) if the bytes are
    /// not what [`pack`] made, which nothing else writes.
    fn json(&self) -> Vec<u8> {
        lz4_flex::block::decompress_size_prepended_with_dict(&self.packed, &self.dictionary)
            .unwrap_or_default()
    }
}

/// Removes the field at a dotted path; whether there was one.
fn remove_path(object: &mut Value, path: &str) -> bool {
    let (parents, field) = match path.rsplit_once('.') {
        Some((parents, field)) => (Some(parents), field),
        None => (None, path),
    };
    let mut at = object;
    for parent in parents.into_iter().flat_map(|p| p.split('.')) {
        match at.get_mut(parent) {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.as_object_mut()
        .is_some_and(|fields| fields.remove(field).is_some())
}

/// The metadata fields kept typed (see the module comment).
fn routing_metadata(full: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: full.name,
        namespace: full.namespace,
        uid: full.uid,
        resource_version: full.resource_version,
        generation: full.generation,
        deletion_timestamp: full.deletion_timestamp,
        finalizers: full.finalizers,
        owner_references: full.owner_references,
        ..ObjectMeta::default()
    }
}

impl<'de, K> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let metadata = match object.get_mut("metadata") {
            Some(metadata) => {
                remove_path(metadata, "managedFields");
                if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
                    annotations.remove(LAST_APPLIED);
                }
                ObjectMeta::deserialize(&*metadata).map_err(D::Error::custom)?
            }
            None => ObjectMeta::default(),
        };
        let json = serde_json::to_vec(&object).map_err(D::Error::custom)?;
        let dictionary = dictionary::<K>(&json);
        Ok(Compact {
            routing: RoutingLabels::of(metadata.labels.as_ref()),
            metadata: routing_metadata(metadata),
            packed: pack(&json, &dictionary),
            dictionary,
            kind: PhantomData,
        })
    }
}

fn pack(json: &[u8], dictionary: &[u8]) -> Box<[u8]> {
    lz4_flex::block::compress_prepend_size_with_dict(json, dictionary).into_boxed_slice()
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(_: &()) -> Cow<'_, str> {
        K::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        K::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        K::version(&())
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        K::api_version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        K::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt;

    #[test]
    fn decodes_to_the_object_it_was_read_from() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "g-frontend", "namespace": "team", "uid": "u1",
                         "resourceVersion": "7", "generation": 2, "finalizers": ["f"],
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"nvidia.com/selector": "g-frontend", "app": "x"},
                         "annotations": {"note": "kept"},
                         "ownerReferences": [{"apiVersion": "nvidia.com/v1alpha1",
                             "kind": "DynamoComponentDeployment", "name": "g-frontend",
                             "uid": "u0", "controller": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
            "status": {"readyReplicas": 1},
        });
        let compact: Compact<Deployment> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(compact.name_any(), "g-frontend");
        assert_eq!(compact.uid().as_deref(), Some("u1"));
        assert_eq!(compact.resource_version().as_deref(), Some("7"));
        assert_eq!(compact.finalizers(), ["f"]);
        assert_eq!(compact.owner_references()[0].uid, "u0");
        assert!(compact.labels().is_empty(), "labels are not kept typed");
        assert_eq!(compact.routing_label(label::SELECTOR), Some("g-frontend"));
        assert_eq!(compact.routing_label(label::BASE_MODEL_HASH), None);
        assert_eq!(compact.routing_label("app"), None, "not a routing label");
        assert!(compact.annotations().is_empty());
        assert_eq!(Compact::<Deployment>::plural(&()), "deployments");
        let decoded = compact.decode().unwrap();
        let expected: Deployment = serde_json::from_value(json).unwrap();
        assert_eq!(decoded, expected, "the decoded object has all of it");
    }

    #[test]
    fn holds_less_than_the_json() {
        let env: Vec<_> = (0..20)
            .map(|i| serde_json::json!({"name": format!("DYN_SETTING_{i}"), "value": "some value"}))
            .collect();
        let json = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x", "env": env}]}}},
        });
        let text = serde_json::to_vec(&json).unwrap();
        let compact: Compact<Deployment> = serde_json::from_value(json.clone()).unwrap();
        assert!(
            compact.packed.len() * 2 < text.len(),
            "{} bytes packed, {} as JSON",
            compact.packed.len(),
            text.len()
        );
        assert_eq!(
            compact.decode().unwrap(),
            serde_json::from_value::<Deployment>(json).unwrap()
        );
    }

    #[test]
    fn an_object_like_an_earlier_one_of_its_kind_costs_a_fraction_of_it() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let config_map = |name: &str| {
            let data: serde_json::Map<_, _> = (0..40)
                .map(|i| (format!("setting-{i}"), format!("value number {i}").into()))
                .collect();
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "team"}, "data": data})
        };
        let first: Compact<ConfigMap> = serde_json::from_value(config_map("first")).unwrap();
        let second: Compact<ConfigMap> = serde_json::from_value(config_map("second")).unwrap();
        let alone =
            lz4_flex::compress_prepend_size(&serde_json::to_vec(&config_map("second")).unwrap());
        assert!(
            second.packed.len() * 4 < alone.len(),
            "{} bytes against the dictionary, {} alone",
            second.packed.len(),
            alone.len()
        );
        assert_eq!(
            first.decode().unwrap().metadata.name.as_deref(),
            Some("first")
        );
        assert_eq!(
            second.decode().unwrap(),
            serde_json::from_value::<ConfigMap>(config_map("second")).unwrap()
        );
    }

    #[test]
    fn an_object_keeping_only_its_name_typed_still_decodes_whole() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team", "uid": "u1", "resourceVersion": "9",
                         "labels": {"nvidia.com/selector": "c"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "rs", "uid": "u0"}]},
        });
        let compact: Compact<Pod> = serde_json::from_value::<Compact<Pod>>(json.clone())
            .unwrap()
            .name_only();
        assert_eq!(compact.name_any(), "p");
        assert_eq!(compact.namespace().as_deref(), Some("team"));
        assert_eq!(compact.uid(), None);
        assert!(compact.owner_references().is_empty());
        assert_eq!(compact.routing_label(label::SELECTOR), Some("c"));
        assert_eq!(
            compact.decode().unwrap(),
            serde_json::from_value::<Pod>(json).unwrap()
        );
    }

    #[test]
    fn strips_every_path_it_is_given() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"a": "b"}, "labels": {"l": "v"}},
            "spec": {"containers": [{"name": "main", "image": "x"}]},
            "status": {"phase": "Running"},
        });
        let mut compact: Compact<Pod> = serde_json::from_value(json).unwrap();
        compact.strip(&[
            "spec",
            "metadata.annotations",
            "metadata.absent.field",
            "absent",
        ]);
        let pod = compact.decode().unwrap();
        assert_eq!(pod.spec, None);
        assert_eq!(pod.metadata.annotations, None);
        assert_eq!(pod.metadata.labels.unwrap()["l"], "v");
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    }

    #[test]
    fn the_cache_never_holds_managed_fields_or_the_last_applied_configuration() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                "deployment.kubernetes.io/revision": "1"}},
        });
        let compact: Compact<Deployment> = serde_json::from_value(json).unwrap();
        let decoded = compact.decode().unwrap();
        assert_eq!(decoded.metadata.managed_fields, None);
        assert_eq!(
            decoded
                .metadata
                .annotations
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["deployment.kubernetes.io/revision"]
        );
    }
}
