//! The Grove pathway: a DynamoGraphDeployment → one Grove PodCliqueSet (`grove.io/v1alpha1`)
//! named after the graph, and each service's readiness from the PodClique or
//! PodCliqueScalingGroup Grove makes of it.
//!
//! As upstream's `GenerateGrovePodCliqueSet`: one template replica; a headless Service that
//! publishes not-ready addresses; a single-node service is one clique `lower(service)` of the
//! service's replicas; a multinode service is a leader clique `lower(service)-ldr` (1 pod) and a
//! worker clique `lower(service)-wkr` (`nodeCount - 1` pods), scaled together by a
//! PodCliqueScalingGroup `lower(service)` of the service's replicas. Every clique has
//! `minAvailable: 1` and its role name equal to its name. A TRT-LLM multinode leader starts
//! after its workers (`CliqueStartupTypeExplicit`); otherwise cliques start in any order.
//!
//! The pods are exactly the component pathway's ([`super::pod::pod_template`] of the graph's
//! DynamoComponentDeployments, as [`super::graph::graph_components`] builds them), the launch
//! of multinode roles rewritten by [`super::multinode::rewrite`] for Grove. A clique's labels are
//! its pods' labels (Grove copies them onto the PodClique and every pod); its annotations are the
//! service's `annotations`, the discovery backend, `extraPodMetadata.annotations` and
//! `nvidia.com/restartAt`.
//!
//! Deliberate differences from upstream:
//!
//! 1. Cliques and scaling groups are sorted by name. Upstream iterates a Go map: the order
//!    changes between reconciles, and with Explicit startup Grove refuses a reordering update.
//! 2. A clique's or scaling group's template replicas are at least 1. Grove's webhook refuses 0,
//!    so upstream cannot scale a single-node service to 0 (the PodCliqueSet update fails). Grove
//!    applies template replicas only when it creates a PodClique or PodCliqueScalingGroup; the
//!    live count, 0 included, is set through their scale subresource (as upstream does for every
//!    count). A service without `replicas` counts as 1 (upstream dereferences a nil pointer).
//! 3. What Grove's webhook would refuse (so that the graph fails with an error naming the
//!    service, rather than with the webhook's message) is refused here: names that do not fit
//!    Grove's 45-character pod-name budget or are no DNS label, two services with one clique
//!    name, cliques with different schedulers, and pod specs with `topologySpreadConstraints` or `nodeName`.
//! 4. A PodClique or PodCliqueScalingGroup that does not exist yet reports its kind and name
//!    (upstream reports an empty `componentKind`, which the graph's status schema refuses).
//! 5. Labels are the component pathway's pod labels, so pods also carry the discovery labels
//!    under Kubernetes discovery, and `nvidia.com/enable-metrics` is read case-insensitively.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PodSpec, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ObjectMeta;

use dynamo_api::labels::{graph_annotation, label, operator_annotation};
use dynamo_api::v1alpha1::{
    BackendFramework, ComponentKind, DynamoComponentDeployment, DynamoGraphDeployment,
    DynamoGraphDeploymentStatus, ServiceReplicaStatus,
};

use super::groups::rewrite_roles;
use super::multinode::Deployer;
use super::naming::service_of;
use super::pod::{ComponentService, pod_template};
use super::restart::ServiceRollout;
use super::status::graph_readiness;
use super::workload;
use super::{BuildError, OperatorConfig, controller_ref, namespace_of};
use crate::kinds::{
    CliqueStartupType, HeadlessServiceConfig, PodClique, PodCliqueScalingGroup,
    PodCliqueScalingGroupConfig, PodCliqueSet, PodCliqueSetSpec, PodCliqueSetTemplateSpec,
    PodCliqueSpec, PodCliqueTemplateSpec,
};

