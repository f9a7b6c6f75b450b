//! One pod's life: network, volumes, the process (restarted by restartPolicy), readiness and
//! the status the API server shows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use tokio::sync::watch;

use crate::launch::command;
use crate::network::{IpPool, PodNetwork};
use crate::probe::{Tracker, probe};
use crate::status::{Reporter, State, now};
use crate::{Config, Order, delete_now, env, volumes};

/// Runs `pod` until it is stopped: takes a pod IP and a network namespace, runs the process
/// (see [`PodRun`]), then gives everything back and deletes the pod when that was ordered.
pub async fn supervise(
    config: Arc<Config>,
    pool: Arc<Mutex<IpPool>>,
    pod: Pod,
    mut orders: watch::Receiver<Order>,
) -> anyhow::Result<()> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let id = short_id(&pod);
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let container = spec.containers.first().context("pod without containers")?;
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let pod_dir = config.state.join("agent").join(format!("{ns}_{name}_{id}"));
    let log = config
        .state
        .join("logs")
        .join(format!("pod-{ns}-{name}.log"));

    let address = pool.lock().unwrap().take()?;
    let network =
        PodNetwork::create(&id, address).with_context(|| format!("network of pod {ns}/{name}"))?;
    record_netns(&config, &network)?;

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

    let run = PodRun {
        config: &config,
        pod: &pod,
        container,
        restart_policy,
        network: &network,
        pod_dir: &pod_dir,
        log: &log,
    };
    let result = run.run(&mut reporter, &mut orders).await;
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

/// The first 8 hex digits of the pod's uid: short enough for interface names.
fn short_id(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    uid.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(8)
        .collect()
}

/// Records the pod's network namespace so `hack/cluster.sh down` can remove it even if the
/// agent is killed.
fn record_netns(config: &Config, network: &PodNetwork) -> anyhow::Result<()> {
    let record = config.state.join("agent").join("netns");
    std::fs::create_dir_all(config.state.join("agent"))?;
    let mut list = std::fs::read_to_string(&record).unwrap_or_default();
    list.push_str(&format!("{}\n", network.netns));
    std::fs::write(&record, list)?;
    Ok(())
}

/// Everything fixed about one pod's process, for its whole life.
struct PodRun<'a> {
    config: &'a Arc<Config>,
    pod: &'a Pod,
    container: &'a Container,
    restart_policy: &'a str,
    network: &'a PodNetwork,
    pod_dir: &'a Path,
    log: &'a Path,
}

/// How one run of the process ended.
enum Ended {
    /// It exited by itself.
    Exited { code: i32, since: String },
    /// The pod is being stopped; the process is gone.
    Stopped,
}

