//! One pod's life: network, volumes, the process (restarted by restartPolicy), readiness and
//! the status the API server shows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use super::network::{IpPool, PodNetwork};
use super::{Config, Order, binary_for, delete_now, volumes};

fn now() -> String {
    // RFC 3339 in UTC, seconds precision, without a date crate.
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output();
    output
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// What the pod's one container is doing, for its status.
#[derive(Clone, Debug)]
enum State {
    Waiting(String),
    Running {
        since: String,
        ready: bool,
    },
    Terminated {
        code: i32,
        since: String,
        at: String,
    },
}

struct Reporter {
    api: Api<Pod>,
    name: String,
    container: Container,
    host_ip: String,
    pod_ip: String,
    started: String,
    restarts: i32,
    /// The running process, reported as `containerID: process://<pid>`.
    pid: Option<u32>,
}

impl Reporter {
    async fn report(&self, state: &State, phase: &str) {
        let ready = matches!(state, State::Running { ready: true, .. });
        let container_state = match state {
            State::Waiting(reason) => json!({"waiting": {"reason": reason}}),
            State::Running { since, .. } => json!({"running": {"startedAt": since}}),
            State::Terminated { code, since, at } => json!({"terminated": {
                "exitCode": code, "reason": if *code == 0 { "Completed" } else { "Error" },
                "startedAt": since, "finishedAt": at}}),
        };
        let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": self.started});
        let status = json!({"status": {
            "phase": phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.started,
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": [{
                "name": self.container.name,
                "image": self.container.image,
                "imageID": "",
                "ready": ready,
                "started": matches!(state, State::Running { .. }),
                "restartCount": self.restarts,
                "containerID": self.pid.map(|p| format!("process://{p}")),
                "state": container_state,
            }],
        }});
        if let Err(e) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(pod = %self.name, "status update: {e}");
        }
    }
}

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
fn command(
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

/// The readiness probe's verdict: an HTTP GET answered 2xx/3xx (HTTPS and TCP probes: the
/// port accepts a connection); without a probe, running is ready.
async fn probe(container: &Container, ip: &str) -> bool {
    let Some(probe) = &container.readiness_probe else {
        return true;
    };
    let port_of = |port: &IntOrString| -> Option<i32> {
        match port {
            IntOrString::Int(n) => Some(*n),
            IntOrString::String(name) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    };
    let (port, path, http) = if let Some(get) = &probe.http_get {
        let http = get.scheme.as_deref().unwrap_or("HTTP") == "HTTP";
        (
            port_of(&get.port),
            get.path.clone().unwrap_or("/".into()),
            http,
        )
    } else if let Some(tcp) = &probe.tcp_socket {
        (port_of(&tcp.port), String::new(), false)
    } else {
        return true;
    };
    let Some(port) = port else { return false };
    let connect = tokio::net::TcpStream::connect((ip, port as u16));
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(1), connect).await else {
        return false;
    };
    if !http {
        return true;
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 16];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    match tokio::time::timeout(Duration::from_secs(1), exchange).await {
        Ok(Ok(head)) => {
            let status = String::from_utf8_lossy(&head[9..12])
                .parse::<u16>()
                .unwrap_or(0);
            (200..400).contains(&status)
        }
        _ => false,
    }
}

/// Keeps every volume current until the pod ends (Secret rotation reaches the files).
async fn sync_volumes(
    config: Arc<Config>,
    pod: Pod,
    pod_dir: PathBuf,
    mut orders: watch::Receiver<Order>,
) {
    loop {
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            // Tokens are requested once, at start: they are valid for an hour or more.
            if volume.projected.is_some() {
                continue;
            }
            match volumes::files(&config.client, &pod, volume).await {
                Ok(Some(files)) => {
                    match volumes::write(&volumes::volume_dir(&pod_dir, &volume.name), &files) {
                        Ok(true) => {
                            tracing::info!(pod = ?pod.metadata.name, volume = %volume.name, "volume updated")
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!("writing volume {}: {e:#}", volume.name),
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("volume {}: {e:#}", volume.name),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = orders.changed() => return,
        }
    }
}

/// Materializes every volume once, waiting (like ContainerCreating) for missing sources.
async fn prepare_volumes(
    config: &Config,
    pod: &Pod,
    pod_dir: &Path,
    orders: &mut watch::Receiver<Order>,
) -> anyhow::Result<bool> {
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = volumes::volume_dir(pod_dir, &volume.name);
        loop {
            match volumes::files(&config.client, pod, volume).await {
                Ok(Some(files)) => {
                    volumes::write(&dir, &files)?;
                    break;
                }
                Ok(None) => {
                    std::fs::create_dir_all(&dir)?;
                    break;
                }
                Err(e) => {
                    tracing::info!(pod = ?pod.metadata.name, "waiting for volume {}: {e:#}", volume.name);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = orders.changed() => return Ok(false),
                    }
                }
            }
        }
    }
    Ok(true)
}

async fn terminate(child: &mut tokio::process::Child, grace: Duration) -> Option<i32> {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => status.code(),
        _ => {
            let _ = child.kill().await;
            child.wait().await.ok().and_then(|s| s.code())
        }
    }
}

pub async fn supervise(
    config: Arc<Config>,
    pool: Arc<Mutex<IpPool>>,
    pod: Pod,
    mut orders: watch::Receiver<Order>,
) -> anyhow::Result<()> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(8)
        .collect();
    let spec = pod.spec.clone().context("pod without spec")?;
    let container = spec
        .containers
        .first()
        .cloned()
        .context("pod without containers")?;
    let restart_policy = spec.restart_policy.clone().unwrap_or("Always".into());
    let pod_dir = config.state.join("agent").join(format!("{ns}_{name}_{id}"));
    let log = config
        .state
        .join("logs")
        .join(format!("pod-{ns}-{name}.log"));

    let address = pool.lock().unwrap().take()?;
    let network =
        PodNetwork::create(&id, address).with_context(|| format!("network of pod {ns}/{name}"))?;
    // Recorded so `hack/cluster.sh down` can remove it even if the agent is killed.
    let record = config.state.join("agent").join("netns");
    std::fs::create_dir_all(config.state.join("agent"))?;
    let mut list = std::fs::read_to_string(&record).unwrap_or_default();
    list.push_str(&format!("{}\n", network.netns));
    std::fs::write(&record, list)?;

    let mut reporter = Reporter {
        api: Api::namespaced(config.client.clone(), &ns),
        name: name.clone(),
        container: container.clone(),
        host_ip: config.host_ip.clone(),
        pod_ip: address.to_string(),
        started: now(),
        restarts: 0,
        pid: None,
    };
    tracing::info!(pod = %format!("{ns}/{name}"), ip = %address, "starting");
    reporter
        .report(&State::Waiting("ContainerCreating".into()), "Pending")
        .await;

    let result = run_pod(
        &config,
        &pod,
        &container,
        &restart_policy,
        &network,
        &pod_dir,
        &log,
        &mut reporter,
        &mut orders,
    )
    .await;
    network.remove();
    pool.lock().unwrap().give_back(address);
    let _ = std::fs::remove_dir_all(&pod_dir);
    let order = *orders.borrow();
    if let Order::Stop { delete: true, .. } = order {
        delete_now(&config.client, &pod).await;
    }
    tracing::info!(pod = %format!("{ns}/{name}"), "stopped");
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_pod(
    config: &Arc<Config>,
    pod: &Pod,
    container: &Container,
    restart_policy: &str,
    network: &PodNetwork,
    pod_dir: &Path,
    log: &Path,
    reporter: &mut Reporter,
    orders: &mut watch::Receiver<Order>,
) -> anyhow::Result<()> {
    if !prepare_volumes(config, pod, pod_dir, orders).await? {
        return Ok(());
    }
    let syncing = tokio::spawn(sync_volumes(
        config.clone(),
        pod.clone(),
        pod_dir.to_owned(),
        orders.clone(),
    ));
    let ip = network.ip.to_string();
    let outcome = loop {
        let mut child = command(config, pod, network, pod_dir, log)?
            .spawn()
            .context("starting the process")?;
        reporter.pid = child.id();
        // For `hack/cluster.sh down`, should the agent itself be killed.
        let pid_file = config
            .state
            .join("agent")
            .join("pids")
            .join(pod.metadata.uid.as_deref().unwrap_or("pod"));
        if let (Some(parent), Some(pid)) = (pid_file.parent(), child.id()) {
            std::fs::create_dir_all(parent)?;
            std::fs::write(&pid_file, pid.to_string())?;
        }
        let since = now();
        let mut ready = false;
        reporter
            .report(
                &State::Running {
                    since: since.clone(),
                    ready,
                },
                "Running",
            )
            .await;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let exit = loop {
            tokio::select! {
                status = child.wait() => break status.ok().and_then(|s| s.code()).unwrap_or(-1),
                _ = orders.changed() => {
                    let order = *orders.borrow();
                    if let Order::Stop { grace, .. } = order {
                        let code = terminate(&mut child, grace).await;
                        tracing::info!(pod = %reporter.name, ?code, "terminated");
                    }
                    let _ = std::fs::remove_file(&pid_file);
                    syncing.abort();
                    return Ok(());
                }
                _ = tick.tick() => {
                    let now_ready = probe(container, &ip).await;
                    if now_ready != ready {
                        ready = now_ready;
                        reporter.report(&State::Running { since: since.clone(), ready }, "Running").await;
                    }
                }
            }
        };
        let _ = std::fs::remove_file(&pid_file);
        reporter.pid = None;
        let terminated = State::Terminated {
            code: exit,
            since,
            at: now(),
        };
        tracing::info!(pod = %reporter.name, exit, "process exited");
        let restart = match restart_policy {
            "Never" => false,
            "OnFailure" => exit != 0,
            _ => true,
        };
        if !restart {
            break (terminated, if exit == 0 { "Succeeded" } else { "Failed" });
        }
        reporter.report(&terminated, "Running").await;
        let backoff = Duration::from_secs(1 << reporter.restarts.clamp(0, 3));
        reporter.restarts += 1;
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = orders.changed() => { syncing.abort(); return Ok(()); }
        }
    };
    syncing.abort();
    reporter.report(&outcome.0, outcome.1).await;
    // A finished pod waits for its deletion (Job cleanup, Helm's hook delete policy).
    while orders.changed().await.is_ok() {
        let order = *orders.borrow();
        if matches!(order, Order::Stop { .. }) {
            break;
        }
    }
    Ok(())
}
