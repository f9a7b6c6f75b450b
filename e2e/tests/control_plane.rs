//! The local control plane itself and our CRDs on it: schema validation by a real
//! kube-apiserver, garbage collection, and kwok-run workloads.

use std::time::Duration;

use dynamo_e2e::manifests::{Graph, example, graph};
use dynamo_e2e::webhook::rejects;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, established, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

fn examples() -> Vec<(String, String)> {
    let dir = Cluster::get().repo.join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

fn api_for(ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("nvidia.com", "v1alpha1", kind);
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

/// Fields the server may add to what a user wrote: schema defaults only.
const DEFAULTED_FIELDS: &[&str] = &["useAsCompilationCache"];

/// Every value the user wrote is stored unchanged (nothing pruned or rewritten); anything
/// extra is a schema default.
fn assert_preserved(path: &str, written: &Value, stored: &Value) {
    match (written, stored) {
        (Value::Object(w), Value::Object(s)) => {
            for (key, value) in w {
                let child = format!("{path}.{key}");
                let stored = s.get(key).unwrap_or_else(|| panic!("{child} was dropped"));
                assert_preserved(&child, value, stored);
            }
            for key in s.keys().filter(|k| !w.contains_key(*k)) {
                assert!(
                    DEFAULTED_FIELDS.contains(&key.as_str()),
                    "{path}.{key} was added by the server"
                );
            }
        }
        (Value::Array(w), Value::Array(s)) => {
            assert_eq!(w.len(), s.len(), "{path} changed length");
            for (i, (w, s)) in w.iter().zip(s).enumerate() {
                assert_preserved(&format!("{path}[{i}]"), w, s);
            }
        }
        _ => assert_eq!(written, stored, "{path} changed"),
    }
}

#[tokio::test]
async fn crds_install_with_helm_and_become_established() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    for crd in dynamo_api::crd::all() {
        let stored = crds
            .get(crd.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert!(established(&stored));
        let annotations = stored.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep")
        );
    }
    // Short names resolve through discovery, as users type them.
    let output = cluster
        .kubectl()
        .args(["get", "dgd,dcd,dm", "-A"])
        .output()
        .unwrap();
    assert_success("kubectl get dgd,dcd,dm", &output);
}

#[tokio::test]
async fn every_example_is_accepted_and_reads_back_as_written() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("examples").await;
    let examples = examples();
    assert!(examples.len() >= 5);
    for (file, yaml) in examples {
        let output = ns.kubectl_apply(&yaml);
        assert_success(&format!("kubectl apply -f examples/{file}"), &output);
        let written: Value = serde_yaml::from_str(&yaml).unwrap();
        let kind = written["kind"].as_str().unwrap();
        let name = written["metadata"]["name"].as_str().unwrap();
        let stored = api_for(&ns, kind).get(name).await.unwrap();
        let stored = serde_json::to_value(&stored).unwrap();
        assert_preserved(&format!("{file}: spec"), &written["spec"], &stored["spec"]);
        // And the stored object reads into our typed structs.
        match kind {
            "DynamoGraphDeployment" => {
                dynamo_api::parse::from_value::<dynamo_api::v1alpha1::DynamoGraphDeployment>(
                    stored,
                )
                .unwrap();
            }
            "DynamoModel" => {
                dynamo_api::parse::from_value::<dynamo_api::v1alpha1::DynamoModel>(stored).unwrap();
            }
            other => panic!("{file}: unexpected kind {other}"),
        }
    }
}

/// `graph` is refused by the schema naming `field`, saying `says`, and is not stored.
async fn refused_by_the_schema(ns: &TestNamespace, graph: Graph, field: &str, says: &str) {
    let refusal = rejects(ns, &graph.yaml(), field);
    assert!(
        refusal.contains(says),
        "{}: {says:?} not in {refusal}",
        graph.name()
    );
    let stored = api_for(ns, "DynamoGraphDeployment")
        .get_opt(graph.name())
        .await
        .unwrap();
    assert!(stored.is_none(), "{} was stored", graph.name());
}

