//! The Grove pathway against Grove's real CRDs (`grove.io/v1alpha1` of the API module upstream
//! pins, from the bin dir `hack/k8s-bins.sh` fills): this test installs them itself, starts its
//! own namespace-restricted operator (the only operator that detects Grove: detection happens
//! at start), applies upstream's multinode vLLM example and plays Grove's part (no Grove
//! operator runs): it makes the PodCliques and PodCliqueScalingGroups Grove would make of the
//! PodCliqueSet, with the names, labels, owners and status Grove gives them. Checked: the
//! operator's PodCliqueSet is accepted by the real CRDs, the graph waits for Grove's objects and
//! then becomes Ready, its Services are its own, and a replicas change reaches the scaling group
//! through its scale subresource. The CRDs are deleted again at the end (unless the cluster
//! was started with them, `DYNAMO_E2E_GROVE=1`), so later test binaries do not see Grove.

use std::time::Duration;

use dynamo_e2e::graphs::{Outcome, documents, graph_api, wait_ready};
use dynamo_e2e::operator::start_operator;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const GRAPH: &str = "vllm-disagg";
const CRDS: [&str; 3] = [
    "podcliquesets.grove.io",
    "podcliques.grove.io",
    "podcliquescalinggroups.grove.io",
];
const READY_WITHIN: Duration = Duration::from_secs(90);

/// Grove's CRDs for the life of the test; deleted on drop (a failing test too) unless the
/// cluster came with them.
struct GroveCrds {
    keep: bool,
}

impl GroveCrds {
    async fn install(cluster: &Cluster) -> GroveCrds {
        let keep = std::env::var("DYNAMO_E2E_GROVE").as_deref() == Ok("1");
        let output = cluster
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(cluster.bin.join("grove-crds"))
            .output()
            .expect("running kubectl");
        assert_success("kubectl apply --server-side the Grove CRDs", &output);
        let crds: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
        for name in CRDS {
            wait_until(
                &format!("CRD {name} Established"),
                Duration::from_secs(30),
                || async {
                    let crd = crds.get(name).await.ok()?;
                    dynamo_e2e::established(&crd).then_some(())
                },
            )
            .await;
        }
        GroveCrds { keep }
    }
}

impl Drop for GroveCrds {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let output = Cluster::get()
            .kubectl()
            .args(["delete", "crd", "--ignore-not-found", "--wait=true"])
            .args(CRDS)
            .output()
            .expect("running kubectl");
        if !output.status.success() {
            eprintln!(
                "deleting the Grove CRDs failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn grove_api(namespace: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("grove.io", "v1alpha1", kind);
    Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&gvk),
    )
}

