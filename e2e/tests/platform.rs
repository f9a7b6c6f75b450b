//! The platform as a user meets it: `helm install` of our charts with the webhook enabled on
//! the local control plane, where the node agent runs the operator, the webhook and the
//! cert-generator hook Jobs as the real binaries. Then kubectl is admitted or rejected by the
//! live webhook, the operator reconciles, upgrades keep or repair the certificate, processes
//! are killed and come back, and restricted installs coexist.
//!
//! One sequential test, one phase after another on a single install (the expensive part): a
//! cluster-wide install is seen by every namespace.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::certificates::{near_expiry_certificate, pem_to_der, wait_served};
use dynamo_e2e::chart;
use dynamo_e2e::manifests::{example, graph};
use dynamo_e2e::operator::wait_graph_ready;
use dynamo_e2e::platform::{self, Installed, helm, helm_chart, ready};
use dynamo_e2e::webhook::rejects;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};

const RELEASE: &str = "dp";
const FULL: &str = "dp-dynamo-operator";

#[tokio::test]
async fn helm_install_wires_operator_webhook_and_certificates_together() {
    let platform = Platform::install().await;
    platform.admits_and_reconciles_the_examples().await;
    platform.rejects_invalid_manifests_naming_the_field().await;
    platform.upgrade_keeps_the_certificate().await;
    platform.rotation_keeps_admissions_passing().await;
    platform.upgrade_repairs_a_corrupted_certificate().await;
    platform.killed_webhooks_fail_closed_and_come_back().await;
    platform.a_killed_operator_comes_back_and_converges().await;
    a_second_cluster_wide_install_is_refused().await;
    platform.uninstall_keeps_the_users_graphs().await;
    two_restricted_installs_run_side_by_side().await;
}

/// The cluster-wide install of this test and the namespaces it serves.
struct Platform {
    /// First, so the release is uninstalled before its namespace is deleted.
    _installed: Installed,
    system: TestNamespace,
    users: TestNamespace,
    secrets: Api<Secret>,
    configurations: Api<ValidatingWebhookConfiguration>,
    configuration: String,
}

