//! The operator's command line. Flag names follow the upstream operator so existing Helm
//! values keep working; an empty value (`--etcdAddr=`) means "not set", decided here once.

use std::time::Duration;

use clap::{Args as Group, Parser};

use crate::desired::config::{DiscoveryBackend, OperatorConfig};
use crate::leader::Timing;

/// Reconciles Dynamo custom resources (nvidia.com/v1alpha1) into Kubernetes workloads.
#[derive(Debug, Parser)]
#[command(name = "dynamo-operator", version, about, long_about)]
pub struct Args {
    #[command(flatten)]
    pub serving: ServingArgs,
    #[command(flatten)]
    pub election: LeaderElectionArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub components: ComponentArgs,
    #[command(flatten)]
    pub ingress: IngressArgs,
    #[command(flatten)]
    pub compat: CompatArgs,
}

/// The health, readiness and metrics endpoints.
#[derive(Debug, Group)]
pub struct ServingArgs {
    /// Address the /metrics endpoint binds to (Go-style `:8080` accepted).
    #[arg(long, default_value = ":8080")]
    pub metrics_bind_address: String,
    /// Also serve /metrics over HTTPS here (e.g. `:8443`), to callers whose token passes a
    /// TokenReview and whose identity may `get` the /metrics URL.
    #[arg(long)]
    pub metrics_secure_bind_address: Option<String>,
    /// Address the /healthz and /readyz endpoints bind to.
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
}

#[derive(Debug, Group)]
pub struct LeaderElectionArgs {
    /// Elect a leader so only one replica reconciles; the others wait as standbys.
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "dynamo.nvidia.com")]
    pub leader_election_id: String,
    /// Namespace of the leader election Lease (default: the restricted namespace, else
    /// kube-system).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// How long a leader's lease stays valid without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    pub leader_election_lease_duration: u64,
    /// A leader that could not renew within this many seconds stops (before its lease expires).
    #[arg(long, default_value_t = 10)]
    pub leader_election_renew_deadline: u64,
    /// Seconds between leader election rounds.
    #[arg(long, default_value_t = 2)]
    pub leader_election_retry_period: u64,
}

/// Which namespaces the operator manages.
#[derive(Debug, Group)]
pub struct ScopeArgs {
    /// Watch only this namespace (namespace-restricted mode).
    #[arg(long = "restrictedNamespace")]
    pub restricted_namespace: Option<String>,
    /// Validity of the namespace-scope Lease a restricted operator keeps (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = dynamo_common::parse_duration)]
    pub namespace_scope_lease_duration: Duration,
    /// How often that Lease is renewed (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = dynamo_common::parse_duration)]
    pub namespace_scope_lease_renew_interval: Duration,
    /// Version recorded in the namespace-scope Lease holder identity.
    #[arg(long, default_value = "unknown")]
    pub operator_version: String,
}

/// What component pods are given.
#[derive(Debug, Group)]
pub struct ComponentArgs {
    /// NATS address injected into component pods as NATS_SERVER.
    #[arg(long = "natsAddr")]
    pub nats_addr: Option<String>,
    /// etcd address injected into component pods as ETCD_ENDPOINTS.
    #[arg(long = "etcdAddr")]
    pub etcd_addr: Option<String>,
    /// Model Express URL injected as MODEL_EXPRESS_URL.
    #[arg(long)]
    pub model_express_url: Option<String>,
    /// Prometheus endpoint injected as PROMETHEUS_ENDPOINT.
    #[arg(long)]
    pub prometheus_endpoint: Option<String>,
    /// Service discovery backend of the components.
    #[arg(long, value_enum, default_value_t = DiscoveryBackend::Kubernetes)]
    pub discovery_backend: DiscoveryBackend,
    /// Give component pods the restricted Pod Security Standard settings.
    #[arg(long)]
    pub enable_restricted_security_context: bool,
}

/// How frontends are exposed: Ingresses and Istio VirtualServices.
#[derive(Debug, Group)]
pub struct IngressArgs {
    /// Istio gateway for frontend VirtualServices (unset: no VirtualServices).
    #[arg(long)]
    pub istio_virtual_service_gateway: Option<String>,
    /// The Istio gateway terminates TLS.
    #[arg(long)]
    pub virtual_service_supports_https: bool,
    /// Default Ingress class of frontends.
    #[arg(long)]
    pub ingress_controller_class_name: Option<String>,
    /// Default TLS Secret of frontend Ingresses.
    #[arg(long)]
    pub ingress_controller_tls_secret_name: Option<String>,
    /// Default host suffix of frontend Ingresses.
    #[arg(long)]
    pub ingress_host_suffix: Option<String>,
}

