//! The controllers and what they share.

pub mod component;
pub mod graph;
pub mod model;
mod status;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment, DynamoModel};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;

use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{Controller, WatchStreamExt, controller::Action};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use dynamo_common::scope::Scope;

use crate::apply::Applier;
use crate::build::config::OperatorConfig;
use crate::compact::Compact;
use crate::metrics::{self, Metrics};

/// Watch caches of the objects the controllers read, so a reconcile reads memory, not the API.
pub struct Caches {
    pub components: Store<Compact<DynamoComponentDeployment>>,
    pub deployments: Store<Compact<Deployment>>,
    pub services: Store<Compact<Service>>,
    pub ingresses: Store<Compact<Ingress>>,
    /// The shared headless Services of base models (label `nvidia.com/dynamo-base-model-hash`;
    /// they belong to no single graph, so the graph-labelled Service cache lacks them).
    pub model_services: Store<Compact<Service>>,
    /// EndpointSlices of those Services: the pods serving each base model.
    pub model_endpoints: Store<Compact<EndpointSlice>>,
    /// Set once every cache has synced; until then reconciles wait (a cold cache would
    /// look like missing children and cause needless writes).
    pub synced: AtomicBool,
}

struct Writers {
    components: Writer<Compact<DynamoComponentDeployment>>,
    deployments: Writer<Compact<Deployment>>,
    services: Writer<Compact<Service>>,
    ingresses: Writer<Compact<Ingress>>,
    model_services: Writer<Compact<Service>>,
    model_endpoints: Writer<Compact<EndpointSlice>>,
}

/// Everything a reconcile needs.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    /// Watch only this namespace (namespace-restricted mode).
    pub namespace: Option<String>,
    pub applier: Applier,
    pub events: crate::events::Events,
    pub metrics: Metrics,
    pub caches: Caches,
    /// Namespaces this operator acts on: its restricted namespace, or every namespace without
    /// a live namespace-scope marker.
    pub scope: Scope,
    writers: Mutex<Option<Writers>>,
    pub(crate) identities: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Consecutive failed load rounds per DynamoModel uid, for the retry backoff.
    model_failures: Mutex<std::collections::HashMap<String, u32>>,
}

/// How often an object in a namespace held by a restricted operator is looked at again.
const EXCLUDED_RECHECK: Duration = Duration::from_secs(5);

/// How long an ensured discovery identity is trusted before it is checked again (a
/// hand-deleted ServiceAccount comes back within this time, on the next reconcile).
const IDENTITY_TTL: Duration = Duration::from_secs(60);

impl Context {
    pub fn new(client: Client, config: OperatorConfig, namespace: Option<String>) -> Self {
        let metrics = Metrics::default();
        let (components, components_writer) = reflector::store();
        let (deployments, deployments_writer) = reflector::store();
        let (services, services_writer) = reflector::store();
        let (ingresses, ingresses_writer) = reflector::store();
        let (model_services, model_services_writer) = reflector::store();
        let (model_endpoints, model_endpoints_writer) = reflector::store();
        Context {
            events: crate::events::Events::new("dynamo-operator", std::env::var("POD_NAME").ok()),
            client,
            config,
            namespace: namespace.clone(),
            applier: Applier::new(metrics.writes.clone()),
            metrics,
            caches: Caches {
                components,
                deployments,
                services,
                ingresses,
                model_services,
                model_endpoints,
                synced: AtomicBool::new(false),
            },
            identities: Mutex::default(),
            model_failures: Mutex::default(),
            scope: match &namespace {
                Some(namespace) => Scope::Restricted(namespace.clone()),
                None => Scope::cluster_wide(),
            },
            writers: Mutex::new(Some(Writers {
                components: components_writer,
                deployments: deployments_writer,
                services: services_writer,
                ingresses: ingresses_writer,
                model_services: model_services_writer,
                model_endpoints: model_endpoints_writer,
            })),
        }
    }

    /// The cached child `name` in `namespace`, if any.
    pub fn cached<K>(store: &Store<Compact<K>>, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let object = store.get(&ObjectRef::new(name).within(namespace))?;
        decoded(&object)
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

    /// Publishes an event about `object` in the background (see [`crate::events`]).
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.events.publish(crate::events::Note {
            regarding: object.object_ref(&()),
            warning,
            reason: reason.to_owned(),
            note,
        });
    }

    /// Records a load round of DynamoModel `uid` (failed or not) and returns how many rounds
    /// in a row have failed.
    pub fn model_failures(&self, uid: &str, failed: bool) -> u32 {
        let mut failures = self.model_failures.lock().unwrap();
        if failed {
            let count = failures.entry(uid.to_owned()).or_default();
            *count += 1;
            *count
        } else {
            failures.remove(uid);
            0
        }
    }

