//! dynamo-webhook: the validating admission webhook of the Dynamo platform.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dynamo_webhook::admission::Policy;
use dynamo_webhook::metrics::Metrics;
use dynamo_webhook::scope::Scope;
use dynamo_webhook::server::{self, App};
use dynamo_webhook::tls::{self, ReloadingCert};

/// Validates Dynamo custom resources on create and update (immutable fields, service
/// topology, namespace-scope leases) over HTTPS, or checks manifest files offline.
#[derive(Debug, Parser)]
#[command(
    name = "dynamo-webhook",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve admission reviews (the default).
    Serve(Serve),
    /// Check manifest files with the same rules as the server; exits 1 if any is rejected.
    Validate(Validate),
}

#[derive(Debug, Args)]
struct Serve {
    /// Address the HTTPS admission server listens on.
    #[arg(long, env = "DYNAMO_WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    listen: String,
    /// Directory holding `tls.crt` and `tls.key`; changes are picked up without a restart.
    #[arg(
        long,
        env = "DYNAMO_WEBHOOK_CERT_DIR",
        default_value = "/tmp/k8s-webhook-server/serving-certs"
    )]
    cert_dir: PathBuf,
    /// Address of the plain-HTTP /healthz, /readyz and /metrics server.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_probe_bind_address: String,
    /// Also serve /metrics over HTTPS here (e.g. `:8443`), to callers whose token passes a
    /// TokenReview and whose identity may `get` the /metrics URL; empty: off.
    #[arg(long, default_value = "")]
    metrics_secure_bind_address: String,
    /// Validate only this namespace (namespace-restricted installs); otherwise validate every
    /// namespace without a live namespace-scope Lease.
    #[arg(
        long = "restrictedNamespace",
        env = "DYNAMO_RESTRICTED_NAMESPACE",
        default_value = ""
    )]
    restricted_namespace: String,
    /// Usernames that may change replicas owned by a scaling adapter (repeatable), e.g.
    /// system:serviceaccount:dynamo-system:dynamo-operator. The planner's ServiceAccount
    /// (`planner-serviceaccount` in any namespace) is always allowed.
    #[arg(
        long = "replica-manager",
        env = "DYNAMO_REPLICA_MANAGERS",
        value_delimiter = ','
    )]
    replica_managers: Vec<String>,
}

#[derive(Debug, Args)]
struct Validate {
    /// Manifest files (YAML, several documents allowed).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dynamo_common::init_logging();
    let result = match cli.command {
        Some(Command::Validate(validate)) => return dynamo_webhook::offline::run(&validate.files),
        Some(Command::Serve(serve)) => run(serve),
        None => run(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Serve) -> anyhow::Result<()> {
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
    let client = if cluster_wide || !args.metrics_secure_bind_address.is_empty() {
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
    let (admission, admission_address) = server::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let health_listen = dynamo_common::listen_address(&args.health_probe_bind_address);
    let (health, health_address) = server::bind(&health_listen)
        .await
        .with_context(|| format!("listening on {health_listen}"))?;
    tracing::info!(%admission_address, %health_address, "serving");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health_task = tokio::spawn(dynamo_common::admin::serve(
        health,
        app.clone(),
        stopped.clone(),
    ));
    let secure_metrics = match client {
        Some(client) if !args.metrics_secure_bind_address.is_empty() => Some(
            dynamo_common::secure_metrics::start(
                &args.metrics_secure_bind_address,
                client,
                app.clone(),
                stopped.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    let admission_task = tokio::spawn(server::serve_admission(admission, app, tls, stopped));
    dynamo_common::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight reviews");
    let _ = stop.send(true);
    let _ = admission_task.await;
    let _ = health_task.await;
    if let Some(task) = secure_metrics {
        let _ = task.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
