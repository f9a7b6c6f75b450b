//! DynamoComponentDeployment: a Deployment (or, multinode, a LeaderWorkerSet per replica), a
//! Service and an Ingress; status from the workload.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dynamo_api::v1alpha1::{ComponentType, DynamoComponentDeployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::reconcile::{Error, no_cleanup, reconcile as reconcile_object};
use crate::apply::{Change, Pace, StatusWrite, owned_by};
use crate::caches::{cached, decoded};
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::diagnosis::unavailable_cause;
use crate::desired::naming::{exposed_name, service_of};
use crate::desired::status::{
    AVAILABLE, VALIDATION_FAILED, Verdict, component_status, groups_component_status, holds,
};
use crate::desired::workload::is_deployment_ready;
use crate::desired::{BuildError, groups, model, pod, workload};
use crate::kinds::{LeaderWorkerSet, PodGroup};
use dynamo_api::validation::Validate;

const KIND: &str = "DynamoComponentDeployment";
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(
    cached: Arc<Compact<DynamoComponentDeployment>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let Some(component) = decoded(&cached) else {
        return Ok(Action::await_change());
    };
    let shared = context.clone();
    reconcile_object(
        Arc::new(component),
        &context,
        KIND,
        |component, namespace| async move { apply(&component, &namespace, &shared).await },
        no_cleanup,
    )
    .await
}

/// Applies `desired` (or deletes our `live` object of that name when none is desired).
async fn sync_optional<K>(
    context: &Context,
    owner: &DynamoComponentDeployment,
    api: &Api<K>,
    name: &str,
    live: Option<K>,
    desired: Option<K>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let kind = K::kind(&());
    match desired {
        Some(desired) => {
            let (_, change) = context.applier.ensure(api, &desired, live.as_ref()).await?;
            announce(context, owner, &kind, name, change);
        }
        None => {
            let uid = owner.uid().unwrap_or_default();
            if let Some(live) = live.filter(|live| owned_by(live, &uid)) {
                context.applier.delete(api, &live).await?;
                context.normal(
                    owner,
                    &format!("Delete{kind}"),
                    format!("Deleted {kind} {name}"),
                );
            }
        }
    }
    Ok(())
}

/// A Normal event on `owner` about a child of `kind` it created or updated.
pub(crate) fn announce<K: Resource<DynamicType = ()>>(
    context: &Context,
    owner: &K,
    kind: &str,
    name: &str,
    change: Change,
) {
    let verb = match change {
        Change::Unchanged => return,
        Change::Created => "Create",
        Change::Updated => "Update",
    };
    context.normal(
        owner,
        &format!("{verb}{kind}"),
        format!("{verb}d {kind} {name}"),
    );
}

async fn apply(
    component: &DynamoComponentDeployment,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let api: Api<DynamoComponentDeployment> = Api::namespaced(context.client.clone(), namespace);
    let name = component.name_any();
    // The webhook's rules, again (the webhook may be off or bypassed).
    let outcome = component.validate_create();
    if !outcome.is_allowed() {
        let message = outcome.message();
        let failure = Verdict::new(false, VALIDATION_FAILED, message.clone());
        if write_failure(&api, component, context, failure).await? == StatusWrite::Written {
            context.warning(component, VALIDATION_FAILED, message);
        }
        return Ok(Action::await_change());
    }
    let desired = match desired_workload(component, namespace, context) {
        Ok(desired) => desired,
        Err(e) => {
            let message = e.to_string();
            context.warning(component, "ReconcileFailed", message.clone());
            let failure = Verdict::new(false, e.reason(), message);
            write_failure(&api, component, context, failure).await?;
            return Ok(Action::await_change());
        }
    };

    let workload = match sync_children(component, namespace, context, desired).await {
        Ok(workload) => workload,
        Err(e) if e.refusal().is_some() => {
            // The user's spec produced a child the API server will not store: say so where
            // the user looks (component and graph status), and keep retrying with backoff in
            // case a webhook or quota, not the spec, was the obstacle.
            let refusal = e.refusal().map(|r| r.message.as_str()).unwrap_or_default();
            let message = format!("the API server refused a child object: {refusal}");
            context.warning(component, "ChildRefused", message.clone());
            let failure = Verdict::new(false, "ChildRefused", message);
            write_failure(&api, component, context, failure).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };

    let status = match &workload {
        Workload::Deployment(deployment) => {
            let cause = (!is_deployment_ready(deployment))
                .then(|| unavailable_cause(Some(deployment), &pods_of(context, namespace, &name)))
                .flatten();
            component_status(component, Some(deployment), None, cause)
        }
        Workload::Groups(groups) => {
            // A pod's own trouble (unschedulable, crash-looping) says more than the group's
            // counts.
            let cause = groups::groups_not_ready(groups).map(|groups_cause| {
                unavailable_cause(None, &pods_of(context, namespace, &name)).unwrap_or(groups_cause)
            });
            groups_component_status(component, groups, cause)
        }
    };
    let ready = holds(status.conditions.as_deref(), AVAILABLE);
    let write = context
        .applier
        .write_status(
            &api,
            component,
            component.status.as_ref(),
            &status,
            Pace::SettleFirst,
        )
        .await?;
    if let StatusWrite::Deferred(after) = write {
        return Ok(Action::requeue(after));
    }
    Ok(if ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(60))
    })
}

