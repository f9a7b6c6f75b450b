//! DynamoGraphDeployment: one DynamoComponentDeployment per service (or, on Grove, one
//! PodCliqueSet: see [`super::grove`]), top-level PVCs, the discovery identity, the MPI SSH
//! Secret of TRT-LLM multinode services, and the status aggregated from the components.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoGraphDeployment, DynamoGraphDeploymentScalingAdapter,
    DynamoGraphDeploymentStatus, RestartPhase,
};
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::component::announce;
use super::identities::{Foreign, ensure_discovery_identity, ensure_workload_identities};
use super::mpi_secret::{Replicated, ensure_mpi_secret};
use super::reconcile::{Error, no_cleanup, reconcile as reconcile_object};
use crate::apply::{Pace, StatusWrite, owned_by};
use crate::caches::decoded;
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::config::DiscoveryBackend;
use crate::desired::graph::desired_components;
use crate::desired::grove::grove_pathway;
use crate::desired::pvc::{ClaimPlan, claim_plan};
use crate::desired::restart::{RestartPlan, component_rollout, plan_restart, stamp_restarts};
use crate::desired::scaling::{Scaling, desired_adapters, scaling};
use crate::desired::status::{
    SUCCESSFUL, VALIDATION_FAILED, graph_failed, graph_invalid, graph_status,
};
use dynamo_api::validation::Validate;

const KIND: &str = "DynamoGraphDeployment";
/// Periodic resync that also catches drift no watch reports.
pub(super) const RESYNC: Duration = Duration::from_secs(300);

/// The graph controller: the shared context and what only this controller remembers.
pub struct Graphs {
    context: Arc<Context>,
    /// Adapters whose graph service no longer has their replicas, for the adapter controller.
    adapters: mpsc::UnboundedSender<ObjectRef<Compact<DynamoGraphDeploymentScalingAdapter>>>,
    /// Planner and EPP identity names someone else made.
    foreign: Foreign,
    /// Namespaces that hold the MPI SSH Secret.
    mpi: Replicated,
}

impl Graphs {
    pub fn new(
        context: Arc<Context>,
        adapters: mpsc::UnboundedSender<ObjectRef<Compact<DynamoGraphDeploymentScalingAdapter>>>,
    ) -> Self {
        Graphs {
            context,
            adapters,
            foreign: Foreign::default(),
            mpi: Replicated::default(),
        }
    }
}

impl Graphs {
    pub(super) fn context(&self) -> &Context {
        &self.context
    }
}

impl AsRef<Context> for Graphs {
    fn as_ref(&self) -> &Context {
        &self.context
    }
}

pub async fn reconcile(
    cached: Arc<Compact<DynamoGraphDeployment>>,
    graphs: Arc<Graphs>,
) -> Result<Action, Error> {
    let Some(graph) = decoded(&cached) else {
        return Ok(Action::await_change());
    };
    let shared = graphs.clone();
    reconcile_object(
        Arc::new(graph),
        &graphs.context,
        KIND,
        |graph, namespace| async move { apply(&graph, &namespace, &shared).await },
        no_cleanup,
    )
    .await
}

/// Converges the graph; a child the API server refuses is reported in the graph's status (and
/// retried with backoff, in case a webhook or quota rather than the spec was the obstacle).
async fn apply(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
) -> Result<Action, Error> {
    let result = converge(graph, namespace, graphs).await;
    if let Some(refusal) = result.as_ref().err().and_then(Error::refusal) {
        let context = graphs.context.as_ref();
        let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
        let message = format!("the API server refused an object: {}", refusal.message);
        fail(graph, &api, context, message).await?;
    }
    result
}

async fn converge(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
) -> Result<Action, Error> {
    let context = graphs.context.as_ref();
    let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
    // The webhook's rules, again: with the webhook off (or bypassed) an invalid graph must not
    // turn into children. Nothing changes until the user edits it.
    let outcome = graph.validate_create();
    if !outcome.is_allowed() {
        let message = outcome.message();
        let status = graph_invalid(graph, message.clone());
        if context
            .applier
            .write_status(&api, graph, graph.status.as_ref(), &status, Pace::Now)
            .await?
            == StatusWrite::Written
        {
            context.warning(graph, VALIDATION_FAILED, message);
        }
        return Ok(Action::await_change());
    }
    if grove_pathway(context.config.served.grove, graph.annotations()) {
        return super::grove::converge(graph, namespace, graphs, &api).await;
    }
    let desired = match desired_components(graph, &context.config) {
        Ok(desired) => desired,
        Err(e) => {
            fail(graph, &api, context, e.to_string()).await?;
            // Nothing will change until the user edits the graph.
            return Ok(Action::await_change());
        }
    };
    if let Some(action) = prepare_graph(graph, namespace, graphs, &desired).await? {
        return Ok(action);
    }
    let uid = graph.uid().unwrap_or_default();
    if context.config.served.grove {
        // Off Grove now: its PodCliqueSet and the Services it owned go first.
        super::grove::leave(graph, namespace, context).await?;
    }
    let existing = owned_components(context, namespace, &uid);
    let mut desired = desired;
    let restart = restart_step(graph, &desired, &existing);
    stamp_restarts(&mut desired, &restart);
    let applied = sync_components(graph, namespace, context, desired, existing).await?;
    let status = graph_status(graph, &applied);
    write_graph_status(graph, &api, context, status, restart).await
}

