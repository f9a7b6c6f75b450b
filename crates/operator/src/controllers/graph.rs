//! DynamoGraphDeployment: one DynamoComponentDeployment per service, top-level PVCs, status
//! aggregated from the components.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoGraphDeployment, DynamoGraphDeploymentStatus,
    ServiceReplicaStatus,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, ServiceAccount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::status::condition;
use super::{Context, Error, reconcile_with_finalizer};
use crate::apply::{Change, owned_by};
use crate::build::config::DiscoveryBackend;
use crate::build::graph::desired_components;
use crate::build::rbac::discovery_rbac;
use crate::compact::Compact;

const KIND: &str = "DynamoGraphDeployment";
/// Periodic resync that also catches drift no watch reports.
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(
    cached: Arc<Compact<DynamoGraphDeployment>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let Some(graph) = super::decoded(&cached) else {
        return Ok(Action::await_change());
    };
    let shared = context.clone();
    reconcile_with_finalizer(
        Arc::new(graph),
        &context,
        KIND,
        |graph, namespace| async move { apply(&graph, &namespace, &shared).await },
    )
    .await
}

async fn apply(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
    let desired = match desired_components(graph, &context.config) {
        Ok(desired) => desired,
        Err(e) => {
            fail(graph, &api, context, e.to_string()).await?;
            // Nothing will change until the user edits the graph.
            return Ok(Action::await_change());
        }
    };
    if let Err(message) = ensure_pvcs(graph, namespace, context).await? {
        fail(graph, &api, context, message).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }

    let discovery = context
        .config
        .effective_discovery_backend(graph.metadata.annotations.as_ref());
    let uid = graph.uid().unwrap_or_default();
    if discovery == DiscoveryBackend::Kubernetes
        && !context.identity_recent(&uid)
        && let Err(e) = ensure_discovery_identity(graph, namespace, context).await
    {
        // Not ensured after all: look again next time.
        context.identities.lock().unwrap().remove(&uid);
        return Err(e);
    }

    let components: Api<DynamoComponentDeployment> =
        Api::namespaced(context.client.clone(), namespace);
    // The component controller's cache: every component in scope, without API calls.
    let mut existing: BTreeMap<String, DynamoComponentDeployment> = context
        .caches
        .components
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace) && owned_by(c.as_ref(), &uid))
        .filter_map(|c| super::decoded(&c))
        .map(|c| (c.name_any(), c))
        .collect();

    let mut applied = Vec::with_capacity(desired.len());
    for component in &desired {
        let live = existing.remove(&component.name_any());
        let (component, change) = context
            .applier
            .ensure(&components, component, live.as_ref())
            .await?;
        if change != Change::Unchanged {
            let verb = if change == Change::Created {
                "Create"
            } else {
                "Update"
            };
            let note = format!("{verb}d DynamoComponentDeployment {}", component.name_any());
            context.event(
                graph,
                false,
                &format!("{verb}DynamoComponentDeployment"),
                note,
            );
        }
        applied.push(component);
    }
    // What is left belonged to services that were removed.
    for stale in existing.into_values() {
        context.applier.delete(&components, &stale).await?;
        let note = format!("Deleted DynamoComponentDeployment {}", stale.name_any());
        context.event(graph, false, "DeleteDynamoComponentDeployment", note);
    }

    let status = aggregate(graph, &applied);
    let ready = status.state.as_deref() == Some("successful");
    context
        .applier
        .write_status(&api, &graph.name_any(), graph.status.as_ref(), &status)
        .await?;
    Ok(if ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(60))
    })
}

