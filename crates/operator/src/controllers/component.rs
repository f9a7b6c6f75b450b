//! DynamoComponentDeployment: a Deployment, a Service and an Ingress, status from the
//! Deployment.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dynamo_api::v1alpha1::{ComponentType, DynamoComponentDeployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
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
use crate::desired::naming::exposed_name;
use crate::desired::status::{AVAILABLE, VALIDATION_FAILED, Verdict, component_status, holds};
use crate::desired::workload::is_deployment_ready;
use crate::desired::{model, pod, workload};
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
    let template = match pod::component_pod_template(component, &context.config) {
        Ok(mut template) => {
            if let Some(spec) = template.spec.as_mut()
                && spec.service_account_name.is_none()
            {
                spec.service_account_name = fallback_account(context, namespace);
            }
            template
        }
        Err(e) => {
            let message = e.to_string();
            context.warning(component, "ReconcileFailed", message.clone());
            let failure = Verdict::new(false, e.reason(), message);
            write_failure(&api, component, context, failure).await?;
            return Ok(Action::await_change());
        }
    };

    let deployment = match sync_children(component, namespace, context, template).await {
        Ok(deployment) => deployment,
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

    let cause = (!is_deployment_ready(&deployment))
        .then(|| unavailable_cause(Some(&deployment), &pods_of(context, namespace, &name)))
        .flatten();
    let status = component_status(component, Some(&deployment), None, cause);
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

/// Applies the component's Deployment, Service, Ingress, VirtualService and model Service; the
/// Deployment as it is now.
async fn sync_children(
    component: &DynamoComponentDeployment,
    namespace: &str,
    context: &Context,
    template: k8s_openapi::api::core::v1::PodTemplateSpec,
) -> Result<Deployment, Error> {
    let name = component.name_any();
    let deployments: Api<Deployment> = Api::namespaced(context.client.clone(), namespace);
    let desired = workload::deployment(component, template);
    let live = cached(&context.caches.deployments, namespace, &name);
    let (deployment, change) = context
        .applier
        .ensure(&deployments, &desired, live.as_ref())
        .await?;
    announce(context, component, "Deployment", &name, change);

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

    Ok(deployment)
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