/// Writes a graph's status (with the restart step) and says when to look again: at once while
/// a restart was only recorded, at the resync when ready, within a minute otherwise.
pub(super) async fn write_graph_status(
    graph: &DynamoGraphDeployment,
    api: &Api<DynamoGraphDeployment>,
    context: &Context,
    mut status: DynamoGraphDeploymentStatus,
    restart: RestartPlan,
) -> Result<Action, Error> {
    let restart_pending = restart
        .status
        .as_ref()
        .is_some_and(|r| r.phase == Some(RestartPhase::Pending));
    status.restart = restart.status;
    let ready = status.state.as_deref() == Some(SUCCESSFUL);
    let write = context
        .applier
        .write_status(api, graph, graph.status.as_ref(), &status, Pace::Aggregate)
        .await?;
    if let StatusWrite::Deferred(after) = write {
        return Ok(Action::requeue(after));
    }
    Ok(Action::requeue(if restart_pending {
        // Recorded; the next reconcile starts it.
        Duration::from_secs(1)
    } else if ready {
        RESYNC
    } else {
        Duration::from_secs(60)
    }))
}

/// What every pathway needs before the graph's workloads: its claims, the MPI SSH Secret, the
/// identities and the scaling adapters. `Some` when the graph cannot go on (its status says
/// why): come back after that long.
pub(super) async fn prepare_graph(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
    components: &[DynamoComponentDeployment],
) -> Result<Option<Action>, Error> {
    let context = graphs.context.as_ref();
    let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
    if let Some(message) = ensure_pvcs(graph, namespace, context).await? {
        fail(graph, &api, context, message).await?;
        return Ok(Some(Action::requeue(Duration::from_secs(30))));
    }
    if let Some(message) = ensure_mpi_secret(components, namespace, context, &graphs.mpi).await? {
        fail(graph, &api, context, message).await?;
        return Ok(Some(Action::requeue(Duration::from_secs(30))));
    }
    let uid = graph.uid().unwrap_or_default();
    ensure_identities(graph, namespace, context, &graphs.foreign).await?;
    sync_adapters(graph, namespace, graphs, &uid).await?;
    Ok(None)
}

/// Creates the adapters of services with `scalingAdapter.enabled` (an adapter that exists keeps
/// its replicas), deletes the others the graph owns, and hands adapters whose service differs
/// from them to the adapter controller.
async fn sync_adapters(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
    uid: &str,
) -> Result<(), Error> {
    let context = graphs.context.as_ref();
    let mut existing: BTreeMap<String, Arc<Compact<DynamoGraphDeploymentScalingAdapter>>> = context
        .caches
        .adapters
        .state()
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(namespace) && owned_by(a.as_ref(), uid))
        .map(|a| (a.name_any(), a))
        .collect();
    let desired = desired_adapters(graph).unwrap_or_default();
    if desired.is_empty() && existing.is_empty() {
        return Ok(());
    }
    let api: Api<DynamoGraphDeploymentScalingAdapter> =
        Api::namespaced(context.client.clone(), namespace);
    for adapter in desired {
        match existing.remove(&adapter.name_any()) {
            Some(live) => {
                let in_sync = decoded(&live)
                    .is_some_and(|live| scaling(&live, Some(graph)) == Scaling::InSync);
                if !in_sync {
                    let _ = graphs
                        .adapters
                        .unbounded_send(ObjectRef::from_obj(live.as_ref()));
                }
            }
            None => {
                context.applier.count_write();
                match api.create(&PostParams::default(), &adapter).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                let note = format!("Created {KIND_OF_ADAPTER} {}", adapter.name_any());
                context.normal(graph, &format!("Create{KIND_OF_ADAPTER}"), note);
            }
        }
    }
    // What is left belongs to services that are gone or no longer scaled by an adapter.
    for stale in existing.into_values().filter_map(|a| decoded(&a)) {
        context.applier.delete(&api, &stale).await?;
        let note = format!("Deleted {KIND_OF_ADAPTER} {}", stale.name_any());
        context.normal(graph, "AdapterDeleted", note);
    }
    Ok(())
}

