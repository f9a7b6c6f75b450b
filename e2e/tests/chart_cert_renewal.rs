//! The certificate renewal CronJob of the automatic certificate mode, on a real install: a run
//! (`kubectl create job --from=cronjob/...`, what the schedule does) replaces a certificate
//! inside its renewal window from the same CA while admissions keep passing, and a run with
//! nothing to do writes nothing.
//!
//! A namespace-restricted release: it needs no cluster of its own, and this binary runs after
//! (never beside) the other test binaries anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::certificates::{near_expiry_certificate, pem_to_der, wait_served};
use dynamo_e2e::chart;
use dynamo_e2e::manifests::example;
use dynamo_e2e::platform::{Installed, helm_chart, operator_fullname};
use dynamo_e2e::webhook::{accepts, rejects};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

const RELEASE: &str = "renewal";
const SECRET: &str = "webhook-server-cert";

/// Runs the renewal CronJob now, as its schedule would, and waits for the run to succeed.
async fn run_renewal(ns: &TestNamespace, job: &str) {
    let cron_job = format!(
        "cronjob/{}-webhook-cert-renewal",
        operator_fullname(RELEASE)
    );
    let created = Cluster::get()
        .kubectl()
        .args(["-n", &ns.name, "create", "job", job, "--from", &cron_job])
        .output()
        .expect("running kubectl");
    assert_success(&format!("kubectl create job --from={cron_job}"), &created);
    let jobs: Api<Job> = ns.api();
    wait_until(
        &format!("renewal Job {job} to succeed"),
        Duration::from_secs(120),
        || async {
            let status = jobs.get(job).await.ok()?.status?;
            (status.succeeded? >= 1).then_some(())
        },
    )
    .await;
}

/// Server-side dry-run creates of a valid graph in a loop, counting admissions and failures.
struct AdmissionLoad {
    stop: Arc<AtomicBool>,
    admitted: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AdmissionLoad {
    fn start(ns: &TestNamespace) -> AdmissionLoad {
        let graphs: Api<DynamoGraphDeployment> = ns.api();
        let mut graph: DynamoGraphDeployment =
            serde_yaml::from_str(&example("vllm-agg.yaml")).unwrap();
        graph.metadata.name = Some("load-probe".into());
        let stop = Arc::new(AtomicBool::new(false));
        let admitted = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, a, f) = (stop.clone(), admitted.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let params = PostParams {
                dry_run: true,
                ..Default::default()
            };
            while !s.load(Ordering::Relaxed) {
                match graphs.create(&params, &graph).await {
                    Ok(_) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => f.lock().unwrap().push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        AdmissionLoad {
            stop,
            admitted,
            failures,
            task,
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failures = self.failures.lock().unwrap().clone();
        (self.admitted.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test]
async fn the_renewal_cron_job_replaces_a_certificate_inside_its_window() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("cert-renewal").await;
    let _installed = Installed {
        release: RELEASE,
        namespace: ns.name.clone(),
    };
    assert_success(
        "restricted install with automatic certificates",
        &helm_chart(
            "install",
            RELEASE,
            &ns.name,
            &[
                "--set",
                "dynamo-operator.namespaceRestriction.enabled=true",
                "--set",
                "dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false",
            ],
        ),
    );
    let secrets: Api<Secret> = ns.api();
    let configurations: Api<ValidatingWebhookConfiguration> =
        Api::all(Cluster::get().client().await);
    let configuration = format!("{}-validating-{}", operator_fullname(RELEASE), ns.name);
    let bundle = |c: &ValidatingWebhookConfiguration| -> Vec<Vec<u8>> {
        c.webhooks
            .iter()
            .flatten()
            .map(|w| w.client_config.ca_bundle.clone().unwrap_or_default().0)
            .collect()
    };
    let bundle_before = bundle(&configurations.get(&configuration).await.unwrap());
    assert_eq!(bundle_before.len(), 3);

    // Nothing due: a run writes nothing.
    let untouched = secrets.get(SECRET).await.unwrap().metadata.resource_version;
    run_renewal(&ns, "renew-nothing-due").await;
    assert_eq!(
        secrets.get(SECRET).await.unwrap().metadata.resource_version,
        untouched,
        "a run with a good certificate rewrote the Secret"
    );

    // A certificate two days from expiry, served by the webhook.
    let stored = secrets.get(SECRET).await.unwrap();
    let service = format!("{}-webhook-service", operator_fullname(RELEASE));
    let short = near_expiry_certificate(&stored, &service, &ns.name);
    let patch = serde_json::json!({"data": {"tls.crt": chart::base64_encode(&short)}});
    secrets
        .patch(SECRET, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_served(
        &ns.name,
        RELEASE,
        &pem_to_der(&short),
        "the webhook serving the near-expiry certificate",
    )
    .await;

    // The scheduled run renews it; admissions pass throughout.
    let load = AdmissionLoad::start(&ns);
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_renewal(&ns, "renew-due").await;
    let renewed_secret = secrets.get(SECRET).await.unwrap();
    let renewed = renewed_secret.data.as_ref().unwrap()["tls.crt"].0.clone();
    assert_ne!(
        renewed, short,
        "the near-expiry certificate was not renewed"
    );
    assert_eq!(
        renewed_secret.data.as_ref().unwrap()["ca.crt"],
        stored.data.as_ref().unwrap()["ca.crt"],
        "a leaf renewal must keep the CA"
    );
    wait_served(
        &ns.name,
        RELEASE,
        &pem_to_der(&renewed),
        "the webhook serving the renewed certificate",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (admitted, failures) = load.finish().await;
    eprintln!("renewal: {admitted} admissions, {} failed", failures.len());
    assert!(admitted >= 10, "too few admissions to tell ({admitted})");
    assert!(
        failures.is_empty(),
        "admissions failed during renewal: {failures:?}"
    );
    assert_eq!(
        bundle(&configurations.get(&configuration).await.unwrap()),
        bundle_before,
        "the CA bundle changed"
    );
    // The webhook still judges (trusting the renewed certificate): a graph is admitted, and a
    // change of its immutable backend is refused by the webhook, naming the field.
    let agg = example("vllm-agg.yaml");
    accepts(&ns, &agg);
    let refusal = rejects(
        &ns,
        &agg.replace("backendFramework: vllm", "backendFramework: sglang"),
        "spec.backendFramework",
    );
    assert!(refusal.contains("denied the request"), "{refusal}");
}
