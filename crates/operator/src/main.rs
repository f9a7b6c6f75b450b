//! dynamo-operator: the controller-manager that reconciles DynamoGraphDeployments and
//! DynamoComponentDeployments into Deployments, Services and Ingresses.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use dynamo_common::leader::{self, Elector, Timing};
use dynamo_operator::build::config::{DiscoveryBackend, OperatorConfig};
use dynamo_operator::controllers::{self, Context};
use dynamo_operator::scope_marker::ScopeMarker;
use std::time::Duration;

/// Reconciles Dynamo custom resources (nvidia.com/v1alpha1) into Kubernetes workloads.
///
/// Flag names follow the upstream operator so existing Helm values keep working.
#[derive(Debug, Parser)]
#[command(name = "dynamo-operator", version, about, long_about)]
struct Args {
    /// Address the /metrics endpoint binds to (Go-style `:8080` accepted).
    #[arg(long, default_value = ":8080")]
    metrics_bind_address: String,
    /// Also serve /metrics over HTTPS here (e.g. `:8443`), to callers whose token passes a
    /// TokenReview and whose identity may `get` the /metrics URL; empty: off.
    #[arg(long, default_value = "")]
    metrics_secure_bind_address: String,
    /// Address the /healthz and /readyz endpoints bind to.
    #[arg(long, default_value = ":8081")]
    health_probe_bind_address: String,
    /// Elect a leader so only one replica reconciles; the others wait as standbys.
    #[arg(long)]
    leader_elect: bool,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "dynamo.nvidia.com")]
    leader_election_id: String,
    /// Namespace of the leader election Lease (default: the restricted namespace, else
    /// kube-system).
    #[arg(long, default_value = "")]
    leader_election_namespace: String,
    /// How long a leader's lease stays valid without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    leader_election_lease_duration: u64,
    /// A leader that could not renew within this many seconds stops (before its lease expires).
    #[arg(long, default_value_t = 10)]
    leader_election_renew_deadline: u64,
    /// Seconds between leader election rounds.
    #[arg(long, default_value_t = 2)]
    leader_election_retry_period: u64,
    /// Accepted for compatibility: validation runs in the separate dynamo-webhook.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    enable_webhooks: bool,
    /// Watch only this namespace (namespace-restricted mode).
    #[arg(long = "restrictedNamespace", default_value = "")]
    restricted_namespace: String,
    /// NATS address injected into component pods as NATS_SERVER.
    #[arg(long = "natsAddr", default_value = "")]
    nats_addr: String,
    /// etcd address injected into component pods as ETCD_ENDPOINTS.
    #[arg(long = "etcdAddr", default_value = "")]
    etcd_addr: String,
    /// Model Express URL injected as MODEL_EXPRESS_URL.
    #[arg(long, default_value = "")]
    model_express_url: String,
    /// Prometheus endpoint injected as PROMETHEUS_ENDPOINT.
    #[arg(long, default_value = "")]
    prometheus_endpoint: String,
    /// Istio gateway for frontend VirtualServices (empty: no VirtualServices).
    #[arg(long, default_value = "")]
    istio_virtual_service_gateway: String,
    /// The Istio gateway terminates TLS.
    #[arg(long)]
    virtual_service_supports_https: bool,
    /// Default Ingress class of frontends.
    #[arg(long, default_value = "")]
    ingress_controller_class_name: String,
    /// Default TLS Secret of frontend Ingresses.
    #[arg(long, default_value = "")]
    ingress_controller_tls_secret_name: String,
    /// Default host suffix of frontend Ingresses.
    #[arg(long, default_value = "")]
    ingress_host_suffix: String,
    /// Service discovery backend of the components.
    #[arg(long, default_value = "kubernetes", value_parser = ["kubernetes", "etcd"])]
    discovery_backend: String,
    /// Give component pods the restricted Pod Security Standard settings.
    #[arg(long)]
    enable_restricted_security_context: bool,
    /// Validity of the namespace-scope Lease a restricted operator keeps (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = dynamo_common::parse_duration)]
    namespace_scope_lease_duration: Duration,
    /// How often that Lease is renewed (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = dynamo_common::parse_duration)]
    namespace_scope_lease_renew_interval: Duration,
    /// Termination delay of Grove PodCliqueSets. Recorded for compatibility: this release
    /// does not drive Grove, so multinode graphs fail with a message saying so.
    #[arg(long, default_value = "15m", value_parser = dynamo_common::parse_duration)]
    grove_termination_delay: Duration,
    /// Image of the debugger of debug modes (accepted for compatibility; debug modes are not
    /// part of this release).
    #[arg(long, env = "INTERNAL_IMAGES_DEBUGGER", default_value = "")]
    debugger_image: String,
    /// Secret with the SSH key pair of multinode mpirun workers (accepted for compatibility
    /// until multinode support lands).
    #[arg(long, default_value = "")]
    mpi_run_ssh_secret_name: String,
    /// Namespace of that Secret.
    #[arg(long, default_value = "")]
    mpi_run_ssh_secret_namespace: String,
    /// Version recorded in the namespace-scope Lease holder identity.
    #[arg(long, default_value = "unknown")]
    operator_version: String,
}

