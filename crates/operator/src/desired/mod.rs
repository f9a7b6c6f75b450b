//! What the operator wants to exist, decided by pure functions: no I/O, no cluster lookups.
//!
//! The controllers read a parent, call these functions to get the desired children and
//! statuses, and apply them. Each is table-tested.
//!
//! - [`graph::desired_components`]: DynamoGraphDeployment → one DynamoComponentDeployment per service.
//! - [`pod::pod_template`]: one service of a graph ([`pod::ServiceInput`]) → PodTemplateSpec
//!   (defaults per component type from [`defaults`], user overrides applied by [`merge`],
//!   resources and volumes from [`resources`] and [`volumes`]).
//! - [`backend`]: the inference backend a worker runs (its command line, else the graph's).
//! - [`grove`]: DynamoGraphDeployment → one Grove PodCliqueSet (the graph-level pathway), and
//!   each service's readiness from Grove's PodClique or PodCliqueScalingGroup.
//! - [`workload`]: DynamoComponentDeployment → Deployment, Service, Ingress, Istio VirtualService,
//!   and the Deployment readiness rule.
//! - [`rbac`], [`pvc`], [`model`]: the discovery identity, the graph's claims, base-model
//!   Services and LoRA decisions.
//! - [`status`]: the statuses of graphs, components and models.
//! - [`diagnosis`]: the first concrete reason a component is not available, from the status of
//!   its Deployment and pods.

pub mod backend;
pub mod config;
pub mod defaults;
pub mod diagnosis;
pub mod graph;
pub mod groups;
pub mod grove;
pub mod merge;
pub mod model;
pub mod multinode;
pub mod naming;
pub mod pod;
pub mod pvc;
pub mod rbac;
pub mod resources;
pub mod restart;
pub mod scaling;
pub mod status;
pub mod volumes;
pub mod workload;

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use config::{DiscoveryBackend, OperatorConfig};
pub use graph::desired_components;
pub use pod::{ServiceInput, component_pod_template, pod_template};
pub use workload::{deployment, ingress, is_deployment_ready, service, virtual_service};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

/// Why the desired children of a resource cannot be built. Each variant has a stable
/// [`reason`](BuildError::reason) for status conditions, events and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The parent lacks a field only the API server fills in (uid, namespace).
    #[error("{kind} {name:?} has no metadata.{field}")]
    MissingMetadata {
        kind: &'static str,
        name: String,
        field: &'static str,
    },
    /// A service spans several nodes per replica, and the cluster serves no LeaderWorkerSet API.
    #[error(
        "no multinode orchestrator available: service {service} has multinode.nodeCount {node_count}, which needs LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) installed in the cluster"
    )]
    MultinodeUnsupported { service: String, node_count: i32 },
    /// A multinode service whose backend is unknown: its launch cannot be rewritten per node.
    #[error(
        "service {service} has multinode.nodeCount {node_count}, but its backend is unknown: run python3 -m dynamo.vllm, dynamo.sglang or dynamo.trtllm in a worker, or set spec.backendFramework"
    )]
    MultinodeBackendUnknown { service: String, node_count: i32 },
    /// A `volumeMounts` entry has no `mountPoint` and no compilation-cache default.
    #[error("volumeMounts entry {volume:?} has no mountPoint")]
    MissingMountPoint { volume: String },
    /// `useAsCompilationCache` without `mountPoint` on a backend that has no default path.
    #[error(
        "volumeMounts entry {volume:?}: useAsCompilationCache needs a mountPoint for backend {backend} (only vllm has a default, /root/.cache/vllm)"
    )]
    NoCompilationCacheDefault { volume: String, backend: String },
    /// A user override could not be merged (it does not fit the Kubernetes type).
    #[error("cannot merge {what}: {message}")]
    Merge { what: &'static str, message: String },
    /// A worker's command line runs another backend than the graph's `backendFramework`.
    #[error("spec.backendFramework is {configured} but the main container runs dynamo.{detected}")]
    BackendMismatch {
        detected: String,
        configured: String,
    },
    /// A worker's command line runs several backends and the graph names none.
    #[error(
        "the main container runs several backends ({}); set spec.backendFramework",
        detected.join(", ")
    )]
    AmbiguousBackend { detected: Vec<String> },
    /// A TRT-LLM service spans several nodes and the operator has no SSH key Secret for mpirun.
    #[error("TRT-LLM multinode needs the SSH key Secret of mpirun; set --mpi-run-ssh-secret-name")]
    MpiSshSecretUnset,
    /// A graph or service name Grove would put in pod host names is no DNS label.
    #[error(
        "{what}: {name:?} is no DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), but Grove puts it in the host names of graph {graph}'s pods"
    )]
    GroveInvalidName {
        what: String,
        name: String,
        graph: String,
    },
    /// Grove's webhook limits the names its pod names are made of to 45 characters.
    #[error(
        "service {service}: Grove names its pods from {parts}, {length} characters, over Grove's limit of 45; shorten the graph or service name"
    )]
    GroveNameTooLong {
        service: String,
        parts: String,
        length: usize,
    },
    /// Grove's webhook refuses pod specs that place their pods themselves.
    #[error(
        "service {service}: Grove does not allow extraPodSpec.podSpec.{field} (it places the pods itself)"
    )]
    GroveForbiddenPodField {
        service: String,
        field: &'static str,
    },
    /// Two services would make Grove cliques of one name.
    #[error("services {} and {} both make the Grove clique {name:?}", services[0], services[1])]
    GroveDuplicateClique { name: String, services: [String; 2] },
    /// Grove's webhook wants one scheduler for all pods of a graph.
    #[error(
        "Grove runs all pods of a graph with one scheduler, but the services use several: {schedulers}"
    )]
    GroveSchedulers { schedulers: String },
}