impl PodRun<'_> {
    /// Volumes first, then the process until the pod is stopped or the process is done for
    /// good; a finished pod reports its final state and waits for its deletion.
    async fn run(
        &self,
        reporter: &mut Reporter,
        orders: &mut watch::Receiver<Order>,
    ) -> anyhow::Result<()> {
        if !prepare_volumes(self.config, self.pod, self.pod_dir, orders).await? {
            return Ok(());
        }
        let syncing = AbortOnDrop(tokio::spawn(sync_volumes(
            self.config.clone(),
            self.pod.clone(),
            self.pod_dir.to_owned(),
            orders.clone(),
        )));
        let Some((last, phase)) = self.run_with_restarts(reporter, orders).await? else {
            return Ok(());
        };
        drop(syncing);
        reporter.report(&last, phase).await;
        // A finished pod waits for its deletion (Job cleanup, Helm's hook delete policy).
        while orders.changed().await.is_ok() {
            let order = *orders.borrow();
            if matches!(order, Order::Stop { .. }) {
                break;
            }
        }
        Ok(())
    }

    /// Runs the process again after each exit the restart policy restarts, with a growing
    /// delay; `None` when the pod was stopped, else the final state and phase.
    async fn run_with_restarts(
        &self,
        reporter: &mut Reporter,
        orders: &mut watch::Receiver<Order>,
    ) -> anyhow::Result<Option<(State, &'static str)>> {
        loop {
            let Ended::Exited { code, since } = self.run_once(reporter, orders).await? else {
                return Ok(None);
            };
            let terminated = State::Terminated {
                code,
                since,
                at: now(),
            };
            tracing::info!(pod = %reporter.name, exit = code, "process exited");
            if !restarts(self.restart_policy, code) {
                let phase = if code == 0 { "Succeeded" } else { "Failed" };
                return Ok(Some((terminated, phase)));
            }
            reporter.report(&terminated, "Running").await;
            let backoff = Duration::from_secs(1 << reporter.restarts.clamp(0, 3));
            reporter.restarts += 1;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = orders.changed() => return Ok(None),
            }
        }
    }

    /// The container's environment, waiting (CreateContainerConfigError, as the kubelet
    /// reports it) while a Secret or ConfigMap it needs is missing; `None` when the pod was
    /// stopped meanwhile.
    async fn environment(
        &self,
        reporter: &mut Reporter,
        orders: &mut watch::Receiver<Order>,
    ) -> Option<Vec<(String, String)>> {
        let ip = self.network.ip.to_string();
        let mut reported = false;
        loop {
            let resolved = env::resolve(
                &self.config.client,
                self.pod,
                self.container,
                &ip,
                &self.config.host_ip,
            )
            .await;
            match resolved {
                Ok(vars) => return Some(vars),
                Err(env::ConfigError(message)) => {
                    if !reported {
                        tracing::info!(pod = %reporter.name, "waiting: {message}");
                        reporter
                            .report(
                                &State::Waiting("CreateContainerConfigError".into()),
                                "Pending",
                            )
                            .await;
                        reported = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = orders.changed() => return None,
            }
        }
    }

    /// One run of the process: started, reported Running, probed as the kubelet would
    /// ([`Tracker`]) until it exits, fails its liveness or startup probe (then it is
    /// terminated and counts as exited with 137), or the pod is stopped (then it is
    /// terminated within the grace period).
    async fn run_once(
        &self,
        reporter: &mut Reporter,
        orders: &mut watch::Receiver<Order>,
    ) -> anyhow::Result<Ended> {
        let Some(vars) = self.environment(reporter, orders).await else {
            return Ok(Ended::Stopped);
        };
        let mut child = command(
            self.config,
            self.pod,
            self.network,
            self.pod_dir,
            self.log,
            &vars,
        )?
        .spawn()
        .context("starting the process")?;
        reporter.pid = child.id();
        let pid_file = self.pid_file();
        if let (Some(parent), Some(pid)) = (pid_file.parent(), child.id()) {
            std::fs::create_dir_all(parent)?;
            std::fs::write(&pid_file, pid.to_string())?;
        }
        let since = now();
        let mut ready = false;
        let running = |ready| State::Running {
            since: since.clone(),
            ready,
        };
        reporter.report(&running(ready), "Running").await;
        let ip = self.network.ip.to_string();
        let started_at = Instant::now();
        let mut startup = self
            .container
            .startup_probe
            .as_ref()
            .map(|p| Tracker::new(p, started_at, false));
        let mut liveness = self
            .container
            .liveness_probe
            .as_ref()
            .map(|p| Tracker::new(p, started_at, true));
        let mut readiness = self
            .container
            .readiness_probe
            .as_ref()
            .map(|p| Tracker::new(p, started_at, false));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let grace = Duration::from_secs(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .clamp(0, 10) as u64,
        );
        let code = loop {
            tokio::select! {
                status = child.wait() => break status.ok().and_then(|s| s.code()).unwrap_or(-1),
                _ = orders.changed() => {
                    let order = *orders.borrow();
                    if let Order::Stop { grace, .. } = order {
                        let code = terminate(&mut child, grace).await;
                        tracing::info!(pod = %reporter.name, ?code, "terminated");
                    }
                    let _ = std::fs::remove_file(&pid_file);
                    return Ok(Ended::Stopped);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    // The startup probe first: liveness and readiness wait for its success.
                    if let Some(tracker) = startup.as_mut().filter(|t| !t.verdict) {
                        if tracker.due(now) {
                            let ok = probe(&tracker.probe, self.container, &ip).await;
                            tracker.record(ok, now);
                            if tracker.exhausted() {
                                tracing::info!(pod = %reporter.name, "startup probe failed: restarting");
                                terminate(&mut child, grace).await;
                                break 137;
                            }
                        }
                        continue;
                    }
                    if let Some(tracker) = liveness.as_mut().filter(|t| t.due(now)) {
                        let ok = probe(&tracker.probe, self.container, &ip).await;
                        if !tracker.record(ok, now) {
                            tracing::info!(pod = %reporter.name, "liveness probe failed: restarting");
                            terminate(&mut child, grace).await;
                            break 137;
                        }
                    }
                    let now_ready = match readiness.as_mut() {
                        None => true,
                        Some(tracker) if tracker.due(now) => {
                            let ok = probe(&tracker.probe, self.container, &ip).await;
                            tracker.record(ok, now)
                        }
                        Some(tracker) => tracker.verdict,
                    };
                    if now_ready != ready {
                        ready = now_ready;
                        reporter.report(&running(ready), "Running").await;
                    }
                }
            }
        };
        let _ = std::fs::remove_file(&pid_file);
        reporter.pid = None;
        Ok(Ended::Exited { code, since })
    }

    /// Where the process's pid is kept for `hack/cluster.sh down`, should the agent itself be
    /// killed.
    fn pid_file(&self) -> PathBuf {
        let uid = self.pod.metadata.uid.as_deref().unwrap_or("pod");
        self.config.state.join("agent").join("pids").join(uid)
    }
}

/// Whether `restartPolicy` starts the process again after it exited with `code`.
fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Aborts the task when dropped, so volume syncing ends with the process on every path.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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

/// SIGTERM, then SIGKILL once `grace` has passed; the exit code when there is one.
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

#[cfg(test)]
mod tests {
    use super::restarts;

    #[test]
    fn the_restart_policy_decides_by_exit_code() {
        assert!(restarts("Always", 0));
        assert!(restarts("Always", 1));
        assert!(!restarts("OnFailure", 0));
        assert!(restarts("OnFailure", 2));
        assert!(!restarts("Never", 1));
        // The API server defaults the policy; an unknown one behaves like Always.
        assert!(restarts("", 0));
    }
}