/// What runs a component's pods: one Deployment, or (multinode) a group per replica.
enum DesiredWorkload {
    Deployment(Box<PodTemplateSpec>),
    Groups {
        leader: Box<PodTemplateSpec>,
        worker: Box<PodTemplateSpec>,
    },
}

/// The workload as it is after the sync.
enum Workload {
    Deployment(Box<Deployment>),
    Groups(Vec<LeaderWorkerSet>),
}

/// The component's pod template (a pod that names no ServiceAccount runs as the namespace's
/// component account), split into leader and worker templates for a multinode component.
fn desired_workload(
    component: &DynamoComponentDeployment,
    namespace: &str,
    context: &Context,
) -> Result<DesiredWorkload, BuildError> {
    let spec = &component.spec.shared;
    let nodes = spec.node_count();
    if nodes >= 2 && !context.config.served.leader_worker_set {
        return Err(BuildError::MultinodeUnsupported {
            service: service_of(component),
            node_count: nodes,
        });
    }
    let mut template = pod::component_pod_template(component, &context.config)?;
    if let Some(spec) = template.spec.as_mut()
        && spec.service_account_name.is_none()
    {
        spec.service_account_name = fallback_account(context, namespace);
    }
    if nodes < 2 {
        return Ok(DesiredWorkload::Deployment(Box::new(template)));
    }
    let (leader, worker) = groups::role_templates(component, &template, &context.config)?;
    Ok(DesiredWorkload::Groups {
        leader: Box::new(leader),
        worker: Box::new(worker),
    })
}

/// A component that cannot be reconciled: not `Available`, for the reason `failure` gives,
/// written now.
async fn write_failure(
    api: &Api<DynamoComponentDeployment>,
    component: &DynamoComponentDeployment,
    context: &Context,
    failure: Verdict,
) -> Result<StatusWrite, Error> {
    let status = component_status(component, None, Some(failure), None);
    Ok(context
        .applier
        .write_status(
            api,
            component,
            component.status.as_ref(),
            &status,
            Pace::Now,
        )
        .await?)
}

/// Applies the component's workload (removing a workload of the other shape, left from before
/// `multinode` changed), Service, Ingress, VirtualService and model Service; the workload as it
/// is now.
async fn sync_children(
    component: &DynamoComponentDeployment,
    namespace: &str,
    context: &Context,
    desired: DesiredWorkload,
) -> Result<Workload, Error> {
    let name = component.name_any();
    let deployments: Api<Deployment> = Api::namespaced(context.client.clone(), namespace);
    let live_deployment = cached(&context.caches.deployments, namespace, &name);
    let workload = match desired {
        DesiredWorkload::Deployment(template) => {
            let desired = workload::deployment(component, *template);
            let (deployment, change) = context
                .applier
                .ensure(&deployments, &desired, live_deployment.as_ref())
                .await?;
            announce(context, component, "Deployment", &name, change);
            remove_groups(context, component, namespace, |_| true).await?;
            Workload::Deployment(Box::new(deployment))
        }
        DesiredWorkload::Groups { leader, worker } => {
            sync_optional(
                context,
                component,
                &deployments,
                &name,
                live_deployment,
                None,
            )
            .await?;
            let groups = sync_groups(context, component, namespace, &leader, &worker).await?;
            Workload::Groups(groups)
        }
    };

    // Service and Ingress names carry no dots (see `exposed_name`).
    let exposed = exposed_name(&name);
    let services: Api<Service> = Api::namespaced(context.client.clone(), namespace);
    sync_optional(
        context,
        component,
        &services,
        &exposed,
        cached(&context.caches.services, namespace, &exposed),
        workload::service(component, &context.config),
    )
    .await?;
    let ingresses: Api<Ingress> = Api::namespaced(context.client.clone(), namespace);
    sync_optional(
        context,
        component,
        &ingresses,
        &exposed,
        cached(&context.caches.ingresses, namespace, &exposed),
        workload::ingress(component, &context.config),
    )
    .await?;

    if component.spec.shared.component_type() == Some(ComponentType::Frontend) {
        sync_virtual_service(context, component, namespace).await?;
    }
    sync_model_service(context, component, &services).await?;

    Ok(workload)
}

