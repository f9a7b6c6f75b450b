//! The webhook certificate generator: mints a CA and a serving certificate, keeps them while
//! they are good, stores them in a Secret and publishes the CA in `caBundle`.

pub mod cluster;
pub mod inspect;
pub mod mint;
pub mod plan;
pub mod ssh;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use time::OffsetDateTime;

use cluster::{ClusterError, WebhookKind};
use plan::{Decision, Requirements};

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: String,
    pub secret_name: String,
    pub requirements: Requirements,
    pub validating_configurations: Vec<String>,
    pub mutating_configurations: Vec<String>,
    pub crds: Vec<String>,
    pub wait_for_configurations: Duration,
    /// The full webhooks of the (single) validating configuration, applied with the bundle.
    pub validating_webhooks: Option<Vec<serde_json::Value>>,
    /// Skip a named configuration that does not exist (instead of waiting, then failing).
    pub skip_missing_configurations: bool,
    pub dry_run: bool,
}

/// What a run did (or, with `dry_run`, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub decision: Decision,
    pub secret_written: bool,
    pub webhooks_patched: usize,
    pub crds_patched: usize,
}

impl Report {
    pub fn writes(&self) -> usize {
        usize::from(self.secret_written) + self.webhooks_patched + self.crds_patched
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Mint(#[from] mint::MintError),
    #[error("the Secret kept changing under us; gave up after {0} attempts")]
    TooManyConflicts(usize),
}

impl Error {
    /// Process exit code: 3 when a configuration never appeared, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Cluster(ClusterError::Timeout { .. }) => 3,
            _ => 1,
        }
    }
}

const ATTEMPTS: usize = 5;

pub async fn run(client: &Client, config: &Config, now: OffsetDateTime) -> Result<Report, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    for _ in 0..ATTEMPTS {
        let existing = cluster::read_secret(&secrets, &config.secret_name).await?;
        let stored = existing
            .as_ref()
            .map(cluster::material_of)
            .unwrap_or_default();
        let decision = plan::decide(&stored, &config.requirements, now);
        tracing::info!(secret = %config.secret_name, "{decision}");
        let desired = plan::apply(&decision, &stored, &config.requirements, now)?;
        let bundle = desired.ca_crt.clone().unwrap_or_default();

        // Publish the CA before the Secret changes: when the CA is replaced, the bundle holds
        // the old and the new CA, so the API server trusts the webhook before and after it
        // picks up the new certificate.
        let webhooks_patched = patch_bundles(client, config, &bundle).await?;
        let crds_patched = patch_crds(client, config, &bundle).await?;

        let secret_written = desired != stored;
        if secret_written && !config.dry_run {
            match cluster::write_secret(&secrets, &config.secret_name, existing, &desired).await {
                Ok(_) => {}
                Err(e) if cluster::is_conflict(&e) => {
                    tracing::warn!("Secret changed while we wrote it; deciding again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let verb = if config.dry_run {
            "would write"
        } else {
            "wrote"
        };
        if secret_written {
            tracing::info!("{verb} Secret {}/{}", config.namespace, config.secret_name);
        }
        return Ok(Report {
            decision,
            secret_written,
            webhooks_patched,
            crds_patched,
        });
    }
    Err(Error::TooManyConflicts(ATTEMPTS))
}

async fn patch_bundles(client: &Client, config: &Config, bundle: &[u8]) -> Result<usize, Error> {
    let kinds = config
        .validating_configurations
        .iter()
        .map(|name| (WebhookKind::Validating, name))
        .chain(
            config
                .mutating_configurations
                .iter()
                .map(|name| (WebhookKind::Mutating, name)),
        );
    let mut patched = 0;
    for (kind, name) in kinds {
        let template = match kind {
            WebhookKind::Validating => config.validating_webhooks.as_deref(),
            WebhookKind::Mutating => None,
        };
        let target = cluster::Target {
            kind,
            name,
            template,
        };
        let wait = cluster::Wait {
            timeout: config.wait_for_configurations,
            skip_missing: config.skip_missing_configurations,
        };
        let Some(count) =
            cluster::patch_webhook_bundles(client, &target, bundle, wait, config.dry_run).await?
        else {
            tracing::info!("{} {name} does not exist yet; skipped", kind.kind());
            continue;
        };
        let verb = if config.dry_run {
            "would patch"
        } else {
            "patched"
        };
        if count > 0 {
            tracing::info!(
                "{verb} caBundle in {count} webhooks of {} {name}",
                kind.kind()
            );
        } else {
            tracing::info!("caBundle current in {} {name}", kind.kind());
        }
        patched += count;
    }
    Ok(patched)
}

async fn patch_crds(client: &Client, config: &Config, bundle: &[u8]) -> Result<usize, Error> {
    let mut patched = 0;
    for name in &config.crds {
        if cluster::patch_crd_bundle(client, name, bundle, config.dry_run).await? {
            tracing::info!("patched conversion caBundle of CRD {name}");
            patched += 1;
        }
    }
    Ok(patched)
}