/// Graph annotation: `false` (any letter case) keeps the graph off Grove.
pub const ENABLE_GROVE_ANNOTATION: &str = "nvidia.com/enable-grove";
/// Graph annotation: the KAI scheduler queue of its pods.
pub const KAI_QUEUE_ANNOTATION: &str = "nvidia.com/kai-scheduler-queue";
/// The KAI queue when the graph names none.
pub const DEFAULT_KAI_QUEUE: &str = "dynamo";
/// The scheduler name of KAI.
pub const KAI_SCHEDULER: &str = "kai-scheduler";
/// The pod label KAI reads the queue from.
pub const KAI_QUEUE_LABEL: &str = "kai.scheduler/queue";
/// Upstream's `--grove-termination-delay` default.
pub const DEFAULT_TERMINATION_DELAY: Duration = Duration::from_secs(15 * 60);
/// Suffix of a multinode service's leader clique.
pub const LEADER_SUFFIX: &str = "-ldr";
/// Suffix of a multinode service's worker clique.
pub const WORKER_SUFFIX: &str = "-wkr";
/// Grove's budget for the names its pod names are made of (PodCliqueSet, scaling group and
/// clique names together).
pub const NAME_BUDGET: usize = 45;
/// The scheduler of a pod that names none.
const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// Operator settings of the Grove pathway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroveSettings {
    /// `--grove-termination-delay`: how long Grove keeps a gang below its `minAvailable`
    /// before terminating it; zero leaves the field to Grove's default.
    pub termination_delay: Duration,
    /// The KAI queue of the graph when KAI is served (the caller resolved it with
    /// [`kai_queue_name`] and checked that it exists); `None` without KAI.
    pub kai_queue: Option<String>,
}

/// Whether a graph runs on Grove: the cluster serves `grove.io` and the graph's
/// `nvidia.com/enable-grove` annotation is not `false` (any letter case).
pub fn grove_pathway(served_grove: bool, graph_annotations: &BTreeMap<String, String>) -> bool {
    served_grove
        && !graph_annotations
            .get(ENABLE_GROVE_ANNOTATION)
            .is_some_and(|value| value.eq_ignore_ascii_case("false"))
}

/// The KAI queue a graph asks for: its `nvidia.com/kai-scheduler-queue` annotation, trimmed,
/// else `dynamo`.
pub fn kai_queue_name(graph_annotations: &BTreeMap<String, String>) -> String {
    graph_annotations
        .get(KAI_QUEUE_ANNOTATION)
        .map(|queue| queue.trim())
        .filter(|queue| !queue.is_empty())
        .unwrap_or(DEFAULT_KAI_QUEUE)
        .to_owned()
}

/// `<graph>-0-<lower(service)>`: the PodClique (single-node service) or PodCliqueScalingGroup
/// (multinode service) Grove makes of a service, whose scale subresource sets its replicas.
pub fn workload_name(graph: &str, service: &str) -> String {
    format!("{graph}-0-{}", service.to_lowercase())
}