fn fixture() -> String {
    let path = Cluster::get()
        .repo
        .join("e2e/fixtures/upstream-multinode/vllm-disagg-multinode.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A controller owner reference to `owner` (a Grove object).
fn owned_by(owner: &DynamicObject, kind: &str) -> Value {
    json!([{
        "apiVersion": "grove.io/v1alpha1",
        "kind": kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// Grove's own labels on what it makes of PodCliqueSet `set` (replica 0).
fn grove_labels(set: &str, name: &str, component: &str) -> serde_json::Map<String, Value> {
    json!({
        "app.kubernetes.io/managed-by": "grove-operator",
        "app.kubernetes.io/part-of": set,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "grove.io/podcliqueset-replica-index": "0",
    })
    .as_object()
    .unwrap()
    .clone()
}

/// Creates (or leaves) `object` and writes its status: all replicas ready and updated at its
/// generation (a PodClique's `readyReplicas`, a scaling group's `availableReplicas`).
async fn stand_in(api: &Api<DynamicObject>, object: Value, ready: bool) {
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    if let Err(e) = api.create(&PostParams::default(), &object).await {
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 409),
            "creating {name}: {e}"
        );
    }
    set_status(api, &name, ready).await;
}

/// Writes the status Grove would: every replica of `spec.replicas` ready (or none).
async fn set_status(api: &Api<DynamicObject>, name: &str, ready: bool) {
    let live = api.get(name).await.unwrap();
    let replicas = live.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let counted = if ready { replicas } else { 0 };
    let status = if live.types.as_ref().unwrap().kind == "PodClique" {
        json!({
            "observedGeneration": live.metadata.generation,
            "replicas": replicas,
            "readyReplicas": counted,
            "updatedReplicas": replicas,
            "scheduledReplicas": replicas,
            "scheduleGatedReplicas": 0,
        })
    } else {
        json!({
            "observedGeneration": live.metadata.generation,
            "replicas": replicas,
            "availableReplicas": counted,
            "updatedReplicas": replicas,
            "scheduledReplicas": replicas,
        })
    };
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("status of {name}: {e}"));
}

/// Plays Grove for `set`: a PodClique per clique outside the scaling groups, and per scaling
/// group the group and its member PodCliques of replica 0; all ready when `ready`.
async fn play_grove(namespace: &TestNamespace, set: &DynamicObject, ready: bool) {
    let cliques = grove_api(namespace, "PodClique");
    let groups = grove_api(namespace, "PodCliqueScalingGroup");
    let set_name = set.metadata.name.clone().unwrap();
    let template = &set.data["spec"]["template"];
    let grouped: Vec<String> = template["podCliqueScalingGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["cliqueNames"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let clique_object = |clique: &Value, name: &str, owner: Value, extra: &[(&str, &str)]| {
        let mut labels = clique["labels"].as_object().cloned().unwrap_or_default();
        let component = if extra.is_empty() {
            "pcs-podclique"
        } else {
            "pcsg-podclique"
        };
        labels.extend(grove_labels(&set_name, name, component));
        for (key, value) in extra {
            labels.insert((*key).to_owned(), json!(value));
        }
        json!({
            "apiVersion": "grove.io/v1alpha1",
            "kind": "PodClique",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": clique["annotations"],
                "ownerReferences": owner,
            },
            "spec": clique["spec"],
        })
    };
    for clique in template["cliques"].as_array().unwrap() {
        let clique_name = clique["name"].as_str().unwrap();
        if grouped.iter().any(|g| g == clique_name) {
            continue;
        }
        let name = format!("{set_name}-0-{clique_name}");
        let object = clique_object(clique, &name, owned_by(set, "PodCliqueSet"), &[]);
        stand_in(&cliques, object, ready).await;
    }
    for group in template["podCliqueScalingGroups"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let group_name = format!("{set_name}-0-{}", group["name"].as_str().unwrap());
        let object = json!({
            "apiVersion": "grove.io/v1alpha1",
            "kind": "PodCliqueScalingGroup",
            "metadata": {
                "name": group_name,
                "labels": grove_labels(&set_name, &group_name, "pcs-podcliquescalinggroup"),
                "ownerReferences": owned_by(set, "PodCliqueSet"),
            },
            "spec": {
                "replicas": group["replicas"].as_i64().unwrap_or(1),
                "minAvailable": group["minAvailable"],
                "cliqueNames": group["cliqueNames"],
            },
        });
        stand_in(&groups, object, ready).await;
        let live_group = groups.get(&group_name).await.unwrap();
        for member in group["cliqueNames"].as_array().unwrap() {
            let member = member.as_str().unwrap();
            let clique = template["cliques"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == member)
                .unwrap();
            let name = format!("{group_name}-0-{member}");
            let object = clique_object(
                clique,
                &name,
                owned_by(&live_group, "PodCliqueScalingGroup"),
                &[
                    ("grove.io/podcliquescalinggroup", &group_name),
                    ("grove.io/podcliquescalinggroup-replica-index", "0"),
                ],
            );
            stand_in(&cliques, object, ready).await;
        }
    }
}

async fn graph_message(namespace: &TestNamespace) -> (String, String) {
    let graph = graph_api(namespace).get(GRAPH).await.unwrap();
    let status = &graph.data["status"];
    let message = status["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (
        status["state"].as_str().unwrap_or_default().to_owned(),
        message,
    )
}

#[tokio::test]
async fn a_multinode_graph_runs_on_grove() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let crds = GroveCrds::install(cluster).await;
    let namespace = TestNamespace::new("grove").await;
    let operator = start_operator(&namespace, &["--grove-termination-delay=1h"]);
    operator.ready().await;
    assert!(
        operator.log_text().contains("grove=true"),
        "the operator did not detect Grove:\n{}",
        operator.log_text()
    );

    let yaml = fixture();
    assert_eq!(
        documents(&yaml)
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "DynamoGraphDeployment")
            .count(),
        1
    );
    assert_success("kubectl apply", &namespace.kubectl_apply(&yaml));

    // The PodCliqueSet, as the real CRD stored it.
    let sets = grove_api(&namespace, "PodCliqueSet");
    let set = wait_until("PodCliqueSet", Duration::from_secs(60), || async {
        sets.get_opt(GRAPH).await.ok().flatten()
    })
    .await;
    let template = &set.data["spec"]["template"];
    assert_eq!(
        names(&template["cliques"]),
        [
            "decode-ldr",
            "decode-wkr",
            "frontend",
            "prefill-ldr",
            "prefill-wkr"
        ]
    );
    assert_eq!(
        names(&template["podCliqueScalingGroups"]),
        ["decode", "prefill"]
    );
    assert_eq!(template["terminationDelay"], "1h0m0s");
    assert_eq!(template["cliqueStartupType"], "CliqueStartupTypeAnyOrder");
    let owner = &set.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("DynamoGraphDeployment", GRAPH)
    );
    // No components on this pathway.
    let components = Api::<DynamicObject>::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "nvidia.com",
            "v1alpha1",
            "DynamoComponentDeployment",
        )),
    );
    assert!(
        components
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Grove has made nothing yet: the graph waits, naming what it waits for.
    wait_until(
        "graph pending on Grove's objects",
        Duration::from_secs(60),
        || async {
            let (state, message) = graph_message(&namespace).await;
            (state == "pending"
                && message.contains("pcsg/vllm-disagg-0-decode: resource not found"))
            .then_some(())
        },
    )
    .await;

    // Grove's objects, not ready yet, then ready.
    play_grove(&namespace, &set, false).await;
    wait_until(
        "graph pending on readiness",
        Duration::from_secs(60),
        || async {
            let (state, message) = graph_message(&namespace).await;
            (state == "pending"
                && message.contains("podclique/vllm-disagg-0-frontend: desired=1, ready=0"))
            .then_some(())
        },
    )
    .await;
    play_grove(&namespace, &set, true).await;
    match wait_ready(&namespace, &[GRAPH.to_owned()], READY_WITHIN).await {
        Outcome::Ready(_) => {}
        other => panic!("{other:?}\noperator log:\n{}", operator.log_text()),
    }
    // Converged: a change of Grove's objects wakes the graph, which then writes nothing (the
    // PodCliqueSet as stored holds everything the operator applies).
    operator.settle(Duration::from_secs(3)).await;
    let writes = operator.writes().await;
    let cliques = grove_api(&namespace, "PodClique");
    cliques
        .patch_status(
            "vllm-disagg-0-frontend",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "currentPodTemplateHash": "touched" } })),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        operator.writes().await,
        writes,
        "writes after a converged graph's reconcile:\n{}",
        operator.log_text()
    );
    let graph = graph_api(&namespace).get(GRAPH).await.unwrap();
    let services = &graph.data["status"]["services"];
    assert_eq!(services["decode"]["componentKind"], "PodCliqueScalingGroup");
    assert_eq!(services["decode"]["componentName"], "vllm-disagg-0-decode");
    assert_eq!(services["Frontend"]["componentKind"], "PodClique");

    // Each service's Service belongs to the graph and selects its pods.
    let service_api: Api<Service> = namespace.api();
    for (name, selector) in [
        ("vllm-disagg-frontend", "vllm-disagg-frontend"),
        ("vllm-disagg-decode", "vllm-disagg-decode"),
    ] {
        let service = wait_until(name, Duration::from_secs(30), || async {
            service_api.get_opt(name).await.ok().flatten()
        })
        .await;
        let owner = &service.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "DynamoGraphDeployment", "{name}");
        assert_eq!(
            service.spec.unwrap().selector.unwrap()["nvidia.com/selector"],
            selector
        );
    }

    // Two decode groups: the scaling group is scaled through its scale subresource.
    let patch = json!({ "spec": { "services": { "decode": { "replicas": 2 } } } });
    graph_api(&namespace)
        .patch(GRAPH, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let groups = grove_api(&namespace, "PodCliqueScalingGroup");
    wait_until(
        "decode scaling group at 2",
        Duration::from_secs(60),
        || async {
            let group = groups.get("vllm-disagg-0-decode").await.ok()?;
            (group.data["spec"]["replicas"] == 2).then_some(())
        },
    )
    .await;
    wait_until(
        "graph pending while Grove scales",
        Duration::from_secs(60),
        || async {
            let (state, message) = graph_message(&namespace).await;
            (state == "pending" && message.contains("pcsg/vllm-disagg-0-decode")).then_some(())
        },
    )
    .await;
    set_status(&groups, "vllm-disagg-0-decode", true).await;
    match wait_ready(&namespace, &[GRAPH.to_owned()], READY_WITHIN).await {
        Outcome::Ready(_) => {}
        other => panic!("{other:?}\noperator log:\n{}", operator.log_text()),
    }
    let set = sets.get(GRAPH).await.unwrap();
    let decode = set.data["spec"]["template"]["podCliqueScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "decode")
        .cloned()
        .unwrap();
    assert_eq!(decode["replicas"], 2, "the template follows too");
    drop(operator);
    drop(namespace);
    drop(crds);
    let crd_api: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    for name in CRDS {
        assert!(
            crd_api.get_opt(name).await.unwrap().is_none()
                || std::env::var("DYNAMO_E2E_GROVE").as_deref() == Ok("1"),
            "{name} left behind for later test binaries"
        );
    }
}
