//! Other projects' kinds the operator creates, typed with the fields it sets or reads (the
//! rest of a live object is ignored): LeaderWorkerSet (`sigs.k8s.io/lws` v0.6), Volcano's
//! PodGroup (`volcano.sh/apis` v1beta1) and Grove's PodCliqueSet, PodClique and
//! PodCliqueScalingGroup (`grove.io/v1alpha1`, Grove API v0.1.0-alpha.6), and KAI's Queue
//! (`scheduling.run.ai/v2`, read only). Their CRDs belong to those projects; nothing here is
//! installed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A set of groups, each one leader pod and `size - 1` worker pods started together.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "leaderworkerset.x-k8s.io",
    version = "v1",
    kind = "LeaderWorkerSet",
    namespaced,
    status = "LeaderWorkerSetStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerSetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    pub leader_worker_template: LeaderWorkerTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_strategy: Option<RolloutStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<NetworkConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_template: Option<PodTemplateSpec>,
    pub worker_template: PodTemplateSpec,
    /// Pods per group (leader included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update_configuration: Option<RollingUpdateConfiguration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain_policy: Option<String>,
}

/// Counts are left out of the JSON while 0 (LWS writes them `omitempty`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerSetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
}

/// Volcano's gang: the scheduler places none of its pods until `minMember` of them fit.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "scheduling.volcano.sh",
    version = "v1beta1",
    kind = "PodGroup",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_member: Option<i32>,
}

/// Grove's gang of pod cliques: the whole graph as one object (one template replica, its
/// cliques and scaling groups).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "grove.io",
    version = "v1alpha1",
    kind = "PodCliqueSet",
    namespaced,
    status = "PodCliqueSetStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueSetSpec {
    /// Copies of the whole template (Grove writes it `omitempty`; the operator sets 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    pub template: PodCliqueSetTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueSetTemplateSpec {
    pub cliques: Vec<PodCliqueTemplateSpec>,
    /// Go field `StartupType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clique_startup_type: Option<CliqueStartupType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless_service_config: Option<HeadlessServiceConfig>,
    /// A Go duration string (`15m0s`): how long a gang below its `minAvailable` lives on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_delay: Option<String>,
    /// Go field `PodCliqueScalingGroupConfigs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_clique_scaling_groups: Option<Vec<PodCliqueScalingGroupConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// In which order Grove starts the cliques' pods (the values are Grove's long names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CliqueStartupType {
    CliqueStartupTypeAnyOrder,
    CliqueStartupTypeInOrder,
    /// Each clique waits for the cliques in its `startsAfter`.
    CliqueStartupTypeExplicit,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadlessServiceConfig {
    pub publish_not_ready_addresses: bool,
}

/// One clique of the template: pods of one pod spec. Grove copies `labels` and `annotations`
/// onto the PodClique and every pod (there is no separate pod metadata).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueTemplateSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub spec: PodCliqueSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueSpec {
    pub role_name: String,
    /// Applied to the PodClique only when Grove creates it; later the live count stands (the
    /// scale subresource changes it).
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
    /// Cliques whose pods must be ready first (with `CliqueStartupTypeExplicit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_after: Option<Vec<String>>,
    pub pod_spec: PodSpec,
}

/// Cliques scaled together: each replica is one copy of every member clique (a multinode
/// service: its leader and worker cliques).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueScalingGroupConfig {
    pub name: String,
    pub clique_names: Vec<String>,
    /// Applied only when Grove creates the group, as clique replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueSetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
}

/// A clique Grove made from a PodCliqueSet (`<pcs>-<i>-<clique>`), read for its status: of the
/// spec only the replica count.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "grove.io",
    version = "v1alpha1",
    kind = "PodClique",
    namespaced,
    status = "PodCliqueStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueReplicas {
    #[serde(default)]
    pub replicas: i32,
}

/// Grove writes the counts without `omitempty`; absent reads as 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueStatus {
    /// `None` until Grove has processed the clique once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods not terminating.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods on the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub scheduled_replicas: i32,
    #[serde(default)]
    pub schedule_gated_replicas: i32,
}

/// A scaling group Grove made from a PodCliqueSet (`<pcs>-<i>-<group>`), read for its status:
/// of the spec only the replica count.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "grove.io",
    version = "v1alpha1",
    kind = "PodCliqueScalingGroup",
    namespaced,
    status = "PodCliqueScalingGroupStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueScalingGroupReplicas {
    /// The CRD defaults it to 1.
    #[serde(default = "one")]
    pub replicas: i32,
}

fn one() -> i32 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCliqueScalingGroupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub scheduled_replicas: i32,
    /// Group replicas whose member cliques all have `minAvailable` pods ready.
    #[serde(default)]
    pub available_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
}

/// KAI's scheduling queue (`scheduling.run.ai/v2`, cluster-scoped): only its existence is
/// read, so of the spec nothing is typed.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "scheduling.run.ai",
    version = "v2",
    kind = "Queue",
    schema = "disabled"
)]
pub struct QueueSpec {}
