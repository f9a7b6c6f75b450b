//! The watch caches a reconcile reads instead of the API, declared once.
//!
//! A cache of a controller's own kind keeps each object's typed metadata, since the
//! controller hands the cached object to its reconciles ([`full_stream`]); every other
//! cache keeps only names typed and is read decoded ([`lean_stream`], [`cached`]).
//!
//! The kinds a DynamoComponentDeployment owns are one list ([`declare_caches!`]'s `children`):
//! each entry gives its cache, its writer, its lean watch on the component controller (which
//! routes a child's change to its owners) and its part of the cache-sync readiness. Adding a
//! child kind is one line here, its builder, one sync call in the component controller and
//! the chart's RBAC.
//!
//! `graph_optional` kinds are the Grove pathway's: watched by the graph controller itself
//! (their changes route to graphs in their own ways, see [`crate::watches`]) when the cluster
//! serves them.

use std::hash::Hash;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoGraphDeployment, DynamoGraphDeploymentScalingAdapter,
};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::compact::Compact;
use crate::context::Context;
use crate::desired::config::ServedApis;
use crate::index::{Index, by_controller, by_selector};
use crate::kinds::{LeaderWorkerSet, PodClique, PodCliqueScalingGroup, PodCliqueSet, PodGroup};

/// Objects labelled with the graph they belong to: every child the operator makes.
pub fn owned() -> watcher::Config {
    watcher::Config::default().labels(label::GRAPH_DEPLOYMENT_NAME)
}

/// Base-model Services and their EndpointSlices (they belong to no single graph).
pub fn by_model() -> watcher::Config {
    watcher::Config::default().labels(label::BASE_MODEL_HASH)
}

/// Pods of components (their Deployment's selector label), read to say why one is not
/// available.
pub fn component_pods() -> watcher::Config {
    watcher::Config::default().labels(label::SELECTOR)
}

/// ServiceAccounts marked for component pods that name none.
pub fn component_accounts() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}=true", label::COMPONENT_POD))
}

/// Identity objects the operator made (discovery, planner and EPP ServiceAccounts, Roles and
/// RoleBindings): Helm's and users' objects carry another `managed-by`, or none.
pub fn managed_identities() -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "{}={}",
        label::MANAGED_BY,
        label::MANAGED_BY_VALUE
    ))
}

/// Everything of a kind in the watched scope.
pub fn all() -> watcher::Config {
    watcher::Config::default()
}

