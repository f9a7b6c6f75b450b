//! KAI on the Grove pathway: with KAI's Queue API (`scheduling.run.ai/v2`, cluster-scoped)
//! served, a cluster-wide operator sends the pods of a graph's cliques to `kai-scheduler` in
//! the graph's queue (`nvidia.com/kai-scheduler-queue`, else `dynamo`), which must exist.
//!
//! The test installs Grove's real CRDs and a Queue CRD (`e2e/fixtures/kai/`: KAI's own file is
//! not to be had from the Go module proxy, so it is the real group, version, kind, plural and
//! scope with a reduced schema) before its operator starts (both APIs are detected once, at
//! start), plays Grove's part as `grove.rs` does, and deletes both CRDs (and so every Queue)
//! at the end. Checked: a graph whose queue is missing fails naming it and gets no
//! PodCliqueSet; once the queue exists the graph gets its PodCliqueSet, every clique with
//! scheduler `kai-scheduler` and the queue label, as the real CRD stored them, and becomes
//! Ready. Once with the default queue, once with the graph's annotation.
//!
//! KAI is used only by a cluster-wide operator (a namespace-restricted one's Role cannot read
//! cluster-scoped Queues), which reconciles every namespace: this test is alone in its test
//! binary (cargo runs test binaries one after another), its graphs in namespaces of its own.

use std::time::Duration;

use dynamo_e2e::graphs::{Outcome, documents, wait_ready};
use dynamo_e2e::grove::{
    CRDS, GroveCrds, delete_crds, grove_api, kept_by_cluster, multinode_fixture, play_grove,
    wait_established, wait_graph_message, wait_pod_clique_set,
};
use dynamo_e2e::operator::start_cluster_wide_operator;
use dynamo_e2e::{Cluster, TestNamespace, assert_success};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

const QUEUE_CRD: &str = "queues.scheduling.run.ai";
/// The graph annotation naming the queue, and the queue without it.
const QUEUE_ANNOTATION: &str = "nvidia.com/kai-scheduler-queue";
const DEFAULT_QUEUE: &str = "dynamo";
/// The queue the second graph names.
const TEAM_QUEUE: &str = "e2e-team";
/// The Queue CRD for the life of the test; deleted on drop, its Queues with it.
struct QueueCrd;

impl QueueCrd {
    async fn install(cluster: &Cluster) -> QueueCrd {
        let output = cluster
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(
                cluster
                    .repo
                    .join("e2e/fixtures/kai/queues.scheduling.run.ai.yaml"),
            )
            .output()
            .expect("running kubectl");
        assert_success("kubectl apply the Queue CRD", &output);
        let guard = QueueCrd;
        wait_established(cluster, &[QUEUE_CRD]).await;
        guard
    }
}

impl Drop for QueueCrd {
    fn drop(&mut self) {
        delete_crds(&[QUEUE_CRD]);
    }
}

/// Creates Queue `name` as the platform chart does (unlimited, under `parent`).
async fn create_queue(cluster: &Cluster, name: &str, parent: Option<&str>) {
    let gvk = GroupVersionKind::gvk("scheduling.run.ai", "v2", "Queue");
    let api: Api<DynamicObject> =
        Api::all_with(cluster.client().await, &ApiResource::from_gvk(&gvk));
    let unlimited = json!({ "quota": -1, "limit": -1, "overQuotaWeight": 1 });
    let mut spec = json!({
        "resources": { "cpu": unlimited, "gpu": unlimited, "memory": unlimited },
    });
    if let Some(parent) = parent {
        spec["parentQueue"] = json!(parent);
    }
    let queue = json!({
        "apiVersion": "scheduling.run.ai/v2",
        "kind": "Queue",
        "metadata": { "name": name },
        "spec": spec,
    });
    api.create(
        &PostParams::default(),
        &serde_json::from_value(queue).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("creating Queue {name}: {e}"));
}

