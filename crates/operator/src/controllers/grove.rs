//! The graph controller's Grove pathway: a graph runs as one PodCliqueSet (see
//! [`crate::desired::grove`]) when the cluster serves `grove.io` and the graph does not opt
//! out. Grove makes the PodCliques and scaling groups of it; this side applies the set, scales
//! what Grove made to the services' replicas (Grove applies template replicas only when it
//! creates an object), owns each service's Service and Ingress, and reports the graph's status
//! from Grove's objects.
//!
//! A graph that moves onto Grove loses its DynamoComponentDeployments (their workloads go with
//! them); one that moves off Grove loses its PodCliqueSet and the Services and Ingresses it
//! owned (see [`leave`]).

use std::collections::BTreeMap;
use std::time::Duration;

use dynamo_api::v1alpha1::{ComponentType, DynamoComponentDeployment, DynamoGraphDeployment};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::component::announce;
use super::graph::{Graphs, fail, prepare_graph, write_graph_status};
use super::reconcile::Error;
use crate::apply::{FIELD_MANAGER, owned_by};
use crate::caches::{cached, decoded};
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::controller_ref;
use crate::desired::graph::graph_components;
use crate::desired::grove::{
    GroveKind, GroveSettings, ScaleStep, Takeover, grove_exposure, grove_graph_status,
    grove_rollouts, grove_virtual_service, kai_queue_name, mark_scaling, missing_queue,
    pod_clique_set, refused_update, scale_steps, services_readiness, takeover,
};
use crate::desired::naming::exposed_name;
use crate::desired::restart::{plan_restart, stamp_restarts};
use crate::desired::workload::virtual_service_resource;
use crate::kinds::{PodClique, PodCliqueScalingGroup, PodCliqueSet, Queue};

const KIND_OF_SET: &str = "PodCliqueSet";
/// A graph waiting for its KAI queue looks again this often (queues are not watched).
const QUEUE_RECHECK: Duration = Duration::from_secs(30);

/// Converges a graph on the Grove pathway.
pub(super) async fn converge(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
    api: &Api<DynamoGraphDeployment>,
) -> Result<Action, Error> {
    let context = graphs.context();
    let config = &context.config;
    let mut components = match graph_components(graph, config) {
        Ok(components) => components,
        Err(e) => {
            fail(graph, api, context, e.to_string()).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(action) = prepare_graph(graph, namespace, graphs, &components).await? {
        return Ok(action);
    }
    let name = graph.name_any();
    let uid = graph.uid().unwrap_or_default();
    let caches = &context.caches;
    let live = cached(&caches.pod_clique_sets, namespace, &name);

    // Where each service stands, from what Grove made of it.
    let cliques: Vec<PodClique> = components
        .iter()
        .filter(|c| GroveKind::of(c) == GroveKind::PodClique)
        .filter_map(|c| cached(&caches.pod_cliques, namespace, &workload_of(&name, c)))
        .collect();
    let groups: Vec<PodCliqueScalingGroup> = components
        .iter()
        .filter(|c| GroveKind::of(c) == GroveKind::ScalingGroup)
        .filter_map(|c| cached(&caches.scaling_groups, namespace, &workload_of(&name, c)))
        .collect();
    let mut readiness = services_readiness(
        &name,
        &components,
        |n| {
            cliques
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n))
        },
        |n| {
            groups
                .iter()
                .find(|g| g.metadata.name.as_deref() == Some(n))
        },
    );

    // The rolling restart's next step, stamped into the cliques' annotations.
    let rollouts = grove_rollouts(live.as_ref(), &readiness);
    let restart = plan_restart(
        graph.spec.restart.as_ref(),
        graph.status.as_ref().and_then(|s| s.restart.as_ref()),
        &rollouts,
    );
    stamp_restarts(&mut components, &restart);

    let kai_queue = if config.served.kai {
        let queue = kai_queue_name(graph.annotations());
        let queues: Api<Queue> = Api::all(context.client.clone());
        if queues.get_metadata_opt(&queue).await?.is_none() {
            fail(graph, api, context, missing_queue(&queue)).await?;
            return Ok(Action::requeue(QUEUE_RECHECK));
        }
        Some(queue)
    } else {
        None
    };
    let settings = GroveSettings {
        termination_delay: config.grove_termination_delay,
        kai_queue,
    };
    let desired = match pod_clique_set(graph, &components, config, &settings) {
        Ok(desired) => desired,
        Err(e) => {
            fail(graph, api, context, e.to_string()).await?;
            return Ok(Action::await_change());
        }
    };
    if let Some(why) = live
        .as_ref()
        .and_then(|live| refused_update(live, &desired))
    {
        let message = format!(
            "Grove does not allow this change of PodCliqueSet {name}: {why}; delete the graph and create it again to apply it"
        );
        fail(graph, api, context, message).await?;
        return Ok(Action::await_change());
    }
    let sets: Api<PodCliqueSet> = Api::namespaced(context.client.clone(), namespace);
    let (_, change) = context
        .applier
        .ensure(&sets, &desired, live.as_ref())
        .await?;
    announce(context, graph, KIND_OF_SET, &name, change);

    remove_components(graph, namespace, context, &uid).await?;
    sync_exposure(graph, namespace, context, &components).await?;

    let steps = scale_steps(&name, &components, |kind, object| match kind {
        GroveKind::PodClique => cliques
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(object))
            .map(|c| c.spec.replicas),
        GroveKind::ScalingGroup => groups
            .iter()
            .find(|g| g.metadata.name.as_deref() == Some(object))
            .map(|g| g.spec.replicas),
    });
    let scaled = scale(graph, namespace, context, steps).await?;
    mark_scaling(&mut readiness, &scaled);

    let status = grove_graph_status(graph, &readiness);
    write_graph_status(graph, api, context, status, restart).await
}

