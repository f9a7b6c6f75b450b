//! The admission webhook behind a real kube-apiserver: registered through an ordinary
//! Service (kwok gives its pod an IP that is local in the cluster's network namespace), with
//! a certificate from dynamo-certgen, answering `kubectl apply`.

use std::process::Command;
use std::time::Duration;

use dynamo_e2e::{Cluster, Running, TestNamespace, assert_success, wait_until};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

const SERVICE: &str = "dynamo-webhook";

struct Webhook {
    _process: Running,
    configuration: String,
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

/// Starts the webhook for `ns` on `port`, wires Service, certificate and configuration.
/// Starts the webhook for `ns` on `port`; `restricted` validates only `ns`, otherwise it runs
/// cluster-wide (the configuration still sends it only `ns`).
async fn start_webhook(ns: &TestNamespace, port: u16, restricted: bool) -> Webhook {
    let cluster = Cluster::get();
    // A Deployment that kwok "runs": its pod IP is local, so the API server's connection to
    // <pod IP>:<port> reaches the process we start below.
    let workload = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {SERVICE}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {SERVICE}}}}}
  template:
    metadata: {{labels: {{app: {SERVICE}}}}}
    spec:
      containers: [{{name: webhook, image: dynamo-webhook:dev, ports: [{{containerPort: {port}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}}}
spec:
  selector: {{app: {SERVICE}}}
  ports: [{{port: 443, targetPort: {port}}}]
"#
    );
    assert_success("webhook workload", &ns.kubectl_apply(&workload));

    let cert_dir = cluster.state.join(format!("{}-certs", ns.name));
    std::fs::create_dir_all(&cert_dir).unwrap();
    let configuration = format!("{}-validating", ns.name);
    let paths = [
        (
            "vdynamographdeployment.kb.io",
            "dynamographdeployments",
            "/validate-nvidia-com-v1alpha1-dynamographdeployment",
        ),
        (
            "vdynamomodel.kb.io",
            "dynamomodels",
            "/validate-nvidia-com-v1alpha1-dynamomodel",
        ),
    ];
    let webhooks: String = paths
        .iter()
        .map(|(name, resource, path)| {
            format!(
                r#"
  - name: {name}
    clientConfig:
      service: {{name: {SERVICE}, namespace: {ns}, path: {path}, port: 443}}
    rules: [{{apiGroups: [nvidia.com], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [{resource}]}}]
    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
    failurePolicy: Fail
    sideEffects: None
    timeoutSeconds: 10
    admissionReviewVersions: [v1]"#,
                ns = ns.name
            )
        })
        .collect();
    let vwc = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: {configuration}\nwebhooks:{webhooks}\n"
    );
    assert_success("configuration", &ns.kubectl_apply(&vwc));

    // The certificate and its CA bundle, minted by our own cert generator (as admin here;
    // its RBAC is tested in the certgen tests).
    let output = Command::new(cluster.our_binary("dynamo-certgen"))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["--namespace", &ns.name, "--service-name", SERVICE])
        .args(["--validating-configuration", &configuration])
        .output()
        .unwrap();
    assert_success("dynamo-certgen", &output);
    let secret = ns
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get("webhook-server-cert")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    std::fs::write(cert_dir.join("tls.crt"), &data["tls.crt"].0).unwrap();
    std::fs::write(cert_dir.join("tls.key"), &data["tls.key"].0).unwrap();

    let listen = format!("0.0.0.0:{port}");
    let health = format!("127.0.0.1:{}", port + 1);
    let mut args = vec!["--listen", &listen, "--health-probe-bind-address", &health];
    args.extend(["--cert-dir", cert_dir.to_str().unwrap()]);
    if restricted {
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
    };
    // Wait until the API server reaches it: a server-side dry run of an invalid object is
    // refused by the webhook (not by the schema) once it answers.
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
            &graph("probe", "vllm", "{}"),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr.contains("admission webhook").then_some(())
    })
    .await;
    webhook
}

fn graph(name: &str, backend: &str, services: &str) -> String {
    format!(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {name}\nspec:\n  backendFramework: {backend}\n  services: {services}\n"
    )
}

fn graphs(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("nvidia.com", "v1alpha1", "DynamoGraphDeployment");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

#[tokio::test]
async fn kubectl_apply_is_admitted_or_rejected_by_the_live_webhook() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("webhook").await;
    let _webhook = start_webhook(&ns, 19443, true).await;

    // Admitted.
    let valid = graph(
        "agg",
        "vllm",
        "{Frontend: {componentType: frontend}, Worker: {componentType: worker}}",
    );
    assert_success("valid graph", &ns.kubectl_apply(&valid));

    // Rejected by a rule the schema cannot express, with the field named.
    let invalid = "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: bad\nspec:\n  services:\n    Frontend:\n      ingress: {enabled: true}\n";
    let output = ns.kubectl_apply(invalid);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("denied the request"), "{stderr}");
    assert!(
        stderr.contains("spec.services.Frontend.ingress.host"),
        "{stderr}"
    );
    assert!(graphs(&ns).get_opt("bad").await.unwrap().is_none());

    // An update that changes the backend is rejected; the stored object is unchanged.
    let before = graphs(&ns).get("agg").await.unwrap();
    let changed = graph(
        "agg",
        "sglang",
        "{Frontend: {componentType: frontend}, Worker: {componentType: worker}}",
    );
    let output = ns.kubectl_apply(&changed);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("spec.backendFramework"), "{stderr}");
    let after = graphs(&ns).get("agg").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data["spec"]["backendFramework"], "vllm");

    // An object being deleted stays updatable so its finalizer can be removed, even by an
    // update the rules would otherwise refuse.
    let patch = serde_json::json!({"metadata": {"finalizers": ["e2e.dynamo/hold"]}});
    graphs(&ns)
        .patch("agg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    graphs(&ns)
        .delete("agg", &Default::default())
        .await
        .unwrap();
    let release = serde_json::json!({"metadata": {"finalizers": null}, "spec": {"backendFramework": "trtllm"}});
    graphs(&ns)
        .patch("agg", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    wait_until("graph deleted", Duration::from_secs(20), || async {
        graphs(&ns)
            .get_opt("agg")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cluster_wide_webhook_leaves_a_namespace_with_a_live_scope_marker_alone() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("webhook-scope").await;
    let _webhook = start_webhook(&ns, 19463, false).await;
    let invalid = |name: &str| {
        format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {name}\nspec:\n  services:\n    Frontend:\n      ingress: {{enabled: true}}\n"
        )
    };
    assert!(
        !ns.kubectl_apply(&invalid("before")).status.success(),
        "validated without a marker"
    );

    // A namespace-restricted operator's marker: this namespace is its webhook's business.
    let leases: Api<Lease> = ns.api();
    let marker = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("dynamo-operator-namespace-scope".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("namespace-restricted-operator-test".into()),
            lease_duration_seconds: Some(30),
            acquire_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    leases.create(&Default::default(), &marker).await.unwrap();
    let started = std::time::Instant::now();
    wait_until("marker honoured", Duration::from_secs(10), || async {
        ns.kubectl_apply(&invalid("during"))
            .status
            .success()
            .then_some(())
    })
    .await;
    println!("marker honoured after {:?}", started.elapsed());

    // Marker deleted: validation resumes.
    leases
        .delete("dynamo-operator-namespace-scope", &Default::default())
        .await
        .unwrap();
    wait_until("validation resumed", Duration::from_secs(10), || async {
        (!ns.kubectl_apply(&invalid("after")).status.success()).then_some(())
    })
    .await;
}
