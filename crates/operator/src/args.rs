//! The operator's command line. Flag names follow the upstream operator so existing Helm
//! values keep working; an empty value (`--etcdAddr=`) means "not set", decided here once.

use std::time::Duration;

use clap::{Args as Group, Parser};

use crate::desired::config::{DiscoveryBackend, OperatorConfig, SecretRef, WorkloadRoles};
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
    /// How long a leader's lease stays valid without renewal (`15s`; a bare number is seconds).
    #[arg(long, default_value = "15s", value_parser = dynamo_common::parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// A leader that could not renew within this time stops (before its lease expires).
    #[arg(long, default_value = "10s", value_parser = dynamo_common::parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// Time between leader election rounds.
    #[arg(long, default_value = "2s", value_parser = dynamo_common::parse_duration)]
    pub leader_election_retry_period: Duration,
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
    /// ClusterRole bound to `planner-serviceaccount` in each namespace with a planner
    /// (cluster-wide mode; a restricted install's chart creates that identity itself).
    #[arg(long)]
    pub planner_cluster_role_name: Option<String>,
    /// ClusterRole bound to `epp-serviceaccount` in each namespace with an endpoint picker.
    #[arg(long)]
    pub epp_cluster_role_name: Option<String>,
    /// Accepted for compatibility: profiling requests are not served by this operator.
    #[arg(long)]
    pub dgdr_profiling_cluster_role_name: Option<String>,
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
    /// Termination delay of Grove PodCliqueSets: how long Grove keeps a gang below its
    /// `minAvailable` before it terminates it (`0s` leaves it to Grove's default).
    #[arg(long, default_value = "15m", value_parser = dynamo_common::parse_duration)]
    pub grove_termination_delay: Duration,
    /// Image of the debugger of debug modes (not part of this release).
    #[arg(long, env = "INTERNAL_IMAGES_DEBUGGER")]
    pub debugger_image: Option<String>,
    /// Secret with the SSH key pair of TRT-LLM multinode workers (mpirun over SSH); copied into
    /// each namespace that runs one.
    #[arg(long)]
    pub mpi_run_ssh_secret_name: Option<String>,
    /// Namespace of that Secret.
    #[arg(long)]
    pub mpi_run_ssh_secret_namespace: Option<String>,
    /// Log level of upstream's logger (`debug`, `info`, `error` or a number); used as the
    /// default log level when `RUST_LOG` is not set.
    #[arg(long)]
    pub zap_log_level: Option<String>,
    /// Other settings of upstream's logger; ignored (logs are plain text on stderr).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub zap_devel: Option<String>,
    #[arg(long)]
    pub zap_encoder: Option<String>,
    #[arg(long)]
    pub zap_stacktrace_level: Option<String>,
    #[arg(long)]
    pub zap_time_encoding: Option<String>,
    /// Upstream serves metrics over HTTPS with this; here `--metrics-secure-bind-address` does.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_secure: Option<String>,
    /// HTTP/2 on upstream's metrics and webhook servers; ours negotiate it by ALPN.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub enable_http2: Option<String>,
}

impl CompatArgs {
    /// One line per upstream flag that was given and has no effect here.
    pub fn ignored(&self) -> Vec<String> {
        [
            ("--zap-devel", &self.zap_devel),
            ("--zap-encoder", &self.zap_encoder),
            ("--zap-stacktrace-level", &self.zap_stacktrace_level),
            ("--zap-time-encoding", &self.zap_time_encoding),
            ("--metrics-secure", &self.metrics_secure),
            ("--enable-http2", &self.enable_http2),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(flag, _)| {
            format!("{flag} is accepted for compatibility with upstream and has no effect")
        })
        .collect()
    }

