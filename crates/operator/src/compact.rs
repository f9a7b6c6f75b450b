//! Cached child objects in compact form: typed metadata, everything else as LZ4-compressed
//! JSON text.
//!
//! k8s-openapi's structs reserve room inline for every optional field: a Deployment of ours
//! (one container, a dozen env vars, probes, a volume) takes about 14 KiB as a struct and
//! under 4 KiB as JSON, which compresses to about a quarter (field names repeat). The operator
//! only reads a cached object in a reconcile, so the watch caches keep the compressed JSON and
//! [`Compact::decode`] builds the typed object when it is needed. Metadata stays typed: the
//! caches index by it and owner references route watch events to owners.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// An object of kind `K`: its metadata, and the rest of it as JSON.
pub struct Compact<K> {
    metadata: ObjectMeta,
    /// The object without its metadata: JSON, LZ4-compressed (size-prefixed block).
    rest: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            metadata: self.metadata.clone(),
            rest: self.rest.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("metadata", &self.metadata)
            .field("rest", &String::from_utf8_lossy(&unpack(&self.rest)))
            .finish()
    }
}

impl<K: Resource + DeserializeOwned> Compact<K> {
    /// The typed object.
    pub fn decode(&self) -> serde_json::Result<K> {
        let mut object: Map<String, Value> = serde_json::from_slice(&unpack(&self.rest))?;
        object.insert("metadata".into(), serde_json::to_value(&self.metadata)?);
        serde_json::from_value(Value::Object(object))
    }
}

impl<K> Compact<K> {
    /// Drops top-level fields the cache never reads (a pod's `spec`, say).
    pub fn strip(&mut self, fields: &[&str]) {
        let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(&unpack(&self.rest))
        else {
            return;
        };
        if fields.iter().any(|field| object.remove(*field).is_some())
            && let Ok(rest) = serde_json::to_vec(&object)
        {
            self.rest = pack(&rest);
        }
    }
}

impl<'de, K> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = Map::<String, Value>::deserialize(deserializer)?;
        let metadata = match object.remove("metadata") {
            Some(metadata) => serde_json::from_value(metadata).map_err(D::Error::custom)?,
            None => ObjectMeta::default(),
        };
        let rest = serde_json::to_vec(&object).map_err(D::Error::custom)?;
        Ok(Compact {
            metadata,
            rest: pack(&rest),
            kind: PhantomData,
        })
    }
}

fn pack(json: &[u8]) -> Box<[u8]> {
    lz4_flex::compress_prepend_size(json).into_boxed_slice()
}

/// The JSON of a packed object; empty (which fails to decode, and is logged there) if the bytes
/// are not what [`pack`] made, which nothing else writes.
fn unpack(packed: &[u8]) -> Vec<u8> {
    lz4_flex::decompress_size_prepended(packed).unwrap_or_default()
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
    use kube::ResourceExt;

    #[test]
    fn decodes_to_the_object_it_was_read_from() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "g-frontend", "namespace": "team", "uid": "u1",
                         "labels": {"nvidia.com/selector": "g-frontend"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}},
            "status": {"readyReplicas": 1},
        });
        let compact: Compact<Deployment> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(compact.name_any(), "g-frontend");
        assert_eq!(compact.labels()["nvidia.com/selector"], "g-frontend");
        assert_eq!(Compact::<Deployment>::plural(&()), "deployments");
        let decoded = compact.decode().unwrap();
        let expected: Deployment = serde_json::from_value(json).unwrap();
        assert_eq!(decoded, expected);
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
            compact.rest.len() * 2 < text.len(),
            "{} bytes packed, {} as JSON",
            compact.rest.len(),
            text.len()
        );
        let mut stripped = compact.clone();
        stripped.strip(&["spec"]);
        assert_eq!(stripped.decode().unwrap().spec, None);
        assert_eq!(
            compact.decode().unwrap(),
            serde_json::from_value::<Deployment>(json).unwrap()
        );
    }

    #[test]
    fn metadata_edits_survive_decoding() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        });
        let mut compact: Compact<Deployment> = serde_json::from_value(json).unwrap();
        compact.annotations_mut().clear();
        assert!(
            compact
                .decode()
                .unwrap()
                .metadata
                .annotations
                .unwrap()
                .is_empty()
        );
    }
}
