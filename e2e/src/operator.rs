//! The controller-manager as a process of a test: started with free ports for its probes and
//! metrics, and asked what it wrote; plus waiting for what it makes of a graph.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::DynamoGraphDeployment;
use kube::Api;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ports::free_port;
use crate::{Cluster, Running, TestNamespace, wait_until};

/// The operator restricted to `ns` (`--restrictedNamespace`), as admin, with `args` added.
pub fn start_operator(ns: &TestNamespace, args: &[&str]) -> Operator {
    Operator::start(ns, Some(&ns.name), &Cluster::get().kubeconfig, args)
}

/// The operator restricted to `ns`, authenticated by `kubeconfig` (a ServiceAccount's, to
/// test its RBAC).
pub fn start_operator_as(ns: &TestNamespace, kubeconfig: &Path, args: &[&str]) -> Operator {
    Operator::start(ns, Some(&ns.name), kubeconfig, args)
}

/// A cluster-wide operator (every namespace), as admin; `ns` only names its log. Its test
/// must be alone in its test binary: it reconciles the other tests' namespaces too.
pub fn start_cluster_wide_operator(ns: &TestNamespace, args: &[&str]) -> Operator {
    Operator::start(ns, None, &Cluster::get().kubeconfig, args)
}

/// A running operator; stopped when dropped.
pub struct Operator {
    process: Running,
    health: u16,
    metrics: u16,
}

impl Operator {
    fn start(
        ns: &TestNamespace,
        restricted_to: Option<&str>,
        kubeconfig: &Path,
        args: &[&str],
    ) -> Operator {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let (health, metrics) = (free_port(), free_port());
        let health_address = format!("127.0.0.1:{health}");
        let metrics_address = format!("127.0.0.1:{metrics}");
        let mut all = vec![
            "--health-probe-bind-address",
            &health_address,
            "--metrics-bind-address",
            &metrics_address,
        ];
        if let Some(namespace) = restricted_to {
            all.extend(["--restrictedNamespace", namespace]);
        }
        all.extend_from_slice(args);
        let log = format!(
            "operator-{}-{}",
            ns.name,
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        Operator {
            process: Running::start("dynamo-operator", &all, kubeconfig, &log),
            health,
            metrics,
        }
    }

    /// Waits until `/readyz` answers 200: its caches are synced (a standby is ready too).
    pub async fn ready(&self) {
        wait_until("operator ready", Duration::from_secs(30), || async {
            matches!(get(self.health, "/readyz").await, Some((200, _))).then_some(())
        })
        .await;
    }

    /// The plain-HTTP `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (_, text) = get(self.metrics, "/metrics").await.expect("metrics");
        text
    }

    /// `dynamo_operator_api_writes_total`: every create, patch and delete it made.
    pub async fn writes(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix("dynamo_operator_api_writes_total "))
            .and_then(|n| n.trim().parse().ok())
            .expect("dynamo_operator_api_writes_total")
    }

    /// Waits until it has written nothing for `quiet`.
    pub async fn settle(&self, quiet: Duration) {
        let mut last = self.writes().await;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.writes().await;
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The exit status, if the process has ended by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// SIGTERM and wait: a clean shutdown (lease released, namespace marker deleted).
    pub fn terminate(&mut self) {
        self.process.terminate();
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// `GET path` on a loopback port; the status code and the whole response.
/// A plain HTTP GET on 127.0.0.1: the status and the whole response.
pub(crate) async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

/// Waits (90 s) until graph `name` has `state` (`pending`, `successful` or `failed`) for its
/// latest generation.
pub async fn wait_graph_state(
    ns: &TestNamespace,
    name: &str,
    state: &str,
) -> DynamoGraphDeployment {
    wait_graph(ns, name, state, |_| true).await
}

/// Waits (90 s) until graph `name` is `successful` and `Ready` for its latest generation.
pub async fn wait_graph_ready(ns: &TestNamespace, name: &str) -> DynamoGraphDeployment {
    wait_graph(ns, name, "successful", |graph| {
        graph
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await
}

async fn wait_graph(
    ns: &TestNamespace,
    name: &str,
    state: &str,
    also: impl Fn(&DynamoGraphDeployment) -> bool,
) -> DynamoGraphDeployment {
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    wait_until(
        &format!("{name} {state}"),
        Duration::from_secs(90),
        || async {
            let graph = graphs.get(name).await.ok()?;
            let status = graph.status.as_ref()?;
            let current = status.observed_generation == graph.metadata.generation;
            (current && status.state.as_deref() == Some(state) && also(&graph)).then_some(graph)
        },
    )
    .await
}