impl Platform {
    /// `helm install --wait`: the pre-install Job mints the Secret, the post-install Job fills
    /// the webhooks with its CA, and the operator and webhook pods are Ready.
    async fn install() -> Platform {
        let cluster = Cluster::get();
        cluster.install_crds().await;
        let system = TestNamespace::new("platform").await;
        let users = TestNamespace::new("users").await;
        let client = cluster.client().await;
        let platform = Platform {
            _installed: Installed {
                release: RELEASE,
                namespace: system.name.clone(),
            },
            secrets: Api::namespaced(client.clone(), &system.name),
            configurations: Api::all(client),
            configuration: format!("{FULL}-validating"),
            system,
            users,
        };
        let started = Instant::now();
        assert_success("helm install", &platform.helm_chart("install"));
        eprintln!("helm install --wait: {:?}", started.elapsed());

        let secret = platform.secret().await;
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "dynamo-certgen",
            "the Secret was not written by our cert generator"
        );
        let ca = secret.data.as_ref().unwrap()["ca.crt"].0.clone();
        let configuration = platform
            .configurations
            .get(&platform.configuration)
            .await
            .unwrap();
        let webhooks = configuration.webhooks.clone().unwrap_or_default();
        assert_eq!(
            webhooks.len(),
            3,
            "the post-install Job did not add the webhooks"
        );
        for webhook in &webhooks {
            assert_eq!(
                webhook.client_config.ca_bundle.as_ref().map(|b| &b.0),
                Some(&ca),
                "{}",
                webhook.name
            );
        }
        let ssh = platform.secrets.get("mpi-run-ssh-secret").await.unwrap();
        assert!(ssh.data.as_ref().unwrap().contains_key("private.key.pub"));
        for component in ["manager", "webhook"] {
            let pods = pods(&platform.system.name, component).await;
            assert!(
                !pods.is_empty() && pods.iter().all(ready),
                "{component} pods not Ready"
            );
        }
        platform
    }

    /// Two graphs and a LoRA model are admitted; the graphs become Ready. (Two: the fake
    /// node's eight GPUs do not fit every example at once.)
    async fn admits_and_reconciles_the_examples(&self) {
        for name in ["vllm-agg", "sglang-agg"] {
            assert_success(
                name,
                &self.users.kubectl_apply(&example(&format!("{name}.yaml"))),
            );
        }
        assert_success(
            "LoRA model",
            &self.users.kubectl_apply(&example("dynamomodel-lora.yaml")),
        );
        for name in ["vllm-agg", "sglang-agg"] {
            wait_graph_ready(&self.users, name).await;
        }
    }

    /// Each refusal names the field; a rejected update leaves the stored object as it was.
    async fn rejects_invalid_manifests_naming_the_field(&self) {
        let users = &self.users;
        let agg = example("vllm-agg.yaml");
        rejects(
            users,
            &agg.replace("name: vllm-agg", "name: bad-enum")
                .replace("backendFramework: vllm", "backendFramework: tensorflow"),
            "spec.backendFramework",
        );
        rejects(
            users,
            &graph("empty").backend("vllm").no_services().yaml(),
            "spec.services",
        );
        let many = (0..26).fold(graph("many").backend("vllm"), |graph, i| {
            graph.service(&format!("S{i}"), "componentType: worker\nreplicas: 1")
        });
        rejects(users, &many.yaml(), "spec.services");

        let graphs: Api<DynamoGraphDeployment> = users.api();
        let before = graphs
            .get("vllm-agg")
            .await
            .unwrap()
            .metadata
            .resource_version;
        let refusal = rejects(
            users,
            &agg.replace("backendFramework: vllm", "backendFramework: sglang"),
            "spec.backendFramework",
        );
        assert!(refusal.contains("denied the request"), "{refusal}");
        assert!(refusal.contains("immutable"), "{refusal}");
        let refusal = rejects(
            users,
            &agg.replace(
                "  services:\n",
                "  services:\n    Extra:\n      componentType: worker\n      replicas: 1\n",
            ),
            "spec.services",
        );
        assert!(refusal.contains("denied the request"), "{refusal}");
        let after = graphs
            .get("vllm-agg")
            .await
            .unwrap()
            .metadata
            .resource_version;
        assert_eq!(after, before);

        rejects(users, LORA_WITHOUT_SOURCE, "spec.source");
    }

    /// helm upgrade reruns the cert generator, which writes nothing: no Secret write, no
    /// caBundle change.
    async fn upgrade_keeps_the_certificate(&self) {
        let before = self.versions().await;
        assert_success("helm upgrade", &self.helm_chart("upgrade"));
        let (secret, configuration) = self.versions().await;
        assert_eq!(secret, before.0, "upgrade rewrote the Secret");
        assert_eq!(
            configuration, before.1,
            "upgrade rewrote the webhook configuration"
        );
    }

    /// A certificate inside the renewal window is renewed by the next upgrade; admissions keep
    /// passing while the webhook switches certificates.
    async fn rotation_keeps_admissions_passing(&self) {
        let system = &self.system.name;
        let service = format!("{FULL}-webhook-service");
        let short = near_expiry_certificate(&self.secret().await, &service, system);
        set_secret_key(&self.secrets, "tls.crt", &short).await;
        wait_served(
            system,
            RELEASE,
            &pem_to_der(&short),
            "the webhook serving the short-lived certificate",
        )
        .await;
        let load = AdmissionLoad::start(&self.users).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_success("helm upgrade (rotation)", &self.helm_chart("upgrade"));
        let renewed = self.stored_certificate().await;
        assert_ne!(
            renewed, short,
            "the short-lived certificate was not renewed"
        );
        wait_served(
            system,
            RELEASE,
            &pem_to_der(&renewed),
            "the webhook serving the renewed certificate",
        )
        .await;
        // Some admissions after the switch as well.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (admitted, failures) = load.finish().await;
        eprintln!("rotation: {admitted} admissions, {} failed", failures.len());
        assert!(admitted >= 10, "too few admissions to tell ({admitted})");
        assert!(
            failures.is_empty(),
            "admissions failed during rotation: {failures:?}"
        );
    }

    /// A corrupted certificate Secret is repaired by the next upgrade.
    async fn upgrade_repairs_a_corrupted_certificate(&self) {
        set_secret_key(&self.secrets, "tls.crt", b"garbage").await;
        assert_success("helm upgrade (repair)", &self.helm_chart("upgrade"));
        let repaired = self.stored_certificate().await;
        assert!(
            repaired.starts_with(b"-----BEGIN CERTIFICATE-----"),
            "not repaired"
        );
        wait_served(
            &self.system.name,
            RELEASE,
            &pem_to_der(&repaired),
            "the webhook serving the repaired certificate",
        )
        .await;
    }

    /// With both webhook processes killed, a write fails clearly (failurePolicy Fail) and
    /// stores nothing; the agent restarts them and admission resumes.
    async fn killed_webhooks_fail_closed_and_come_back(&self) {
        for pod in pods(&self.system.name, "webhook").await {
            kill_processes(&pod);
        }
        let probe = example("vllm-agg.yaml").replace("name: vllm-agg", "name: while-down");
        let failed = wait_until(
            "a write refused while the webhook is down",
            Duration::from_secs(10),
            || async {
                let output = self.users.kubectl_apply(&probe);
                (!output.status.success()).then(|| stderr(&output))
            },
        )
        .await;
        assert!(failed.contains("failed calling webhook"), "{failed}");
        let graphs: Api<DynamoGraphDeployment> = self.users.api();
        assert!(
            graphs.get_opt("while-down").await.unwrap().is_none(),
            "stored despite the failed admission"
        );
        wait_until(
            "webhook restarted and admitting",
            Duration::from_secs(30),
            || async {
                self.users
                    .kubectl_apply(&probe)
                    .status
                    .success()
                    .then_some(())
            },
        )
        .await;
        let restarted = pods(&self.system.name, "webhook").await;
        assert!(
            restarted.iter().all(|p| restarts(p) >= 1),
            "the agent did not restart the webhooks"
        );
    }

    /// The operator killed: the restarted one applies a scale change, with no duplicates.
    async fn a_killed_operator_comes_back_and_converges(&self) {
        for pod in pods(&self.system.name, "manager").await {
            kill_processes(&pod);
        }
        let agg = example("vllm-agg.yaml");
        let scaled = agg.replace(
            "      componentType: frontend\n      replicas: 1",
            "      componentType: frontend\n      replicas: 2",
        );
        assert_ne!(scaled, agg);
        assert_success("scale", &self.users.kubectl_apply(&scaled));
        let deployments: Api<Deployment> = self.users.api();
        wait_until(
            "the frontend scaled by the restarted operator",
            Duration::from_secs(60),
            || async {
                let d = deployments.get("vllm-agg-frontend").await.ok()?;
                (d.spec?.replicas == Some(2)).then_some(())
            },
        )
        .await;
        let names: Vec<String> = deployments
            .list(&ListParams::default().labels("nvidia.com/dynamo-graph-deployment-name=vllm-agg"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|d| d.metadata.name)
            .collect();
        assert_eq!(names.len(), 2, "duplicates or losses: {names:?}");
    }

    /// helm uninstall removes our objects; the CRDs and the users' graphs stay.
    async fn uninstall_keeps_the_users_graphs(&self) {
        let system = &self.system.name;
        assert_success(
            "helm uninstall",
            &helm(&["uninstall", RELEASE, "--namespace", system, "--wait"]),
        );
        assert!(
            self.configurations
                .get_opt(&self.configuration)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            pods(system, "manager").await.is_empty() && pods(system, "webhook").await.is_empty()
        );
        let graphs: Api<DynamoGraphDeployment> = self.users.api();
        assert!(
            graphs.get_opt("vllm-agg").await.unwrap().is_some(),
            "uninstall lost a user's graph"
        );
    }

    /// `helm <verb>` of this release, waiting for it.
    fn helm_chart(&self, verb: &str) -> Output {
        helm_chart(verb, RELEASE, &self.system.name, &[])
    }

    async fn secret(&self) -> Secret {
        self.secrets.get("webhook-server-cert").await.unwrap()
    }

    /// `tls.crt` of the certificate Secret.
    async fn stored_certificate(&self) -> Vec<u8> {
        self.secret().await.data.unwrap()["tls.crt"].0.clone()
    }

    /// The resource versions of the certificate Secret and the webhook configuration.
    async fn versions(&self) -> (Option<String>, Option<String>) {
        let configuration = self.configurations.get(&self.configuration).await.unwrap();
        (
            self.secret().await.metadata.resource_version,
            configuration.metadata.resource_version,
        )
    }
}