/// Applies a LeaderWorkerSet (and, under Volcano, a PodGroup first) per replica, and removes
/// the groups past the replicas or of another size; the groups as they are now.
async fn sync_groups(
    context: &Context,
    component: &DynamoComponentDeployment,
    namespace: &str,
    leader: &PodTemplateSpec,
    worker: &PodTemplateSpec,
) -> Result<Vec<LeaderWorkerSet>, Error> {
    let volcano = context.config.served.volcano;
    // A group of another size is made anew: what the cache still shows of it is gone.
    let removed = remove_groups(context, component, namespace, |group| {
        groups::is_stale(component, group)
    })
    .await?;
    let sets: Api<LeaderWorkerSet> = Api::namespaced(context.client.clone(), namespace);
    let gangs: Api<PodGroup> = Api::namespaced(context.client.clone(), namespace);
    let desired = groups::leader_worker_sets(component, leader, worker, volcano);
    let mut applied = Vec::with_capacity(desired.len());
    for (index, set) in (0..).zip(desired) {
        let name = set.name_any();
        if volcano {
            let gang = groups::pod_group(component, index);
            let live = cached(&context.caches.pod_groups, namespace, &name);
            let (_, change) = context.applier.ensure(&gangs, &gang, live.as_ref()).await?;
            announce(context, component, "PodGroup", &name, change);
        }
        let live = cached(&context.caches.leader_worker_sets, namespace, &name)
            .filter(|_| !removed.contains(&name));
        let (mut set, change) = context.applier.ensure(&sets, &set, live.as_ref()).await?;
        announce(context, component, "LeaderWorkerSet", &name, change);
        let key = format!("{namespace}/{name}");
        let generation = |s: &LeaderWorkerSet| s.metadata.generation.unwrap_or(0);
        let version = set.resource_version().unwrap_or_default();
        if change == Change::Updated
            && live
                .as_ref()
                .is_some_and(|l| generation(&set) > generation(l))
        {
            context.changed_groups.changed(key.clone(), version.clone());
        }
        if context.changed_groups.awaits_controller(&key, &version) {
            // Its status is the old spec's (LWS reports no observedGeneration).
            set.status = None;
        }
        applied.push(set);
    }
    Ok(applied)
}

/// Deletes the component's groups (LeaderWorkerSet and PodGroup) that `stale` picks; their
/// names.
async fn remove_groups(
    context: &Context,
    component: &DynamoComponentDeployment,
    namespace: &str,
    stale: impl Fn(&LeaderWorkerSet) -> bool,
) -> Result<Vec<String>, Error> {
    if !context.config.served.leader_worker_set {
        return Ok(Vec::new());
    }
    let uid = component.uid().unwrap_or_default();
    let doomed: Vec<LeaderWorkerSet> = context
        .caches
        .leader_worker_sets
        .state()
        .iter()
        .filter(|set| set.namespace().as_deref() == Some(namespace))
        .filter_map(|set| decoded(set))
        .filter(|set| owned_by(set, &uid) && stale(set))
        .collect();
    let sets: Api<LeaderWorkerSet> = Api::namespaced(context.client.clone(), namespace);
    let gangs: Api<PodGroup> = Api::namespaced(context.client.clone(), namespace);
    let mut removed = Vec::with_capacity(doomed.len());
    for set in doomed {
        let name = set.name_any();
        context.applier.delete(&sets, &set).await?;
        context.normal(
            component,
            "DeleteLeaderWorkerSet",
            format!("Deleted LeaderWorkerSet {name}"),
        );
        if let Some(gang) =
            cached(&context.caches.pod_groups, namespace, &name).filter(|gang| owned_by(gang, &uid))
        {
            context.applier.delete(&gangs, &gang).await?;
        }
        removed.push(name);
    }
    Ok(removed)
}