    /// The default log level `--zap-log-level` asks for: zap's levels, and its numbers (a
    /// negative number is more verbose than debug).
    pub fn log_level(&self) -> Option<&'static str> {
        let level = self.zap_log_level.as_deref()?.trim().to_ascii_lowercase();
        Some(match level.as_str() {
            "debug" => "debug",
            "info" => "info",
            "warn" => "warn",
            "error" | "dpanic" | "panic" | "fatal" => "error",
            number => match number.parse::<i32>().ok()? {
                ..=-2 => "trace",
                -1 => "debug",
                0 => "info",
                1 => "warn",
                _ => "error",
            },
        })
    }
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
            served: Default::default(),
            mpi_ssh_secret: self.mpi_ssh_secret(),
            grove_termination_delay: self.compat.grove_termination_delay,
            workload_roles: match self.restricted_namespace() {
                // The chart creates the planner and EPP identities of a restricted install.
                Some(_) => None,
                None => Some(WorkloadRoles {
                    planner: set(&self.scope.planner_cluster_role_name),
                    epp: set(&self.scope.epp_cluster_role_name),
                }),
            },
        }
    }

    /// The Secret with mpirun's SSH key pair: `--mpi-run-ssh-secret-name` in
    /// `--mpi-run-ssh-secret-namespace` (else the operator's own namespace, `POD_NAMESPACE`).
    pub fn mpi_ssh_secret(&self) -> Option<SecretRef> {
        let compat = &self.compat;
        let name = set(&compat.mpi_run_ssh_secret_name)?;
        let namespace = set(&compat.mpi_run_ssh_secret_namespace).or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty())
        })?;
        Some(SecretRef { namespace, name })
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
            lease_duration: self.leader_election_lease_duration,
            renew_deadline: self.leader_election_renew_deadline,
            retry_period: self.leader_election_retry_period,
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
    fn workload_roles_apply_to_cluster_wide_installs_only() {
        let flags = [
            "dynamo-operator",
            "--planner-cluster-role-name=d-planner",
            "--epp-cluster-role-name=",
        ];
        let cluster_wide = Args::parse_from(flags).config();
        assert_eq!(
            cluster_wide.workload_roles,
            Some(WorkloadRoles {
                planner: Some("d-planner".into()),
                epp: None,
            })
        );
        let restricted =
            Args::parse_from(flags.iter().copied().chain(["--restrictedNamespace=team"]));
        assert_eq!(restricted.config().workload_roles, None);
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
        let args = Args::parse_from([
            "dynamo-operator",
            "--enable-webhooks=false",
            "--grove-termination-delay=1h30m",
            "--mpi-run-ssh-secret-name=mpi",
            "--mpi-run-ssh-secret-namespace=dynamo",
            "--zap-log-level=debug",
            "--zap-devel",
            "--zap-encoder=json",
            "--zap-stacktrace-level=error",
            "--zap-time-encoding=iso8601",
            "--metrics-secure",
            "--enable-http2=false",
        ]);
        assert_eq!(
            args.compat.grove_termination_delay,
            Duration::from_secs(5400)
        );
        assert_eq!(
            args.config().grove_termination_delay,
            Duration::from_secs(5400),
            "the Grove pathway reads it"
        );
        assert_eq!(
            Args::parse_from(["dynamo-operator"])
                .config()
                .grove_termination_delay,
            Duration::from_secs(15 * 60),
            "upstream's default"
        );
        assert_eq!(args.compat.log_level(), Some("debug"));
        let ignored = args.compat.ignored();
        assert_eq!(ignored.len(), 6, "{ignored:?}");
        assert!(ignored[0].starts_with("--zap-devel is accepted"));
        assert!(
            Args::parse_from(["dynamo-operator"])
                .compat
                .ignored()
                .is_empty()
        );
    }

    #[test]
    fn zap_levels_become_log_levels() {
        let level = |value: &str| {
            Args::parse_from(["dynamo-operator", &format!("--zap-log-level={value}")])
                .compat
                .log_level()
        };
        assert_eq!(level("info"), Some("info"));
        assert_eq!(level("ERROR"), Some("error"));
        assert_eq!(level("-1"), Some("debug"));
        assert_eq!(level("-5"), Some("trace"));
        assert_eq!(level("2"), Some("error"));
        assert_eq!(level("loud"), None);
    }

    #[test]
    fn durations_are_written_as_go_writes_them() {
        let args = Args::parse_from([
            "dynamo-operator",
            "--leader-election-lease-duration=1m30s",
            "--leader-election-renew-deadline=60",
            "--leader-election-retry-period=500ms",
            "--namespace-scope-lease-duration=1m",
        ]);
        let timing = args.election.timing();
        assert_eq!(timing.lease_duration, Duration::from_secs(90));
        assert_eq!(timing.renew_deadline, Duration::from_secs(60));
        assert_eq!(timing.retry_period, Duration::from_millis(500));
        assert_eq!(
            args.scope.namespace_scope_lease_duration,
            Duration::from_secs(60)
        );
        let refused =
            Args::try_parse_from(["dynamo-operator", "--leader-election-lease-duration=2d"]);
        assert!(refused.unwrap_err().to_string().contains("unknown unit"));
    }
}