macro_rules! declare_caches {
    (
        caches { $($(#[$doc:meta])* $cache:ident: $kind:ty,)* }
        children { $($(#[$child_doc:meta])* $child:ident: $child_kind:ty = $selector:ident,)* }
        optional {
            $($(#[$opt_doc:meta])* $opt:ident: $opt_kind:ty = $opt_selector:ident if $served:ident,)*
        }
        graph_optional {
            $($(#[$gopt_doc:meta])* $gopt:ident: $gopt_kind:ty where $gserved:ident,)*
        }
    ) => {
        /// Watch caches of the objects the controllers read (reconciles read memory, not the API).
        pub struct Caches {
            $($(#[$doc])* pub $cache: Store<Compact<$kind>>,)*
            $($(#[$child_doc])* pub $child: Store<Compact<$child_kind>>,)*
            $($(#[$opt_doc])* pub $opt: Store<Compact<$opt_kind>>,)*
            $($(#[$gopt_doc])* pub $gopt: Store<Compact<$gopt_kind>>,)*
            /// A component's pods, by its name (see [`crate::index::by_selector`]).
            pub pods_by_component: Index,
            /// A graph's components, by the graph's uid.
            pub components_by_graph: Index,
            /// Set once every cache has synced; until then reconciles wait (a cold cache would
            /// look like missing children and cause needless writes).
            pub synced: AtomicBool,
        }

        /// The writing sides of [`Caches`], consumed by the watches that fill them.
        pub struct Writers {
            $(pub $cache: Writer<Compact<$kind>>,)*
            pub children: ChildWriters,
            /// The writers of the optional kinds the graph controller watches itself (see
            /// [`crate::watches`]).
            pub graph: GraphWriters,
        }

        /// The writers of the optional kinds a graph's own pathway makes or reads.
        pub struct GraphWriters {
            $(pub $gopt: Writer<Compact<$gopt_kind>>,)*
        }

        /// The writers of the kinds a component owns.
        pub struct ChildWriters {
            $($child: Writer<Compact<$child_kind>>,)*
            $($opt: Writer<Compact<$opt_kind>>,)*
        }

        impl Caches {
            pub fn new() -> (Caches, Writers) {
                $(let $cache = reflector::store();)*
                $(let $child = reflector::store();)*
                $(let $opt = reflector::store();)*
                $(let $gopt = reflector::store();)*
                let caches = Caches {
                    $($cache: $cache.0,)*
                    $($child: $child.0,)*
                    $($opt: $opt.0,)*
                    $($gopt: $gopt.0,)*
                    pods_by_component: Index::new(by_selector),
                    components_by_graph: Index::new(by_controller),
                    synced: AtomicBool::new(false),
                };
                let writers = Writers {
                    $($cache: $cache.1,)*
                    children: ChildWriters { $($child: $child.1,)* $($opt: $opt.1,)* },
                    graph: GraphWriters { $($gopt: $gopt.1,)* },
                };
                (caches, writers)
            }

            /// Waits until every cache has synced (an optional kind's only when the cluster
            /// serves it); false if a watch ended first.
            pub async fn wait_synced(&self, served: &ServedApis) -> bool {
                $(store_synced(&self.$cache).await &&)*
                $(store_synced(&self.$child).await &&)*
                $((!served.$served || store_synced(&self.$opt).await) &&)*
                $((!served.$gserved || store_synced(&self.$gopt).await) &&)*
                true
            }
        }

        impl ChildWriters {
            /// Watches every child kind into its cache; a child's change reconciles its owners,
            /// and so does its deletion (a Service deleted by hand changes no pod: nothing else
            /// would bring it back).
            pub fn watch(
                self,
                mut controller: Controller<Compact<DynamoComponentDeployment>>,
                context: &Context,
            ) -> Controller<Compact<DynamoComponentDeployment>> {
                $(
                    controller = controller.owns_stream(
                        lean_stream(context.scoped(), $selector(), self.$child)
                            .touched_objects(),
                    );
                )*
                // A kind the cluster does not serve is not watched (its store stays empty).
                $(
                    if context.config.served.$served {
                        controller = controller.owns_stream(
                            lean_stream(context.scoped(), $opt_selector(), self.$opt)
                                .touched_objects(),
                        );
                    }
                )*
                controller
            }
        }
    };
}

declare_caches! {
    caches {
    /// Every graph in scope (the graph controller's own watch).
    graphs: DynamoGraphDeployment,
    /// Every component in scope (the component controller's own watch, read by the graph
    /// controller too).
    components: DynamoComponentDeployment,
    /// EndpointSlices of base-model Services: the pods serving each base model.
    model_endpoints: EndpointSlice,
    /// Component pods, status only (see [`component_pods`]).
    pods: Pod,
    /// Scaling adapters (the adapter controller's own watch, read by the graph controller).
    adapters: DynamoGraphDeploymentScalingAdapter,
    /// ServiceAccounts for component pods that name none (see [`component_accounts`]).
    component_accounts: ServiceAccount,
    /// ServiceAccounts the operator made (see [`managed_identities`]).
    identity_accounts: ServiceAccount,
    /// Roles the operator made.
    identity_roles: Role,
    /// RoleBindings the operator made.
    identity_bindings: RoleBinding,
    /// PersistentVolumeClaims, names only: a graph's `pvcs` must exist or be created.
    claims: PersistentVolumeClaim,
    }
    children {
        /// A component's workload.
        deployments: Deployment = owned,
        /// A component's Service.
        services: Service = owned,
        /// A frontend's Ingress.
        ingresses: Ingress = owned,
        /// The headless Services of base models, shared by the components serving one.
        model_services: Service = by_model,
    }
    optional {
        /// A multinode component's groups.
        leader_worker_sets: LeaderWorkerSet = owned if leader_worker_set,
        /// The gang of each group, under Volcano.
        pod_groups: PodGroup = owned if volcano,
    }
    // Watched by the graph controller (see `crate::watches`), when the cluster serves them.
    graph_optional {
        /// A graph's PodCliqueSet on the Grove pathway (the builder puts no labels on it: every
        /// one in scope is watched).
        pod_clique_sets: PodCliqueSet where grove,
        /// The PodCliques Grove makes (they carry the graph's label from the clique template).
        pod_cliques: PodClique where grove,
        /// The scaling groups Grove makes (Grove's labels only: every one in scope).
        scaling_groups: PodCliqueScalingGroup where grove,
    }
}

/// A watch of `api` into a cache of compact objects (which leave out `managedFields` and the
/// last-applied annotation), in small pages; the watch events after the cache saw them, with
/// their typed metadata (owner references route a child's change to its owner). The cache
/// keeps each object with only its name typed ([`Compact::name_only`]): read it through
/// [`cached`] or [`decoded`]. Its failures are logged and retried here (see [`resilient`]):
/// the stream yields none.
pub fn lean_stream<K>(
    api: Api<Compact<K>>,
    config: watcher::Config,
    writer: Writer<Compact<K>>,
) -> impl Stream<Item = Result<watcher::Event<Compact<K>>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + 'static,
{
    lean_stream_with(api, config, writer, |_| {})
}

/// [`lean_stream`], with `trim` applied to each object before it enters the cache.
pub fn lean_stream_with<K>(
    api: Api<Compact<K>>,
    config: watcher::Config,
    writer: Writer<Compact<K>>,
    trim: impl FnMut(&mut Compact<K>) + Send + 'static,
) -> impl Stream<Item = Result<watcher::Event<Compact<K>>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + 'static,
{
    cached_stream(api, config, writer, trim, Compact::name_only)
}

/// A watch of `api` into a cache of whole objects (typed metadata included), its failures
/// handled as [`lean_stream`]'s: a controller's own kind, whose cached object the controller
/// hands to each reconcile.
pub fn full_stream<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
{
    cached_stream(api, config, writer, |_| {}, K::clone)
}

/// Every cache's watch: small pages, the watch's own backoff, `trim`, the cache (which keeps
/// what `stored` makes of each object), and no failure handed on (see [`resilient`]).
fn cached_stream<R>(
    api: Api<R>,
    config: watcher::Config,
    writer: Writer<R>,
    trim: impl FnMut(&mut R) + Send + 'static,
    stored: fn(&R) -> R,
) -> impl Stream<Item = Result<watcher::Event<R>, watcher::Error>>
where
    R: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
{
    let kind = R::kind(&()).into_owned();
    resilient(
        kind,
        into_cache(
            watcher(api, config.page_size(100).any_semantic())
                .default_backoff()
                .modify(trim),
            writer,
            stored,
        ),
    )
}

/// Applies each event to the cache, as `stored` makes each object, and hands it on as it
/// came (kube's `reflect`, with the cache's own copy of each object).
fn into_cache<R>(
    events: impl Stream<Item = Result<watcher::Event<R>, watcher::Error>>,
    mut writer: Writer<R>,
    stored: fn(&R) -> R,
) -> impl Stream<Item = Result<watcher::Event<R>, watcher::Error>>
where
    R: Resource<DynamicType = ()> + Clone + 'static,
{
    events.map_ok(move |event| {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let kept = match &event {
            Apply(object) => Apply(stored(object)),
            Delete(object) => Delete(stored(object)),
            InitApply(object) => InitApply(stored(object)),
            Init => Init,
            InitDone => InitDone,
        };
        writer.apply_watcher_event(&kept);
        event
    })
}

/// The watch's events without its failures, each logged. The watch retries by itself, with
/// a backoff of its own; a failure handed on to a controller would also pause the controller's
/// every other watch (kube's controllers back off on any trigger failure, with a delay that
/// grows to 30 s and more and resets only after two quiet minutes), which after an API server
/// restart left a controller deaf for minutes while it went on writing from stale caches.
fn resilient<K>(
    kind: String,
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> {
    events.filter_map(move |event| {
        let event = match event {
            Ok(event) => Some(Ok(event)),
            Err(e) => {
                log_watch_failure(&kind, &e);
                None
            }
        };
        std::future::ready(event)
    })
}

/// How loudly a watch failure is logged.
#[derive(Debug, PartialEq, Eq)]
enum Loudness {
    /// Routine: the watch resumes at once (an expired resource version means a fresh list).
    Routine,
    /// The watch is down until a retry succeeds: the cache may be stale meanwhile.
    Degraded,
}

fn loudness(error: &watcher::Error) -> Loudness {
    match error {
        watcher::Error::WatchError(status) if status.code == 410 => Loudness::Routine,
        _ => Loudness::Degraded,
    }
}

fn log_watch_failure(kind: &str, error: &watcher::Error) {
    match loudness(error) {
        Loudness::Routine => tracing::debug!(%kind, "watch restarts: {error}"),
        Loudness::Degraded => tracing::warn!(%kind, "watch failed, retrying: {error}"),
    }
}

/// Waits until `store` has synced; false if its writer went away first.
pub async fn store_synced<K>(store: &Store<K>) -> bool
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

/// The cached object `name` in `namespace`, typed, if any.
pub fn cached<K>(store: &Store<Compact<K>>, namespace: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let object = store.get(&ObjectRef::new(name).within(namespace))?;
    decoded(&object)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::stream::BoxStream;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::core::Status;
    use kube::runtime::controller::Action;
    use tokio::sync::mpsc;

    use super::*;

    fn failure(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Box::new(Status::failure("boom", "Test").with_code(code)))
    }

    #[test]
    fn an_expired_watch_is_routine_and_other_failures_degrade_the_cache() {
        let table = [
            (failure(410), Loudness::Routine),
            (failure(403), Loudness::Degraded),
            (failure(500), Loudness::Degraded),
            (watcher::Error::NoResourceVersion, Loudness::Degraded),
        ];
        for (error, expected) in table {
            assert_eq!(loudness(&error), expected, "{error}");
        }
    }

    /// A lean cache keeps names only typed, and the watch hands on the whole metadata (its
    /// owner references route the change); deletions leave the cache. (A kind no other test
    /// packs: the first object of a kind is the process's dictionary for it.)
    #[tokio::test]
    async fn a_lean_cache_keeps_names_typed_and_the_watch_hands_on_the_whole_metadata() {
        let object: Compact<Secret> = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                         "ownerReferences": [{"apiVersion": "nvidia.com/v1alpha1",
                             "kind": "DynamoGraphDeployment", "name": "g", "uid": "u0",
                             "controller": true}]},
            "type": "Opaque",
        }))
        .unwrap();
        let (store, writer) = reflector::store::<Compact<Secret>>();
        let events = [
            watcher::Event::Init,
            watcher::Event::InitApply(object.clone()),
            watcher::Event::InitDone,
        ];
        let handed_on: Vec<_> = into_cache(
            futures::stream::iter(events.map(Ok)),
            writer,
            Compact::name_only,
        )
        .collect()
        .await;
        let Ok(watcher::Event::InitApply(routed)) = &handed_on[1] else {
            panic!("{handed_on:?}");
        };
        assert_eq!(routed.owner_references().len(), 1);
        assert_eq!(routed.uid().as_deref(), Some("u1"));
        let kept = store.get(&ObjectRef::new("c").within("ns")).unwrap();
        assert!(kept.owner_references().is_empty());
        assert_eq!(kept.uid(), None);
        assert_eq!(kept.resource_version(), None);
        assert_eq!(kept.decode().unwrap(), object.decode().unwrap());

        let (store, writer) = reflector::store::<Compact<Secret>>();
        let events = [
            watcher::Event::Init,
            watcher::Event::InitDone,
            watcher::Event::Apply(object.clone()),
            watcher::Event::Delete(object),
        ];
        let _: Vec<_> = into_cache(
            futures::stream::iter(events.map(Ok)),
            writer,
            Compact::name_only,
        )
        .collect()
        .await;
        assert!(store.state().is_empty());
    }

    /// Virtual seconds until a controller whose watch failed five times (as it does while the
    /// API server restarts) reconciles the object the watch delivers next.
    async fn seconds_to_reconcile(failures_reach_the_controller: bool) -> f64 {
        let (store, writer) = reflector::store::<ConfigMap>();
        let object = ConfigMap {
            metadata: ObjectMeta {
                name: Some("after-the-failures".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let mut events = vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)];
        events.extend((0..5).map(|_| Err(failure(500))));
        events.push(Ok(watcher::Event::Apply(object)));
        let watch = futures::stream::iter(events)
            .chain(futures::stream::pending())
            .reflect(writer);
        let watch: BoxStream<'static, Result<watcher::Event<ConfigMap>, watcher::Error>> =
            if failures_reach_the_controller {
                watch.boxed()
            } else {
                resilient("ConfigMap".into(), watch).boxed()
            };
        let (reconciled, mut reconciles) = mpsc::unbounded_channel();
        let started = tokio::time::Instant::now();
        let controller = Controller::for_stream(watch.applied_objects(), store).run(
            |object: Arc<ConfigMap>, reconciled: Arc<mpsc::UnboundedSender<String>>| async move {
                let _ = reconciled.send(object.name_any());
                Ok::<_, std::io::Error>(Action::await_change())
            },
            |_, _, _| Action::await_change(),
            Arc::new(reconciled),
        );
        let running = tokio::spawn(controller.for_each(|_| async {}));
        assert_eq!(reconciles.recv().await.unwrap(), "after-the-failures");
        running.abort();
        started.elapsed().as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_a_watch_do_not_pause_its_controller() {
        let seconds = seconds_to_reconcile(false).await;
        assert!(seconds < 1.0, "reconciled after {seconds} s");
        // What the filter guards against: kube's controller backs off on each failure of any
        // of its watches (0.8 s, 1.6 s, ... up to 30 s), every watch of it paused meanwhile.
        let seconds = seconds_to_reconcile(true).await;
        assert!(seconds > 20.0, "reconciled after {seconds} s");
    }
}