/// The PodCliqueSet of a graph, from its DynamoComponentDeployments as
/// [`super::graph::graph_components`] builds them (with their `restartAt` stamped): named after
/// the graph, in its namespace, owned by it (controller reference). See the module docs for the
/// shape and what is refused.
pub fn pod_clique_set(
    graph: &DynamoGraphDeployment,
    components: &[DynamoComponentDeployment],
    config: &OperatorConfig,
    settings: &GroveSettings,
) -> Result<PodCliqueSet, BuildError> {
    let owner = controller_ref(graph)?;
    let namespace = namespace_of(graph)?;
    let graph_name = graph.name_any();
    check_dns_label("graph", &graph_name, &graph_name)?;

    // Each clique with the service it runs.
    let mut cliques: Vec<(String, PodCliqueTemplateSpec)> = Vec::new();
    let mut groups = Vec::new();
    let mut explicit = false;
    for dcd in components {
        let service = service_of(dcd);
        let spec = &dcd.spec.shared;
        let name = service.to_lowercase();
        check_dns_label(&format!("service {service}"), &graph_name, &name)?;
        let input = ComponentService::of(dcd)?;
        let base = pod_template(&input.input(), config)?;
        let labels = base
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let discovery = config.effective_discovery_backend(spec.annotations.as_ref());
        let annotations = clique_annotations(dcd, discovery.as_str());
        let clique = |name: String, replicas: i32, pod: PodSpec| PodCliqueTemplateSpec {
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()).filter(|a| !a.is_empty()),
            spec: PodCliqueSpec {
                role_name: name.clone(),
                replicas,
                min_available: Some(1),
                starts_after: None,
                pod_spec: pod,
            },
            name,
        };
        // Grove refuses 0 in a template; the live count is set through the scale subresource.
        let replicas = spec.replicas.unwrap_or(1).max(1);
        let nodes = spec.node_count();
        if nodes < 2 {
            check_budget(&service, &graph_name, &[name.as_str()])?;
            let single = clique(name, replicas, base.spec.unwrap_or_default());
            cliques.push((service, single));
            continue;
        }
        let (leader_name, worker_name) = (
            format!("{name}{LEADER_SUFFIX}"),
            format!("{name}{WORKER_SUFFIX}"),
        );
        check_budget(
            &service,
            &graph_name,
            &[name.as_str(), leader_name.as_str()],
        )?;
        let (backend, leader, worker) =
            rewrite_roles(dcd, &base, config, Deployer::Grove { service: &service })?;
        let mut leader = clique(leader_name.clone(), 1, leader.spec.unwrap_or_default());
        // TRT-LLM's leader runs mpirun on the workers: it starts once they run sshd.
        if backend == BackendFramework::Trtllm {
            leader.spec.starts_after = Some(vec![worker_name.clone()]);
            explicit = true;
        }
        let worker = clique(
            worker_name.clone(),
            nodes - 1,
            worker.spec.unwrap_or_default(),
        );
        cliques.push((service.clone(), leader));
        cliques.push((service, worker));
        groups.push(PodCliqueScalingGroupConfig {
            name,
            clique_names: vec![leader_name, worker_name],
            replicas: Some(replicas),
            min_available: Some(1),
        });
    }
    if let Some(queue) = &settings.kai_queue {
        for (_, clique) in &mut cliques {
            inject_kai(clique, queue);
        }
    }
    for (service, clique) in &cliques {
        check_pod_fields(service, &clique.spec.pod_spec)?;
    }
    check_one_scheduler(&cliques)?;
    check_unique(&cliques)?;
    let mut cliques: Vec<PodCliqueTemplateSpec> = cliques.into_iter().map(|(_, c)| c).collect();
    cliques.sort_by(|a, b| a.name.cmp(&b.name));
    groups.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(PodCliqueSet {
        metadata: ObjectMeta {
            name: Some(graph_name),
            namespace: Some(namespace),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: PodCliqueSetSpec {
            replicas: Some(1),
            template: PodCliqueSetTemplateSpec {
                cliques,
                clique_startup_type: Some(if explicit {
                    CliqueStartupType::CliqueStartupTypeExplicit
                } else {
                    CliqueStartupType::CliqueStartupTypeAnyOrder
                }),
                headless_service_config: Some(HeadlessServiceConfig {
                    publish_not_ready_addresses: true,
                }),
                termination_delay: (!settings.termination_delay.is_zero())
                    .then(|| go_duration(settings.termination_delay)),
                pod_clique_scaling_groups: (!groups.is_empty()).then_some(groups),
                priority_class_name: None,
            },
        },
        status: None,
    })
}

/// The service's `annotations`, the discovery backend, `extraPodMetadata.annotations` over
/// them, and the service's `nvidia.com/restartAt` (which rolls the clique's pods) last.
fn clique_annotations(
    dcd: &DynamoComponentDeployment,
    discovery: &str,
) -> BTreeMap<String, String> {
    let spec = &dcd.spec.shared;
    let mut annotations = spec.annotations.clone().unwrap_or_default();
    let restart_at = annotations.remove(operator_annotation::RESTART_AT);
    annotations.insert(
        graph_annotation::DISCOVERY_BACKEND.to_owned(),
        discovery.to_owned(),
    );
    if let Some(extra) = spec
        .extra_pod_metadata
        .as_ref()
        .and_then(|e| e.annotations.clone())
    {
        annotations.extend(extra);
    }
    if let Some(restart_at) = restart_at {
        annotations.insert(operator_annotation::RESTART_AT.to_owned(), restart_at);
    }
    annotations
}

/// KAI schedules the clique's pods from `queue`, unless the user chose another scheduler.
fn inject_kai(clique: &mut PodCliqueTemplateSpec, queue: &str) {
    let pod = &mut clique.spec.pod_spec;
    let chosen = pod.scheduler_name.as_deref().unwrap_or_default();
    if !chosen.is_empty() && chosen != KAI_SCHEDULER {
        return;
    }
    pod.scheduler_name = Some(KAI_SCHEDULER.to_owned());
    clique
        .labels
        .get_or_insert_default()
        .insert(KAI_QUEUE_LABEL.to_owned(), queue.to_owned());
}

