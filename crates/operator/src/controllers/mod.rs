//! The controllers and what they share.

pub mod component;
pub mod graph;
mod status;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{Controller, WatchStreamExt, controller::Action};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::apply::Applier;
use crate::build::config::OperatorConfig;
use crate::metrics::{self, Metrics};

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// Watch only this namespace (namespace-restricted mode).
    pub namespace: Option<String>,
    pub applier: Applier,
    pub recorder: Recorder,
    pub metrics: Metrics,
}

impl Context {
    pub fn new(client: Client, config: OperatorConfig, namespace: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "dynamo-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let metrics = Metrics::default();
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            namespace,
            applier: Applier::new(metrics.writes.clone()),
            metrics,
        }
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

    /// Publishes an event about `object`; failing to publish only logs.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::debug!("publishing event {reason}: {e}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0} has no namespace")]
    NoNamespace(String),
}

impl Error {
    /// Label of the `dynamo_operator_reconcile_errors_total` metric.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Kube(e) => metrics::error_type(e),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.error_type(),
                kube::runtime::finalizer::Error::AddFinalizer(e)
                | kube::runtime::finalizer::Error::RemoveFinalizer(e) => metrics::error_type(e),
                _ => "internal",
            },
            Error::NoNamespace(_) => "internal",
        }
    }
}

/// Retry with growing delay is left to the controller's backoff; this only spaces retries.
fn error_policy<K: ResourceExt>(object: Arc<K>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(object = %object.name_any(), namespace = ?object.namespace(), "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// A watch of `api` whose objects enter the cache without `managedFields` or the
/// last-applied annotation, in small pages.
fn lean_stream<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let config = watcher::Config::default().page_size(100).any_semantic();
    watcher(api, config)
        .default_backoff()
        .modify(|object| {
            object.managed_fields_mut().clear();
            object
                .annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .applied_objects()
}

/// Runs both controllers until a shutdown signal; `ready` turns true once both caches synced.
pub async fn run(context: Arc<Context>, ready: tokio::sync::watch::Sender<bool>) {
    use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::networking::v1::Ingress;

    let owned_config = watcher::Config::default()
        .labels(dynamo_api::labels::label::GRAPH_DEPLOYMENT_NAME)
        .page_size(100);

    let (graphs, graph_writer) = reflector::store::<DynamoGraphDeployment>();
    let graph_controller = Controller::for_stream(
        lean_stream(context.scoped::<DynamoGraphDeployment>(), graph_writer),
        graphs.clone(),
    )
    .owns(
        context.scoped::<DynamoComponentDeployment>(),
        owned_config.clone(),
    )
    .shutdown_on_signal()
    .run(graph::reconcile, error_policy, context.clone())
    .for_each(|_| async {});

    let (components, component_writer) = reflector::store::<DynamoComponentDeployment>();
    let component_controller = Controller::for_stream(
        lean_stream(
            context.scoped::<DynamoComponentDeployment>(),
            component_writer,
        ),
        components.clone(),
    )
    .owns(context.scoped::<Deployment>(), owned_config.clone())
    .owns(context.scoped::<Service>(), owned_config.clone())
    .owns(context.scoped::<Ingress>(), owned_config)
    .shutdown_on_signal()
    .run(component::reconcile, error_policy, context.clone())
    .for_each(|_| async {});

    tokio::spawn(signal_ready(graphs.clone(), components.clone(), ready));
    tokio::spawn(count_resources(graphs, components, context.clone()));
    tokio::join!(graph_controller, component_controller);
}

/// Whether both caches have synced (false if a cache's writer went away first).
async fn synced(
    graphs: &Store<dynamo_api::v1alpha1::DynamoGraphDeployment>,
    components: &Store<dynamo_api::v1alpha1::DynamoComponentDeployment>,
) -> bool {
    // The store's readiness signal wakes only its latest waiter (the controller also waits on
    // it), so look again every 200 ms instead of waiting once.
    let tick = Duration::from_millis(200);
    loop {
        let graphs_ready = tokio::time::timeout(tick, graphs.wait_until_ready()).await;
        let components_ready = tokio::time::timeout(tick, components.wait_until_ready()).await;
        match (graphs_ready, components_ready) {
            (Ok(Ok(())), Ok(Ok(()))) => return true,
            (Ok(Err(_)), _) | (_, Ok(Err(_))) => return false,
            _ => {}
        }
    }
}

async fn signal_ready(
    graphs: Store<dynamo_api::v1alpha1::DynamoGraphDeployment>,
    components: Store<dynamo_api::v1alpha1::DynamoComponentDeployment>,
    ready: tokio::sync::watch::Sender<bool>,
) {
    if synced(&graphs, &components).await {
        tracing::info!("caches synced");
        let _ = ready.send(true);
    }
}

/// Every 30 s, `dynamo_operator_resources_total` from the caches (no API calls): graphs by
/// `status.state` (`unknown` when unset), components by their `Available` condition.
async fn count_resources(
    graphs: Store<dynamo_api::v1alpha1::DynamoGraphDeployment>,
    components: Store<dynamo_api::v1alpha1::DynamoComponentDeployment>,
    context: Arc<Context>,
) {
    use crate::metrics::InventoryLabels;
    if !synced(&graphs, &components).await {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let mut counts: std::collections::BTreeMap<(&'static str, String, String), i64> =
            Default::default();
        for graph in graphs.state() {
            let state = graph
                .status
                .as_ref()
                .and_then(|s| s.state.clone())
                .unwrap_or_else(|| "unknown".into());
            *counts
                .entry((
                    "DynamoGraphDeployment",
                    graph.namespace().unwrap_or_default(),
                    state,
                ))
                .or_default() += 1;
        }
        for component in components.state() {
            let available = component
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                });
            let state = if available { "ready" } else { "not_ready" };
            *counts
                .entry((
                    "DynamoComponentDeployment",
                    component.namespace().unwrap_or_default(),
                    state.into(),
                ))
                .or_default() += 1;
        }
        let gauge = &context.metrics.resources;
        gauge.clear();
        for ((resource_type, namespace, status), count) in counts {
            gauge
                .get_or_create(&InventoryLabels {
                    resource_type,
                    namespace,
                    status,
                })
                .set(count);
        }
    }
}
