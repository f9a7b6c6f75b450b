//! Operator-wide settings the builders read (from the manager's flags).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use dynamo_api::labels::graph_annotation;

/// How components find each other: Kubernetes Services/EndpointSlices (default) or etcd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum DiscoveryBackend {
    #[default]
    Kubernetes,
    Etcd,
}

impl DiscoveryBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Etcd => "etcd",
        }
    }
}

impl fmt::Display for DiscoveryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value is neither `kubernetes` nor `etcd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown discovery backend {0:?}: expected kubernetes or etcd")]
pub struct UnknownDiscoveryBackend(pub String);

impl FromStr for DiscoveryBackend {
    type Err = UnknownDiscoveryBackend;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "kubernetes" => Ok(Self::Kubernetes),
            "etcd" => Ok(Self::Etcd),
            other => Err(UnknownDiscoveryBackend(other.to_owned())),
        }
    }
}

/// Settings of the operator that shape every child object. A value is `None` when not
/// configured, never empty (the command line turns empty flags into `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorConfig {
    /// `--natsAddr`: injected as `NATS_SERVER`.
    pub nats_addr: Option<String>,
    /// `--etcdAddr`: injected as `ETCD_ENDPOINTS`.
    pub etcd_addr: Option<String>,
    /// `--model-express-url`: injected as `MODEL_EXPRESS_URL`.
    pub model_express_url: Option<String>,
    /// `--prometheus-endpoint`: injected as `PROMETHEUS_ENDPOINT`.
    pub prometheus_endpoint: Option<String>,
    /// `--discovery-backend`; a graph's `nvidia.com/dynamo-discovery-backend` annotation wins.
    pub discovery_backend: DiscoveryBackend,
    /// `--ingress-controller-class-name`: default Ingress class of frontends.
    pub ingress_controller_class_name: Option<String>,
    /// `--ingress-controller-tls-secret-name`: default TLS Secret of frontend Ingresses.
    pub ingress_controller_tls_secret_name: Option<String>,
    /// `--ingress-host-suffix`: default host suffix (else `local`).
    pub ingress_host_suffix: Option<String>,
    /// `--istio-virtual-service-gateway`: enables VirtualServices for frontends.
    pub istio_virtual_service_gateway: Option<String>,
    /// `--virtual-service-supports-https`: the gateway terminates TLS (endpoint URL is https).
    pub virtual_service_supports_https: bool,
    /// Pods get the `restricted` Pod Security Standard settings.
    pub restricted_security_context: bool,
    /// Cluster-wide mode: the operator creates the planner and EPP identities in graph
    /// namespaces, bound to these ClusterRoles. `None` in restricted mode.
    pub workload_roles: Option<WorkloadRoles>,
    /// Optional APIs the cluster serves (detected at start, not a flag).
    pub served: ServedApis,
    /// `--mpi-run-ssh-secret-name|namespace`: the SSH key pair of TRT-LLM multinode workers,
    /// copied into each namespace that runs one.
    pub mpi_ssh_secret: Option<SecretRef>,
    /// `--grove-termination-delay`: how long Grove keeps a gang below its `minAvailable`
    /// (zero leaves it to Grove's default).
    pub grove_termination_delay: std::time::Duration,
}

/// Optional APIs the cluster serves, each in the version the operator speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServedApis {
    /// `leaderworkerset.x-k8s.io/v1`: multinode services run as LeaderWorkerSets.
    pub leader_worker_set: bool,
    /// `scheduling.volcano.sh/v1beta1`: each multinode group gets a gang-scheduling PodGroup.
    pub volcano: bool,
    /// `grove.io/v1alpha1` (PodCliqueSet, PodClique, PodCliqueScalingGroup): a graph runs as
    /// one Grove PodCliqueSet unless its `nvidia.com/enable-grove` annotation is `false`.
    pub grove: bool,
    /// `scheduling.run.ai/v2` (KAI's cluster-scoped Queue): on the Grove pathway, pods are
    /// scheduled by KAI from the graph's queue.
    pub kai: bool,
}

/// A Secret by namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// ClusterRoles of the per-namespace planner and EPP ServiceAccounts (`--planner-cluster-role-name`,
/// `--epp-cluster-role-name`); a missing one leaves its ServiceAccount without a binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadRoles {
    pub planner: Option<String>,
    pub epp: Option<String>,
}

impl OperatorConfig {
    pub fn nats_addr(&self) -> Option<&str> {
        self.nats_addr.as_deref()
    }
    pub fn etcd_addr(&self) -> Option<&str> {
        self.etcd_addr.as_deref()
    }
    pub fn model_express_url(&self) -> Option<&str> {
        self.model_express_url.as_deref()
    }
    pub fn prometheus_endpoint(&self) -> Option<&str> {
        self.prometheus_endpoint.as_deref()
    }
    pub fn ingress_class(&self) -> Option<&str> {
        self.ingress_controller_class_name.as_deref()
    }
    pub fn ingress_tls_secret(&self) -> Option<&str> {
        self.ingress_controller_tls_secret_name.as_deref()
    }
    pub fn ingress_host_suffix(&self) -> Option<&str> {
        self.ingress_host_suffix.as_deref()
    }
    pub fn virtual_service_gateway(&self) -> Option<&str> {
        self.istio_virtual_service_gateway.as_deref()
    }

    /// The discovery backend of a component: the graph annotation (propagated into the
    /// component's `spec.annotations`) when it names a known backend, else the operator's.
    pub fn effective_discovery_backend(
        &self,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> DiscoveryBackend {
        annotations
            .and_then(|a| a.get(graph_annotation::DISCOVERY_BACKEND))
            .and_then(|value| value.trim().to_ascii_lowercase().parse().ok())
            .unwrap_or(self.discovery_backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_backend_parses_both_values_only() {
        for (text, expected) in [
            ("kubernetes", Ok(DiscoveryBackend::Kubernetes)),
            ("etcd", Ok(DiscoveryBackend::Etcd)),
            ("consul", Err(UnknownDiscoveryBackend("consul".into()))),
        ] {
            assert_eq!(text.parse::<DiscoveryBackend>(), expected, "{text}");
        }
        assert_eq!(DiscoveryBackend::Etcd.to_string(), "etcd");
    }

    #[test]
    fn graph_annotation_overrides_the_discovery_backend() {
        let etcd = OperatorConfig {
            discovery_backend: DiscoveryBackend::Etcd,
            ..Default::default()
        };
        let annotations = |value: &str| {
            BTreeMap::from([(
                graph_annotation::DISCOVERY_BACKEND.to_owned(),
                value.to_owned(),
            )])
        };
        let cases = [
            (None, DiscoveryBackend::Etcd),
            (
                Some(annotations("kubernetes")),
                DiscoveryBackend::Kubernetes,
            ),
            (
                Some(annotations("Kubernetes")),
                DiscoveryBackend::Kubernetes,
            ),
            (Some(annotations("bogus")), DiscoveryBackend::Etcd),
        ];
        for (annotations, expected) in cases {
            assert_eq!(
                etcd.effective_discovery_backend(annotations.as_ref()),
                expected,
                "{annotations:?}"
            );
        }
    }
}
