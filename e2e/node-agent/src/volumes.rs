//! A pod's volumes as directories, as the kubelet makes them: Secrets, ConfigMaps, projected
//! ServiceAccount tokens and downward API files, and emptyDirs. Files are replaced atomically
//! and only when their content changes, so a process watching them sees a rotation as one
//! change.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Secret, ServiceAccount, Volume};
use kube::api::PostParams;
use kube::{Api, Client};

/// The files of one volume: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn select(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    what: &str,
) -> anyhow::Result<Files> {
    let mut files = Files::new();
    match items {
        Some(items) => {
            for item in items {
                let value = data
                    .get(&item.key)
                    .with_context(|| format!("{what} has no key {}", item.key))?;
                let mode = item.mode.map(|m| m as u32).unwrap_or(default_mode);
                files.insert(item.path.clone(), (value.clone(), mode));
            }
        }
        None => {
            for (key, value) in data {
                files.insert(key, (value, default_mode));
            }
        }
    }
    Ok(files)
}

async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(secret.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}

async fn config_map_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
    let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?;
    Ok(map.map(|m| {
        let mut data: BTreeMap<String, Vec<u8>> = m
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in m.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}

/// A bound token for the pod's ServiceAccount, as the kubelet requests it.
async fn token(
    client: &Client,
    pod: &Pod,
    audience: Option<&str>,
    seconds: Option<i64>,
) -> anyhow::Result<Vec<u8>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]),
            expiration_seconds: Some(seconds.unwrap_or(3600).max(3600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..Default::default()
    };
    let status = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {ns}/{account}"))?
        .status
        .context("TokenRequest without status")?;
    Ok(status.token.unwrap_or_default().into_bytes())
}

fn field(pod: &Pod, path: &str) -> String {
    match path {
        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The files `volume` should hold now; `None` for a volume kind kept as an empty directory.
/// A Secret or ConfigMap that does not exist (and is not optional) is an error: the pod
/// waits, as it would in ContainerCreating.
pub async fn files(client: &Client, pod: &Pod, volume: &Volume) -> anyhow::Result<Option<Files>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(source) = &volume.secret {
        let name = source.secret_name.clone().unwrap_or_default();
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        return match secret_data(client, ns, &name).await? {
            Some(data) => Ok(Some(select(
                data,
                source.items.as_ref(),
                mode,
                &format!("Secret {name}"),
            )?)),
            None if source.optional == Some(true) => Ok(Some(Files::new())),
            None => bail!("Secret {ns}/{name} not found"),
        };
    }
    if let Some(source) = &volume.config_map {
        let name = source.name.clone();
        let mode = source.default_mode.unwrap_or(0o644) as u32;
        return match config_map_data(client, ns, &name).await? {
            Some(data) => Ok(Some(select(
                data,
                source.items.as_ref(),
                mode,
                &format!("ConfigMap {name}"),
            )?)),
            None if source.optional == Some(true) => Ok(Some(Files::new())),
            None => bail!("ConfigMap {ns}/{name} not found"),
        };
    }
    if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(0o644) as u32;
        let mut all = Files::new();
        for source in projected.sources.iter().flatten() {
            if let Some(t) = &source.service_account_token {
                let bytes = token(client, pod, t.audience.as_deref(), t.expiration_seconds).await?;
                all.insert(t.path.clone(), (bytes, mode));
            }
            if let Some(c) = &source.config_map {
                let data = config_map_data(client, ns, &c.name)
                    .await?
                    .with_context(|| format!("ConfigMap {ns}/{} not found", c.name))?;
                all.extend(select(
                    data,
                    c.items.as_ref(),
                    mode,
                    &format!("ConfigMap {}", c.name),
                )?);
            }
            if let Some(s) = &source.secret {
                let data = secret_data(client, ns, &s.name)
                    .await?
                    .with_context(|| format!("Secret {ns}/{} not found", s.name))?;
                all.extend(select(
                    data,
                    s.items.as_ref(),
                    mode,
                    &format!("Secret {}", s.name),
                )?);
            }
            if let Some(d) = &source.downward_api {
                for item in d.items.iter().flatten() {
                    if let Some(f) = &item.field_ref {
                        all.insert(
                            item.path.clone(),
                            (field(pod, &f.field_path).into_bytes(), mode),
                        );
                    }
                }
            }
        }
        return Ok(Some(all));
    }
    Ok(None)
}

/// Writes `files` under `dir`, replacing only what changed and removing what is gone.
/// Returns whether anything changed.
pub fn write(dir: &Path, files: &Files) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut changed = false;
    for (path, (content, mode)) in files {
        let target = dir.join(path);
        if std::fs::read(&target).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = dir.join(format!(".{}.tmp", path.replace('/', "_")));
        std::fs::write(&temporary, content)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(*mode))?;
        std::fs::rename(&temporary, &target)?;
        changed = true;
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_file() && !name.starts_with('.') && !files.contains_key(&name) {
            std::fs::remove_file(entry.path())?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Where volume `name` of a pod lives on the host.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}
