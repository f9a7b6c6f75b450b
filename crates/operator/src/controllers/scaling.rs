//! DynamoGraphDeploymentScalingAdapter: writes the adapter's replicas into its graph service
//! (HPA, KEDA and the Planner scale the adapter through its `scale` subresource) and keeps the
//! adapter's status: the replicas, the pods' selector, the last scale time.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use dynamo_api::v1alpha1::{DynamoGraphDeployment, DynamoGraphDeploymentScalingAdapter};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::reconcile::Error;
use crate::apply::{FIELD_MANAGER, Pace};
use crate::caches::{cached, decoded};
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::scaling::{Scaling, scaling, service_selector};

const KIND: &str = "DynamoGraphDeploymentScalingAdapter";

pub async fn reconcile(
    cached_adapter: Arc<Compact<DynamoGraphDeploymentScalingAdapter>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let Some(adapter) = decoded(&cached_adapter) else {
        return Ok(Action::await_change());
    };
    if let Some(later) = context.not_synced() {
        return Ok(later);
    }
    let namespace = adapter
        .namespace()
        .ok_or_else(|| Error::NoNamespace(adapter.name_any()))?;
    if !context.scope.validates(Some(&namespace), SystemTime::now())
        || adapter.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = apply(&adapter, &namespace, &context).await;
    let error_type = result.as_ref().err().map(Error::error_type);
    context
        .metrics
        .record(KIND, &namespace, started, error_type);
    result
}

async fn apply(
    adapter: &DynamoGraphDeploymentScalingAdapter,
    namespace: &str,
    context: &Context,
) -> Result<Action, Error> {
    let target = &adapter.spec.dgd_ref;
    let graph: Option<DynamoGraphDeployment> =
        cached(&context.caches.graphs, namespace, &target.name);
    let mut status = adapter.status.clone().unwrap_or_default();
    match scaling(adapter, graph.as_ref()) {
        Scaling::Detached => {}
        Scaling::InSync => status.replicas = Some(adapter.spec.replicas),
        Scaling::Scale { from, to } => {
            scale_service(context, namespace, &target.name, &target.service_name, to).await?;
            context.normal(
                adapter,
                "Scaled",
                format!(
                    "Scaled service {} of {} from {from} to {to} replicas",
                    target.service_name, target.name
                ),
            );
            status.replicas = Some(to);
            status.last_scale_time = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        }
    }
    status.selector = Some(service_selector(&target.name, &target.service_name));
    let api: Api<DynamoGraphDeploymentScalingAdapter> =
        Api::namespaced(context.client.clone(), namespace);
    context
        .applier
        .write_status(&api, adapter, adapter.status.as_ref(), &status, Pace::Now)
        .await?;
    context
        .backoff
        .succeeded(&format!("{KIND}/{namespace}/{}", adapter.name_any()));
    Ok(Action::await_change())
}

/// Sets `spec.services.<service>.replicas` of the graph (a merge patch touches nothing else).
async fn scale_service(
    context: &Context,
    namespace: &str,
    graph: &str,
    service: &str,
    replicas: i32,
) -> Result<(), Error> {
    let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
    let patch = serde_json::json!({"spec": {"services": {service: {"replicas": replicas}}}});
    context.applier.count_write();
    api.patch(
        graph,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
