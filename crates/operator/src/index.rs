//! Secondary indexes beside the watch caches: the names of cached objects grouped by namespace
//! and one key read off each object (a label, the uid of its controlling owner), kept up to date
//! from the same watch events as the store. A reconcile finds its own few objects (a
//! component's pods, a graph's components) without scanning every cached one, so its cost does
//! not grow with the fleet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use dynamo_api::labels::label;

use crate::compact::{Compact, RoutingLabels};

/// The key an object is indexed under, if any, from its cached metadata.
pub type KeyOf = fn(&ObjectMeta, &RoutingLabels) -> Option<String>;

/// A component's pods: by their `nvidia.com/selector` label (the component's name).
pub fn by_selector(_: &ObjectMeta, labels: &RoutingLabels) -> Option<String> {
    labels.get(label::SELECTOR).map(str::to_owned)
}

/// The uid of the object's controlling owner.
pub fn by_controller(meta: &ObjectMeta, _: &RoutingLabels) -> Option<String> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// Names by namespace and key, and the key of each name by namespace. A name is one shared
/// string in both maps, and a group's names a sorted vector: with a few names per key (a
/// component's pods) a B-tree set would allocate a node of some 280 bytes for each group.
#[derive(Debug, Default)]
struct Groups {
    names: HashMap<Arc<str>, NamesByKey>,
    keys: HashMap<Arc<str>, HashMap<Arc<str>, Arc<str>>>,
}

/// The sorted names of one namespace's objects, by key.
type NamesByKey = HashMap<Arc<str>, Vec<Arc<str>>>;

impl Groups {
    fn insert(&mut self, namespace: String, name: String, key: Option<String>) {
        self.remove(&namespace, &name);
        let Some(key) = key else { return };
        let namespace: Arc<str> = match self.keys.get_key_value(namespace.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => namespace.into(),
        };
        let name: Arc<str> = name.into();
        let groups = self.names.entry(namespace.clone()).or_default();
        let key: Arc<str> = match groups.get_key_value(key.as_str()) {
            Some((shared, _)) => shared.clone(),
            None => key.into(),
        };
        let names = groups.entry(key.clone()).or_default();
        if let Err(at) = names.binary_search(&name) {
            names.insert(at, name.clone());
        }
        self.keys.entry(namespace).or_default().insert(name, key);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(keys) = self.keys.get_mut(namespace) else {
            return;
        };
        let Some(key) = keys.remove(name) else { return };
        if keys.is_empty() {
            self.keys.remove(namespace);
        }
        let Some(groups) = self.names.get_mut(namespace) else {
            return;
        };
        if let Some(names) = groups.get_mut(&*key) {
            names.retain(|n| &**n != name);
            if names.is_empty() {
                groups.remove(&*key);
            }
        }
        if groups.is_empty() {
            self.names.remove(namespace);
        }
    }

    fn names(&self, namespace: &str, key: &str) -> Vec<String> {
        self.names
            .get(namespace)
            .and_then(|groups| groups.get(key))
            .map(|names| names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.values().map(HashMap::len).sum()
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
    pub fn observe<K>(&self, event: &watcher::Event<Compact<K>>)
    where
        K: Resource<DynamicType = ()>,
    {
        let mut state = self.state.write().unwrap();
        let entry = |object: &Compact<K>| {
            let meta = object.meta();
            (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
                (self.key_of)(meta, object.routing_labels()),
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
        self.state.read().unwrap().current.names(namespace, key)
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

    fn pod(name: &str, component: Option<&str>) -> Compact<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("team".into());
        pod.metadata.labels =
            component.map(|c| [(label::SELECTOR.to_owned(), c.to_owned())].into());
        serde_json::from_value(serde_json::to_value(pod).unwrap()).unwrap()
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
        assert_eq!(index.state.read().unwrap().current.len(), 2);
    }

    #[test]
    fn nothing_is_left_of_a_group_whose_objects_are_gone() {
        let index = index();
        index.observe(&watcher::Event::Apply(pod("a-0", Some("a"))));
        index.observe(&watcher::Event::Apply(pod("a-1", Some("a"))));
        index.observe(&watcher::Event::Delete(pod("a-0", Some("a"))));
        index.observe(&watcher::Event::Apply(pod("a-1", None)));
        assert!(index.names("team", "a").is_empty());
        let state = index.state.read().unwrap();
        assert!(state.current.names.is_empty() && state.current.keys.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_complete() {
        let index = index();
        index.observe(&watcher::Event::Apply(pod("gone", Some("a"))));
        index.observe(&watcher::Event::<Compact<Pod>>::Init);
        index.observe(&watcher::Event::InitApply(pod("a-0", Some("a"))));
        assert_eq!(
            index.names("team", "a"),
            ["gone"],
            "reads see the old state until the relist completes, as the store's do"
        );
        index.observe(&watcher::Event::<Compact<Pod>>::InitDone);
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
        let labels = RoutingLabels::default();
        assert_eq!(by_controller(&meta, &labels).as_deref(), Some("graph"));
        meta.owner_references = Some(vec![owner("other", false)]);
        assert_eq!(by_controller(&meta, &labels), None);
    }
}
