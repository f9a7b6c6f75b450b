//! The command line of a pod's process, in the pod's network namespace, with its volumes
//! bind-mounted where the pod spec mounts them and the pod's arguments and environment: the
//! binary of our image, or the pod's own command line run by the Dynamo runtime
//! ([`crate::runtime`]).

use std::path::Path;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;

use crate::env::expand;
use crate::network::PodNetwork;
use crate::{Config, binary_for, runtime, volumes};

/// `ip netns exec <pod netns> unshare -m sh -c '<bind mounts>; cd <dir>; exec "$@"' sh <argv>`:
/// the process sees its volumes where the pod spec mounts them, and nothing else changes on
/// the host. `env` is the container's resolved environment ([`crate::env::resolve`]).
pub fn command(
    config: &Config,
    pod: &Pod,
    network: &PodNetwork,
    pod_dir: &Path,
    log: &Path,
    env: &[(String, String)],
) -> anyhow::Result<tokio::process::Command> {
    let container = &pod.spec.as_ref().context("pod without spec")?.containers[0];
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let dynamo = runtime::runs_for_real(pod);
    let (argv, image_env, forced_env) = if dynamo {
        let runtime = config
            .runtime
            .as_ref()
            .context("a Dynamo runtime pod, but no runtime is installed")?;
        let argv: Vec<String> = runtime::argv(container)
            .iter()
            .map(|a| expand(a, lookup))
            .collect();
        runtime.prepare(pod_dir, &argv)?;
        (
            argv,
            runtime.image_env(pod_dir),
            runtime.forced_env(pod_dir),
        )
    } else {
        let binary =
            binary_for(container.image.as_deref().unwrap_or("")).context("not our image")?;
        let argv = std::iter::once(config.binaries.join(binary).display().to_string())
            .chain(
                container
                    .command
                    .iter()
                    .flatten()
                    .skip(1)
                    .chain(container.args.iter().flatten())
                    .map(|a| expand(a, lookup)),
            )
            .collect();
        let image_env = vec![
            (
                "PATH".to_owned(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ),
            ("RUST_LOG".to_owned(), "info,kube=warn".to_owned()),
        ];
        (argv, image_env, Vec::new())
    };
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut script = String::new();
    let mounts = container.volume_mounts.iter().flatten();
    if dynamo
        && let Some(runtime) = &config.runtime
        && !mounts
            .clone()
            .any(|m| m.mount_path.trim_end_matches('/') == "/workspace")
    {
        script.push_str(&format!(
            "mkdir -p /workspace && mount --bind {} /workspace && ",
            quote(&runtime.workspace().to_string_lossy())
        ));
    }
    for mount in mounts {
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
    if let Some(dir) = container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        script.push_str(&format!("mkdir -p {0} && cd {0} && ", quote(dir)));
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
        .args(&argv)
        .env_clear()
        .env("HOSTNAME", pod.metadata.name.as_deref().unwrap_or("pod"))
        .env("KUBERNETES_SERVICE_HOST", &config.api_host)
        .env("KUBERNETES_SERVICE_PORT", config.api_port.to_string())
        .envs(image_env)
        .envs(env.iter().cloned())
        .envs(forced_env)
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    Ok(command)
}
