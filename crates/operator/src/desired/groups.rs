//! A multinode DynamoComponentDeployment → one LeaderWorkerSet per replica (a group of
//! `nodeCount` pods: a leader and its workers), a Volcano PodGroup per group when Volcano is
//! served, and the component's readiness from the groups.
//!
//! As upstream: group `i` is `<component>-<i>`, holds one LWS replica of size `nodeCount`
//! (startup policy LeaderCreated), labelled `instance-id: <i>`; pods carry `role: leader|worker`.
//! Unlike upstream, the LWS defaults its webhook would fill in are written out (rollout strategy,
//! subdomain policy, restart policy), so what the operator applies is what is stored, and the
//! pods keep `nvidia.com/selector` (the Service selects it plus `role: leader`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{
    BackendFramework, ComponentKind, DynamoComponentDeployment, ServiceReplicaStatus,
};

use super::backend::component_backend;
use super::multinode::{Deployer, Multinode, Role, rewrite};
use super::naming::{MAIN_CONTAINER, exposed_name, service_of};
use super::workload::child_metadata;
use super::{BuildError, OperatorConfig};
use crate::kinds::{
    LeaderWorkerSet, LeaderWorkerSetSpec, LeaderWorkerTemplate, NetworkConfig, PodGroup,
    PodGroupSpec, RollingUpdateConfiguration, RolloutStrategy,
};

/// The annotation Volcano reads a pod's PodGroup from.
pub const GROUP_NAME_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// The scheduler that honours PodGroups.
pub const VOLCANO_SCHEDULER: &str = "volcano";
/// The Secret upstream's chart makes for mpirun's SSH key when the flag names none.
pub const DEFAULT_MPI_SSH_SECRET: &str = "mpi-run-ssh-secret";

/// The leader and worker pod templates of a multinode component, from its pod template: the
/// backend's launch rewritten for each role (see [`super::multinode`]), `role` labelled.
pub fn role_templates(
    dcd: &DynamoComponentDeployment,
    base: &PodTemplateSpec,
    config: &OperatorConfig,
) -> Result<(PodTemplateSpec, PodTemplateSpec), BuildError> {
    let (_, mut leader, mut worker) = rewrite_roles(dcd, base, config, Deployer::LeaderWorkerSet)?;
    for (template, role) in [(&mut leader, "leader"), (&mut worker, "worker")] {
        template
            .metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default()
            .insert(label::ROLE.to_owned(), role.to_owned());
    }
    Ok((leader, worker))
}

/// The backend of a multinode component and its leader and worker pod templates under
/// `deployer`: `base` with the backend's launch rewritten for each role (see
/// [`super::multinode`]). Fails when the backend is unknown (the launch cannot be rewritten).
pub fn rewrite_roles(
    dcd: &DynamoComponentDeployment,
    base: &PodTemplateSpec,
    config: &OperatorConfig,
    deployer: Deployer<'_>,
) -> Result<(BackendFramework, PodTemplateSpec, PodTemplateSpec), BuildError> {
    let spec = &dcd.spec.shared;
    let nodes = spec.node_count();
    let service = service_of(dcd);
    let main = base
        .spec
        .as_ref()
        .and_then(|pod| pod.containers.iter().find(|c| c.name == MAIN_CONTAINER));
    let backend = component_backend(
        spec.component_type().as_ref(),
        main.and_then(|c| c.command.as_deref()).unwrap_or_default(),
        main.and_then(|c| c.args.as_deref()).unwrap_or_default(),
        dcd.spec.backend_framework,
    )?
    .ok_or_else(|| BuildError::MultinodeBackendUnknown {
        service: service.clone(),
        node_count: nodes,
    })?;
    let secret = config
        .mpi_ssh_secret
        .as_ref()
        .map_or(DEFAULT_MPI_SSH_SECRET, |s| s.name.as_str());
    let template = |role: Role| -> Result<PodTemplateSpec, BuildError> {
        let mut template = base.clone();
        let pod = template.spec.get_or_insert_default();
        let multinode = Multinode {
            nodes,
            role,
            deployer,
            mpi_ssh_secret: secret,
        };
        rewrite(pod, backend, spec.resources.as_deref(), &multinode)?;
        Ok(template)
    };
    Ok((backend, template(Role::Leader)?, template(Role::Worker)?))
}

