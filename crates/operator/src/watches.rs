//! Wires the watches to the controllers and runs them.
//!
//! Every watch is lean (see [`crate::caches::lean_stream`]) and each kind is watched once: the
//! component controller's DynamoComponentDeployment watch also routes each component's changes
//! (deletions included) to the graph that owns it. No watch hands a failure to a controller
//! (see [`crate::caches::lean_stream`]): each retries on its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{DynamoGraphDeployment, DynamoModel};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt};

use crate::caches::{
    GraphWriters, all, by_model, component_accounts, component_pods, decoded, full_stream,
    lean_stream, lean_stream_with, managed_identities, owned,
};
use crate::compact::Compact;
use crate::context::{Background, Context};
use crate::controllers::graph::Graphs;
use crate::controllers::reconcile::error_policy;
use crate::controllers::{component, graph, model, scaling};
use crate::desired::grove::{graph_of_clique, graph_of_scaling_group};
use crate::desired::model::model_hash;
use crate::kinds::{PodClique, PodCliqueScalingGroup};

/// Bounded parallel reconciles (memory stays flat with many objects; API latency, not CPU,
/// limits a reconcile, so 64 run at once) and a short debounce, so a burst of child status
/// updates (a new Deployment changes its status several times within a second) turns into one
/// reconcile and one status write of the parent.
fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(64)
        .debounce(Duration::from_millis(200))
}

/// Runs the three controllers until `stop` turns true; `ready` turns true once every cache
/// synced.
pub async fn run(
    context: Arc<Context>,
    background: Background,
    ready: tokio::sync::watch::Sender<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Background { writers, publisher } = background;
    let shutdown = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }
    .boxed()
    .shared();
    let caches = &context.caches;

    // One component watch: the component controller's trigger, and through `owners` the graph
    // controller's.
    let (owners, owner_changes) = mpsc::unbounded();
    // A graph's identity objects changed or deleted by hand: reconcile the graph (it restores
    // them from the cache, without reading the API).
    let identities = futures::future::join3(
        identity_watch(
            &context,
            writers.identity_accounts,
            owners.clone(),
            shutdown.clone(),
        ),
        identity_watch(
            &context,
            writers.identity_roles,
            owners.clone(),
            shutdown.clone(),
        ),
        identity_watch(
            &context,
            writers.identity_bindings,
            owners.clone(),
            shutdown.clone(),
        ),
    )
    .map(|_| ());
    let indexing = context.clone();
    let components = full_stream(context.scoped(), all(), writers.components)
        .inspect(move |event| {
            if let Ok(event) = event {
                indexing.caches.components_by_graph.observe(event);
            }
        })
        .touched_objects()
        .inspect(move |component| {
            if let Ok(component) = component {
                for graph in owning_graphs(component) {
                    let _ = owners.unbounded_send(graph);
                }
            }
        });
    // Pods, status only: a pod's change reconciles its component (named by the selector label).
    let pods = lean_stream_with(
        context.scoped(),
        component_pods(),
        writers.pods,
        |pod: &mut Compact<Pod>| pod.strip(&["spec", "metadata.annotations"]),
    )
    .inspect({
        let context = context.clone();
        move |event| {
            if let Ok(event) = event {
                context.caches.pods_by_component.observe(event);
            }
        }
    })
    .applied_objects();
    let component_controller = Controller::for_stream(components, caches.components.clone())
        .watches_stream(pods, |pod: Compact<Pod>| {
            let component = pod.routing_label(label::SELECTOR)?;
            Some(ObjectRef::new(component).within(&pod.namespace()?))
        });
    let component_controller = writers
        .children
        .watch(component_controller, &context)
        .with_config(controller_config())
        .graceful_shutdown_on(shutdown.clone())
        .run(component::reconcile, error_policy, context.clone())
        .for_each(|_| async {});

    // Scaling adapters: their own changes (HPA writing the scale subresource), and those the
    // graph controller finds out of step with their service.
    let (adapter_triggers, adapter_changes) = mpsc::unbounded();
    let adapters = full_stream(context.scoped(), all(), writers.adapters).applied_objects();
    let adapter_controller = Controller::for_stream(adapters, caches.adapters.clone())
        .reconcile_on(adapter_changes)
        .with_config(controller_config())
        .graceful_shutdown_on(shutdown.clone())
        .run(scaling::reconcile, error_policy, context.clone())
        .for_each(|_| async {});

    let graphs = full_stream(context.scoped(), all(), writers.graphs).applied_objects();
    let mut graph_controller =
        Controller::for_stream(graphs, caches.graphs.clone()).reconcile_on(owner_changes);
    // A kind the cluster does not serve is not watched (its store stays empty).
    if context.config.served.grove {
        graph_controller = grove_watches(graph_controller, &context, writers.graph);
    }
    let graph_controller = graph_controller
        .with_config(controller_config())
        .graceful_shutdown_on(shutdown.clone())
        .run(
            graph::reconcile,
            error_policy,
            Arc::new(Graphs::new(context.clone(), adapter_triggers)),
        )
        .for_each(|_| async {});

    // DynamoModels, and the EndpointSlices of base-model Services (which carry the hash label
    // from their Service): a slice change reconciles the models of that base model.
    let (model_store, model_writer) = reflector::store();
    let models = Controller::for_stream(
        full_stream(context.scoped::<DynamoModel>(), all(), model_writer).applied_objects(),
        model_store.clone(),
    );
    let slices =
        lean_stream(context.scoped(), by_model(), writers.model_endpoints).applied_objects();
    let model_controller = models
        .watches_stream(slices, move |slice: Compact<EndpointSlice>| {
            let hash = slice
                .routing_label(label::BASE_MODEL_HASH)
                .unwrap_or_default()
                .to_owned();
            let namespace = slice.namespace();
            model_store
                .state()
                .into_iter()
                .filter(|m| m.namespace() == namespace && model_hash(m) == hash)
                .map(|m| ObjectRef::from_obj(&*m))
                .collect::<Vec<_>>()
        })
        .with_config(controller_config())
        .graceful_shutdown_on(shutdown.clone())
        .run(model::reconcile, error_policy, context.clone())
        .for_each(|_| async {});

    // The component controller reads these when a pod template names no ServiceAccount.
    let accounts = lean_stream(
        context.scoped(),
        component_accounts(),
        writers.component_accounts,
    )
    .take_until(shutdown.clone())
    .for_each(|_| async {});
    // A graph's claims, names only: whether each exists.
    let claims = lean_stream_with(
        context.scoped(),
        all(),
        writers.claims,
        |claim: &mut Compact<PersistentVolumeClaim>| {
            claim.strip(&["spec", "status", "metadata.annotations", "metadata.labels"])
        },
    )
    .take_until(shutdown.clone())
    .for_each(|_| async {});

    tokio::spawn(publisher.run(context.client.clone()));
    tokio::spawn(signal_ready(context.clone(), ready));
    tokio::spawn(crate::inventory::count_resources(context.clone()));
    tokio::join!(
        graph_controller,
        component_controller,
        model_controller,
        adapter_controller,
        accounts,
        claims,
        identities
    );
}