    /// Whether the discovery identity of graph `uid` was ensured within the last minute; a
    /// graph is reconciled on every child status change, and its ServiceAccount, Role and
    /// RoleBinding need not be read each time. Marks it ensured when it returns false.
    pub fn identity_recent(&self, uid: &str) -> bool {
        let mut seen = self.identities.lock().unwrap();
        let now = std::time::Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < IDENTITY_TTL);
        if seen.contains_key(uid) {
            return true;
        }
        seen.insert(uid.to_owned(), now);
        false
    }
}

/// The typed form of a cached object; one that does not decode (which the API server's own
/// encoding rules out) counts as absent, with a log line.
pub fn decoded<K>(object: &Compact<K>) -> Option<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    match object.decode() {
        Ok(object) => Some(object),
        Err(e) => {
            tracing::error!(kind = %K::kind(&()), name = %object.name_any(), "cached object does not decode: {e}");
            None
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

impl Context {
    /// Until every cache has synced, reconciles come back later instead of acting on a cold
    /// cache.
    pub fn not_synced(&self) -> Option<Action> {
        (!self.caches.synced.load(Ordering::Acquire))
            .then(|| Action::requeue(Duration::from_millis(500)))
    }
}

/// What every reconcile shares: wait for the caches, keep the `nvidia.com/finalizer`, record
/// the reconcile metrics. `apply` does the kind's work with the object and its namespace;
/// deletion needs no work because every child carries an owner reference.
pub(crate) async fn reconcile_with_finalizer<K, F, Fut>(
    object: Arc<K>,
    context: &Context,
    kind: &'static str,
    apply: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug,
    F: FnOnce(Arc<K>, String) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    reconcile_with_cleanup(object, context, kind, apply, |_, _| async {
        Ok(Action::await_change())
    })
    .await
}

/// [`reconcile_with_finalizer`] with work to do before the finalizer comes off (`cleanup`,
/// given the object and its namespace).
pub(crate) async fn reconcile_with_cleanup<K, F, Fut, C, CFut>(
    object: Arc<K>,
    context: &Context,
    kind: &'static str,
    apply: F,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug,
    F: FnOnce(Arc<K>, String) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>, String) -> CFut,
    CFut: std::future::Future<Output = Result<Action, Error>>,
{
    if let Some(later) = context.not_synced() {
        return Ok(later);
    }
    let started = std::time::Instant::now();
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::NoNamespace(object.name_any()))?;
    if !context
        .scope
        .validates(Some(&namespace), std::time::SystemTime::now())
    {
        // A namespace-restricted operator owns this namespace for now. Looking again soon
        // resumes it within a few seconds of its marker expiring or being deleted.
        return Ok(Action::requeue(EXCLUDED_RECHECK));
    }
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let object = match with_finalizer(&api, object, context).await {
        Ok(object) => object,
        Err(e) => {
            let error = Error::Kube(e);
            context
                .metrics
                .record(kind, &namespace, started, Some(error.error_type()));
            return Err(error);
        }
    };
    let result = kube::runtime::finalizer::finalizer(
        &api,
        dynamo_api::labels::FINALIZER,
        object,
        |event| async {
            match event {
                kube::runtime::finalizer::Event::Apply(object) => {
                    apply(object, namespace.clone()).await
                }
                kube::runtime::finalizer::Event::Cleanup(object) => {
                    cleanup(object, namespace.clone()).await
                }
            }
        },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let error_type = result.as_ref().err().map(Error::error_type);
    context
        .metrics
        .record(kind, &namespace, started, error_type);
    result
}

/// The object with our finalizer: added here with the resourceVersion as precondition, so the
/// reconcile goes on with the work at once (kube's helper would add it and wait for the
/// resulting watch event, one more round through the queue for every new object).
async fn with_finalizer<K>(api: &Api<K>, object: Arc<K>, context: &Context) -> kube::Result<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizer = dynamo_api::labels::FINALIZER;
    if object.meta().deletion_timestamp.is_some()
        || object.finalizers().iter().any(|f| f == finalizer)
    {
        return Ok(object);
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(finalizer.to_owned());
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": object.resource_version(),
        "finalizers": finalizers,
    }});
    context.applier.count_write();
    let patched = api
        .patch(
            &object.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    Ok(Arc::new(patched))
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
    config: watcher::Config,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    watcher(api, config.page_size(100).any_semantic())
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

/// Bounded parallel reconciles (memory stays flat with many objects; API latency, not CPU,
/// limits a reconcile, so 64 run at once) and a short debounce, so
/// a burst of child status updates (a new Deployment changes its status several times within
/// a second) turns into one reconcile and one status write of the parent.
fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(64)
        .debounce(Duration::from_millis(200))
}

