//! What every reconcile shares: the API client, the operator's settings, the applier, events,
//! metrics, the watch caches, the namespace scope and the per-object retry backoff.

use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource};

use dynamo_common::scope::Scope;

use crate::apply::Applier;
use crate::backoff::{Backoff, Policy};
use crate::caches::{Caches, Writers};
use crate::client::Slots;
use crate::desired::config::OperatorConfig;
use crate::desired::groups::ChangedGroups;
use crate::events::{Events, Note, Publisher};
use crate::metrics::Metrics;

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// Watch only this namespace (namespace-restricted mode).
    pub namespace: Option<String>,
    pub applier: Applier,
    pub events: Events,
    pub metrics: Metrics,
    pub caches: Caches,
    /// Namespaces this operator acts on: its restricted namespace, or every namespace without
    /// a live namespace-scope marker.
    pub scope: Scope,
    /// Consecutive failures of each failing object, for its retry delay.
    pub backoff: Backoff,
    /// Multinode groups whose status still shows the spec before the operator's change.
    pub changed_groups: ChangedGroups,
}

/// What only runs once beside the context: the cache writers (the watches consume them) and
/// the event publisher.
pub struct Background {
    pub writers: Writers,
    pub publisher: Publisher,
}

impl Context {
    pub fn new(
        client: Client,
        slots: Slots,
        config: OperatorConfig,
        namespace: Option<String>,
    ) -> (Self, Background) {
        let metrics = Metrics::default();
        let (caches, writers) = Caches::new();
        let (events, publisher) = Events::new("dynamo-operator", std::env::var("POD_NAME").ok());
        let context = Context {
            events,
            client,
            config,
            applier: Applier::new(metrics.writes.clone(), slots),
            metrics,
            caches,
            scope: match &namespace {
                Some(namespace) => Scope::Restricted(namespace.clone()),
                None => Scope::cluster_wide(),
            },
            namespace,
            backoff: Backoff::new(Policy::default()),
            changed_groups: ChangedGroups::default(),
        };
        (context, Background { writers, publisher })
    }

    /// An API for `K` in the watched scope: one namespace, or all of them.
    pub fn scoped<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }

    /// Publishes a Normal event about `object` in the background (see [`crate::events`]).
    pub fn normal<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object, false, reason, note);
    }

    /// Publishes a Warning event about `object` in the background.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, object: &K, reason: &str, note: String) {
        self.publish(object, true, reason, note);
    }

    fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.events.publish(Note {
            regarding: object.object_ref(&()),
            warning,
            reason: reason.to_owned(),
            note,
        });
    }

    /// Until every cache has synced, reconciles come back later instead of acting on a cold
    /// cache.
    pub fn not_synced(&self) -> Option<Action> {
        (!self.caches.synced.load(Ordering::Acquire))
            .then(|| Action::requeue(Duration::from_millis(500)))
    }
}
