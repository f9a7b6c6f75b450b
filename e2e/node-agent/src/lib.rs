//! The node agent: a small kubelet for the pods of our own images on the kwok node, and for
//! pods that run upstream Dynamo's runtime where it is installed ([`runtime`]). kwok leaves
//! those pods alone (see hack/cluster.sh); the agent runs each as the real binary we built
//! (or the pod's command line with the Dynamo runtime), in a network namespace of its own with the pod's IP, its volumes materialized and
//! bind-mounted where the pod spec mounts them (in a private mount namespace), the pod's
//! arguments and environment, and reports the pod's status as the kubelet would: Running and
//! Ready from its readiness probe, restarts by restartPolicy, Succeeded or Failed with the exit
//! code. Deleting the pod stops the process (SIGTERM, then SIGKILL after the grace period).

mod env;
mod launch;
pub mod network;
mod probe;
mod process;
pub mod runtime;
mod status;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use network::IpPool;
use runtime::Runtime;

/// Our images (repository without tag) and the binary each one runs.
pub const IMAGES: [(&str, &str); 3] = [
    ("ghcr.io/dynamo-rs/dynamo-operator", "dynamo-operator"),
    ("ghcr.io/dynamo-rs/dynamo-webhook", "dynamo-webhook"),
    ("ghcr.io/dynamo-rs/dynamo-certgen", "dynamo-certgen"),
];

/// The binary an image runs, when it is one of ours.
pub fn binary_for(image: &str) -> Option<&'static str> {
    let repository = image
        .rsplit_once(':')
        .map_or(image, |(r, tag)| if tag.contains('/') { image } else { r });
    IMAGES
        .iter()
        .find(|(r, _)| *r == repository)
        .map(|(_, binary)| *binary)
}

pub struct Config {
    pub client: Client,
    pub node: String,
    /// The cluster's state directory: pod directories go under `agent/`, logs under `logs/`.
    pub state: PathBuf,
    /// Where our binaries are (target/debug).
    pub binaries: PathBuf,
    /// How pods reach the API server (KUBERNETES_SERVICE_HOST / _PORT).
    pub api_host: String,
    pub api_port: u16,
    /// The node IP reported as hostIP.
    pub host_ip: String,
    /// The Dynamo runtime (hack/dynamo-runtime.sh), when installed.
    pub runtime: Option<Runtime>,
}

/// What the supervisor of a pod is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Run,
    /// Stop the process within `grace`; then delete the pod object when `delete`.
    Stop {
        grace: Duration,
        delete: bool,
    },
}

struct Supervised {
    orders: watch::Sender<Order>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Agent {
    config: Arc<Config>,
    pool: Arc<Mutex<IpPool>>,
    pods: HashMap<String, Supervised>,
}

/// Whether the agent runs `pod`: one of our images, or a Dynamo runtime pod when the
/// runtime is installed.
fn runs(config: &Config, pod: &Pod) -> bool {
    let ours = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(binary_for)
        .is_some();
    ours || (config.runtime.is_some() && runtime::runs_for_real(pod))
}

fn grace(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    // Test clusters do not wait half a minute for a process that ignores SIGTERM.
    Duration::from_secs(seconds.clamp(0, 10) as u64)
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Agent {
    pub fn new(config: Config) -> Agent {
        Agent {
            config: Arc::new(config),
            pool: Arc::new(Mutex::new(IpPool::default())),
            pods: HashMap::new(),
        }
    }

    /// Watches the node's pods until `shutdown` resolves, then stops every process.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::all(self.config.client.clone());
        let selector = format!("spec.nodeName={}", self.config.node);
        let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(node = %self.config.node, "watching pods of our images");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => self.on_pod(pod).await,
                    Some(Ok(watcher::Event::Delete(pod))) => self.on_gone(&pod),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!("pod watch: {e}"),
                    None => break,
                },
            }
        }
        tracing::info!("stopping {} pods", self.pods.len());
        for supervised in self.pods.values() {
            let _ = supervised.orders.send(Order::Stop {
                grace: Duration::from_secs(5),
                delete: false,
            });
        }
        for (_, supervised) in self.pods.drain() {
            let _ = supervised.task.await;
        }
        Ok(())
    }

    async fn on_pod(&mut self, pod: Pod) {
        if !runs(&self.config, &pod) {
            return;
        }
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let order = Order::Stop {
                grace: grace(&pod),
                delete: true,
            };
            match self.pods.get(&uid) {
                Some(supervised) if !supervised.task.is_finished() => {
                    let _ = supervised.orders.send(order);
                }
                // Not running (finished, or never started): nothing to stop.
                _ => delete_now(&self.config.client, &pod).await,
            }
            return;
        }
        if self.pods.contains_key(&uid) || finished(&pod) {
            return;
        }
        let (orders, receiver) = watch::channel(Order::Run);
        let config = self.config.clone();
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let name = format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or("")
            );
            if let Err(e) = process::supervise(config, pool, pod, receiver).await {
                tracing::error!(pod = %name, "{e:#}");
            }
        });
        self.pods.insert(uid, Supervised { orders, task });
    }

    fn on_gone(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        if let Some(supervised) = self.pods.remove(uid) {
            let _ = supervised.orders.send(Order::Stop {
                grace: grace(pod),
                delete: false,
            });
            // The task finishes on its own; dropping the handle does not cancel it.
        }
    }
}

/// Removes a pod whose process is gone, as the kubelet does once its containers stopped.
pub async fn delete_now(client: &Client, pod: &Pod) {
    let (Some(ns), Some(name)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    ) else {
        return;
    };
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let result = Api::<Pod>::namespaced(client.clone(), ns)
        .delete(name, &params)
        .await;
    // Gone already (404), or replaced by a pod of the same name (409): nothing to do.
    if let Err(e) = result
        && !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
    {
        tracing::warn!(pod = %format!("{ns}/{name}"), "final delete: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::binary_for;

    #[test]
    fn only_our_repositories_map_to_binaries() {
        assert_eq!(
            binary_for("ghcr.io/dynamo-rs/dynamo-webhook:0.1.0"),
            Some("dynamo-webhook")
        );
        assert_eq!(
            binary_for("ghcr.io/dynamo-rs/dynamo-operator"),
            Some("dynamo-operator")
        );
        assert_eq!(binary_for("dynamo-webhook:dev"), None);
        assert_eq!(binary_for("registry:5000/dynamo-rs/dynamo-certgen:1"), None);
    }
}
