//! The platform as a user meets it: `helm install` of our charts with the webhook enabled on
//! the local control plane, where the node agent runs the operator, the webhook and the
//! cert-generator hook Jobs as the real binaries. Then kubectl is admitted or rejected by the
//! live webhook, the operator reconciles, upgrades keep or repair the certificate, processes
//! are killed and come back, and restricted installs coexist.
//!
//! One sequential test: a cluster-wide install is seen by every namespace.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::chart;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, PostParams};

const RELEASE: &str = "dp";
const FULL: &str = "dp-dynamo-operator";

fn helm(args: &[&str]) -> Output {
    Cluster::get().run_helm(args)
}

/// `helm <verb> RELEASE <offline chart> -n NS --wait <extra>`.
fn platform(verb: &str, release: &str, namespace: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--wait", "--timeout", "120s"];
    args.extend(extra);
    Cluster::get().helm_platform(verb, release, namespace, &args)
}

/// A release this test installed; uninstalled when the test ends, passing or failing, so a
/// failed run leaves no cluster-wide operator behind to block the next.
struct Installed {
    release: &'static str,
    namespace: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            self.release,
            "--namespace",
            &self.namespace,
            "--ignore-not-found",
        ]);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(Cluster::get().repo.join("examples").join(name)).unwrap()
}

async fn wait_ready(ns: &TestNamespace, name: &str) {
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    wait_until(
        &format!("{name} successful"),
        Duration::from_secs(90),
        || async {
            let graph = graphs.get(name).await.ok()?;
            let status = graph.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (status.state.as_deref() == Some("successful") && ready).then_some(())
        },
    )
    .await
}

