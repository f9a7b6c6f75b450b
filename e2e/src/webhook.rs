//! The admission webhook behind the real API server, and what `kubectl apply` gets from it.
//!
//! [`start_webhook`] runs our webhook for one test namespace: registered through an ordinary
//! Service (kwok gives its pod an IP that is local in the cluster's network namespace), with a
//! certificate from dynamo-certgen. [`accepts`] and [`rejects`] are what a user sees; they
//! hold for any refusal by the API server, the schema's or the webhook's.

use std::process::Command;
use std::time::Duration;

use dynamo_webhook::admission::Kind;

use crate::manifests::graph;
use crate::ports::free_port;
use crate::{Cluster, Running, TestNamespace, assert_success, wait_until};

/// The Service the configuration points at.
pub const SERVICE: &str = "dynamo-webhook";

/// Which namespaces the webhook validates. The configuration sends it only the test's
/// namespace either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookScope {
    /// `--restrictedNamespace <ns>`.
    Restricted,
    /// Every namespace but those a namespace-restricted operator holds.
    ClusterWide,
}

/// A running webhook and its configuration; both removed when dropped.
pub struct Webhook {
    _process: Running,
    configuration: String,
    /// The plain port serving `/healthz`, `/readyz` and `/metrics` on 127.0.0.1.
    health_port: u16,
}

impl Webhook {
    /// The plain-HTTP `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, text) = crate::operator::get(self.health_port, "/metrics")
            .await
            .expect("webhook /metrics");
        assert_eq!(status, 200, "webhook /metrics:\n{text}");
        text
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = Cluster::get()
            .kubectl()
            .args([
                "delete",
                "validatingwebhookconfiguration",
                &self.configuration,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// Starts the webhook for `ns` and wires its Service, certificate and configuration; returns
/// once the API server reaches it.
pub async fn start_webhook(ns: &TestNamespace, scope: WebhookScope) -> Webhook {
    let cluster = Cluster::get();
    let port = free_port();
    assert_success("webhook workload", &ns.kubectl_apply(&workload(port)));
    let configuration = format!("{}-validating", ns.name);
    assert_success(
        "webhook configuration",
        &ns.kubectl_apply(&configuration_yaml(&ns.name, &configuration)),
    );
    let cert_dir = write_certificate(ns, &configuration).await;

    let listen = format!("0.0.0.0:{port}");
    let health_port = free_port();
    let health = format!("127.0.0.1:{health_port}");
    let mut args = vec!["--listen", &listen, "--health-probe-bind-address", &health];
    args.extend(["--cert-dir", cert_dir.to_str().unwrap()]);
    if scope == WebhookScope::Restricted {
        args.extend(["--restrictedNamespace", &ns.name]);
    }
    let process = Running::start(
        "dynamo-webhook",
        &args,
        &cluster.kubeconfig,
        &format!("webhook-{}", ns.name),
    );
    let webhook = Webhook {
        _process: process,
        configuration,
        health_port,
    };
    // Reached once a server-side dry run of an invalid graph is refused by the webhook (not
    // by the schema).
    let probe = graph("probe").backend("vllm").no_services().yaml();
    wait_until("webhook reachable", Duration::from_secs(60), || async {
        let output = ns.kubectl_stdin(
            &[
                "apply",
                "--dry-run=server",
                "--namespace",
                &ns.name,
                "-f",
                "-",
            ],
            &probe,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr.contains("admission webhook").then_some(())
    })
    .await;
    webhook
}

/// A Deployment that kwok "runs" and its Service: the pod IP is local, so the API server's
/// connection to `<pod IP>:<port>` reaches the webhook process listening on `0.0.0.0:<port>`.
fn workload(port: u16) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {SERVICE}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {SERVICE}}}
  template:
    metadata:
      labels: {{app: {SERVICE}}}
    spec:
      containers:
        - name: webhook
          image: dynamo-webhook:dev
          ports: [{{containerPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {SERVICE}
spec:
  selector: {{app: {SERVICE}}}
  ports: [{{port: 443, targetPort: {port}}}]
"#
    )
}

/// One webhook per kind, at the path the webhook serves it on, for the namespace `ns` only.
fn configuration_yaml(ns: &str, name: &str) -> String {
    let webhooks: String = Kind::ALL
        .into_iter()
        .map(|kind| {
            let lower = kind.name().to_lowercase();
            let path = kind.path();
            format!(
                r#"
  - name: v{lower}.kb.io
    clientConfig:
      service: {{name: {SERVICE}, namespace: {ns}, path: {path}, port: 443}}
    rules:
      - apiGroups: [nvidia.com]
        apiVersions: [v1alpha1]
        operations: [CREATE, UPDATE]
        resources: [{lower}s]
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
    failurePolicy: Fail
    sideEffects: None
    timeoutSeconds: 10
    admissionReviewVersions: [v1]"#
            )
        })
        .collect();
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:{webhooks}
"#
    )
}

/// The serving certificate and its CA bundle, minted by our own cert generator (as admin: its
/// RBAC is tested in the certgen tests) and written where `--cert-dir` reads them.
async fn write_certificate(ns: &TestNamespace, configuration: &str) -> std::path::PathBuf {
    let cluster = Cluster::get();
    let output = Command::new(cluster.our_binary("dynamo-certgen"))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["--namespace", &ns.name, "--service-name", SERVICE])
        .args(["--validating-configuration", configuration])
        .output()
        .unwrap();
    assert_success("dynamo-certgen", &output);
    let secret = ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("webhook-server-cert")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let cert_dir = cluster.state.join(format!("{}-certs", ns.name));
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::write(cert_dir.join("tls.crt"), &data["tls.crt"].0).unwrap();
    std::fs::write(cert_dir.join("tls.key"), &data["tls.key"].0).unwrap();
    cert_dir
}

/// `kubectl apply` of `yaml` in `ns` is admitted.
pub fn accepts(ns: &TestNamespace, yaml: &str) {
    let what = format!("{} (expected to be admitted)", describe(yaml));
    assert_success(&what, &ns.kubectl_apply(yaml));
}

/// `kubectl apply` of `yaml` in `ns` is refused, and the refusal names `field`. Returns
/// kubectl's error output, for callers that check more of it.
pub fn rejects(ns: &TestNamespace, yaml: &str, field: &str) -> String {
    let output = ns.kubectl_apply(yaml);
    let what = describe(yaml);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{what} was admitted");
    // The refusal, and the fields kubectl lists after it (one per line when there are many).
    let refusal = REFUSALS
        .iter()
        .filter_map(|marker| stderr.find(marker))
        .min()
        .map(|start| &stderr[start..])
        .unwrap_or_else(|| panic!("{what} failed, but not by a refusal:\n{stderr}"));
    assert!(
        refusal.contains(field),
        "{what}: the refusal does not name {field}:\n{stderr}"
    );
    stderr
}

/// How the API server words a refusal: a webhook's denial, or the schema's.
const REFUSALS: [&str; 2] = ["denied the request", "is invalid"];

/// `Kind name` of a manifest, for messages.
fn describe(yaml: &str) -> String {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or("manifest");
    let name = value["metadata"]["name"].as_str().unwrap_or("?");
    format!("{kind} {name}")
}