/// Flags upstream's operator takes that mean nothing here; accepted so its values work.
#[derive(Debug, Group)]
pub struct CompatArgs {
    /// Validation runs in the separate dynamo-webhook.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_webhooks: bool,
    /// Termination delay of Grove PodCliqueSets (this release does not drive Grove, so
    /// multinode graphs fail with a message saying so).
    #[arg(long, default_value = "15m", value_parser = dynamo_common::parse_duration)]
    pub grove_termination_delay: Duration,
    /// Image of the debugger of debug modes (not part of this release).
    #[arg(long, env = "INTERNAL_IMAGES_DEBUGGER")]
    pub debugger_image: Option<String>,
    /// Secret with the SSH key pair of multinode mpirun workers (until multinode lands).
    #[arg(long)]
    pub mpi_run_ssh_secret_name: Option<String>,
    /// Namespace of that Secret.
    #[arg(long)]
    pub mpi_run_ssh_secret_namespace: Option<String>,
}

/// `Some` only for a non-empty value.
fn set(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.is_empty())
}

impl Args {
    /// The settings that shape every child object.
    pub fn config(&self) -> OperatorConfig {
        let (components, ingress) = (&self.components, &self.ingress);
        OperatorConfig {
            nats_addr: set(&components.nats_addr),
            etcd_addr: set(&components.etcd_addr),
            model_express_url: set(&components.model_express_url),
            prometheus_endpoint: set(&components.prometheus_endpoint),
            discovery_backend: components.discovery_backend,
            ingress_controller_class_name: set(&ingress.ingress_controller_class_name),
            ingress_controller_tls_secret_name: set(&ingress.ingress_controller_tls_secret_name),
            ingress_host_suffix: set(&ingress.ingress_host_suffix),
            istio_virtual_service_gateway: set(&ingress.istio_virtual_service_gateway),
            virtual_service_supports_https: ingress.virtual_service_supports_https,
            restricted_security_context: components.enable_restricted_security_context,
        }
    }

    /// The namespace of a namespace-restricted operator.
    pub fn restricted_namespace(&self) -> Option<String> {
        set(&self.scope.restricted_namespace)
    }

    pub fn metrics_secure_bind_address(&self) -> Option<String> {
        set(&self.serving.metrics_secure_bind_address)
    }
}

impl LeaderElectionArgs {
    pub fn timing(&self) -> Timing {
        Timing {
            lease_duration: Duration::from_secs(self.leader_election_lease_duration),
            renew_deadline: Duration::from_secs(self.leader_election_renew_deadline),
            retry_period: Duration::from_secs(self.leader_election_retry_period),
        }
    }

    /// Where the election Lease lives: the flag, else the restricted namespace, else
    /// kube-system.
    pub fn lease_namespace(&self, restricted: Option<&str>) -> String {
        set(&self.leader_election_namespace)
            .or_else(|| restricted.map(str::to_owned))
            .unwrap_or_else(|| "kube-system".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn upstream_flag_names_parse_into_the_config() {
        let args = Args::parse_from([
            "dynamo-operator",
            "--natsAddr",
            "nats://nats:4222",
            "--etcdAddr",
            "",
            "--discovery-backend",
            "etcd",
            "--ingress-controller-class-name",
            "nginx",
            "--metrics-bind-address",
            "127.0.0.1:8080",
            "--restrictedNamespace=",
        ]);
        let config = args.config();
        assert_eq!(config.nats_addr.as_deref(), Some("nats://nats:4222"));
        assert_eq!(config.etcd_addr, None);
        assert_eq!(config.discovery_backend, DiscoveryBackend::Etcd);
        assert_eq!(
            config.ingress_controller_class_name.as_deref(),
            Some("nginx")
        );
        assert_eq!(args.restricted_namespace(), None);
        assert_eq!(args.metrics_secure_bind_address(), None);
    }

    #[test]
    fn an_unknown_discovery_backend_is_refused() {
        let refused = Args::try_parse_from(["dynamo-operator", "--discovery-backend", "consul"]);
        assert!(refused.is_err());
    }

    #[test]
    fn the_election_lease_namespace_falls_back_to_the_restricted_one() {
        let args = Args::parse_from(["dynamo-operator", "--leader-elect"]);
        assert_eq!(args.election.lease_namespace(Some("team")), "team");
        assert_eq!(args.election.lease_namespace(None), "kube-system");
        let args = Args::parse_from(["dynamo-operator", "--leader-election-namespace=ops"]);
        assert_eq!(args.election.lease_namespace(Some("team")), "ops");
        assert_eq!(args.election.timing(), Timing::default());
    }

    #[test]
    fn compatibility_flags_are_accepted() {
        Args::parse_from([
            "dynamo-operator",
            "--enable-webhooks=false",
            "--grove-termination-delay=1h",
            "--mpi-run-ssh-secret-name=mpi",
            "--mpi-run-ssh-secret-namespace=dynamo",
        ]);
    }
}