/// The graph's status from its components' statuses.
pub fn aggregate(
    graph: &DynamoGraphDeployment,
    components: &[DynamoComponentDeployment],
) -> DynamoGraphDeploymentStatus {
    let mut services = BTreeMap::new();
    let mut not_ready = Vec::new();
    for component in components {
        let service = component
            .spec
            .shared
            .service_name
            .clone()
            .unwrap_or_else(|| component.name_any());
        let status = component.status.as_ref();
        let available = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"));
        // A component whose controller has not seen its latest spec is not ready yet.
        let current = status.and_then(|s| s.observed_generation) == component.meta().generation;
        match available {
            Some(c) if c.status == "True" && current => {}
            Some(c) => not_ready.push(format!("{}: {}", component.name_any(), c.reason)),
            None => not_ready.push(format!("{}: Reconciling", component.name_any())),
        }
        services.insert(
            service,
            status
                .and_then(|s| s.service.clone())
                .unwrap_or_else(|| ServiceReplicaStatus {
                    component_name: Some(component.name_any()),
                    ..Default::default()
                }),
        );
    }
    let ready = not_ready.is_empty();
    let (state, reason, message) = if ready {
        (
            "successful",
            "all_resources_are_ready",
            "All resources are ready".to_owned(),
        )
    } else {
        (
            "pending",
            "some_resources_are_not_ready",
            not_ready.join("; "),
        )
    };
    let previous = graph.status.as_ref().and_then(|s| s.conditions.as_deref());
    DynamoGraphDeploymentStatus {
        state: Some(state.into()),
        observed_generation: graph.meta().generation,
        conditions: Some(vec![condition(
            previous,
            "Ready",
            ready,
            reason,
            message,
            graph.meta().generation,
        )]),
        services: Some(services),
        ..graph.status.clone().unwrap_or_default()
    }
}

/// The ServiceAccount, Role and RoleBinding component pods run as under Kubernetes discovery.
async fn ensure_discovery_identity(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<(), Error> {
    let (account, role, binding) = discovery_rbac(graph);
    let client = &context.client;
    ensure_named(
        context,
        &Api::<ServiceAccount>::namespaced(client.clone(), namespace),
        &account,
    )
    .await?;
    ensure_named(
        context,
        &Api::<Role>::namespaced(client.clone(), namespace),
        &role,
    )
    .await?;
    ensure_named(
        context,
        &Api::<RoleBinding>::namespaced(client.clone(), namespace),
        &binding,
    )
    .await?;
    Ok(())
}

async fn ensure_named<K>(context: &Context, api: &Api<K>, desired: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let live = api.get_opt(&desired.name_any()).await?;
    context.applier.ensure(api, desired, live.as_ref()).await?;
    Ok(())
}

/// A graph that cannot be reconciled: a Warning event and `failed` with the reason.
async fn fail(
    graph: &DynamoGraphDeployment,
    api: &Api<DynamoGraphDeployment>,
    context: &Context,
    message: String,
) -> Result<(), Error> {
    context.event(graph, true, "ReconcileFailed", message.clone());
    write_failed(
        graph,
        api,
        context,
        "failed_to_reconcile_the_resources",
        message,
    )
    .await
}

async fn write_failed(
    graph: &DynamoGraphDeployment,
    api: &Api<DynamoGraphDeployment>,
    context: &Context,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let previous = graph.status.as_ref().and_then(|s| s.conditions.as_deref());
    let status = DynamoGraphDeploymentStatus {
        state: Some("failed".into()),
        observed_generation: graph.meta().generation,
        conditions: Some(vec![condition(
            previous,
            "Ready",
            false,
            reason,
            message,
            graph.meta().generation,
        )]),
        ..graph.status.clone().unwrap_or_default()
    };
    context
        .applier
        .write_status(api, &graph.name_any(), graph.status.as_ref(), &status)
        .await?;
    Ok(())
}

/// Creates the `create: true` claims that are missing; `Err(message)` names a missing claim
/// the graph does not create.
async fn ensure_pvcs(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<Result<(), String>, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(context.client.clone(), namespace);
    for (index, pvc) in graph.spec.pvcs.iter().flatten().enumerate() {
        if claims.get_opt(&pvc.name).await?.is_some() {
            continue;
        }
        if pvc.create != Some(true) {
            return Ok(Err(format!(
                "spec.pvcs[{index}]: PersistentVolumeClaim {} not found and create is not true",
                pvc.name
            )));
        }
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(pvc.name.clone()),
                namespace: Some(namespace.into()),
                labels: Some([(label::GRAPH_DEPLOYMENT_NAME.to_owned(), graph.name_any())].into()),
                owner_references: graph.controller_owner_ref(&()).map(|r| vec![r]),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: pvc.volume_access_mode.clone().map(|m| vec![m]),
                storage_class_name: pvc.storage_class.clone(),
                resources: pvc.size.clone().map(|size| VolumeResourceRequirements {
                    requests: Some([("storage".to_owned(), size)].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        context.applier.count_write();
        claims.create(&PostParams::default(), &claim).await?;
        context.event(
            graph,
            false,
            "CreatePersistentVolumeClaim",
            format!("Created PersistentVolumeClaim {}", pvc.name),
        );
    }
    Ok(Ok(()))
}