impl BuildError {
    /// A CamelCase reason, for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingMetadata { .. } => "MissingMetadata",
            Self::MultinodeUnsupported { .. } => "MultinodeUnsupported",
            Self::MultinodeBackendUnknown { .. } => "MultinodeBackendUnknown",
            Self::MissingMountPoint { .. } => "MissingMountPoint",
            Self::NoCompilationCacheDefault { .. } => "NoCompilationCacheDefault",
            Self::Merge { .. } => "InvalidOverride",
            Self::BackendMismatch { .. } => "BackendFrameworkMismatch",
            Self::AmbiguousBackend { .. } => "AmbiguousBackendFramework",
            Self::MpiSshSecretUnset => "MpiSshSecretUnset",
            Self::GroveInvalidName { .. } => "GroveInvalidName",
            Self::GroveNameTooLong { .. } => "GroveNameTooLong",
            Self::GroveForbiddenPodField { .. } => "GroveForbiddenPodField",
            Self::GroveDuplicateClique { .. } => "GroveDuplicateClique",
            Self::GroveSchedulers { .. } => "GroveSchedulerMismatch",
        }
    }
}

/// A user's value, `None` when empty (the CRDs let users write `""` for "not set").
pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// A controller owner reference to `owner` (blockOwnerDeletion unset, as kube builds it).
pub(crate) fn controller_ref<K>(owner: &K) -> Result<OwnerReference, BuildError>
where
    K: Resource<DynamicType = ()>,
{
    owner.controller_owner_ref(&()).ok_or_else(|| {
        let field = if owner.meta().name.is_none() {
            "name"
        } else {
            "uid"
        };
        missing(owner, field)
    })
}

/// The namespace of a namespaced parent.
pub(crate) fn namespace_of<K>(owner: &K) -> Result<String, BuildError>
where
    K: Resource<DynamicType = ()>,
{
    owner.namespace().ok_or_else(|| missing(owner, "namespace"))
}

fn missing<K: Resource<DynamicType = ()>>(owner: &K, field: &'static str) -> BuildError {
    BuildError::MissingMetadata {
        kind: match K::kind(&()) {
            std::borrow::Cow::Borrowed(kind) => kind,
            std::borrow::Cow::Owned(_) => "object",
        },
        name: owner.name_any(),
        field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_api::v1alpha1::DynamoGraphDeployment;

    #[test]
    fn owner_reference_needs_name_and_uid() {
        let mut dgd = DynamoGraphDeployment::new("g", Default::default());
        let err = controller_ref(&dgd).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DynamoGraphDeployment \"g\" has no metadata.uid"
        );
        assert_eq!(err.reason(), "MissingMetadata");
        dgd.metadata.uid = Some("u-1".into());
        let owner = controller_ref(&dgd).unwrap();
        assert_eq!(owner.api_version, "nvidia.com/v1alpha1");
        assert_eq!(owner.kind, "DynamoGraphDeployment");
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("g", "u-1"));
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn namespace_is_required() {
        let dgd = DynamoGraphDeployment::new("g", Default::default());
        assert_eq!(
            namespace_of(&dgd).unwrap_err().to_string(),
            "DynamoGraphDeployment \"g\" has no metadata.namespace"
        );
    }
}