/// The first ServiceAccount (by name) of the namespace marked for component pods, if any: a
/// pod that names none runs as it (the chart's `<fullname>-component`, which carries the image
/// pull secret), else as `default`.
fn fallback_account(context: &Context, namespace: &str) -> Option<String> {
    context
        .caches
        .component_accounts
        .state()
        .iter()
        .filter(|account| account.namespace().as_deref() == Some(namespace))
        .map(|account| account.name_any())
        .min()
}

/// The cached pods of component `name` (status only).
fn pods_of(context: &Context, namespace: &str, name: &str) -> Vec<Pod> {
    let caches = &context.caches;
    caches
        .pods_by_component
        .objects(&caches.pods, namespace, name)
        .iter()
        .filter_map(|pod| decoded(pod))
        .collect()
}

/// The headless Service of the component's base model (`modelRef`), shared with every other
/// component serving it: this component's own field manager adds its owner reference, and
/// nothing is written when the live Service already has it and the spec.
async fn sync_model_service(
    context: &Context,
    component: &DynamoComponentDeployment,
    services: &Api<Service>,
) -> Result<(), Error> {
    let desired = match model::model_service(component) {
        Ok(Some(desired)) => desired,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!(component = %component.name_any(), "model Service: {e}");
            return Ok(());
        }
    };
    let name = desired.name_any();
    let uid = component.uid().unwrap_or_default();
    let namespace = component.namespace().unwrap_or_default();
    let live = cached(&context.caches.model_services, &namespace, &name);
    if let Some(live) = &live {
        let mut without_owners = desired.clone();
        without_owners.metadata.owner_references = None;
        let wanted = serde_json::to_value(&without_owners).map_err(kube::Error::SerdeError)?;
        let current = serde_json::to_value(live).map_err(kube::Error::SerdeError)?;
        let owned = live.owner_references().iter().any(|r| r.uid == uid);
        if owned && crate::apply::contains(&current, &wanted) {
            return Ok(());
        }
    }
    tracing::info!(kind = "Service", %name, created = live.is_none(), "applying shared model Service");
    context.applier.count_write();
    let manager = model::model_service_manager(component);
    services
        .patch(
            &name,
            &kube::api::PatchParams::apply(&manager).force(),
            &kube::api::Patch::Apply(&desired),
        )
        .await?;
    let change = if live.is_some() {
        Change::Updated
    } else {
        Change::Created
    };
    announce(context, component, "Service", &name, change);
    Ok(())
}

/// The frontend's Istio VirtualService: applied when wanted, deleted (if ours) when not. Looked
/// up only for frontends; without Istio installed the lookup is a 404 and nothing happens.
async fn sync_virtual_service(
    context: &Context,
    component: &DynamoComponentDeployment,
    namespace: &str,
) -> Result<(), Error> {
    let resource = workload::virtual_service_resource();
    let api: Api<DynamicObject> =
        Api::namespaced_with(context.client.clone(), namespace, &resource);
    let name = exposed_name(&component.name_any());
    let desired = workload::virtual_service(component, &context.config);
    if desired.is_none() && context.config.virtual_service_gateway().is_none() {
        // No VirtualService wanted and no Istio gateway configured: nothing to look up (and no
        // need for RBAC on virtualservices).
        return Ok(());
    }
    let live = match api.get_opt(&name).await {
        Ok(live) => live,
        // No VirtualService API (Istio not installed) and nothing wanted: nothing to do.
        Err(kube::Error::Api(status)) if status.code == 404 && desired.is_none() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match desired {
        Some(desired) => {
            let (_, change) = context
                .applier
                .ensure(&api, &desired, live.as_ref())
                .await?;
            announce(context, component, "VirtualService", &name, change);
        }
        None => {
            let uid = component.uid().unwrap_or_default();
            if let Some(live) = live.filter(|live| owned_by(live, &uid)) {
                context.applier.delete(&api, &live).await?;
                let note = format!("Deleted VirtualService {name}");
                context.normal(component, "DeleteVirtualService", note);
            }
        }
    }
    Ok(())
}