fn rejected(what: &str, output: &Output, fields: &[&str]) {
    let text = stderr(output);
    assert!(!output.status.success(), "{what} was admitted");
    for field in fields {
        assert!(
            text.contains(field),
            "{what}: {field:?} missing from:\n{text}"
        );
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
    let api: Api<Pod> = Api::namespaced(Cluster::get().client().await, ns);
    let selector =
        format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}");
    api.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
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

/// A certificate for the webhook Service from the stored CA, valid two more days: inside
/// the renewal window, still served without errors.
fn near_expiry_certificate(secret: &Secret, namespace: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("dynamo-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = secret.data.as_ref().unwrap();
    let ca = String::from_utf8(data["ca.crt"].0.clone()).unwrap();
    let first_ca = ca
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    std::fs::write(dir.join("ca.crt"), first_ca).unwrap();
    std::fs::write(dir.join("ca.key"), &data["ca.key"].0).unwrap();
    std::fs::write(dir.join("tls.key"), &data["tls.key"].0).unwrap();
    let svc = format!("{FULL}-webhook-service");
    std::fs::write(
        dir.join("ext"),
        format!("subjectAltName=DNS:{svc},DNS:{svc}.{namespace},DNS:{svc}.{namespace}.svc,DNS:{svc}.{namespace}.svc.cluster.local\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-key",
        "tls.key",
        "-subj",
        &format!("/CN={svc}"),
        "-out",
        "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "leaf.crt",
    ]);
    let pem = std::fs::read(dir.join("leaf.crt")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    pem
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    chart::base64_decode(&body)
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

/// Every webhook pod serves `der` (the agent syncs the Secret, the webhook reloads it).
async fn wait_served(ns: &str, der: &[u8], what: &str) {
    wait_until(what, Duration::from_secs(30), || async {
        for pod in pods(ns, "webhook").await {
            let ip = pod.status.as_ref()?.pod_ip.clone()?;
            let served = dynamo_e2e::tls::served_certificate(&format!("{ip}:9443"))
                .await
                .ok()?;
            if served != der {
                return None;
            }
        }
        Some(())
    })
    .await
}

#[tokio::test]
async fn helm_install_wires_operator_webhook_and_certificates_together() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let system = TestNamespace::new("platform").await;
    let users = TestNamespace::new("users").await;
    let client = cluster.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &system.name);
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let configuration_name = format!("{FULL}-validating");

    // Install: the pre-install Job mints the Secret, the post-install Job fills the webhooks.
    let _installed = Installed {
        release: RELEASE,
        namespace: system.name.clone(),
    };
    let started = Instant::now();
    assert_success(
        "helm install",
        &platform("install", RELEASE, &system.name, &[]),
    );
    eprintln!("helm install --wait: {:?}", started.elapsed());
    let secret = secrets.get("webhook-server-cert").await.unwrap();
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "dynamo-certgen",
        "the Secret was not written by our cert generator"
    );
    let ca = secret.data.as_ref().unwrap()["ca.crt"].0.clone();
    let configuration = configurations.get(&configuration_name).await.unwrap();
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
    let ssh = secrets.get("mpi-run-ssh-secret").await.unwrap();
    assert!(ssh.data.as_ref().unwrap().contains_key("private.key.pub"));
    for component in ["manager", "webhook"] {
        let pods = pods(&system.name, component).await;
        assert!(
            !pods.is_empty() && pods.iter().all(ready),
            "{component} pods not Ready"
        );
    }

    // Admitted and reconciled.
    // Two graphs: the fake node's eight GPUs do not fit every example at once.
    for name in ["vllm-agg", "sglang-agg"] {
        assert_success(
            name,
            &users.kubectl_apply(&example(&format!("{name}.yaml"))),
        );
    }
    assert_success(
        "LoRA model",
        &users.kubectl_apply(&example("dynamomodel-lora.yaml")),
    );
    for name in ["vllm-agg", "sglang-agg"] {
        wait_ready(&users, name).await;
    }

    // Rejected, each naming the field; a rejected update leaves the stored object as it was.
    let agg = example("vllm-agg.yaml");
    rejected(
        "bad enum",
        &users.kubectl_apply(
            &agg.replace("name: vllm-agg", "name: bad-enum")
                .replace("backendFramework: vllm", "backendFramework: tensorflow"),
        ),
        &["spec.backendFramework"],
    );
    rejected(
        "no services",
        &users.kubectl_apply("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: empty}\nspec: {backendFramework: vllm, services: {}}\n"),
        &["spec.services"],
    );
    let many: String = (0..26)
        .map(|i| format!("    S{i}: {{componentType: worker, replicas: 1}}\n"))
        .collect();
    rejected(
        "26 services",
        &users.kubectl_apply(&format!("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {{name: many}}\nspec:\n  backendFramework: vllm\n  services:\n{many}")),
        &["spec.services"],
    );
    let graphs: Api<DynamoGraphDeployment> = users.api();
    let before = graphs
        .get("vllm-agg")
        .await
        .unwrap()
        .metadata
        .resource_version;
    rejected(
        "backendFramework change",
        &users.kubectl_apply(&agg.replace("backendFramework: vllm", "backendFramework: sglang")),
        &["denied the request", "spec.backendFramework", "immutable"],
    );
    rejected(
        "service added on update",
        &users.kubectl_apply(&agg.replace(
            "  services:\n",
            "  services:\n    Extra:\n      componentType: worker\n      replicas: 1\n",
        )),
        &["denied the request", "spec.services"],
    );
    assert_eq!(
        graphs
            .get("vllm-agg")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before
    );
    rejected(
        "LoRA without URI",
        &users.kubectl_apply("apiVersion: nvidia.com/v1alpha1\nkind: DynamoModel\nmetadata: {name: no-uri}\nspec: {modelName: m, baseModelName: b, modelType: lora}\n"),
        &["spec.source"],
    );

    // helm upgrade keeps the certificate: no Secret write, no caBundle change.
    let secret_version = secrets
        .get("webhook-server-cert")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let configuration_version = configurations
        .get(&configuration_name)
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_success(
        "helm upgrade",
        &platform("upgrade", RELEASE, &system.name, &[]),
    );
    assert_eq!(
        secrets
            .get("webhook-server-cert")
            .await
            .unwrap()
            .metadata
            .resource_version,
        secret_version,
        "upgrade rewrote the Secret"
    );
    assert_eq!(
        configurations
            .get(&configuration_name)
            .await
            .unwrap()
            .metadata
            .resource_version,
        configuration_version,
        "upgrade rewrote the webhook configuration"
    );

    // Forced rotation: a certificate inside the renewal window is renewed by the next
    // upgrade; admissions keep passing while the webhook switches certificates.
    let short = near_expiry_certificate(
        &secrets.get("webhook-server-cert").await.unwrap(),
        &system.name,
    );
    set_secret_key(&secrets, "tls.crt", &short).await;
    wait_served(
        &system.name,
        &pem_to_der(&short),
        "the webhook serving the short-lived certificate",
    )
    .await;
    let load = AdmissionLoad::start(&users).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_success(
        "helm upgrade (rotation)",
        &platform("upgrade", RELEASE, &system.name, &[]),
    );
    let renewed = secrets
        .get("webhook-server-cert")
        .await
        .unwrap()
        .data
        .unwrap()["tls.crt"]
        .0
        .clone();
    assert_ne!(
        renewed, short,
        "the short-lived certificate was not renewed"
    );
    wait_served(
        &system.name,
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

    // A corrupted certificate Secret is repaired by the next upgrade.
    set_secret_key(&secrets, "tls.crt", b"garbage").await;
    assert_success(
        "helm upgrade (repair)",
        &platform("upgrade", RELEASE, &system.name, &[]),
    );
    let repaired = secrets
        .get("webhook-server-cert")
        .await
        .unwrap()
        .data
        .unwrap()["tls.crt"]
        .0
        .clone();
    assert!(
        repaired.starts_with(b"-----BEGIN CERTIFICATE-----"),
        "not repaired"
    );
    wait_served(
        &system.name,
        &pem_to_der(&repaired),
        "the webhook serving the repaired certificate",
    )
    .await;

    // Kill both webhook processes: with failurePolicy Fail a write fails clearly and stores
    // nothing; the agent restarts them and admission resumes.
    let victims = pods(&system.name, "webhook").await;
    for pod in &victims {
        for pid in pod_pids(pod) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        }
    }
    let probe = agg.replace("name: vllm-agg", "name: while-down");
    let failed = wait_until(
        "a write refused while the webhook is down",
        Duration::from_secs(10),
        || async {
            let output = users.kubectl_apply(&probe);
            (!output.status.success()).then(|| stderr(&output))
        },
    )
    .await;
    assert!(failed.contains("failed calling webhook"), "{failed}");
    assert!(
        graphs.get_opt("while-down").await.unwrap().is_none(),
        "stored despite the failed admission"
    );
    wait_until(
        "webhook restarted and admitting",
        Duration::from_secs(30),
        || async { users.kubectl_apply(&probe).status.success().then_some(()) },
    )
    .await;
    let restarted = pods(&system.name, "webhook").await;
    assert!(
        restarted.iter().all(|p| restarts(p) >= 1),
        "the agent did not restart the webhooks"
    );

    // Kill the operator: the restarted one converges (a scale change) with no duplicates.
    for pod in pods(&system.name, "manager").await {
        for pid in pod_pids(&pod) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        }
    }
    let scaled = agg.replace(
        "      componentType: frontend\n      replicas: 1",
        "      componentType: frontend\n      replicas: 2",
    );
    assert_ne!(scaled, agg);
    assert_success("scale", &users.kubectl_apply(&scaled));
    let deployments: Api<Deployment> = users.api();
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

    // A second cluster-wide install is refused.
    let other = TestNamespace::new("platform-b").await;
    let refused = platform("install", "second", &other.name, &["--dry-run=server"]);
    assert!(
        !refused.status.success(),
        "a second cluster-wide install was allowed"
    );
    assert!(
        stderr(&refused).contains(&format!("\"{RELEASE}\"")),
        "{}",
        stderr(&refused)
    );

    // Uninstall removes our objects; the CRDs and the users' graphs stay.
    assert_success(
        "helm uninstall",
        &helm(&["uninstall", RELEASE, "--namespace", &system.name, "--wait"]),
    );
    assert!(
        configurations
            .get_opt(&configuration_name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        pods(&system.name, "manager").await.is_empty()
            && pods(&system.name, "webhook").await.is_empty()
    );
    assert!(
        graphs.get_opt("vllm-agg").await.unwrap().is_some(),
        "uninstall lost a user's graph"
    );

    // Now two restricted installs, each managing its own namespace, run side by side.
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
            &platform("install", release, &ns.name, &restricted),
        );
    }
    assert_success("graph in tenant a", &tenant_a.kubectl_apply(&agg));
    wait_ready(&tenant_a, "vllm-agg").await;
    rejected(
        "immutable change in tenant b",
        &{
            assert_success("graph in tenant b", &tenant_b.kubectl_apply(&agg));
            tenant_b
                .kubectl_apply(&agg.replace("backendFramework: vllm", "backendFramework: sglang"))
        },
        &["denied the request", "spec.backendFramework"],
    );
    for (release, ns) in [("ta", &tenant_a), ("tb", &tenant_b)] {
        assert_success(
            "uninstall restricted",
            &helm(&["uninstall", release, "--namespace", &ns.name, "--wait"]),
        );
    }
}