/// Whether a component runs mpirun over SSH: TRT-LLM on several nodes.
pub fn runs_mpi(dcd: &DynamoComponentDeployment) -> bool {
    let spec = &dcd.spec.shared;
    if spec.node_count() < 2 {
        return false;
    }
    // The main container's launch as the pod builder sees it: a `main` entry of
    // `extraPodSpec.containers`, then `mainContainer` over it.
    let extra = spec.extra_pod_spec.as_ref();
    let mains = extra
        .and_then(|e| e.pod_spec.as_deref())
        .into_iter()
        .flat_map(|pod| pod.containers.iter())
        .filter(|c| c.name == MAIN_CONTAINER)
        .chain(extra.and_then(|e| e.main_container.as_deref()));
    let (mut command, mut args) = (Vec::new(), Vec::new());
    for main in mains {
        command = main.command.clone().unwrap_or(command);
        args = main.args.clone().unwrap_or(args);
    }
    matches!(
        component_backend(
            spec.component_type().as_ref(),
            &command,
            &args,
            dcd.spec.backend_framework
        ),
        Ok(Some(BackendFramework::Trtllm))
    )
}

/// The name of group `index` of component `component`. LWS names a headless Service after it,
/// so it carries no dots (see [`exposed_name`]).
pub fn group_name(component: &str, index: i32) -> String {
    format!("{}-{index}", exposed_name(component))
}

/// The group index of `name` if it is one of `component`'s group names.
pub fn group_index(component: &str, name: &str) -> Option<i32> {
    let index = name
        .strip_prefix(exposed_name(component).as_str())?
        .strip_prefix('-')?;
    // Only canonical numbers: "01" is not group 1 (and not ours).
    (!index.starts_with('+') && (index == "0" || !index.starts_with('0')))
        .then(|| index.parse().ok())
        .flatten()
        .filter(|i: &i32| *i >= 0)
}

/// The LeaderWorkerSets of a component: one per replica (default 1).
pub fn leader_worker_sets(
    dcd: &DynamoComponentDeployment,
    leader: &PodTemplateSpec,
    worker: &PodTemplateSpec,
    volcano: bool,
) -> Vec<LeaderWorkerSet> {
    let replicas = dcd.spec.shared.replicas.unwrap_or(1).max(0);
    (0..replicas)
        .map(|index| leader_worker_set(dcd, index, leader, worker, volcano))
        .collect()
}