#[tokio::test]
async fn invalid_manifests_are_rejected_by_the_schema_with_the_field_named() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("invalid").await;
    refused_by_the_schema(
        &ns,
        graph("bad-enum").backend("tensorflow"),
        "spec.backendFramework",
        "Unsupported value: \"tensorflow\"",
    )
    .await;
    let too_many = (0..26).fold(graph("too-many"), |graph, i| {
        graph.service(&format!("svc{i}"), "componentType: worker")
    });
    refused_by_the_schema(&ns, too_many, "spec.services", "must have at most 25 items").await;
    refused_by_the_schema(
        &ns,
        graph("negative").service("Frontend", "replicas: -1"),
        "spec.services.Frontend.replicas",
        "greater than or equal to 0",
    )
    .await;
    refused_by_the_schema(
        &ns,
        graph("one-node").service(
            "W",
            "
            multinode:
              nodeCount: 1
            ",
        ),
        "spec.services.W.multinode.nodeCount",
        "greater than or equal to 2",
    )
    .await;
    refused_by_the_schema(
        &ns,
        graph("pvc-rule").spec(
            "
            pvcs:
              - name: cache
                create: true
            ",
        ),
        "spec.pvcs[0]",
        "When create is true, size, storageClass, and volumeAccessMode are required",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("gc").await;
    assert_success("apply graph", &ns.kubectl_apply(&example("vllm-agg.yaml")));
    let config = "
apiVersion: v1
kind: ConfigMap
metadata:
  name: keep-me
data:
  a: b
";
    assert_success("apply configmap", &ns.kubectl_apply(config));

    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    namespaces
        .delete(&ns.name, &Default::default())
        .await
        .unwrap();
    wait_until("namespace deletion", Duration::from_secs(60), || async {
        namespaces
            .get_opt(&ns.name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let graphs = api_for(&ns, "DynamoGraphDeployment");
    assert!(
        graphs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let configs: Api<ConfigMap> = ns.api();
    assert!(configs.get_opt("keep-me").await.unwrap().is_none());
}

#[tokio::test]
async fn a_deployment_gets_ready_pods_from_kwok() {
    let ns = TestNamespace::new("kwok").await;
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.invalid/web:1
"#;
    assert_success("apply deployment", &ns.kubectl_apply(deployment));
    let deployments: Api<Deployment> = ns.api();
    wait_until("2 ready replicas", Duration::from_secs(60), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.ready_replicas? == 2).then_some(())
    })
    .await;
    let pods: Api<Pod> = ns.api();
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in pods.items {
        let status = pod.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let ip = status.pod_ip.unwrap();
        assert!(
            ip.starts_with("10.244."),
            "pod IP {ip} outside the pod CIDR"
        );
    }
}

/// A whole number from the environment `hack/cluster.sh env` exports, or its default there.
fn cluster_count(variable: &str, default: usize) -> usize {
    std::env::var(variable).map_or(default, |value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{variable}={value:?} is not a whole number"))
    })
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Room for upstream recipes: every fake node is a labelled GPU node, claims of both access
/// modes bind through the default StorageClass and a pod using one runs, and two 8-GPU pods
/// (16 GPUs) schedule on two nodes.
#[tokio::test]
async fn gpu_nodes_bind_claims_and_fit_a_sixteen_gpu_spread() {
    let ns = TestNamespace::new("capacity").await;
    let nodes = cluster_count("DYNAMO_E2E_NODES", 4);
    let gpus_per_node = cluster_count("DYNAMO_E2E_GPUS_PER_NODE", 8);

    let listed = Api::<Node>::all(ns.client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .unwrap()
        .items;
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    names.sort_by_key(|name| name.trim_start_matches("kwok-node-").parse::<usize>().ok());
    let expected: Vec<String> = (0..nodes).map(|i| format!("kwok-node-{i}")).collect();
    assert_eq!(names, expected);
    for node in &listed {
        let name = node.metadata.name.as_deref().unwrap();
        let labels = node.metadata.labels.as_ref().unwrap();
        let gpus = gpus_per_node.to_string();
        for (key, value) in [
            ("nvidia.com/gpu.present", "true"),
            ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
            ("nvidia.com/gpu.count", gpus.as_str()),
            ("kubernetes.io/hostname", name),
            ("type", "kwok"),
        ] {
            assert_eq!(
                labels.get(key).map(String::as_str),
                Some(value),
                "{name}: {key}"
            );
        }
        let allocatable = node.status.as_ref().unwrap().allocatable.as_ref().unwrap();
        assert_eq!(allocatable["nvidia.com/gpu"].0, gpus, "{name}: allocatable");
    }

    let spread = 16 / 8;
    assert!(
        nodes >= spread && gpus_per_node >= 8,
        "a 16-GPU spread needs 2 nodes of 8 GPUs; this cluster has {nodes} of {gpus_per_node} \
         (DYNAMO_E2E_NODES, DYNAMO_E2E_GPUS_PER_NODE)"
    );
    let manifests = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: model-cache}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 100Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: uses-scratch, labels: {app: capacity}}
spec:
  containers:
    - name: main
      image: registry.invalid/main:1
      volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes:
    - name: scratch
      persistentVolumeClaim: {claimName: scratch}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: tensor-parallel-16}
spec:
  replicas: 2
  selector:
    matchLabels: {app: tp16}
  template:
    metadata:
      labels: {app: tp16}
    spec:
      containers:
        - name: worker
          image: registry.invalid/worker:1
          resources:
            limits: {nvidia.com/gpu: "8"}
          volumeMounts: [{name: cache, mountPath: /models}]
      volumes:
        - name: cache
          persistentVolumeClaim: {claimName: model-cache}
"#;
    assert_success("apply claims and pods", &ns.kubectl_apply(manifests));

    let claims: Api<PersistentVolumeClaim> = ns.api();
    for claim in ["scratch", "model-cache"] {
        let bound = wait_until(
            &format!("claim {claim} Bound"),
            Duration::from_secs(60),
            || async {
                let claim = claims.get(claim).await.ok()?;
                (claim.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(claim)
            },
        )
        .await;
        assert_eq!(
            bound.spec.unwrap().storage_class_name.as_deref(),
            Some("standard"),
            "{claim}: not from the default StorageClass"
        );
    }

    let pods: Api<Pod> = ns.api();
    wait_until(
        "the pod using the claim Running",
        Duration::from_secs(60),
        || async {
            let pod = pods.get("uses-scratch").await.ok()?;
            (pod_phase(&pod) == Some("Running")).then_some(())
        },
    )
    .await;
    let workers = wait_until(
        "both 8-GPU pods Running",
        Duration::from_secs(60),
        || async {
            let workers = pods
                .list(&ListParams::default().labels("app=tp16"))
                .await
                .ok()?
                .items;
            (workers.len() == spread && workers.iter().all(|p| pod_phase(p) == Some("Running")))
                .then_some(workers)
        },
    )
    .await;
    let mut on: Vec<String> = workers
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    on.sort();
    on.dedup();
    assert_eq!(on.len(), spread, "8-GPU pods share a node: {on:?}");
}