const KIND_OF_ADAPTER: &str = "DynamoGraphDeploymentScalingAdapter";

/// The graph's components as the component controller's cache holds them, by name (no API
/// calls).
pub(super) fn owned_components(
    context: &Context,
    namespace: &str,
    uid: &str,
) -> BTreeMap<String, DynamoComponentDeployment> {
    let caches = &context.caches;
    caches
        .components_by_graph
        .objects(&caches.components, namespace, uid)
        .iter()
        .filter_map(|c| decoded(c))
        .map(|c| (c.name_any(), c))
        .collect()
}

/// The next step of the graph's rolling restart, from where each service's component stands.
fn restart_step(
    graph: &DynamoGraphDeployment,
    desired: &[DynamoComponentDeployment],
    existing: &BTreeMap<String, DynamoComponentDeployment>,
) -> RestartPlan {
    let services = desired
        .iter()
        .map(|component| {
            let service = component
                .spec
                .shared
                .service_name
                .clone()
                .unwrap_or_default();
            let rollout = existing
                .get(&component.name_any())
                .map(component_rollout)
                .unwrap_or_default();
            (service, rollout)
        })
        .collect();
    plan_restart(
        graph.spec.restart.as_ref(),
        graph.status.as_ref().and_then(|s| s.restart.as_ref()),
        &services,
    )
}

/// Applies the desired components and deletes those of removed services; the components as
/// they are now.
async fn sync_components(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    desired: Vec<DynamoComponentDeployment>,
    mut existing: BTreeMap<String, DynamoComponentDeployment>,
) -> Result<Vec<DynamoComponentDeployment>, Error> {
    let components: Api<DynamoComponentDeployment> =
        Api::namespaced(context.client.clone(), namespace);

    let mut applied = Vec::with_capacity(desired.len());
    for component in &desired {
        let live = existing.remove(&component.name_any());
        let (component, change) = context
            .applier
            .ensure(&components, component, live.as_ref())
            .await?;
        announce(
            context,
            graph,
            KIND_OF_COMPONENT,
            &component.name_any(),
            change,
        );
        applied.push(component);
    }
    // What is left belonged to services that were removed.
    for stale in existing.into_values() {
        context.applier.delete(&components, &stale).await?;
        let note = format!("Deleted {KIND_OF_COMPONENT} {}", stale.name_any());
        context.normal(graph, &format!("Delete{KIND_OF_COMPONENT}"), note);
    }
    Ok(applied)
}

const KIND_OF_COMPONENT: &str = "DynamoComponentDeployment";

/// The planner and EPP identities of the namespace, and the graph's discovery identity under
/// Kubernetes discovery.
async fn ensure_identities(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    foreign: &Foreign,
) -> Result<(), Error> {
    ensure_workload_identities(graph, namespace, context, foreign).await?;
    let discovery = context
        .config
        .effective_discovery_backend(graph.metadata.annotations.as_ref());
    if discovery == DiscoveryBackend::Kubernetes {
        ensure_discovery_identity(graph, namespace, context).await?;
    }
    Ok(())
}

/// A graph that cannot be reconciled: a Warning event and `failed` with the reason.
pub(super) async fn fail(
    graph: &DynamoGraphDeployment,
    api: &Api<DynamoGraphDeployment>,
    context: &Context,
    message: String,
) -> Result<(), Error> {
    context.warning(graph, "ReconcileFailed", message.clone());
    let status = graph_failed(graph, message);
    context
        .applier
        .write_status(api, graph, graph.status.as_ref(), &status, Pace::Now)
        .await?;
    Ok(())
}

/// Creates the `create: true` claims that are missing; the message naming a missing claim the
/// graph does not create, if one is.
async fn ensure_pvcs(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<Option<String>, Error> {
    if graph.spec.pvcs.as_ref().is_none_or(|p| p.is_empty()) {
        return Ok(None);
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(context.client.clone(), namespace);
    let exists = |name: &str| {
        context
            .caches
            .claims
            .get(&ObjectRef::new(name).within(namespace))
            .is_some()
    };
    let plan = match claim_plan(graph, exists) {
        Ok(plan) => plan,
        Err(e) => return Ok(Some(e.to_string())),
    };
    match plan {
        ClaimPlan::Missing(message) => Ok(Some(message)),
        ClaimPlan::Create(create) => {
            for claim in create {
                context.applier.count_write();
                claims.create(&PostParams::default(), &claim).await?;
                let note = format!("Created PersistentVolumeClaim {}", claim.name_any());
                context.normal(graph, "CreatePersistentVolumeClaim", note);
            }
            Ok(None)
        }
    }
}
