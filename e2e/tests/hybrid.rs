//! Hybrid mode: a cluster-wide operator leaves a namespace to the namespace-restricted
//! operator holding its marker, and resumes it when the marker goes away.
//!
//! A cluster-wide operator reconciles every namespace, so this test lives in its own test
//! binary: cargo runs test binaries one after another, never alongside the other tests'
//! operators.

use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::{Cluster, Running, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};

fn operator(args: &[&str], port: u16, log: &str) -> Running {
    let health = format!("127.0.0.1:{port}");
    let metrics = format!("127.0.0.1:{}", port + 1);
    let mut all = vec![
        "--health-probe-bind-address",
        &health,
        "--metrics-bind-address",
        &metrics,
    ];
    all.extend_from_slice(args);
    Running::start("dynamo-operator", &all, &Cluster::get().kubeconfig, log)
}

/// Lines of `process`'s log that apply `name`.
fn applied(process: &Running, name: &str) -> usize {
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
    let cluster_wide = operator(&[], 18890, &format!("hybrid-{}-cluster", ns.name));
    let yaml = std::fs::read_to_string(Cluster::get().repo.join("examples/vllm-agg.yaml")).unwrap();
    assert_success("apply", &ns.kubectl_apply(&yaml));
    let deployments: Api<Deployment> = ns.api();
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    wait_replicas(&deployments, 1).await;
    assert!(applied(&cluster_wide, "vllm-agg-vllmdecodeworker") > 0);

    // A restricted operator arrives: its marker makes the cluster-wide one step back.
    let mut restricted = operator(
        &[
            "--restrictedNamespace",
            &ns.name,
            "--namespace-scope-lease-duration",
            "6s",
            "--namespace-scope-lease-renew-interval",
            "2s",
        ],
        18892,
        &format!("hybrid-{}-restricted", ns.name),
    );
    let marker_seen = Instant::now();
    wait_until("marker", Duration::from_secs(30), || async {
        ns.api::<k8s_openapi::api::coordination::v1::Lease>()
            .get_opt("dynamo-operator-namespace-scope")
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
    let mut crashed = operator(
        &[
            "--restrictedNamespace",
            &ns.name,
            "--namespace-scope-lease-duration",
            "6s",
            "--namespace-scope-lease-renew-interval",
            "2s",
        ],
        18894,
        &format!("hybrid-{}-crashed", ns.name),
    );
    wait_until("marker again", Duration::from_secs(30), || async {
        ns.api::<k8s_openapi::api::coordination::v1::Lease>()
            .get_opt("dynamo-operator-namespace-scope")
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