/// Runs the three controllers until a shutdown signal; `ready` turns true once every cache synced.
pub async fn run(context: Arc<Context>, ready: tokio::sync::watch::Sender<bool>) {
    let writers = context
        .writers
        .lock()
        .unwrap()
        .take()
        .expect("controllers run once per context");
    let all = watcher::Config::default;
    // Children carry the graph label; nothing else needs watching.
    let owned =
        || watcher::Config::default().labels(dynamo_api::labels::label::GRAPH_DEPLOYMENT_NAME);
    // Base-model Services and their EndpointSlices carry the model hash label.
    let by_model = || watcher::Config::default().labels(dynamo_api::labels::label::BASE_MODEL_HASH);

    let (graphs, graph_writer) = reflector::store::<Compact<DynamoGraphDeployment>>();
    let graph_controller = Controller::for_stream(
        lean_stream(context.scoped(), all(), graph_writer),
        graphs.clone(),
    )
    .owns_stream(
        watcher(context.scoped::<DynamoComponentDeployment>(), owned())
            .default_backoff()
            .touched_objects(),
    )
    .with_config(controller_config())
    .shutdown_on_signal()
    .run(graph::reconcile, error_policy, context.clone())
    .for_each(|_| async {});

    let components = context.caches.components.clone();
    let component_controller = Controller::for_stream(
        lean_stream(context.scoped(), all(), writers.components),
        components.clone(),
    )
    .owns_stream(lean_stream(context.scoped(), owned(), writers.deployments))
    .owns_stream(lean_stream(context.scoped(), owned(), writers.services))
    .owns_stream(lean_stream(context.scoped(), owned(), writers.ingresses))
    .owns_stream(lean_stream(
        context.scoped(),
        by_model(),
        writers.model_services,
    ))
    .with_config(controller_config())
    .shutdown_on_signal()
    .run(component::reconcile, error_policy, context.clone())
    .for_each(|_| async {});

    // DynamoModels, and the EndpointSlices of base-model Services (which carry the hash label
    // from their Service): a slice change reconciles the models of that base model.
    let models = Controller::new(context.scoped::<DynamoModel>(), all().page_size(100));
    let model_store = models.store();
    let model_controller = models
        .watches_stream(
            lean_stream(context.scoped(), by_model(), writers.model_endpoints),
            move |slice: Compact<EndpointSlice>| {
                let hash = slice
                    .labels()
                    .get(dynamo_api::labels::label::BASE_MODEL_HASH)
                    .cloned()
                    .unwrap_or_default();
                let namespace = slice.namespace();
                model_store
                    .state()
                    .into_iter()
                    .filter(|m| {
                        m.namespace() == namespace && crate::build::model::model_hash(m) == hash
                    })
                    .map(|m| ObjectRef::from_obj(&*m))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(controller_config())
        .shutdown_on_signal()
        .run(model::reconcile, error_policy, context.clone())
        .for_each(|_| async {});

    let publisher = context.clone();
    tokio::spawn(async move { publisher.events.run(publisher.client.clone()).await });
    tokio::spawn(signal_ready(graphs.clone(), context.clone(), ready));
    tokio::spawn(count_resources(graphs, components, context.clone()));
    tokio::join!(graph_controller, component_controller, model_controller);
}

/// Waits until `store` has synced; false if its writer went away first.
async fn store_synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    // The store's readiness signal wakes only its latest waiter (the controller also waits on
    // it), so look again every 200 ms instead of waiting once.
    loop {
        match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// Waits until the graph cache and every cache in `context` have synced.
async fn synced(graphs: &Store<Compact<DynamoGraphDeployment>>, context: &Context) -> bool {
    let caches = &context.caches;
    store_synced(graphs).await
        && store_synced(&caches.components).await
        && store_synced(&caches.deployments).await
        && store_synced(&caches.services).await
        && store_synced(&caches.ingresses).await
        && store_synced(&caches.model_services).await
        && store_synced(&caches.model_endpoints).await
}

async fn signal_ready(
    graphs: Store<Compact<DynamoGraphDeployment>>,
    context: Arc<Context>,
    ready: tokio::sync::watch::Sender<bool>,
) {
    if synced(&graphs, &context).await {
        context.caches.synced.store(true, Ordering::Release);
        tracing::info!("caches synced");
        let _ = ready.send(true);
    }
}

/// Every 30 s, `dynamo_operator_resources_total` from the caches (no API calls): graphs by
/// `status.state` (`unknown` when unset), components by their `Available` condition.
async fn count_resources(
    graphs: Store<Compact<DynamoGraphDeployment>>,
    components: Store<Compact<DynamoComponentDeployment>>,
    context: Arc<Context>,
) {
    use crate::metrics::InventoryLabels;
    if !synced(&graphs, &context).await {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let mut counts: std::collections::BTreeMap<(&'static str, String, String), i64> =
            Default::default();
        let now = std::time::SystemTime::now();
        let excluded = context.scope.excluded(now);
        if !excluded.is_empty() {
            tracing::info!(
                ?excluded,
                "namespaces held by namespace-restricted operators"
            );
        }
        context
            .metrics
            .excluded_namespaces
            .set(excluded.len() as i64);
        for graph in graphs.state() {
            if !context.scope.validates(graph.namespace().as_deref(), now) {
                continue;
            }
            let Some(graph) = decoded(&graph) else {
                continue;
            };
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
            if !context
                .scope
                .validates(component.namespace().as_deref(), now)
            {
                continue;
            }
            let Some(component) = decoded(&component) else {
                continue;
            };
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
