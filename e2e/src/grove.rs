//! Grove without Grove's operator: its real CRDs (`grove.io/v1alpha1` of the API module upstream
//! pins, from the bin dir `hack/k8s-bins.sh` fills) installed for the tests that need them, and
//! a stand-in that plays Grove's part for a PodCliqueSet: it makes the PodCliques and
//! PodCliqueScalingGroups Grove would make of it, with the names, labels, owners and status
//! Grove gives them. Also the upstream multinode fixtures and what to read of a PodCliqueSet.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::graphs::graph_api;
use crate::{Cluster, TestNamespace, assert_success, wait_until};

/// Grove's CRDs the operator uses.
pub const CRDS: [&str; 3] = [
    "podcliquesets.grove.io",
    "podcliques.grove.io",
    "podcliquescalinggroups.grove.io",
];

/// Tests of this test binary holding [`GroveCrds`].
static HOLDERS: Mutex<usize> = Mutex::new(0);

/// Grove's CRDs for the life of a test: installed by the first test of the binary that needs
/// them, deleted when the last one drops its guard (a failing test too), unless the cluster came
/// with them (`DYNAMO_E2E_GROVE=1`), so later test binaries do not see Grove.
pub struct GroveCrds {
    keep: bool,
}

impl GroveCrds {
    pub async fn install(cluster: &Cluster) -> GroveCrds {
        let keep = kept_by_cluster();
        {
            // Applied under the lock, so a last holder's delete never runs alongside.
            let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
            let output = cluster
                .kubectl()
                .args(["apply", "--server-side", "-f"])
                .arg(cluster.bin.join("grove-crds"))
                .output()
                .expect("running kubectl");
            assert_success("kubectl apply --server-side the Grove CRDs", &output);
            *holders += 1;
        }
        let guard = GroveCrds { keep };
        wait_established(cluster, &CRDS).await;
        guard
    }
}

impl Drop for GroveCrds {
    fn drop(&mut self) {
        let mut holders = HOLDERS.lock().unwrap_or_else(PoisonError::into_inner);
        *holders -= 1;
        if *holders > 0 || self.keep {
            return;
        }
        delete_crds(&CRDS);
    }
}

/// Whether the cluster was started with Grove's CRDs (`DYNAMO_E2E_GROVE=1`): they stay.
pub fn kept_by_cluster() -> bool {
    std::env::var("DYNAMO_E2E_GROVE").as_deref() == Ok("1")
}

/// Waits until each CRD of `names` is Established.
pub async fn wait_established(cluster: &Cluster, names: &[&str]) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    for name in names {
        wait_until(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || async {
                let crd = crds.get(name).await.ok()?;
                crate::established(&crd).then_some(())
            },
        )
        .await;
    }
}

/// `kubectl delete crd` of `names`, waiting for it; a failure is printed (Drop cannot fail).
pub fn delete_crds(names: &[&str]) {
    let output = Cluster::get()
        .kubectl()
        .args(["delete", "crd", "--ignore-not-found", "--wait=true"])
        .args(names)
        .output()
        .expect("running kubectl");
    if !output.status.success() {
        eprintln!(
            "deleting the CRDs {names:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Grove's `kind` in `namespace`.
pub fn grove_api(namespace: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("grove.io", "v1alpha1", kind);
    Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&gvk),
    )
}

/// `e2e/fixtures/upstream-multinode/<name>.yaml`.
pub fn multinode_fixture(name: &str) -> String {
    let path = Cluster::get()
        .repo
        .join(format!("e2e/fixtures/upstream-multinode/{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `name` of each item of a JSON list.
pub fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits (60 s) for the PodCliqueSet `name`, as the real CRD stored it.
pub async fn wait_pod_clique_set(namespace: &TestNamespace, name: &str) -> DynamicObject {
    let sets = grove_api(namespace, "PodCliqueSet");
    wait_until(
        &format!("PodCliqueSet {name}"),
        Duration::from_secs(60),
        || async { sets.get_opt(name).await.ok().flatten() },
    )
    .await
}

/// The template's clique `name` of PodCliqueSet `set`.
pub fn clique<'a>(set: &'a DynamicObject, name: &str) -> &'a Value {
    set.data["spec"]["template"]["cliques"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no clique {name} in {:?}", set.metadata.name))
}

/// The `main` container of a clique's pod spec.
pub fn main_container(clique: &Value) -> &Value {
    clique["spec"]["podSpec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "main")
        .unwrap_or_else(|| panic!("clique {} has no main container", clique["name"]))
}

/// A container's launch as one line: command, then args.
pub fn launch(container: &Value) -> String {
    ["command", "args"]
        .iter()
        .flat_map(|key| container[key].as_array().cloned().unwrap_or_default())
        .map(|word| word.as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join(" ")
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
pub async fn set_status(api: &Api<DynamicObject>, name: &str, ready: bool) {
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
pub async fn play_grove(namespace: &TestNamespace, set: &DynamicObject, ready: bool) {
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

/// Graph `name`'s `status.state` and its first condition's message.
pub async fn graph_message(namespace: &TestNamespace, name: &str) -> (String, String) {
    let graph = graph_api(namespace).get(name).await.unwrap();
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

/// Waits (`within`) until graph `name` has `state` with a message containing `text`; panics
/// with the last state and message seen.
pub async fn wait_graph_message(
    namespace: &TestNamespace,
    name: &str,
    state: &str,
    text: &str,
    within: Duration,
) {
    let started = std::time::Instant::now();
    loop {
        let (now, message) = graph_message(namespace, name).await;
        if now == state && message.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "graph {name} not {state} with \"{text}\" within {within:?}; last: {now}: {message}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
