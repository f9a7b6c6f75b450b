//! The statuses users and `kubectl wait` read, computed from what the controllers observed:
//! no I/O. A condition keeps its transition time while its status holds.

use super::naming::service_of;
use std::collections::BTreeMap;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{
    ComponentKind, DynamoComponentDeployment, DynamoComponentDeploymentStatus,
    DynamoGraphDeployment, DynamoGraphDeploymentStatus, DynamoModel, DynamoModelStatus,
    EndpointInfo, ServiceReplicaStatus,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{Resource, ResourceExt};

use super::groups::{groups_replica_status, is_group_ready};
use super::model::endpoints_ready;
use super::workload::is_deployment_ready;
use crate::kinds::LeaderWorkerSet;

pub use dynamo_api::v1alpha1::condition_type::{
    AVAILABLE, ENDPOINTS_READY, READY, SERVICES_FOUND, VALID,
};
pub use dynamo_api::v1alpha1::graph_state::{FAILED, PENDING, SUCCESSFUL};

/// `Available` reason of a component whose Deployment passed its progress deadline.
pub const ROLLOUT_STALLED: &str = "ProgressDeadlineExceeded";
/// `Available` reason of a component whose rollout is under way or waiting.
pub const NOT_READY: &str = "DeploymentNotReady";
/// `Available` message when nothing more concrete is known.
const NOT_READY_MESSAGE: &str = "Deployment is not ready yet";

/// What a condition says: its status (`True` when `holds`), reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub holds: bool,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn new(holds: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict {
            holds,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Condition `type_` saying `verdict`; keeps the previous transition time while the status is
/// unchanged.
pub fn condition(
    previous: Option<&[Condition]>,
    type_: &str,
    verdict: Verdict,
    generation: Option<i64>,
) -> Condition {
    let status = if verdict.holds { "True" } else { "False" };
    let last_transition_time = previous
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: verdict.reason,
        message: verdict.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether condition `type_` is `True` in `conditions`.
pub fn holds(conditions: Option<&[Condition]>, type_: &str) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The graph's status from its components' statuses: `successful` and `Ready` once every
/// component is available at its latest generation, else `pending` naming those that are not.
pub fn graph_status(
    graph: &DynamoGraphDeployment,
    components: &[DynamoComponentDeployment],
) -> DynamoGraphDeploymentStatus {
    let mut services = BTreeMap::new();
    let mut not_ready = Vec::new();
    for component in components {
        let service = service_of(component);
        let status = component.status.as_ref();
        let available = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == AVAILABLE));
        // A component whose controller has not seen its latest spec is not ready yet.
        let current = status.and_then(|s| s.observed_generation) == component.meta().generation;
        match available {
            Some(c) if c.status == "True" && current => {}
            Some(c) => {
                // The concrete cause when the component knows one, else its reason.
                let concrete = current && !c.message.is_empty() && c.message != NOT_READY_MESSAGE;
                let why = if concrete { &c.message } else { &c.reason };
                not_ready.push(format!("{}: {why}", component.name_any()));
            }
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
    let (state, verdict) = if not_ready.is_empty() {
        (
            SUCCESSFUL,
            Verdict::new(true, "all_resources_are_ready", "All resources are ready"),
        )
    } else {
        (
            PENDING,
            Verdict::new(false, "some_resources_are_not_ready", not_ready.join("; ")),
        )
    };
    DynamoGraphDeploymentStatus {
        services: Some(services),
        ..graph_verdict(graph, state, verdict)
    }
}

/// A graph whose services' readiness was judged elsewhere (the Grove pathway): `successful`
/// and `Ready` when `not_ready` is `None`, else `pending` with that message; `services` as
/// `status.services`.
pub fn graph_readiness(
    graph: &DynamoGraphDeployment,
    services: BTreeMap<String, ServiceReplicaStatus>,
    not_ready: Option<String>,
) -> DynamoGraphDeploymentStatus {
    let (state, verdict) = match not_ready {
        None => (
            SUCCESSFUL,
            Verdict::new(true, "all_resources_are_ready", "All resources are ready"),
        ),
        Some(message) => (
            PENDING,
            Verdict::new(false, "some_resources_are_not_ready", message),
        ),
    };
    DynamoGraphDeploymentStatus {
        services: Some(services),
        ..graph_verdict(graph, state, verdict)
    }
}

/// A graph that cannot be reconciled: `failed`, not `Ready`, with the reason.
pub fn graph_failed(graph: &DynamoGraphDeployment, message: String) -> DynamoGraphDeploymentStatus {
    graph_verdict(
        graph,
        FAILED,
        Verdict::new(false, "failed_to_reconcile_the_resources", message),
    )
}

/// A graph whose spec breaks an admission rule (possible with the webhook off or bypassed):
/// `failed`, not `Ready`, reason `ValidationFailed` with every failing field.
pub fn graph_invalid(
    graph: &DynamoGraphDeployment,
    message: String,
) -> DynamoGraphDeploymentStatus {
    graph_verdict(
        graph,
        FAILED,
        Verdict::new(false, VALIDATION_FAILED, message),
    )
}

/// Reason of the conditions of objects whose spec breaks an admission rule.
pub const VALIDATION_FAILED: &str = "ValidationFailed";

fn graph_verdict(
    graph: &DynamoGraphDeployment,
    state: &str,
    verdict: Verdict,
) -> DynamoGraphDeploymentStatus {
    let previous = graph.status.as_ref().and_then(|s| s.conditions.as_deref());
    let generation = graph.meta().generation;
    DynamoGraphDeploymentStatus {
        state: Some(state.into()),
        observed_generation: generation,
        conditions: Some(vec![condition(previous, READY, verdict, generation)]),
        ..graph.status.clone().unwrap_or_default()
    }
}

/// The component's status from its Deployment (`None` before there is one), or from a
/// `failure` to build or apply it (a reason and a message). `cause` says why a Deployment that
/// is not ready is not (read from its pods).
pub fn component_status(
    component: &DynamoComponentDeployment,
    deployment: Option<&Deployment>,
    failure: Option<Verdict>,
    cause: Option<String>,
) -> DynamoComponentDeploymentStatus {
    let observed = deployment.map(|d| {
        let status = d.status.clone().unwrap_or_default();
        Observed {
            ready: is_deployment_ready(d),
            ready_verdict: ("DeploymentReady", "Deployment is ready"),
            stalled: rollout_stalled(d),
            service: Some(ServiceReplicaStatus {
                component_kind: Some(ComponentKind::Deployment),
                component_name: Some(d.name_any()),
                component_names: None,
                replicas: status.replicas.unwrap_or(0),
                updated_replicas: status.updated_replicas.unwrap_or(0),
                ready_replicas: Some(status.ready_replicas.unwrap_or(0)),
                available_replicas: Some(status.available_replicas.unwrap_or(0)),
            }),
        }
    });
    status_of(component, observed, failure, cause)
}

/// A multinode component's status from its groups (LeaderWorkerSets, one per replica): ready
/// when every group is; `cause` says which is not.
pub fn groups_component_status(
    component: &DynamoComponentDeployment,
    groups: &[LeaderWorkerSet],
    cause: Option<String>,
) -> DynamoComponentDeploymentStatus {
    let observed = Observed {
        ready: groups.iter().all(is_group_ready),
        ready_verdict: ("AllLeaderWorkerSetsReady", "All LeaderWorkerSets are ready"),
        stalled: false,
        service: groups_replica_status(groups),
    };
    status_of(component, Some(observed), None, cause)
}

/// What a component's workload shows.
struct Observed {
    ready: bool,
    /// Reason and message of the `Available` condition when ready.
    ready_verdict: (&'static str, &'static str),
    /// The rollout stopped progressing.
    stalled: bool,
    service: Option<ServiceReplicaStatus>,
}

fn status_of(
    component: &DynamoComponentDeployment,
    observed: Option<Observed>,
    failure: Option<Verdict>,
    cause: Option<String>,
) -> DynamoComponentDeploymentStatus {
    let generation = component.meta().generation;
    let previous = component
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref());
    let verdict = match (failure, &observed) {
        (Some(failure), _) => Verdict {
            holds: false,
            ..failure
        },
        (None, Some(observed)) if observed.ready => {
            let (reason, message) = observed.ready_verdict;
            Verdict::new(true, reason, message)
        }
        (None, observed) => {
            let reason = if observed.as_ref().is_some_and(|o| o.stalled) {
                ROLLOUT_STALLED
            } else {
                NOT_READY
            };
            Verdict::new(false, reason, cause.unwrap_or(NOT_READY_MESSAGE.into()))
        }
    };
    let service = observed.and_then(|o| o.service);
    DynamoComponentDeploymentStatus {
        observed_generation: generation,
        conditions: Some(vec![condition(previous, AVAILABLE, verdict, generation)]),
        pod_selector: Some(BTreeMap::from([(
            label::SELECTOR.to_owned(),
            component.name_any(),
        )])),
        service: service.or_else(|| component.status.as_ref().and_then(|s| s.service.clone())),
    }
}

/// The Deployment controller gave up waiting for the rollout (`Progressing=False`,
/// `ProgressDeadlineExceeded`).
fn rollout_stalled(deployment: &Deployment) -> bool {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some(ROLLOUT_STALLED)
        })
}

