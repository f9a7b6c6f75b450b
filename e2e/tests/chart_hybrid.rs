//! Hybrid mode through the chart, as a user installs it: a cluster-wide release and a
//! namespace-restricted release side by side. The restricted operator's namespace-scope Lease
//! hands its namespace over; uninstalling it hands the namespace back.
//!
//! Which operator reconciled a graph is read from the operators' own logs (the node agent
//! writes each pod's output to `<state>/logs/pod-<namespace>-<pod>.log`): every child write is
//! logged as `applying kind=... name=...`.
//!
//! One sequential test: a cluster-wide install is seen by every namespace, and this binary
//! runs after (never beside) the other test binaries.

use std::process::Output;
use std::time::{Duration, Instant};

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_e2e::manifests::example;
use dynamo_e2e::operator::wait_graph_ready;
use dynamo_e2e::platform::{self, Installed, helm, helm_chart};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};

const CLUSTER_WIDE: &str = "cw";
const RESTRICTED: &str = "tenant";
/// The chart's default `namespaceRestriction.lease.duration`.
const LEASE_DURATION: Duration = Duration::from_secs(30);

/// Values both releases share: the MPI key Job plays no part here.
const COMMON: [&str; 2] = [
    "--set",
    "dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false",
];

/// Values of a restricted release managing `target`.
fn restricted_values(target: &str) -> Vec<String> {
    let mut values: Vec<String> = COMMON.iter().map(|v| v.to_string()).collect();
    values.extend([
        "--set".to_owned(),
        "dynamo-operator.namespaceRestriction.enabled=true".to_owned(),
        "--set-string".to_owned(),
        format!("dynamo-operator.namespaceRestriction.targetNamespace={target}"),
    ]);
    values
}

fn as_strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

/// `vllm-agg.yaml` renamed to `name`.
fn graph(name: &str) -> String {
    let manifest = example("vllm-agg.yaml");
    assert!(manifest.contains("\n  name: vllm-agg\n"));
    manifest.replacen("\n  name: vllm-agg\n", &format!("\n  name: {name}\n"), 1)
}

/// What the manager pods of `release` in `namespace` have logged so far (pods gone since
/// included: their log files stay).
fn manager_log(namespace: &str, release: &str) -> String {
    let logs = Cluster::get().state.join("logs");
    let prefix = format!(
        "pod-{namespace}-{}-controller-manager-",
        platform::operator_fullname(release)
    );
    std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("reading {}: {e}", logs.display()))
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect()
}

