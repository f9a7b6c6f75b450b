//! The command line of a pod's process: the binary of its image, in the pod's network
//! namespace, with its volumes bind-mounted where the pod spec mounts them and the pod's
//! arguments and environment.

use std::path::Path;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{EnvVar, Pod};

use crate::network::PodNetwork;
use crate::{Config, binary_for, volumes};

/// An env var's value: a literal, or one of the downward-API fields the kubelet fills in
/// (anything else is left unset).
fn env_value(pod: &Pod, var: &EnvVar) -> Option<String> {
    if let Some(value) = &var.value {
        return Some(value.clone());
    }
    let field = var.value_from.as_ref()?.field_ref.as_ref()?;
    let spec = pod.spec.as_ref();
    Some(match field.field_path.as_str() {
        "metadata.name" => pod.metadata.name.clone()?,
        "metadata.namespace" => pod.metadata.namespace.clone()?,
        "metadata.uid" => pod.metadata.uid.clone()?,
        "spec.nodeName" => spec?.node_name.clone()?,
        "spec.serviceAccountName" => spec?.service_account_name.clone()?,
        _ => return None,
    })
}

/// `ip netns exec <pod netns> unshare -m sh -c '<bind mounts>; exec "$@"' sh <binary> <args>`:
/// the process sees its volumes where the pod spec mounts them, and nothing else changes on
/// the host.
pub fn command(
    config: &Config,
    pod: &Pod,
    network: &PodNetwork,
    pod_dir: &Path,
    log: &Path,
) -> anyhow::Result<tokio::process::Command> {
    let container = &pod.spec.as_ref().context("pod without spec")?.containers[0];
    let binary = binary_for(container.image.as_deref().unwrap_or("")).context("not our image")?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut script = String::new();
    for mount in container.volume_mounts.iter().flatten() {
        let mut source = volumes::volume_dir(pod_dir, &mount.name);
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = source.join(sub);
        }
        let target = quote(&mount.mount_path);
        if source.is_file() {
            script.push_str(&format!(
                "mkdir -p \"$(dirname {target})\" && touch {target} && "
            ));
        } else {
            std::fs::create_dir_all(&source)?;
            script.push_str(&format!("mkdir -p {target} && "));
        }
        let read_only = if mount.read_only == Some(true) {
            ",ro"
        } else {
            ""
        };
        script.push_str(&format!(
            "mount --bind {} {target} && mount -o remount,bind{read_only} {target} && ",
            quote(&source.to_string_lossy())
        ));
    }
    script.push_str("exec \"$@\"");

    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut command = tokio::process::Command::new("ip");
    command
        .args([
            "netns",
            "exec",
            &network.netns,
            "unshare",
            "--mount",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", &script, "sh"])
        .arg(config.binaries.join(binary))
        .args(container.command.iter().flatten().skip(1))
        .args(container.args.iter().flatten())
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOSTNAME", pod.metadata.name.as_deref().unwrap_or("pod"))
        .env("KUBERNETES_SERVICE_HOST", &config.api_host)
        .env("KUBERNETES_SERVICE_PORT", config.api_port.to_string())
        .env("RUST_LOG", "info,kube=warn")
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    for var in container.env.iter().flatten() {
        if let Some(value) = env_value(pod, var) {
            command.env(&var.name, value);
        }
    }
    Ok(command)
}