/// `<graph>-0-<lower(service)>` of `component`.
fn workload_of(graph: &str, component: &DynamoComponentDeployment) -> String {
    crate::desired::grove::workload_name(graph, &crate::desired::naming::service_of(component))
}

/// Deletes the graph's DynamoComponentDeployments (left from the component pathway).
async fn remove_components(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    uid: &str,
) -> Result<(), Error> {
    let stale = super::graph::owned_components(context, namespace, uid);
    if stale.is_empty() {
        return Ok(());
    }
    let api: Api<DynamoComponentDeployment> = Api::namespaced(context.client.clone(), namespace);
    for component in stale.into_values() {
        context.applier.delete(&api, &component).await?;
        let note = format!(
            "Deleted DynamoComponentDeployment {} (the graph runs on Grove)",
            component.name_any()
        );
        context.normal(graph, "DeleteDynamoComponentDeployment", note);
    }
    Ok(())
}

/// Each service's Service and Ingress (and a frontend's VirtualService), owned by the graph.
async fn sync_exposure(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    components: &[DynamoComponentDeployment],
) -> Result<(), Error> {
    let owner = match controller_ref(graph) {
        Ok(owner) => owner,
        // The graph came from the API server: it has a name and a uid.
        Err(e) => {
            tracing::error!(graph = %graph.name_any(), "{e}");
            return Ok(());
        }
    };
    let services: Api<Service> = Api::namespaced(context.client.clone(), namespace);
    let ingresses: Api<Ingress> = Api::namespaced(context.client.clone(), namespace);
    let caches = &context.caches;
    for component in components {
        let name = exposed_name(&component.name_any());
        let (service, ingress) = grove_exposure(component, &owner, &context.config);
        let live = cached(&caches.services, namespace, &name);
        sync_owned(graph, context, &services, &name, live, service).await?;
        let live = cached(&caches.ingresses, namespace, &name);
        sync_owned(graph, context, &ingresses, &name, live, ingress).await?;
        if component.spec.shared.component_type() == Some(ComponentType::Frontend) {
            sync_virtual_service(graph, namespace, context, component, &owner).await?;
        }
    }
    Ok(())
}