/// How many child writes for graph `graph` a log holds (children are `<graph>-<service>`).
fn writes_for(log: &str, graph: &str) -> usize {
    let name = format!("name={graph}-");
    log.lines()
        .filter(|line| line.contains("applying") && line.contains(&name))
        .count()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(what: &str, output: &Output, needles: &[&str]) {
    let stderr = stderr(output);
    assert!(!output.status.success(), "{what} was allowed:\n{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{what}: {needle:?} missing from:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn a_restricted_release_beside_a_cluster_wide_one_holds_its_namespace_until_uninstalled() {
    Cluster::get().install_crds().await;
    let system = TestNamespace::new("hybrid-system").await;
    let tenant = TestNamespace::new("hybrid-tenant").await;
    let users = TestNamespace::new("hybrid-users").await;
    // Declared after the namespaces, so dropped (uninstalled) before they are deleted.
    let _cluster_wide = Installed {
        release: CLUSTER_WIDE,
        namespace: system.name.clone(),
    };
    // Uninstalled by the test itself; this only cleans up after a failure.
    let _restricted = Installed {
        release: RESTRICTED,
        namespace: tenant.name.clone(),
    };

    // Both installs succeed: cluster-wide first, then a restricted one on another namespace.
    assert_success(
        "cluster-wide install",
        &helm_chart("install", CLUSTER_WIDE, &system.name, &COMMON),
    );
    let restricted = restricted_values(&tenant.name);
    assert_success(
        "restricted install beside the cluster-wide one",
        &helm_chart("install", RESTRICTED, &tenant.name, &as_strs(&restricted)),
    );
    let leases: Api<Lease> = tenant.api();
    let lease = wait_until(
        "the namespace-scope Lease",
        Duration::from_secs(30),
        || async { leases.get_opt(NAMESPACE_SCOPE_LEASE).await.ok()? },
    )
    .await;
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        holder.starts_with("namespace-restricted-operator-"),
        "Lease holder {holder:?}"
    );
    // Give the cluster-wide operator's Lease watch a moment to see it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Each graph is reconciled by the operator that owns its namespace, and only by it.
    assert_success(
        "graph in the tenant namespace",
        &tenant.kubectl_apply(&graph("tenant-agg")),
    );
    assert_success("graph elsewhere", &users.kubectl_apply(&graph("users-agg")));
    wait_graph_ready(&tenant, "tenant-agg").await;
    wait_graph_ready(&users, "users-agg").await;
    let cluster_wide_log = manager_log(&system.name, CLUSTER_WIDE);
    let restricted_log = manager_log(&tenant.name, RESTRICTED);
    assert!(
        writes_for(&restricted_log, "tenant-agg") > 0,
        "the restricted operator did not reconcile its namespace's graph"
    );
    assert_eq!(
        writes_for(&cluster_wide_log, "tenant-agg"),
        0,
        "the cluster-wide operator wrote into a namespace held by the restricted one"
    );
    assert!(
        writes_for(&cluster_wide_log, "users-agg") > 0,
        "the cluster-wide operator did not reconcile the graph outside the tenant namespace"
    );
    assert_eq!(writes_for(&restricted_log, "users-agg"), 0);

    // A second cluster-wide install is refused, naming the first; so is a second restricted
    // operator on the held namespace.
    assert_refused(
        "a second cluster-wide install",
        &helm_chart("install", "cw-second", &users.name, &["--dry-run=server"]),
        &[
            "a cluster-wide Dynamo operator is already installed",
            &format!("\"{CLUSTER_WIDE}\""),
            &system.name,
        ],
    );
    assert_refused(
        "a second restricted install on the tenant namespace",
        &helm_chart(
            "install",
            "tenant-second",
            &users.name,
            &[&["--dry-run=server"][..], &as_strs(&restricted)].concat(),
        ),
        &["is already managed", &format!("\"{RESTRICTED}\"")],
    );

    // Uninstalled, the restricted operator lets go: within the Lease duration (plus a margin
    // for the graph itself) the cluster-wide operator reconciles the namespace.
    assert_success(
        "uninstall the restricted release",
        &helm(&[
            "uninstall",
            RESTRICTED,
            "--namespace",
            &tenant.name,
            "--wait",
        ]),
    );
    let uninstalled = Instant::now();
    assert_success(
        "graph in the released namespace",
        &tenant.kubectl_apply(&graph("tenant-later")),
    );
    wait_graph_ready(&tenant, "tenant-later").await;
    let taken_back = uninstalled.elapsed();
    eprintln!("the cluster-wide operator took the namespace back after {taken_back:?}");
    assert!(
        taken_back <= LEASE_DURATION + Duration::from_secs(30),
        "took {taken_back:?}"
    );
    assert!(writes_for(&manager_log(&system.name, CLUSTER_WIDE), "tenant-later") > 0);
    // The graph the restricted operator made is the cluster-wide operator's now too.
    let patch = serde_json::json!({"spec": {"services": {"VllmDecodeWorker": {"replicas": 2}}}});
    tenant
        .api::<DynamoGraphDeployment>()
        .patch("tenant-agg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deployments: Api<Deployment> = tenant.api();
    wait_until(
        "the adopted graph scaled",
        Duration::from_secs(60),
        || async {
            let d = deployments.get("tenant-agg-vllmdecodeworker").await.ok()?;
            (d.spec?.replicas? == 2).then_some(())
        },
    )
    .await;
    assert!(writes_for(&manager_log(&system.name, CLUSTER_WIDE), "tenant-agg") > 0);
}
