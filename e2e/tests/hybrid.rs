//! Hybrid mode: a cluster-wide operator leaves a namespace to the namespace-restricted
//! operator holding its marker, and resumes it when the marker goes away.
//!
//! A cluster-wide operator reconciles every namespace, so this test lives in its own test
//! binary: cargo runs test binaries one after another, never alongside the other tests'
//! operators.

use std::time::{Duration, Instant};

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::manifests::example;
use dynamo_e2e::operator::{Operator, start_cluster_wide_operator, start_operator};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};

/// A short-lived marker, so a crashed operator's marker expires within the test.
const SHORT_MARKER: [&str; 4] = [
    "--namespace-scope-lease-duration",
    "6s",
    "--namespace-scope-lease-renew-interval",
    "2s",
];

/// Lines of `process`'s log that apply `name`.
fn applied(process: &Operator, name: &str) -> usize {
    process
        .log_text()
        .lines()
        .filter(|l| l.contains("applying") && l.contains(&format!("name={name}")))
        .count()
}

async fn scale(graphs: &Api<DynamoGraphDeployment>, replicas: i32) {
    let patch =
        serde_json::json!({"spec": {"services": {"VllmDecodeWorker": {"replicas": replicas}}}});
    graphs
        .patch("vllm-agg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn wait_replicas(deployments: &Api<Deployment>, replicas: i32) {
    wait_until(
        &format!("{replicas} replicas"),
        Duration::from_secs(60),
        || async {
            let d = deployments.get("vllm-agg-vllmdecodeworker").await.ok()?;
            (d.spec?.replicas? == replicas).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_cluster_wide_operator_yields_a_marked_namespace_and_resumes_it() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("hybrid").await;
    let cluster_wide = start_cluster_wide_operator(&ns, &[]);
    assert_success("apply", &ns.kubectl_apply(&example("vllm-agg.yaml")));
    let deployments: Api<Deployment> = ns.api();
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    wait_replicas(&deployments, 1).await;
    assert!(applied(&cluster_wide, "vllm-agg-vllmdecodeworker") > 0);

    // A restricted operator arrives: its marker makes the cluster-wide one step back.
    let mut restricted = start_operator(&ns, &SHORT_MARKER);
    let marker_seen = Instant::now();
    wait_until("marker", Duration::from_secs(30), || async {
        ns.api::<Lease>()
            .get_opt(NAMESPACE_SCOPE_LEASE)
            .await
            .ok()?
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = applied(&cluster_wide, "vllm-agg-vllmdecodeworker");
    scale(&graphs, 2).await;
    wait_replicas(&deployments, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        applied(&cluster_wide, "vllm-agg-vllmdecodeworker"),
        before,
        "the cluster-wide operator touched a namespace held by a restricted one"
    );
    assert!(
        applied(&restricted, "vllm-agg-vllmdecodeworker") > 0,
        "the restricted operator reconciles it"
    );

    // Clean stop: the marker is deleted and the cluster-wide operator takes the namespace back.
    restricted.terminate();
    let resumed = Instant::now();
    scale(&graphs, 3).await;
    wait_replicas(&deployments, 3).await;
    println!(
        "excluded after the marker appeared: within {:?}; resumed after the marker was deleted: {:?}",
        marker_seen.elapsed(),
        resumed.elapsed()
    );
    assert!(applied(&cluster_wide, "vllm-agg-vllmdecodeworker") > before);

    // Crash: a killed restricted operator leaves its marker behind; the cluster-wide operator
    // resumes once it expires (6 s here), without any event on the objects.
    let mut crashed = start_operator(&ns, &SHORT_MARKER);
    wait_until("marker again", Duration::from_secs(30), || async {
        ns.api::<Lease>()
            .get_opt(NAMESPACE_SCOPE_LEASE)
            .await
            .ok()?
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    crashed.kill();
    let killed = Instant::now();
    scale(&graphs, 1).await;
    wait_replicas(&deployments, 1).await;
    let resumed_after_crash = killed.elapsed();
    println!("resumed after the restricted operator was killed: {resumed_after_crash:?}");
    assert!(
        resumed_after_crash >= Duration::from_secs(2),
        "resumed before the marker expired"
    );
    assert!(resumed_after_crash <= Duration::from_secs(20));
}