/// While the cluster-wide release is installed, a second one is refused, naming it.
async fn a_second_cluster_wide_install_is_refused() {
    let other = TestNamespace::new("platform-b").await;
    let refused = helm_chart("install", "second", &other.name, &["--dry-run=server"]);
    assert!(
        !refused.status.success(),
        "a second cluster-wide install was allowed"
    );
    assert!(
        stderr(&refused).contains(&format!("\"{RELEASE}\"")),
        "{}",
        stderr(&refused)
    );
}

/// Two restricted installs, each managing its own namespace, run side by side.
async fn two_restricted_installs_run_side_by_side() {
    let tenant_a = TestNamespace::new("tenant-a").await;
    let tenant_b = TestNamespace::new("tenant-b").await;
    let _tenants = [
        Installed {
            release: "ta",
            namespace: tenant_a.name.clone(),
        },
        Installed {
            release: "tb",
            namespace: tenant_b.name.clone(),
        },
    ];
    for (release, ns) in [("ta", &tenant_a), ("tb", &tenant_b)] {
        let restricted = [
            "--set",
            "dynamo-operator.namespaceRestriction.enabled=true",
            "--set",
            "dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false",
        ];
        assert_success(
            &format!("restricted install {release}"),
            &helm_chart("install", release, &ns.name, &restricted),
        );
    }
    let agg = example("vllm-agg.yaml");
    assert_success("graph in tenant a", &tenant_a.kubectl_apply(&agg));
    wait_graph_ready(&tenant_a, "vllm-agg").await;
    assert_success("graph in tenant b", &tenant_b.kubectl_apply(&agg));
    let refusal = rejects(
        &tenant_b,
        &agg.replace("backendFramework: vllm", "backendFramework: sglang"),
        "spec.backendFramework",
    );
    assert!(refusal.contains("denied the request"), "{refusal}");
    for (release, ns) in [("ta", &tenant_a), ("tb", &tenant_b)] {
        assert_success(
            "uninstall restricted",
            &helm(&["uninstall", release, "--namespace", &ns.name, "--wait"]),
        );
    }
}