fn leader_worker_set(
    dcd: &DynamoComponentDeployment,
    index: i32,
    leader: &PodTemplateSpec,
    worker: &PodTemplateSpec,
    volcano: bool,
) -> LeaderWorkerSet {
    let name = group_name(&dcd.name_any(), index);
    let mut metadata = child_metadata(dcd);
    metadata.name = Some(name.clone());
    metadata
        .labels
        .get_or_insert_default()
        .insert(label::INSTANCE_ID.to_owned(), index.to_string());
    let in_group = |template: &PodTemplateSpec| {
        let mut template = template.clone();
        let meta = template.metadata.get_or_insert_default();
        meta.labels
            .get_or_insert_default()
            .insert(label::INSTANCE_ID.to_owned(), index.to_string());
        if volcano {
            meta.annotations
                .get_or_insert_default()
                .insert(GROUP_NAME_ANNOTATION.to_owned(), name.clone());
            let pod = template.spec.get_or_insert_default();
            // The user's scheduler choice stands (it may gang-schedule on its own).
            if pod.scheduler_name.as_deref().unwrap_or_default().is_empty() {
                pod.scheduler_name = Some(VOLCANO_SCHEDULER.to_owned());
            }
        }
        template
    };
    LeaderWorkerSet {
        metadata,
        spec: LeaderWorkerSetSpec {
            replicas: Some(1),
            startup_policy: Some("LeaderCreated".to_owned()),
            // What LWS's webhook would default, written out: without it the controller has no
            // rollout configuration, and webhook-added fields would show as drift.
            rollout_strategy: Some(RolloutStrategy {
                type_: "RollingUpdate".to_owned(),
                rolling_update_configuration: Some(RollingUpdateConfiguration {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            network_config: Some(NetworkConfig {
                subdomain_policy: Some("Shared".to_owned()),
            }),
            leader_worker_template: LeaderWorkerTemplate {
                leader_template: Some(in_group(leader)),
                worker_template: in_group(worker),
                size: Some(dcd.spec.shared.node_count()),
                restart_policy: Some("RecreateGroupOnPodRestart".to_owned()),
            },
        },
        status: None,
    }
}

/// The Volcano PodGroup of group `index`: all `nodeCount` pods or none.
pub fn pod_group(dcd: &DynamoComponentDeployment, index: i32) -> PodGroup {
    let mut metadata = child_metadata(dcd);
    metadata.name = Some(group_name(&dcd.name_any(), index));
    metadata.annotations = None;
    metadata
        .labels
        .get_or_insert_default()
        .insert(label::INSTANCE_ID.to_owned(), index.to_string());
    PodGroup {
        metadata,
        spec: PodGroupSpec {
            min_member: Some(dcd.spec.shared.node_count()),
        },
    }
}

/// Whether a live group must go: past the component's replicas, or of another size (LWS does
/// not let a group's size change; the group is made anew).
pub fn is_stale(dcd: &DynamoComponentDeployment, live: &LeaderWorkerSet) -> bool {
    let replicas = dcd.spec.shared.replicas.unwrap_or(1).max(0);
    match group_index(&dcd.name_any(), &live.name_any()) {
        Some(index) => {
            index >= replicas
                || live.spec.leader_worker_template.size != Some(dcd.spec.shared.node_count())
        }
        None => false,
    }
}

/// LeaderWorkerSets whose spec the operator changed, until their controller writes again:
/// LWS reports no `observedGeneration`, so until then the status (ready, updated, `Available`)
/// is the old spec's, and the group must not count as ready.
#[derive(Default)]
pub struct ChangedGroups(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl ChangedGroups {
    /// The operator's write of group `key` left it at `resource_version`.
    pub fn changed(&self, key: String, resource_version: String) {
        self.0.lock().unwrap().insert(key, resource_version);
    }

    /// Whether the status of group `key` at `resource_version` predates the operator's last
    /// change (nobody has written it since); a later version ends the wait.
    pub fn awaits_controller(&self, key: &str, resource_version: &str) -> bool {
        let mut changed = self.0.lock().unwrap();
        match changed.get(key) {
            Some(written) if written == resource_version => true,
            Some(_) => {
                changed.remove(key);
                false
            }
            None => false,
        }
    }
}

/// A group is ready when its replicas are ready and updated and LWS says it is `Available`.
pub fn is_group_ready(group: &LeaderWorkerSet) -> bool {
    let desired = group.spec.replicas.unwrap_or(1);
    if desired == 0 {
        return true;
    }
    let Some(status) = &group.status else {
        return false;
    };
    let available = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    status.ready_replicas.unwrap_or(0) >= desired
        && status.updated_replicas.unwrap_or(0) >= desired
        && available
}

/// Why the groups are not all ready (`None` when they are): the first group that is not.
pub fn groups_not_ready(groups: &[LeaderWorkerSet]) -> Option<String> {
    let waiting: Vec<&LeaderWorkerSet> = groups.iter().filter(|g| !is_group_ready(g)).collect();
    let first = waiting.first()?;
    let status = first.status.clone().unwrap_or_default();
    let mut message = format!(
        "LeaderWorkerSet {} is not ready ({} of {} groups ready, {} updated)",
        first.name_any(),
        status.ready_replicas.unwrap_or(0),
        first.spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
    );
    if waiting.len() > 1 {
        message.push_str(&format!(
            "; {} of {} groups are not ready",
            waiting.len(),
            groups.len()
        ));
    }
    Some(message)
}

/// The replica counts of the groups, summed (upstream's shape: the first group's name, plus
/// every name).
pub fn groups_replica_status(groups: &[LeaderWorkerSet]) -> Option<ServiceReplicaStatus> {
    let first = groups.first()?;
    let sum = |count: fn(&LeaderWorkerSet) -> Option<i32>| groups.iter().filter_map(count).sum();
    Some(ServiceReplicaStatus {
        component_kind: Some(ComponentKind::LeaderWorkerSet),
        component_name: Some(first.name_any()),
        component_names: Some(groups.iter().map(|g| g.name_any()).collect()),
        replicas: sum(|g| g.status.as_ref()?.replicas),
        updated_replicas: sum(|g| g.status.as_ref()?.updated_replicas),
        ready_replicas: Some(sum(|g| g.status.as_ref()?.ready_replicas)),
        available_replicas: None,
    })
}

/// The selector of a multinode component's Service: its pods, leaders only.
pub fn leader_selector(dcd: &DynamoComponentDeployment) -> BTreeMap<String, String> {
    BTreeMap::from([
        (label::SELECTOR.to_owned(), dcd.name_any()),
        (label::ROLE.to_owned(), "leader".to_owned()),
    ])
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
