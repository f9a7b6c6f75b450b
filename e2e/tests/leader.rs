//! Leader election between controller-manager processes: one leader reconciles, a standby
//! takes over when the leader stops (gracefully: about the retry period; crashed: after the
//! lease expires).

use std::time::{Duration, Instant};

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use dynamo_e2e::manifests::example;
use dynamo_e2e::operator::{Operator, start_operator};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// The Lease the candidates elect on: the operator's `--leader-election-id` default.
const LEASE: &str = "dynamo.nvidia.com";

fn candidate(ns: &TestNamespace) -> Operator {
    start_operator(ns, &["--leader-elect"])
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE).await.ok()??.spec?.holder_identity
}

async fn wait_holder(leases: &Api<Lease>, process: &Operator, within: Duration) -> Duration {
    let started = Instant::now();
    let suffix = format!("_{}", process.pid());
    wait_until(&format!("leader pid {}", process.pid()), within, || async {
        holder(leases)
            .await
            .filter(|h| h.ends_with(&suffix))
            .map(|_| started.elapsed())
    })
    .await
}

#[tokio::test]
async fn one_leader_reconciles_and_standbys_take_over() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("leader").await;
    let leases: Api<Lease> = ns.api();

    let mut first = candidate(&ns);
    wait_holder(&leases, &first, Duration::from_secs(30)).await;
    let mut second = candidate(&ns);
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_success("apply", &ns.kubectl_apply(&example("vllm-agg.yaml")));
    let graphs: Api<dynamo_api::v1alpha1::DynamoGraphDeployment> = ns.api();
    wait_until("graph reconciled", Duration::from_secs(60), || async {
        graphs.get("vllm-agg").await.ok()?.status?.state
    })
    .await;
    assert!(
        first.log_text().contains("applying"),
        "the leader reconciles"
    );
    assert!(
        !second.log_text().contains("applying"),
        "the standby writes nothing:\n{}",
        second.log_text()
    );

    // Graceful: the leader releases the lease; the standby takes it at its next round.
    first.terminate();
    let graceful = wait_holder(&leases, &second, Duration::from_secs(10)).await;
    assert!(
        first.log_text().contains("released leadership"),
        "{}",
        first.log_text()
    );

    // Crash: the lease must expire (15 s) before a new candidate may take it.
    let third = candidate(&ns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.kill();
    let crash = wait_holder(&leases, &third, Duration::from_secs(40)).await;
    println!("takeover after SIGTERM {graceful:?}, after SIGKILL {crash:?}");
    assert!(
        graceful <= Duration::from_secs(3),
        "graceful takeover took {graceful:?}"
    );
    assert!(
        crash >= Duration::from_secs(10),
        "a crashed leader's lease was taken early ({crash:?})"
    );
    assert!(
        crash <= Duration::from_secs(20),
        "crash takeover took {crash:?}"
    );
}

#[tokio::test]
async fn a_restricted_operator_keeps_its_namespace_scope_marker_and_deletes_it_on_shutdown() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("marker").await;
    let leases: Api<Lease> = ns.api();
    let mut operator = start_operator(
        &ns,
        &[
            "--operator-version",
            "1.2.3",
            "--namespace-scope-lease-duration",
            "4s",
            "--namespace-scope-lease-renew-interval",
            "1s",
        ],
    );
    let marker = NAMESPACE_SCOPE_LEASE;
    let first = wait_until("marker created", Duration::from_secs(30), || async {
        leases.get_opt(marker).await.ok()?
    })
    .await;
    let spec = first.spec.clone().unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some("namespace-restricted-operator-1.2.3")
    );
    assert_eq!(spec.lease_duration_seconds, Some(4));
    assert!(
        spec.acquire_time.is_some(),
        "a fresh marker carries its acquireTime"
    );
    let renewed_at = spec.renew_time.unwrap().0;
    wait_until("marker renewed", Duration::from_secs(10), || async {
        let spec = leases.get_opt(marker).await.ok()??.spec?;
        (spec.renew_time?.0 > renewed_at).then_some(())
    })
    .await;

    operator.terminate();
    assert!(
        leases.get_opt(marker).await.unwrap().is_none(),
        "clean shutdown deletes the marker"
    );

    // Impossible timing is refused at start with the flags named.
    let output = std::process::Command::new(Cluster::get().our_binary("dynamo-operator"))
        .env("KUBECONFIG", &Cluster::get().kubeconfig)
        .args([
            "--restrictedNamespace",
            &ns.name,
            "--namespace-scope-lease-duration",
            "5s",
        ])
        .args(["--namespace-scope-lease-renew-interval", "10s"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--namespace-scope-lease-renew-interval"),
        "{stderr}"
    );
}