const LORA_WITHOUT_SOURCE: &str = "
apiVersion: nvidia.com/v1alpha1
kind: DynamoModel
metadata:
  name: no-uri
spec:
  modelName: m
  baseModelName: b
  modelType: lora
";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// SIGKILL to the processes of a pod the node agent runs.
fn kill_processes(pod: &Pod) {
    for pid in pod_pids(pod) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
    }
}

/// The process of a pod the node agent runs (its `containerID: process://<pid>`).
fn pod_pids(pod: &Pod) -> Vec<String> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.container_id.as_deref()?.strip_prefix("process://"))
        .map(str::to_owned)
        .collect()
}

async fn pods(ns: &str, component: &str) -> Vec<Pod> {
    platform::pods(ns, RELEASE, component).await
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

/// Server-side dry-run creates of a graph in a loop: every one passes admission (or fails).
struct AdmissionLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AdmissionLoad {
    async fn start(ns: &TestNamespace) -> AdmissionLoad {
        let graphs: Api<DynamoGraphDeployment> = ns.api();
        let mut graph: DynamoGraphDeployment =
            serde_yaml::from_str(&example("vllm-agg.yaml")).unwrap();
        graph.metadata.name = Some("load-probe".into());
        let (stop, ok) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let params = PostParams {
                dry_run: true,
                ..Default::default()
            };
            while !s.load(Ordering::Relaxed) {
                match graphs.create(&params, &graph).await {
                    Ok(_) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        AdmissionLoad {
            stop,
            ok,
            failures,
            task,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failures = self.failures.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

async fn set_secret_key(secrets: &Api<Secret>, key: &str, value: &[u8]) {
    let patch = serde_json::json!({"data": {key: chart::base64_encode(value)}});
    secrets
        .patch(
            "webhook-server-cert",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
}
