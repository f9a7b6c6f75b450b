//! dynamo-certgen: mints the webhook CA and serving certificate, stores them in a Secret and
//! patches the `caBundle` of the webhook configurations. Runs as a Helm hook Job.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dynamo_certgen::mint::{KeyAlgorithm, service_dns_names};
use dynamo_certgen::plan::Requirements;
use dynamo_certgen::{Config, run};

/// Creates (or keeps, while still good) the webhook serving certificate and publishes its CA.
///
/// A second run with the same flags writes nothing. Exit codes: 0 done, 1 failed, 2 bad flags,
/// 3 a named webhook configuration did not appear in time.
///
/// RBAC it needs: secrets get/create/update in --namespace; get/patch on the named
/// validatingwebhookconfigurations, mutatingwebhookconfigurations and
/// customresourcedefinitions.
#[derive(Debug, Parser)]
#[command(
    name = "dynamo-certgen",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    certs: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the SSH key pair Secret of multinode mpirun workers (keys private.key and
    /// private.key.pub) unless it exists; an existing Secret is never changed.
    ///
    /// RBAC it needs: secrets create, and get on the named Secret, in --namespace.
    SshKey(SshKeyArgs),
}

#[derive(Debug, clap::Args)]
struct SshKeyArgs {
    /// Namespace of the Secret.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// Name of the Secret.
    #[arg(long, default_value = "mpi-run-ssh-secret")]
    secret_name: String,
    /// RSA key size: 2048, 3072 or 4096.
    #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
    bits: usize,
    /// Say what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Namespace of the Secret and the webhook Service.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Name of the Secret holding tls.crt, tls.key, ca.crt and ca.key.
    #[arg(
        long,
        env = "CERTGEN_SECRET_NAME",
        default_value = "webhook-server-cert"
    )]
    secret_name: String,
    /// Name of the webhook Service; the certificate covers its DNS names.
    #[arg(long, env = "CERTGEN_SERVICE_NAME")]
    service_name: Option<String>,
    /// Cluster DNS domain, for the fully qualified Service name.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// ValidatingWebhookConfiguration whose webhooks get the CA bundle (repeatable).
    #[arg(long = "validating-configuration")]
    validating_configurations: Vec<String>,
    /// MutatingWebhookConfiguration whose webhooks get the CA bundle (repeatable).
    #[arg(long = "mutating-configuration")]
    mutating_configurations: Vec<String>,
    /// CRD whose conversion webhook gets the CA bundle, when it has one (repeatable).
    #[arg(long = "crd")]
    crds: Vec<String>,
    /// The webhooks the (single) --validating-configuration must hold, as a JSON list: they
    /// are applied in full, each with the CA bundle, instead of setting only the bundle of
    /// the webhooks already there. A chart renders a new configuration without webhooks and
    /// lets this add them, so no webhook ever exists without a CA.
    #[arg(long, env = "CERTGEN_VALIDATING_WEBHOOKS", value_parser = parse_webhooks)]
    validating_webhooks: Option<Webhooks>,
    /// A named configuration that does not exist is skipped instead of waited for (a
    /// pre-install hook runs before the chart creates it).
    #[arg(long, conflicts_with = "wait_for_configurations")]
    skip_missing_configurations: bool,
    /// How long to wait for the named configurations to exist, e.g. 60s or 2m.
    #[arg(long, default_value = "0s", value_parser = dynamo_common::parse_duration)]
    wait_for_configurations: Duration,
    /// Key type of new keys.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcdsaP256)]
    key_type: KeyAlgorithm,
    /// Validity of a new serving certificate, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(2..))]
    validity_days: u32,
    /// Validity of a new CA, in days; must exceed --validity-days.
    #[arg(long, default_value_t = 3650)]
    ca_validity_days: u32,
    /// Renew a certificate with less than this many days left.
    #[arg(long, default_value_t = 30)]
    renew_before_days: u32,
    /// Say what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_bits(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(bits @ (2048 | 3072 | 4096)) => Ok(bits),
        _ => Err(format!("{text} is not one of 2048, 3072, 4096")),
    }
}

/// A JSON list of webhook objects, each with a name.
#[derive(Clone, Debug)]
struct Webhooks(Vec<serde_json::Value>);

fn parse_webhooks(text: &str) -> Result<Webhooks, String> {
    let list: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of webhooks: {e}"))?;
    for (index, webhook) in list.iter().enumerate() {
        if webhook.get("name").and_then(|n| n.as_str()).is_none() {
            return Err(format!("webhook [{index}] has no name"));
        }
    }
    Ok(Webhooks(list))
}

impl Args {
    fn config(self) -> Result<Config, String> {
        let namespace = self
            .namespace
            .filter(|n| !n.is_empty())
            .ok_or("--namespace (or POD_NAMESPACE) is required")?;
        let service_name = self
            .service_name
            .filter(|n| !n.is_empty())
            .ok_or("--service-name is required")?;
        if self.validating_webhooks.is_some() && self.validating_configurations.len() != 1 {
            return Err(
                "--validating-webhooks needs exactly one --validating-configuration to apply them to"
                    .into(),
            );
        }
        if self.ca_validity_days <= self.validity_days {
            return Err("--ca-validity-days must exceed --validity-days".into());
        }
        if self.renew_before_days >= self.validity_days {
            return Err("--renew-before-days must be shorter than --validity-days".into());
        }
        Ok(Config {
            requirements: Requirements {
                dns_names: service_dns_names(&service_name, &namespace, &self.cluster_domain),
                key_algorithm: self.key_type,
                leaf_validity_days: self.validity_days,
                ca_validity_days: self.ca_validity_days,
                renew_before: time::Duration::days(i64::from(self.renew_before_days)),
            },
            namespace,
            secret_name: self.secret_name,
            validating_configurations: self.validating_configurations,
            mutating_configurations: self.mutating_configurations,
            crds: self.crds,
            wait_for_configurations: self.wait_for_configurations,
            validating_webhooks: self.validating_webhooks.map(|w| w.0),
            skip_missing_configurations: self.skip_missing_configurations,
            dry_run: self.dry_run,
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    dynamo_common::init_logging();
    let cli = Cli::parse();
    if let Some(Command::SshKey(args)) = cli.command {
        return ssh_key(args).await;
    }
    let config = match cli.certs.config() {
        Ok(config) => config,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(2);
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("connecting to the Kubernetes API: {e}");
            return ExitCode::from(1);
        }
    };
    match run(&client, &config, time::OffsetDateTime::now_utc()).await {
        Ok(report) => {
            tracing::info!(writes = report.writes(), "done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn ssh_key(args: SshKeyArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("connecting to the Kubernetes API: {e}");
            return ExitCode::from(1);
        }
    };
    let api = kube::Api::namespaced(client, &args.namespace);
    match dynamo_certgen::ssh::ensure_secret(&api, &args.secret_name, args.bits, args.dry_run).await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn ca_must_outlive_the_leaf() {
        let args = Cli::parse_from([
            "dynamo-certgen",
            "--namespace",
            "ns",
            "--service-name",
            "svc",
            "--validity-days",
            "400",
            "--ca-validity-days",
            "365",
        ]);
        assert!(
            args.certs
                .config()
                .unwrap_err()
                .contains("--ca-validity-days")
        );
    }
}