/// A DynamoModel whose spec breaks a rule (possible with the webhook off): not `Valid`.
pub fn model_invalid(model: &DynamoModel, message: String) -> DynamoModelStatus {
    let previous = model.status.as_ref().and_then(|s| s.conditions.as_deref());
    DynamoModelStatus {
        conditions: Some(vec![condition(
            previous,
            VALID,
            Verdict::new(false, VALIDATION_FAILED, message),
            model.metadata.generation,
        )]),
        ..Default::default()
    }
}

/// A DynamoModel's status from the endpoints found (`services_found`: the base model's
/// Service has EndpointSlices) and, for LoRA adapters (`lora`), where it is loaded.
pub fn model_status(
    model: &DynamoModel,
    services_found: bool,
    endpoints: Vec<EndpointInfo>,
    lora: bool,
) -> DynamoModelStatus {
    let previous = model.status.as_ref().and_then(|s| s.conditions.as_deref());
    let generation = model.metadata.generation;
    let base = &model.spec.base_model_name;
    let services = if services_found {
        Verdict::new(
            true,
            "ServicesFound",
            format!("found the Service of base model {base}"),
        )
    } else {
        Verdict::new(
            false,
            "NoServicesFound",
            format!("no Service serves base model {base}"),
        )
    };
    let (all_ready, reason, message) = endpoints_ready(&endpoints, lora);
    let ready_count = endpoints.iter().filter(|e| e.ready).count() as i32;
    DynamoModelStatus {
        ready_endpoints: Some(ready_count),
        total_endpoints: Some(endpoints.len() as i32),
        endpoints: Some(endpoints),
        conditions: Some(vec![
            condition(previous, SERVICES_FOUND, services, generation),
            condition(
                previous,
                ENDPOINTS_READY,
                Verdict::new(all_ready, reason, message),
                generation,
            ),
        ]),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