/// A frontend's VirtualService, owned by the graph: applied when wanted, deleted (if the
/// graph's) when not. Looked up only when wanted or an Istio gateway is configured.
async fn sync_virtual_service(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    component: &DynamoComponentDeployment,
    owner: &OwnerReference,
) -> Result<(), Error> {
    let desired = grove_virtual_service(component, owner, &context.config);
    if desired.is_none() && context.config.virtual_service_gateway().is_none() {
        return Ok(());
    }
    let resource = virtual_service_resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(context.client.clone(), namespace, &resource);
    let name = exposed_name(&component.name_any());
    let live = match api.get_opt(&name).await {
        Ok(live) => live,
        // No VirtualService API (Istio not installed) and nothing wanted: nothing to do.
        Err(kube::Error::Api(status)) if status.code == 404 && desired.is_none() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let uid = graph.uid().unwrap_or_default();
    match desired {
        Some(desired) => {
            let live = match live {
                Some(live) => match takeover(live.owner_references(), &uid) {
                    Takeover::Apply => Some(live),
                    Takeover::Replace => {
                        context.applier.delete(&api, &live).await?;
                        None
                    }
                    Takeover::Foreign => return Ok(()),
                },
                None => None,
            };
            let (_, change) = context
                .applier
                .ensure(&api, &desired, live.as_ref())
                .await?;
            announce(context, graph, "VirtualService", &name, change);
        }
        None => {
            if let Some(live) = live.filter(|live| owned_by(live, &uid)) {
                context.applier.delete(&api, &live).await?;
                let note = format!("Deleted VirtualService {name}");
                context.normal(graph, "DeleteVirtualService", note);
            }
        }
    }
    Ok(())
}

/// Applies `desired` (taking the name over from the graph's old component), or deletes the
/// graph's `live` object when none is desired.
async fn sync_owned<K>(
    graph: &DynamoGraphDeployment,
    context: &Context,
    api: &Api<K>,
    name: &str,
    live: Option<K>,
    desired: Option<K>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let kind = K::kind(&());
    let uid = graph.uid().unwrap_or_default();
    let Some(desired) = desired else {
        if let Some(live) = live.filter(|live| owned_by(live, &uid)) {
            context.applier.delete(api, &live).await?;
            context.normal(
                graph,
                &format!("Delete{kind}"),
                format!("Deleted {kind} {name}"),
            );
        }
        return Ok(());
    };
    let live = match live {
        Some(live) => match takeover(live.owner_references(), &uid) {
            Takeover::Apply => Some(live),
            Takeover::Replace => {
                context.applier.delete(api, &live).await?;
                None
            }
            Takeover::Foreign => {
                tracing::warn!(%kind, %name, graph = %graph.name_any(), "another controller's object has the name; left alone");
                return Ok(());
            }
        },
        None => None,
    };
    let (_, change) = context.applier.ensure(api, &desired, live.as_ref()).await?;
    announce(context, graph, &kind, name, change);
    Ok(())
}

/// Writes the scale subresource of each step (a merge patch of `spec.replicas`: no
/// conflict with Grove's own writes); the steps made. An object gone meanwhile is skipped.
async fn scale(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    steps: Vec<ScaleStep>,
) -> Result<Vec<ScaleStep>, Error> {
    let mut made = Vec::with_capacity(steps.len());
    for step in steps {
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": step.replicas } }));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        context.applier.count_write();
        let answer = match step.kind {
            GroveKind::PodClique => {
                let api: Api<PodClique> = Api::namespaced(context.client.clone(), namespace);
                api.patch_scale(&step.name, &params, &patch).await
            }
            GroveKind::ScalingGroup => {
                let api: Api<PodCliqueScalingGroup> =
                    Api::namespaced(context.client.clone(), namespace);
                api.patch_scale(&step.name, &params, &patch).await
            }
        };
        let kind = match step.kind {
            GroveKind::PodClique => "PodClique",
            GroveKind::ScalingGroup => "PodCliqueScalingGroup",
        };
        match answer {
            Ok(_) => {
                tracing::info!(%kind, name = %step.name, from = step.from, replicas = step.replicas, "scaled");
                context.normal(
                    graph,
                    &format!("Scale{kind}"),
                    format!(
                        "Scaled {kind} {} from {} to {} replicas",
                        step.name, step.from, step.replicas
                    ),
                );
                made.push(step);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(made)
}

/// A graph off the Grove pathway (its annotation says `false`): deletes the PodCliqueSet it
/// owns, and first the Services and Ingresses it owns (its components' own take their
/// names). Nothing is read but the caches when it has no PodCliqueSet.
pub(super) async fn leave(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<(), Error> {
    let uid = graph.uid().unwrap_or_default();
    let caches = &context.caches;
    let Some(set) = cached(&caches.pod_clique_sets, namespace, &graph.name_any())
        .filter(|set| owned_by(set, &uid))
    else {
        return Ok(());
    };
    let services: Api<Service> = Api::namespaced(context.client.clone(), namespace);
    for service in owned_in(&caches.services, namespace, &uid) {
        context.applier.delete(&services, &service).await?;
    }
    let ingresses: Api<Ingress> = Api::namespaced(context.client.clone(), namespace);
    for ingress in owned_in(&caches.ingresses, namespace, &uid) {
        context.applier.delete(&ingresses, &ingress).await?;
    }
    let sets: Api<PodCliqueSet> = Api::namespaced(context.client.clone(), namespace);
    context.applier.delete(&sets, &set).await?;
    let note = format!(
        "Deleted {KIND_OF_SET} {} (the graph no longer runs on Grove)",
        set.name_any()
    );
    context.normal(graph, &format!("Delete{KIND_OF_SET}"), note);
    Ok(())
}

/// The cached objects in `namespace` the object with `uid` controls.
fn owned_in<K>(
    store: &kube::runtime::reflector::Store<Compact<K>>,
    namespace: &str,
    uid: &str,
) -> Vec<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let by_owner: BTreeMap<String, K> = store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .filter_map(|o| decoded(o))
        .filter(|o| owned_by(o, uid))
        .map(|o| (o.name_any(), o))
        .collect();
    by_owner.into_values().collect()
}