/// Grove names a pod `<graph>-0-<clique>-<i>` (`<graph>-0-<group>-<j>-<clique>-<i>` in a
/// scaling group) and uses it as the pod's host name: the names must be DNS labels.
fn check_dns_label(what: &str, graph: &str, name: &str) -> Result<(), BuildError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if valid {
        Ok(())
    } else {
        Err(BuildError::GroveInvalidName {
            what: what.to_owned(),
            name: name.to_owned(),
            graph: graph.to_owned(),
        })
    }
}

/// Grove's webhook: the graph name and the names of the service's scaling group and clique
/// (`names`) together fit in [`NAME_BUDGET`] characters.
fn check_budget(service: &str, graph: &str, names: &[&str]) -> Result<(), BuildError> {
    let length = graph.len() + names.iter().map(|n| n.len()).sum::<usize>();
    if length <= NAME_BUDGET {
        return Ok(());
    }
    let parts = std::iter::once(graph)
        .chain(names.iter().copied())
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(" + ");
    Err(BuildError::GroveNameTooLong {
        service: service.to_owned(),
        parts,
        length,
    })
}

/// Grove's webhook refuses pod specs that place pods themselves.
fn check_pod_fields(service: &str, pod: &PodSpec) -> Result<(), BuildError> {
    let field = if pod
        .topology_spread_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        "topologySpreadConstraints"
    } else if pod.node_name.as_ref().is_some_and(|n| !n.is_empty()) {
        "nodeName"
    } else {
        return Ok(());
    };
    Err(BuildError::GroveForbiddenPodField {
        service: service.to_owned(),
        field,
    })
}

/// Grove's webhook: clique names are unique (`Worker` and `worker`, or a single-node `a-ldr`
/// and a multinode `a`, would share one).
fn check_unique(cliques: &[(String, PodCliqueTemplateSpec)]) -> Result<(), BuildError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (service, clique) in cliques {
        let other = seen.insert(&clique.name, service);
        if let Some(other) = other.filter(|other| other != service) {
            return Err(BuildError::GroveDuplicateClique {
                name: clique.name.clone(),
                services: [other.to_owned(), service.clone()],
            });
        }
    }
    Ok(())
}

