//! `dynamo-webhook serve`: its flags and the wiring of the servers (admission over HTTPS,
//! the plain admin server, optionally secure metrics) until a shutdown signal.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use dynamo_common::scope::Scope;

use crate::admission::Policy;
use crate::metrics::Metrics;
use crate::server::{self, App};
use crate::tls::{self, ReloadingCert};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address the HTTPS admission server listens on (`:9443` is every address, IPv6 and
    /// IPv4).
    #[arg(long, env = "DYNAMO_WEBHOOK_LISTEN", default_value = ":9443")]
    pub listen: String,
    /// Directory holding `tls.crt` and `tls.key`; changes are picked up without a restart.
    #[arg(
        long,
        env = "DYNAMO_WEBHOOK_CERT_DIR",
        default_value = "/tmp/k8s-webhook-server/serving-certs"
    )]
    pub cert_dir: PathBuf,
    /// Address of the plain-HTTP /healthz, /readyz and /metrics server.
    #[arg(long, default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Also serve /metrics over HTTPS here (e.g. `:8443`), to callers whose token passes a
    /// TokenReview and whose identity may `get` the /metrics URL; empty: off.
    #[arg(long, default_value = "")]
    pub metrics_secure_bind_address: String,
    /// Validate only this namespace (namespace-restricted installs); otherwise validate every
    /// namespace without a live namespace-scope Lease.
    #[arg(
        long = "restrictedNamespace",
        env = "DYNAMO_RESTRICTED_NAMESPACE",
        default_value = ""
    )]
    pub restricted_namespace: String,
    /// Usernames that may change replicas owned by a scaling adapter (repeatable), e.g.
    /// system:serviceaccount:dynamo-system:dynamo-operator. The planner's ServiceAccount
    /// (`planner-serviceaccount` in any namespace) is always allowed.
    #[arg(
        long = "replica-manager",
        env = "DYNAMO_REPLICA_MANAGERS",
        value_delimiter = ','
    )]
    pub replica_managers: Vec<String>,
}

/// Serves until SIGTERM or Ctrl-C, then lets in-flight reviews finish.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(ReloadingCert::new(&args.cert_dir, provider.clone()));
    let tls = tls::server_config(cert.clone(), provider)?;
    let scope = if args.restricted_namespace.is_empty() {
        Scope::cluster_wide()
    } else {
        Scope::Restricted(args.restricted_namespace.clone())
    };
    // The API is needed to watch namespace-scope leases (cluster-wide) and to review metrics
    // callers; one client serves both.
    let cluster_wide = matches!(scope, Scope::ClusterWide(_));
    let secure_metrics = !args.metrics_secure_bind_address.is_empty();
    let client = if cluster_wide || secure_metrics {
        Some(
            kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?,
        )
    } else {
        None
    };
    if let (true, Some(client)) = (cluster_wide, client.clone()) {
        let watching = scope.clone();
        tokio::spawn(async move {
            if let Err(e) = watching.watch_leases(client).await {
                tracing::error!("namespace-scope lease watch ended: {e}");
            }
        });
    }
    let app = Arc::new(App {
        policy: Policy {
            scope,
            replica_managers: args.replica_managers,
        },
        metrics: Metrics::default(),
        cert,
    });
    let admission = dynamo_common::bind(&args.listen).await?;
    let health = dynamo_common::bind(&args.health_probe_bind_address).await?;
    tracing::info!(
        admission_address = %admission.local_addr()?,
        health_address = %health.local_addr()?,
        "serving"
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = vec![tokio::spawn(dynamo_common::admin::serve(
        health,
        app.clone(),
        stopped.clone(),
    ))];
    if let (true, Some(client)) = (secure_metrics, client) {
        servers.push(
            dynamo_common::secure_metrics::start(
                &args.metrics_secure_bind_address,
                client,
                app.clone(),
                stopped.clone(),
            )
            .await?,
        );
    }
    servers.push(tokio::spawn(server::serve_admission(
        admission, app, tls, stopped,
    )));
    dynamo_common::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight reviews");
    let _ = stop.send(true);
    for server in servers {
        let _ = server.await;
    }
    Ok(())
}