/// The Grove pathway's watches on the graph controller: a graph's PodCliqueSet (its owner
/// reference), the PodCliques Grove makes (their graph label, copied from the clique
/// template), and the scaling groups (their PodCliqueSet, named after the graph). A PodClique
/// keeps only its replica count and status in the cache.
fn grove_watches(
    controller: Controller<Compact<DynamoGraphDeployment>>,
    context: &Context,
    writers: GraphWriters,
) -> Controller<Compact<DynamoGraphDeployment>> {
    let GraphWriters {
        pod_clique_sets,
        pod_cliques,
        scaling_groups,
    } = writers;
    let sets = lean_stream(context.scoped(), all(), pod_clique_sets).touched_objects();
    let cliques = lean_stream_with(
        context.scoped(),
        owned(),
        pod_cliques,
        |clique: &mut Compact<PodClique>| clique.strip(&["spec.podSpec", "metadata.annotations"]),
    )
    .touched_objects();
    let groups = lean_stream(context.scoped(), all(), scaling_groups).touched_objects();
    controller
        .owns_stream(sets)
        .watches_stream(cliques, |clique: Compact<PodClique>| {
            let namespace = clique.namespace()?;
            // The routing labels of a cached object leave out the graph label: decode it.
            let clique = decoded(&clique)?;
            let graph = graph_of_clique(clique.labels())?;
            Some(ObjectRef::new(graph).within(&namespace))
        })
        .watches_stream(groups, |group: Compact<PodCliqueScalingGroup>| {
            let graph = graph_of_scaling_group(group.owner_references())?;
            Some(ObjectRef::new(graph).within(&group.namespace()?))
        })
}

/// Watches the operator's identity objects of one kind into their cache; a change (a hand
/// edit or deletion) reconciles the graph that owns the object.
async fn identity_watch<K>(
    context: &Context,
    writer: kube::runtime::reflector::store::Writer<Compact<K>>,
    owners: mpsc::UnboundedSender<ObjectRef<Compact<DynamoGraphDeployment>>>,
    shutdown: impl std::future::Future<Output = ()>,
) where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + 'static,
{
    lean_stream(context.scoped(), managed_identities(), writer)
        .touched_objects()
        .take_until(shutdown)
        .for_each(move |object| {
            if let Ok(object) = object {
                for graph in owning_graphs(&object) {
                    let _ = owners.unbounded_send(graph);
                }
            }
            async {}
        })
        .await;
}

/// The graphs a component's controller owner references name.
fn owning_graphs<K: ResourceExt>(
    component: &K,
) -> impl Iterator<Item = ObjectRef<Compact<DynamoGraphDeployment>>> + '_ {
    let namespace = component.namespace();
    component
        .owner_references()
        .iter()
        .filter(|owner| owner.controller == Some(true))
        .filter_map(move |owner| ObjectRef::from_owner_ref(namespace.as_deref(), owner, ()))
}

async fn signal_ready(context: Arc<Context>, ready: tokio::sync::watch::Sender<bool>) {
    if context.caches.wait_synced(&context.config.served).await {
        context.caches.synced.store(true, Ordering::Release);
        tracing::info!("caches synced");
        let _ = ready.send(true);
    }
}