/// Grove's webhook: all pods of a PodCliqueSet use one scheduler.
fn check_one_scheduler(cliques: &[(String, PodCliqueTemplateSpec)]) -> Result<(), BuildError> {
    let mut by_scheduler: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (service, clique) in cliques {
        let scheduler = clique
            .spec
            .pod_spec
            .scheduler_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SCHEDULER);
        by_scheduler.entry(scheduler).or_default().insert(service);
    }
    if by_scheduler.len() <= 1 {
        return Ok(());
    }
    let schedulers = by_scheduler
        .iter()
        .map(|(scheduler, services)| {
            let services: Vec<&str> = services.iter().copied().collect();
            format!("{scheduler} ({})", services.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(BuildError::GroveSchedulers { schedulers })
}

/// `duration` as Go's `time.Duration.String()` writes it (`15m0s`, `4h0m0s`, `1.5s`, `300ms`,
/// `0s`): Grove reads the termination delay with Go's parser, and a Go-formatted value reads
/// back unchanged.
pub fn go_duration(duration: Duration) -> String {
    const SECOND: u128 = 1_000_000_000;
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < SECOND {
        let (scale, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let total_seconds = nanos / SECOND;
    let (hours, minutes) = (total_seconds / 3600, total_seconds / 60 % 60);
    let seconds = decimal(nanos % (60 * SECOND), SECOND);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// `value / scale` in decimal, without trailing zeros in the fraction.
fn decimal(value: u128, scale: u128) -> String {
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The `nvidia.com/restartAt` of each service in a live PodCliqueSet, keyed by its cliques'
/// `nvidia.com/dynamo-component` label (upstream's `getExistingRestartAnnotationsPCS`): where a
/// restart stands on this pathway.
pub fn live_restart_at(live: &PodCliqueSet) -> BTreeMap<String, String> {
    live.spec
        .template
        .cliques
        .iter()
        .filter_map(|clique| {
            let service = clique.labels.as_ref()?.get(label::COMPONENT)?;
            let restart_at = clique
                .annotations
                .as_ref()?
                .get(operator_annotation::RESTART_AT)?;
            Some((service.clone(), restart_at.clone()))
        })
        .collect()
}

/// Why Grove's webhook would refuse to update `live` to `desired`, `None` when it would not:
/// the cliques or scaling groups differ (a service added or removed, or switched between one
/// and several nodes), or a field Grove keeps immutable changes (`cliqueStartupType`; a
/// clique's `roleName`, `minAvailable`, `startsAfter`; a group's `cliqueNames`,
/// `minAvailable`; the clique order under InOrder or Explicit startup). Such a change needs the
/// PodCliqueSet made anew.
pub fn refused_update(live: &PodCliqueSet, desired: &PodCliqueSet) -> Option<String> {
    let (live, desired) = (&live.spec.template, &desired.spec.template);
    let mut reasons = Vec::new();
    let names = |t: &PodCliqueSetTemplateSpec| -> Vec<String> {
        let mut names: Vec<String> = t.cliques.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names
    };
    let group_names = |t: &PodCliqueSetTemplateSpec| -> Vec<String> {
        let mut names: Vec<String> = t
            .pod_clique_scaling_groups
            .iter()
            .flatten()
            .map(|g| g.name.clone())
            .collect();
        names.sort();
        names
    };
    let startup = |t: &PodCliqueSetTemplateSpec| {
        t.clique_startup_type
            .unwrap_or(CliqueStartupType::CliqueStartupTypeAnyOrder)
    };
    if names(live) != names(desired) {
        reasons.push(format!(
            "cliques [{}] would become [{}]",
            names(live).join(", "),
            names(desired).join(", ")
        ));
    }
    if group_names(live) != group_names(desired) {
        reasons.push(format!(
            "scaling groups [{}] would become [{}]",
            group_names(live).join(", "),
            group_names(desired).join(", ")
        ));
    }
    if startup(live) != startup(desired) {
        reasons.push(format!(
            "cliqueStartupType {:?} would become {:?}",
            startup(live),
            startup(desired)
        ));
    }
    for want in &desired.cliques {
        let Some(have) = live.cliques.iter().find(|c| c.name == want.name) else {
            continue;
        };
        let (have, want_spec) = (&have.spec, &want.spec);
        for (field, changed) in [
            ("roleName", have.role_name != want_spec.role_name),
            (
                "minAvailable",
                have.min_available != want_spec.min_available,
            ),
            (
                "startsAfter",
                have.starts_after.as_deref().unwrap_or_default()
                    != want_spec.starts_after.as_deref().unwrap_or_default(),
            ),
        ] {
            if changed {
                reasons.push(format!("clique {}: {field} would change", want.name));
            }
        }
    }
    for want in desired.pod_clique_scaling_groups.iter().flatten() {
        let mut live_groups = live.pod_clique_scaling_groups.iter().flatten();
        let Some(have) = live_groups.find(|g| g.name == want.name) else {
            continue;
        };
        if have.clique_names != want.clique_names {
            reasons.push(format!(
                "scaling group {}: cliqueNames would change",
                want.name
            ));
        }
        if have.min_available.unwrap_or(1) != want.min_available.unwrap_or(1) {
            reasons.push(format!(
                "scaling group {}: minAvailable would change",
                want.name
            ));
        }
    }
    let ordered = startup(desired) != CliqueStartupType::CliqueStartupTypeAnyOrder;
    let order = |t: &PodCliqueSetTemplateSpec| -> Vec<String> {
        t.cliques.iter().map(|c| c.name.clone()).collect()
    };
    if ordered && names(live) == names(desired) && order(live) != order(desired) {
        reasons.push("the clique order would change".to_owned());
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// What Grove made of one service, as the caller found it (`None`: not created yet).
#[derive(Clone, Copy, Debug)]
pub enum GroveWorkload<'a> {
    /// A single-node service's PodClique `<graph>-0-<lower(service)>`.
    PodClique(Option<&'a PodClique>),
    /// A multinode service's PodCliqueScalingGroup `<graph>-0-<lower(service)>`.
    ScalingGroup(Option<&'a PodCliqueScalingGroup>),
}

/// A service's readiness on the Grove pathway.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceReadiness {
    pub ready: bool,
    /// Why not, as upstream words it: `podclique/<name>: desired=2, ready=1`,
    /// `pcsg/<name>: resource not found`, ….
    pub reason: Option<String>,
    /// The service's entry of the graph's `status.services`, never without its kind.
    pub status: ServiceReplicaStatus,
}

/// The readiness of `service` of `graph` from its workload, as upstream's `CheckPodCliqueReady`
/// and `CheckPCSGReady`: Grove has processed the latest spec (`observedGeneration`), and the
/// desired replicas (`spec.replicas`; 0 is ready) are all ready (a PodClique) or available (a
/// scaling group), updated, and no rollout is replacing pods (`status.replicas`).
pub fn service_ready(graph: &str, service: &str, workload: GroveWorkload<'_>) -> ServiceReadiness {
    let name = workload_name(graph, service);
    // Kind, reason prefix, the word for the counted replicas, and the live counts.
    let (kind, prefix, counted_word, live) = match workload {
        GroveWorkload::PodClique(clique) => (
            ComponentKind::PodClique,
            "podclique",
            "ready",
            clique.map(|c| {
                let status = c.status.clone().unwrap_or_default();
                (
                    c.metadata.generation,
                    c.spec.replicas,
                    status.observed_generation,
                    status.replicas,
                    status.ready_replicas,
                    status.updated_replicas,
                )
            }),
        ),
        GroveWorkload::ScalingGroup(group) => (
            ComponentKind::PodCliqueScalingGroup,
            "pcsg",
            "available",
            group.map(|g| {
                let status = g.status.clone().unwrap_or_default();
                (
                    g.metadata.generation,
                    g.spec.replicas,
                    status.observed_generation,
                    status.replicas,
                    status.available_replicas,
                    status.updated_replicas,
                )
            }),
        ),
    };
    let status = |replicas: i32, updated: i32, counted: i32| ServiceReplicaStatus {
        component_kind: Some(kind),
        component_name: Some(name.clone()),
        component_names: None,
        replicas,
        updated_replicas: updated,
        ready_replicas: (kind == ComponentKind::PodClique).then_some(counted),
        available_replicas: (kind == ComponentKind::PodCliqueScalingGroup).then_some(counted),
    };
    let Some((generation, desired, observed, replicas, counted, updated)) = live else {
        return ServiceReadiness {
            ready: false,
            reason: Some(format!("{prefix}/{name}: resource not found")),
            status: status(0, 0, 0),
        };
    };
    let generation = generation.unwrap_or(0);
    let why = match observed {
        None => Some("observedGeneration is nil".to_owned()),
        Some(observed) if observed < generation => Some(format!(
            "spec not yet processed: generation={generation}, observedGeneration={observed}"
        )),
        _ if desired == 0 => None,
        _ if desired != counted => Some(format!("desired={desired}, {counted_word}={counted}")),
        _ if desired != updated => Some(format!("desired={desired}, updated={updated}")),
        _ if replicas != desired => Some(format!(
            "performing rolling update: desired={desired}, replicas={replicas}"
        )),
        _ => None,
    };
    ServiceReadiness {
        ready: why.is_none(),
        reason: why.map(|why| format!("{prefix}/{name}: {why}")),
        status: status(replicas, updated, counted),
    }
}

/// Why a graph's services are not all ready (`None` when they are): the reasons of those that
/// are not, in service order, joined with `; ` (upstream's order is Go map order).
pub fn not_ready_message(services: &BTreeMap<String, ServiceReadiness>) -> Option<String> {
    let reasons: Vec<&str> = services
        .values()
        .filter_map(|s| s.reason.as_deref())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The kinds Grove makes of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroveKind {
    /// A single-node service's PodClique.
    PodClique,
    /// A multinode service's PodCliqueScalingGroup.
    ScalingGroup,
}

impl GroveKind {
    /// What Grove makes of `component`'s service.
    pub fn of(component: &DynamoComponentDeployment) -> Self {
        if component.spec.shared.node_count() >= 2 {
            GroveKind::ScalingGroup
        } else {
            GroveKind::PodClique
        }
    }

    /// The prefix of upstream's not-ready reasons.
    fn prefix(self) -> &'static str {
        match self {
            GroveKind::PodClique => "podclique",
            GroveKind::ScalingGroup => "pcsg",
        }
    }
}

/// The readiness of each service of a graph (by service name), from what Grove made of it:
/// `clique(name)` and `group(name)` give the live PodClique or PodCliqueScalingGroup of that
/// name, if any.
pub fn services_readiness<'a>(
    graph: &str,
    components: &[DynamoComponentDeployment],
    clique: impl Fn(&str) -> Option<&'a PodClique>,
    group: impl Fn(&str) -> Option<&'a PodCliqueScalingGroup>,
) -> BTreeMap<String, ServiceReadiness> {
    components
        .iter()
        .map(|component| {
            let service = service_of(component);
            let name = workload_name(graph, &service);
            let workload = match GroveKind::of(component) {
                GroveKind::PodClique => GroveWorkload::PodClique(clique(&name)),
                GroveKind::ScalingGroup => GroveWorkload::ScalingGroup(group(&name)),
            };
            let readiness = service_ready(graph, &service, workload);
            (service, readiness)
        })
        .collect()
}

/// One write of a scale subresource: Grove's `kind` `name` (of `service`) from `from` to
/// `replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleStep {
    pub service: String,
    pub kind: GroveKind,
    pub name: String,
    pub from: i32,
    pub replicas: i32,
}

/// The scale writes that bring Grove's objects to the services' replicas (upstream's
/// `reconcileGroveScaling`: Grove applies template replicas only when it creates an object).
/// `live(kind, name)` gives the live object's `spec.replicas`. A service without `replicas`
/// (or a negative count) is skipped, as is one whose object Grove has not made yet (the next
/// reconcile, woken by its creation, scales it).
pub fn scale_steps(
    graph: &str,
    components: &[DynamoComponentDeployment],
    live: impl Fn(GroveKind, &str) -> Option<i32>,
) -> Vec<ScaleStep> {
    components
        .iter()
        .filter_map(|component| {
            let replicas = component.spec.shared.replicas.filter(|r| *r >= 0)?;
            let service = service_of(component);
            let kind = GroveKind::of(component);
            let name = workload_name(graph, &service);
            let from = live(kind, &name)?;
            (from != replicas).then_some(ScaleStep {
                service,
                kind,
                name,
                from,
                replicas,
            })
        })
        .collect()
}

/// A service scaled in this reconcile is not ready, whatever its object said before the
/// write (upstream judges readiness first and can report a graph ready at its old size).
pub fn mark_scaling(readiness: &mut BTreeMap<String, ServiceReadiness>, steps: &[ScaleStep]) {
    for step in steps {
        if let Some(service) = readiness.get_mut(&step.service) {
            service.ready = false;
            service.reason = Some(format!(
                "{}/{}: scaling: desired={}, was={}",
                step.kind.prefix(),
                step.name,
                step.replicas,
                step.from
            ));
        }
    }
}

/// The graph's status on the Grove pathway, as upstream's `checkResourcesReadiness` over the
/// one PodCliqueSet resource: `successful` once every service is ready, else `pending` with
/// `Resources not ready: <graph>: <reasons>`; `status.services` from each service's workload.
pub fn grove_graph_status(
    graph: &DynamoGraphDeployment,
    readiness: &BTreeMap<String, ServiceReadiness>,
) -> DynamoGraphDeploymentStatus {
    let services = readiness
        .iter()
        .map(|(service, r)| (service.clone(), r.status.clone()))
        .collect();
    let message = not_ready_message(readiness)
        .map(|reasons| format!("Resources not ready: {}: {reasons}", graph.name_any()));
    graph_readiness(graph, services, message)
}

/// Where each service's rolling restart stands on the Grove pathway (upstream's
/// `getExistingRestartAnnotationsPCS` and `getUpdatedInProgressForGrove`): its `restartAt` is
/// the live PodCliqueSet's, and it has rolled out when Grove has processed the PodCliqueSet's
/// latest spec and the service is ready. Grove reports no stalled rollout.
pub fn grove_rollouts(
    live: Option<&PodCliqueSet>,
    readiness: &BTreeMap<String, ServiceReadiness>,
) -> BTreeMap<String, ServiceRollout> {
    let restart_at = live.map(live_restart_at).unwrap_or_default();
    let processed = live.is_some_and(|live| {
        let observed = live.status.as_ref().and_then(|s| s.observed_generation);
        observed.is_some_and(|observed| observed >= live.metadata.generation.unwrap_or(0))
    });
    readiness
        .iter()
        .map(|(service, r)| {
            let rollout = ServiceRollout {
                restart_at: restart_at.get(service).cloned(),
                rolled_out: processed && r.ready,
                stalled: false,
            };
            (service.clone(), rollout)
        })
        .collect()
}

/// A component's Service and Ingress on the Grove pathway: the component pathway's (same
/// names, labels, ports, hosts), owned by the graph (`owner`), the Service selecting all of
/// the component's pods by `nvidia.com/selector` (Grove's leader and worker pods carry the same
/// labels, so a multinode Service selects both, as upstream's does).
pub fn grove_exposure(
    component: &DynamoComponentDeployment,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> (Option<Service>, Option<Ingress>) {
    let owned = |metadata: &mut ObjectMeta| metadata.owner_references = Some(vec![owner.clone()]);
    let service = workload::service(component, config).map(|mut service| {
        owned(&mut service.metadata);
        if let Some(spec) = service.spec.as_mut() {
            spec.selector = Some(BTreeMap::from([(
                label::SELECTOR.to_owned(),
                component.name_any(),
            )]));
        }
        service
    });
    let ingress = workload::ingress(component, config).map(|mut ingress| {
        owned(&mut ingress.metadata);
        ingress
    });
    (service, ingress)
}

/// A frontend's Istio VirtualService on the Grove pathway: the component pathway's, owned by the
/// graph (`owner`); `None` when none is wanted.
pub fn grove_virtual_service(
    component: &DynamoComponentDeployment,
    owner: &OwnerReference,
    config: &OperatorConfig,
) -> Option<kube::api::DynamicObject> {
    let mut object = workload::virtual_service(component, config)?;
    object.metadata.owner_references = Some(vec![owner.clone()]);
    Some(object)
}

/// What to do with a live object the graph means to apply under the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// No controller, or the graph: apply over it.
    Apply,
    /// A DynamoComponentDeployment's (the graph's component before it moved to Grove, being
    /// deleted): delete it first (two controllers would make the API server refuse the apply).
    Replace,
    /// Someone else's: leave it, and the graph without it.
    Foreign,
}

/// How the graph (`graph_uid`) takes over a live object with `owners`.
pub fn takeover(owners: &[OwnerReference], graph_uid: &str) -> Takeover {
    match owners.iter().find(|o| o.controller == Some(true)) {
        None => Takeover::Apply,
        Some(owner) if owner.uid == graph_uid => Takeover::Apply,
        Some(owner) if owner.kind == "DynamoComponentDeployment" => Takeover::Replace,
        Some(_) => Takeover::Foreign,
    }
}

/// The graph a PodClique belongs to: its `nvidia.com/dynamo-graph-deployment-name` label
/// (Grove copies the clique template's labels onto it).
pub fn graph_of_clique(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels
        .get(label::GRAPH_DEPLOYMENT_NAME)
        .map(String::as_str)
        .filter(|name| !name.is_empty())
}

/// The graph a PodCliqueScalingGroup belongs to: its controller, a PodCliqueSet, is named
/// after the graph (Grove puts only its own labels on the group).
pub fn graph_of_scaling_group(owners: &[OwnerReference]) -> Option<&str> {
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .filter(|o| o.kind == "PodCliqueSet" && o.api_version.starts_with("grove.io/"))
        .map(|o| o.name.as_str())
}

/// Why a graph cannot use KAI queue `queue`: it does not exist (upstream's words).
pub fn missing_queue(queue: &str) -> String {
    format!(
        "failed to determine kai-scheduler queue: kai-scheduler queue validation failed: queue '{queue}' not found in cluster. Ensure the queue exists before using kai-scheduler"
    )
}

#[cfg(test)]
#[path = "grove_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "grove_wiring_tests.rs"]
mod wiring_tests;