impl Args {
    fn config(&self) -> OperatorConfig {
        let some = |value: &String| Some(value.clone()).filter(|v| !v.is_empty());
        OperatorConfig {
            nats_addr: some(&self.nats_addr),
            etcd_addr: some(&self.etcd_addr),
            model_express_url: some(&self.model_express_url),
            prometheus_endpoint: some(&self.prometheus_endpoint),
            discovery_backend: self
                .discovery_backend
                .parse()
                .unwrap_or(DiscoveryBackend::Kubernetes),
            ingress_controller_class_name: some(&self.ingress_controller_class_name),
            ingress_controller_tls_secret_name: some(&self.ingress_controller_tls_secret_name),
            ingress_host_suffix: some(&self.ingress_host_suffix),
            istio_virtual_service_gateway: some(&self.istio_virtual_service_gateway),
            virtual_service_supports_https: self.virtual_service_supports_https,
            restricted_security_context: self.enable_restricted_security_context,
        }
    }
}

/// Readiness and metrics for the admin servers. A standby waiting for leadership is ready (it
/// is healthy and must not block a rollout); a leader is ready once its caches synced.
struct Probes {
    ready: tokio::sync::watch::Receiver<bool>,
    standby: Arc<std::sync::atomic::AtomicBool>,
    context: Arc<Context>,
}

impl dynamo_common::admin::Probes for Probes {
    fn ready(&self) -> Result<(), String> {
        if *self.ready.borrow() || self.standby.load(std::sync::atomic::Ordering::Relaxed) {
            Ok(())
        } else {
            Err("caches not synced yet".into())
        }
    }

    fn metrics(&self) -> String {
        self.context.metrics.encode()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    dynamo_common::init_logging();
    let client = dynamo_operator::client::connect()
        .await
        .context("connecting to the Kubernetes API")?;
    let namespace = Some(args.restricted_namespace.clone()).filter(|n| !n.is_empty());
    let context = Arc::new(Context::new(
        client.clone(),
        args.config(),
        namespace.clone(),
    ));
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
    let standby = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes: Arc<dyn dynamo_common::admin::Probes> = Arc::new(Probes {
        ready: ready_rx,
        standby: standby.clone(),
        context: context.clone(),
    });

    let (stop, stopped) = tokio::sync::watch::channel(false);
    for flag in [&args.health_probe_bind_address, &args.metrics_bind_address] {
        let address = dynamo_common::listen_address(flag);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        tokio::spawn(dynamo_common::admin::serve(
            listener,
            probes.clone(),
            stopped.clone(),
        ));
    }
    if !args.metrics_secure_bind_address.is_empty() {
        dynamo_common::secure_metrics::start(
            &args.metrics_secure_bind_address,
            client.clone(),
            probes.clone(),
            stopped.clone(),
        )
        .await?;
    }
    let marker = match &namespace {
        Some(restricted) => Some(Arc::new(ScopeMarker::new(
            client.clone(),
            restricted,
            &args.operator_version,
            args.namespace_scope_lease_duration,
            args.namespace_scope_lease_renew_interval,
        )?)),
        None => None,
    };
    let elector = args.leader_elect.then(|| {
        let lease_namespace = Some(args.leader_election_namespace.clone())
            .filter(|n| !n.is_empty())
            .or(namespace)
            .unwrap_or_else(|| "kube-system".into());
        let timing = Timing {
            lease_duration: Duration::from_secs(args.leader_election_lease_duration),
            renew_deadline: Duration::from_secs(args.leader_election_renew_deadline),
            retry_period: Duration::from_secs(args.leader_election_retry_period),
        };
        Arc::new(Elector::new(
            client,
            &lease_namespace,
            &args.leader_election_id,
            leader::identity(),
            timing,
        ))
    });
    let mut keeper = None;
    if let Some(elector) = &elector {
        standby.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            _ = elector.acquire() => {}
            _ = dynamo_common::shutdown_signal() => {
                tracing::info!("stopped while waiting for leadership");
                return Ok(());
            }
        }
        standby.store(false, std::sync::atomic::Ordering::Relaxed);
        let renewing = elector.clone();
        keeper = Some(tokio::spawn(async move {
            // Exit rather than risk a second writer once the lease may be someone else's.
            let lost = renewing.keep().await;
            tracing::error!("{lost}");
            std::process::exit(1);
        }));
    }
    let mut marker_keeper = None;
    if let Some(marker) = &marker {
        let marker = marker.clone();
        marker_keeper = Some(tokio::spawn(async move {
            // Two operators must not manage one namespace: stop when the marker is lost.
            let lost = marker.keep().await;
            tracing::error!("{lost}");
            std::process::exit(1);
        }));
    }
    if let dynamo_common::scope::Scope::ClusterWide(_) = &context.scope {
        let (scope, client) = (context.scope.clone(), context.client.clone());
        tokio::spawn(async move {
            if let Err(e) = scope.watch_leases(client).await {
                tracing::error!("namespace-scope lease watch ended: {e}");
            }
        });
    }
    context.metrics.leader.set(1);
    tracing::info!(version = %args.operator_version, namespace = ?context.namespace, "starting controllers");
    controllers::run(context, ready_tx).await;
    if let Some(marker) = &marker {
        // Stop renewing first, or a renewal could recreate the deleted marker.
        if let Some(keeper) = marker_keeper {
            keeper.abort();
        }
        marker.delete().await;
    }
    if let Some(elector) = &elector {
        // Stop renewing first, or the renewal loop would take the released lease back.
        if let Some(keeper) = keeper {
            keeper.abort();
        }
        elector.release().await;
    }
    let _ = stop.send(true);
    tracing::info!("stopped");
    Ok(())
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
        ]);
        let config = args.config();
        assert_eq!(config.nats_addr.as_deref(), Some("nats://nats:4222"));
        assert_eq!(config.etcd_addr, None);
        assert_eq!(config.discovery_backend, DiscoveryBackend::Etcd);
        assert_eq!(
            config.ingress_controller_class_name.as_deref(),
            Some("nginx")
        );
    }
}
