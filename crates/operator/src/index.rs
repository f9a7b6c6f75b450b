//! Secondary indexes beside the watch caches: the names of cached objects grouped by namespace
//! and one key read off each object (a label, the uid of its controlling owner), kept up to date
//! from the same watch events as the store. A reconcile finds its own few objects (a
//! component's pods, a graph's components) without scanning every cached one, so its cost does
//! not grow with the fleet.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use dynamo_api::labels::label;

use crate::compact::Compact;

/// The key an object is indexed under, if any.
pub type KeyOf = fn(&ObjectMeta) -> Option<String>;

/// A component's pods: by their `nvidia.com/selector` label (the component's name).
pub fn by_selector(meta: &ObjectMeta) -> Option<String> {
    meta.labels.as_ref()?.get(label::SELECTOR).cloned()
}

/// The uid of the object's controlling owner.
pub fn by_controller(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// Names by (namespace, key), and the key of each (namespace, name).
#[derive(Debug, Default)]
struct Groups {
    names: HashMap<(String, String), BTreeSet<String>>,
    keys: HashMap<(String, String), String>,
}

impl Groups {
    fn insert(&mut self, namespace: String, name: String, key: Option<String>) {
        self.remove(&namespace, &name);
        if let Some(key) = key {
            self.names
                .entry((namespace.clone(), key.clone()))
                .or_default()
                .insert(name.clone());
            self.keys.insert((namespace, name), key);
        }
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(key) = self.keys.remove(&(namespace.to_owned(), name.to_owned())) else {
            return;
        };
        let group = (namespace.to_owned(), key);
        if let Some(names) = self.names.get_mut(&group) {
            names.remove(name);
            if names.is_empty() {
                self.names.remove(&group);
            }
        }
    }
}

/// One index over one watch.
#[derive(Debug)]
pub struct Index {
    key_of: KeyOf,
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    current: Groups,
    /// A relist in progress: it replaces `current` when complete, as the store does.
    relist: Option<Groups>,
}

impl Index {
    pub fn new(key_of: KeyOf) -> Self {
        Index {
            key_of,
            state: RwLock::default(),
        }
    }

    /// Follows one watch event (the same events the store sees).
    pub fn observe<K: Resource>(&self, event: &watcher::Event<K>) {
        let mut state = self.state.write().unwrap();
        let entry = |object: &K| {
            let meta = object.meta();
            (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
                (self.key_of)(meta),
            )
        };
        match event {
            watcher::Event::Init => state.relist = Some(Groups::default()),
            watcher::Event::InitApply(object) => {
                let (namespace, name, key) = entry(object);
                match state.relist.as_mut() {
                    Some(relist) => relist.insert(namespace, name, key),
                    None => state.current.insert(namespace, name, key),
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = state.relist.take() {
                    state.current = relist;
                }
            }
            watcher::Event::Apply(object) => {
                let (namespace, name, key) = entry(object);
                state.current.insert(namespace, name, key);
            }
            watcher::Event::Delete(object) => {
                let (namespace, name, _) = entry(object);
                state.current.remove(&namespace, &name);
            }
        }
    }

    /// The names indexed under `key` in `namespace`, in order.
    pub fn names(&self, namespace: &str, key: &str) -> Vec<String> {
        let state = self.state.read().unwrap();
        state
            .current
            .names
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The cached objects indexed under `key` in `namespace`, in name order.
    pub fn objects<K>(
        &self,
        store: &Store<Compact<K>>,
        namespace: &str,
        key: &str,
    ) -> Vec<Arc<Compact<K>>>
    where
        K: Resource<DynamicType = ()>,
    {
        self.names(namespace, key)
            .iter()
            .filter_map(|name| store.get(&ObjectRef::new(name).within(namespace)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, component: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("team".into());
        pod.metadata.labels =
            component.map(|c| [(label::SELECTOR.to_owned(), c.to_owned())].into());
        pod
    }

    fn index() -> Index {
        Index::new(by_selector)
    }

    #[test]
    fn follows_applies_and_deletes() {
        let index = index();
        index.observe(&watcher::Event::Apply(pod("a-1", Some("a"))));
        index.observe(&watcher::Event::Apply(pod("a-0", Some("a"))));
        index.observe(&watcher::Event::Apply(pod("b-0", Some("b"))));
        index.observe(&watcher::Event::Apply(pod("x", None)));
        assert_eq!(index.names("team", "a"), ["a-0", "a-1"]);
        assert!(index.names("other", "a").is_empty());
        // Relabelled: it moves.
        index.observe(&watcher::Event::Apply(pod("a-1", Some("b"))));
        assert_eq!(index.names("team", "a"), ["a-0"]);
        assert_eq!(index.names("team", "b"), ["a-1", "b-0"]);
        index.observe(&watcher::Event::Delete(pod("b-0", Some("b"))));
        assert_eq!(index.names("team", "b"), ["a-1"]);
        assert!(index.state.read().unwrap().current.keys.len() == 2);
    }

    #[test]
    fn a_relist_replaces_the_index_when_complete() {
        let index = index();
        index.observe(&watcher::Event::Apply(pod("gone", Some("a"))));
        index.observe(&watcher::Event::<Pod>::Init);
        index.observe(&watcher::Event::InitApply(pod("a-0", Some("a"))));
        assert_eq!(
            index.names("team", "a"),
            ["gone"],
            "reads see the old state until the relist completes, as the store's do"
        );
        index.observe(&watcher::Event::<Pod>::InitDone);
        assert_eq!(index.names("team", "a"), ["a-0"]);
    }

    #[test]
    fn components_by_their_controlling_owner() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let owner = |uid: &str, controller| OwnerReference {
            uid: uid.into(),
            controller: Some(controller),
            ..Default::default()
        };
        let mut meta = ObjectMeta {
            owner_references: Some(vec![owner("other", false), owner("graph", true)]),
            ..Default::default()
        };
        assert_eq!(by_controller(&meta).as_deref(), Some("graph"));
        meta.owner_references = Some(vec![owner("other", false)]);
        assert_eq!(by_controller(&meta), None);
    }
}
