//! The Kubernetes side: the Secret and the `caBundle` of webhook configurations and CRDs.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::plan::{CA_CRT, CA_KEY, Material, TLS_CRT, TLS_KEY};

/// Field manager of every write, so `managedFields` shows who owns the bundle.
pub const FIELD_MANAGER: &str = "dynamo-certgen";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("{kind} {name} did not appear within {waited:?}")]
    Timeout {
        kind: &'static str,
        name: String,
        waited: Duration,
    },
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> ClusterError {
    let action = action.into();
    move |source| ClusterError::Api { action, source }
}

pub fn material_of(secret: &Secret) -> Material {
    let data = secret.data.as_ref();
    let get = |key: &str| data.and_then(|d| d.get(key)).map(|v| v.0.clone());
    Material {
        tls_crt: get(TLS_CRT),
        tls_key: get(TLS_KEY),
        ca_crt: get(CA_CRT),
        ca_key: get(CA_KEY),
    }
}

pub async fn read_secret(api: &Api<Secret>, name: &str) -> Result<Option<Secret>, ClusterError> {
    api.get_opt(name)
        .await
        .map_err(api_error(format!("get Secret {name}")))
}

/// Creates the Secret, or updates the stored one with its resourceVersion as precondition.
/// Keys other than ours, labels and annotations of an existing Secret are kept.
pub async fn write_secret(
    api: &Api<Secret>,
    name: &str,
    existing: Option<Secret>,
    material: &Material,
) -> Result<Secret, ClusterError> {
    let mut secret = existing.clone().unwrap_or_else(|| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                FIELD_MANAGER.to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        ..Default::default()
    });
    secret.metadata.managed_fields = None;
    let data = secret.data.get_or_insert_with(BTreeMap::new);
    for (key, value) in [
        (TLS_CRT, &material.tls_crt),
        (TLS_KEY, &material.tls_key),
        (CA_CRT, &material.ca_crt),
        (CA_KEY, &material.ca_key),
    ] {
        if let Some(value) = value {
            data.insert(key.to_owned(), ByteString(value.clone()));
        }
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    match existing {
        None => api
            .create(&params, &secret)
            .await
            .map_err(api_error(format!("create Secret {name}"))),
        Some(_) => api
            .replace(name, &params, &secret)
            .await
            .map_err(api_error(format!("update Secret {name}"))),
    }
}

pub fn is_conflict(error: &ClusterError) -> bool {
    matches!(error, ClusterError::Api { source: kube::Error::Api(status), .. } if status.code == 409)
}

/// A webhook configuration kind whose entries carry `clientConfig.caBundle`.
#[derive(Clone, Copy, Debug)]
pub enum WebhookKind {
    Validating,
    Mutating,
}

impl WebhookKind {
    pub fn kind(self) -> &'static str {
        match self {
            Self::Validating => "ValidatingWebhookConfiguration",
            Self::Mutating => "MutatingWebhookConfiguration",
        }
    }
}

/// Names of the webhooks in a configuration, with their current bundles.
async fn webhook_bundles(
    client: &Client,
    kind: WebhookKind,
    name: &str,
) -> Result<Option<Vec<(String, Option<Vec<u8>>)>>, ClusterError> {
    let action = || format!("get {} {name}", kind.kind());
    let bundles = match kind {
        WebhookKind::Validating => Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .get_opt(name)
            .await
            .map_err(api_error(action()))?
            .map(|c| {
                c.webhooks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.name, w.client_config.ca_bundle.map(|b| b.0)))
                    .collect()
            }),
        WebhookKind::Mutating => Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get_opt(name)
            .await
            .map_err(api_error(action()))?
            .map(|c| {
                c.webhooks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.name, w.client_config.ca_bundle.map(|b| b.0)))
                    .collect()
            }),
    };
    Ok(bundles)
}

/// Sets `bundle` on every webhook of the configuration that lacks it, by webhook name, with
/// server-side apply under our own field manager. Returns how many webhooks changed.
/// Waits up to `wait` for the configuration to exist.
pub async fn patch_webhook_bundles(
    client: &Client,
    kind: WebhookKind,
    name: &str,
    bundle: &[u8],
    wait: Duration,
    dry_run: bool,
) -> Result<usize, ClusterError> {
    let started = std::time::Instant::now();
    let webhooks = loop {
        if let Some(webhooks) = webhook_bundles(client, kind, name).await? {
            break webhooks;
        }
        if started.elapsed() >= wait {
            return Err(ClusterError::Timeout {
                kind: kind.kind(),
                name: name.to_owned(),
                waited: wait,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stale: Vec<&str> = webhooks
        .iter()
        .filter(|(_, current)| current.as_deref() != Some(bundle))
        .map(|(webhook, _)| webhook.as_str())
        .collect();
    if stale.is_empty() || dry_run {
        return Ok(stale.len());
    }
    // Every webhook goes into the apply, not only the stale ones: server-side apply removes
    // fields this manager set before and now leaves out.
    let encoded = ByteString(bundle.to_vec());
    let entries: Vec<_> = webhooks
        .iter()
        .map(|(webhook, _)| json!({"name": webhook, "clientConfig": {"caBundle": encoded}}))
        .collect();
    let patch = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind.kind(),
        "metadata": {"name": name},
        "webhooks": entries,
    });
    // Force: we own caBundle even if a chart once rendered an empty one.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let action = format!("patch {} {name}", kind.kind());
    match kind {
        WebhookKind::Validating => {
            Api::<ValidatingWebhookConfiguration>::all(client.clone())
                .patch(name, &params, &Patch::Apply(&patch))
                .await
                .map_err(api_error(action))?;
        }
        WebhookKind::Mutating => {
            Api::<MutatingWebhookConfiguration>::all(client.clone())
                .patch(name, &params, &Patch::Apply(&patch))
                .await
                .map_err(api_error(action))?;
        }
    }
    Ok(stale.len())
}

/// Sets the conversion webhook `caBundle` of a CRD whose conversion strategy is `Webhook`.
/// Returns whether it changed; CRDs without a conversion webhook are left alone.
pub async fn patch_crd_bundle(
    client: &Client,
    name: &str,
    bundle: &[u8],
    dry_run: bool,
) -> Result<bool, ClusterError> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = api
        .get(name)
        .await
        .map_err(api_error(format!("get CustomResourceDefinition {name}")))?;
    let Some(conversion) = crd.spec.conversion.filter(|c| c.strategy == "Webhook") else {
        return Ok(false);
    };
    let current = conversion
        .webhook
        .and_then(|w| w.client_config)
        .and_then(|c| c.ca_bundle)
        .map(|b| b.0);
    if current.as_deref() == Some(bundle) || dry_run {
        return Ok(current.as_deref() != Some(bundle));
    }
    let patch = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"caBundle": ByteString(bundle.to_vec())}}}},
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(api_error(format!("patch CustomResourceDefinition {name}")))?;
    Ok(true)
}