/// `fixture`'s manifests, its graph annotated with `queue` when given; and the graph's name.
fn manifests(fixture: &str, queue: Option<&str>) -> (String, String) {
    let mut graph = String::new();
    let mut yaml = String::new();
    for mut document in documents(&multinode_fixture(fixture)).unwrap() {
        if document["kind"] == "DynamoGraphDeployment" {
            graph = document["metadata"]["name"].as_str().unwrap().to_owned();
            if let Some(queue) = queue {
                document["metadata"]["annotations"] = json!({ QUEUE_ANNOTATION: queue });
            }
        }
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml::to_string(&document).unwrap());
    }
    (yaml, graph)
}

#[tokio::test]
async fn grove_pods_are_scheduled_by_kai_from_the_graphs_queue() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let grove = GroveCrds::install(cluster).await;
    let queue_crd = QueueCrd::install(cluster).await;
    let default_ns = TestNamespace::new("kai").await;
    let team_ns = TestNamespace::new("kai-team").await;
    let operator = start_cluster_wide_operator(&default_ns, &["--grove-termination-delay=1h"]);
    operator.ready().await;
    let log = operator.log_text();
    assert!(
        log.contains("grove=true") && log.contains("kai=true"),
        "the operator did not detect Grove and KAI:\n{log}"
    );

    // Two graphs, the default queue and a queue of the graph's own; neither queue exists.
    let cases = [
        (&default_ns, "vllm-disagg-multinode", None, DEFAULT_QUEUE),
        (
            &team_ns,
            "sglang-disagg-multinode",
            Some(TEAM_QUEUE),
            TEAM_QUEUE,
        ),
    ];
    let mut graphs = Vec::new();
    for (namespace, fixture, annotation, _) in cases {
        let (yaml, graph) = manifests(fixture, annotation);
        assert_success("kubectl apply", &namespace.kubectl_apply(&yaml));
        graphs.push(graph);
    }
    for ((namespace, _, _, queue), graph) in cases.iter().zip(&graphs) {
        let missing = format!("queue '{queue}' not found in cluster");
        wait_graph_message(
            namespace,
            graph,
            "failed",
            &missing,
            Duration::from_secs(60),
        )
        .await;
        let set = grove_api(namespace, "PodCliqueSet").get_opt(graph).await;
        assert!(
            set.unwrap().is_none(),
            "{graph}: a PodCliqueSet without its queue"
        );
    }

    // The queues, as the platform chart makes them: the graphs go on.
    create_queue(cluster, "dynamo-default", None).await;
    create_queue(cluster, DEFAULT_QUEUE, Some("dynamo-default")).await;
    create_queue(cluster, TEAM_QUEUE, Some("dynamo-default")).await;
    for ((namespace, _, _, queue), graph) in cases.iter().zip(&graphs) {
        // Within 60 s: the operator looks for a missing queue again every 30 s (queues are
        // not watched).
        let set = wait_pod_clique_set(namespace, graph).await;
        let cliques = set.data["spec"]["template"]["cliques"].as_array().unwrap();
        assert_eq!(cliques.len(), 5, "{graph}");
        for clique in cliques {
            let name = &clique["name"];
            assert_eq!(
                clique["spec"]["podSpec"]["schedulerName"], "kai-scheduler",
                "{graph} {name}"
            );
            assert_eq!(
                clique["labels"]["kai.scheduler/queue"], *queue,
                "{graph} {name}"
            );
        }
        play_grove(namespace, &set, true).await;
        match wait_ready(
            namespace,
            std::slice::from_ref(graph),
            Duration::from_secs(90),
        )
        .await
        {
            Outcome::Ready(after) => eprintln!("{graph} (queue {queue}): Ready after {after:.1?}"),
            other => panic!("{other:?}\noperator log:\n{}", operator.log_text()),
        }
    }

    drop(operator);
    drop(team_ns);
    drop(default_ns);
    drop(queue_crd);
    drop(grove);
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    assert!(
        crds.get_opt(QUEUE_CRD).await.unwrap().is_none(),
        "{QUEUE_CRD} left behind for later test binaries"
    );
    for name in CRDS {
        assert!(
            crds.get_opt(name).await.unwrap().is_none() || kept_by_cluster(),
            "{name} left behind for later test binaries"
        );
    }
}
