//! Upstream's example graphs (`e2e/fixtures/upstream/`, transcribed from ai-dynamo/dynamo) on
//! the platform as a user installs it with helm: each fixture is applied with kubectl into a
//! namespace of its own, as upstream's instructions have it, and every graph in it must become
//! Ready. For a fixture that does not, the report gives the graph's state and conditions, the
//! Deployments and pods that are not ready, and the namespace's Warning events (a ReplicaSet's
//! FailedCreate, a pod's FailedScheduling, ...).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use dynamo_e2e::platform::SharedPlatform;
use dynamo_e2e::{Cluster, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

/// How long a graph may take to become Ready; kwok makes pods Ready within seconds.
const READY_WITHIN: Duration = Duration::from_secs(120);

#[tokio::test]
async fn upstream_example_graphs_become_ready() {
    let _platform = SharedPlatform::join().await;
    let gpus_per_node = std::env::var("DYNAMO_E2E_GPUS_PER_NODE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(8);
    let (whole_node, shared_node): (Vec<Fixture>, Vec<Fixture>) = fixtures()
        .into_iter()
        .partition(|fixture| fixture.largest_gpu_request >= gpus_per_node);
    // Workers that take whole nodes go first: the one-GPU workers of the others spread over
    // every node and would leave none whole.
    let mut runs = run_together(whole_node).await;
    runs.extend(run_together(shared_node).await);
    runs.sort_by(|a, b| a.fixture.cmp(&b.fixture));

    let mut report = format!("upstream graphs (Ready within {READY_WITHIN:?}):\n");
    for run in &runs {
        match &run.outcome {
            Outcome::Ready(after) => {
                writeln!(report, "  {:<22} Ready after {after:.1?}", run.fixture)
            }
            Outcome::Refused(why) => writeln!(
                report,
                "  {:<22} REFUSED by kubectl apply: {why}",
                run.fixture
            ),
            Outcome::NotReady(why) => writeln!(report, "  {:<22} NOT READY\n{why}", run.fixture),
        }
        .unwrap();
    }
    eprintln!("{report}");
    let failed = runs
        .iter()
        .filter(|run| !matches!(run.outcome, Outcome::Ready(_)))
        .count();
    // The namespaces go before the assertion: a failing test would print the control-plane
    // logs once per namespace otherwise.
    drop(runs);
    assert_eq!(failed, 0, "{report}");
}

/// One upstream example, as the files a user applies.
#[derive(Debug)]
struct Fixture {
    /// The file name without `.yaml`.
    name: String,
    yaml: String,
    /// Names of its DynamoGraphDeployments.
    graphs: Vec<String>,
    /// The most GPUs one pod of it asks for.
    largest_gpu_request: u32,
}

/// Every `e2e/fixtures/upstream/*.yaml`, by name.
fn fixtures() -> Vec<Fixture> {
    let dir = Cluster::get().repo.join("e2e/fixtures/upstream");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths.iter().map(|path| read_fixture(path)).collect()
}

fn read_fixture(path: &Path) -> Fixture {
    let yaml =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let documents = documents(&yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let graphs: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "DynamoGraphDeployment")
        .collect();
    assert!(
        !graphs.is_empty(),
        "{}: no DynamoGraphDeployment",
        path.display()
    );
    Fixture {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        graphs: graphs
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap().to_owned())
            .collect(),
        largest_gpu_request: graphs.iter().map(|g| largest_gpu_request(g)).max().unwrap(),
        yaml,
    }
}

/// The documents of a multi-document YAML stream, as JSON values.
fn documents(yaml: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(Value::deserialize)
        .filter(|document| !matches!(document, Ok(Value::Null)))
        .collect()
}

/// The largest `gpu` limit or request of any service of a graph: what one of its pods takes.
fn largest_gpu_request(graph: &Value) -> u32 {
    let Some(services) = graph["spec"]["services"].as_object() else {
        return 0;
    };
    services
        .values()
        .flat_map(|service| ["limits", "requests"].map(|kind| &service["resources"][kind]["gpu"]))
        .filter_map(|gpu| {
            gpu.as_str()
                .and_then(|text| text.parse().ok())
                .or_else(|| gpu.as_u64().and_then(|n| n.try_into().ok()))
        })
        .max()
        .unwrap_or(0)
}

#[derive(Debug)]
enum Outcome {
    Ready(Duration),
    /// kubectl apply failed (schema or webhook): its stderr.
    Refused(String),
    /// Not Ready within [`READY_WITHIN`]: what the cluster says about it.
    NotReady(String),
}

/// A fixture's outcome; its namespace lives as long as this does.
struct Run {
    fixture: String,
    outcome: Outcome,
    _namespace: TestNamespace,
}

/// Applies the fixtures at once, each into its own namespace, and waits for all of them.
async fn run_together(fixtures: Vec<Fixture>) -> Vec<Run> {
    let tasks: Vec<_> = fixtures.into_iter().map(|f| tokio::spawn(run(f))).collect();
    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await.expect("fixture task"));
    }
    runs
}

async fn run(fixture: Fixture) -> Run {
    let namespace = TestNamespace::new(&format!("up-{}", fixture.name)).await;
    let applied = namespace.kubectl_apply(&fixture.yaml);
    let outcome = if applied.status.success() {
        wait_ready(&namespace, &fixture.graphs).await
    } else {
        Outcome::Refused(String::from_utf8_lossy(&applied.stderr).trim().to_owned())
    };
    Run {
        fixture: fixture.name,
        outcome,
        _namespace: namespace,
    }
}

fn graph_api(namespace: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("nvidia.com", "v1alpha1", "DynamoGraphDeployment");
    Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&gvk),
    )
}

/// Ready as `kubectl wait --for=condition=Ready` and the operator's own state agree: the
/// latest generation observed, state `successful`, condition Ready True.
fn graph_ready(graph: &Value) -> bool {
    let status = &graph["status"];
    status["observedGeneration"] == graph["metadata"]["generation"]
        && status["state"] == "successful"
        && status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

async fn wait_ready(namespace: &TestNamespace, graphs: &[String]) -> Outcome {
    let api = graph_api(namespace);
    let started = Instant::now();
    loop {
        let mut ready = 0;
        for name in graphs {
            if let Ok(graph) = api.get(name).await
                && graph_ready(&serde_json::to_value(&graph).unwrap())
            {
                ready += 1;
            }
        }
        if ready == graphs.len() {
            return Outcome::Ready(started.elapsed());
        }
        if started.elapsed() > READY_WITHIN {
            return Outcome::NotReady(diagnose(namespace, graphs).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the cluster says about graphs that are not Ready, one fact a line.
async fn diagnose(namespace: &TestNamespace, graphs: &[String]) -> String {
    let mut lines = Vec::new();
    let api = graph_api(namespace);
    for name in graphs {
        match api.get(name).await {
            Ok(graph) => lines.push(format!(
                "graph {name}: {}",
                graph_summary(&serde_json::to_value(&graph).unwrap())
            )),
            Err(e) => lines.push(format!("graph {name}: {e}")),
        }
    }
    let deployments: Api<Deployment> = namespace.api();
    for deployment in list(&deployments).await {
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let ready = deployment
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready < desired {
            lines.push(format!(
                "deployment {}: {ready}/{desired} ready",
                deployment.metadata.name.unwrap_or_default()
            ));
        }
    }
    let pods: Api<Pod> = namespace.api();
    for pod in list(&pods).await {
        if let Some(problem) = pod_problem(&pod) {
            lines.push(format!(
                "pod {}: {problem}",
                pod.metadata.name.unwrap_or_default()
            ));
        }
    }
    let events: Api<Event> = namespace.api();
    let mut warnings: Vec<String> = list(&events)
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            format!(
                "event {}/{} {}: {}",
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default().trim()
            )
        })
        .collect();
    warnings.sort();
    warnings.dedup();
    lines.extend(warnings);
    lines
        .iter()
        .map(|line| format!("      {line}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// `state S; Ready=False (Reason: message)` and any other conditions, from a graph's status.
fn graph_summary(graph: &Value) -> String {
    let status = &graph["status"];
    let mut summary = format!(
        "state {}, observedGeneration {} of {}",
        status["state"].as_str().unwrap_or("(none)"),
        status["observedGeneration"],
        graph["metadata"]["generation"]
    );
    for condition in status["conditions"].as_array().into_iter().flatten() {
        write!(
            summary,
            "; {}={} ({}: {})",
            condition["type"].as_str().unwrap_or_default(),
            condition["status"].as_str().unwrap_or_default(),
            condition["reason"].as_str().unwrap_or_default(),
            condition["message"].as_str().unwrap_or_default()
        )
        .unwrap();
    }
    summary
}

/// Why a pod is not Running and Ready, if it is not: its phase and the message of its first
/// false condition.
fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if ready {
        return None;
    }
    let phase = status.phase.as_deref().unwrap_or("(no phase)");
    let why = conditions
        .iter()
        .find(|c| c.status != "True")
        .map(|c| {
            format!(
                " ({} {}: {})",
                c.type_,
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    Some(format!("{phase}{why}"))
}

async fn list<K>(api: &Api<K>) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}

#[test]
fn the_largest_gpu_request_is_that_of_the_biggest_worker() {
    let graph = documents(
        "
kind: DynamoGraphDeployment
spec:
  services:
    Frontend: {componentType: frontend}
    decode: {resources: {limits: {gpu: '8'}}}
    prefill: {resources: {requests: {gpu: '2'}, limits: {gpu: '4'}}}
",
    )
    .unwrap()
    .remove(0);
    assert_eq!(largest_gpu_request(&graph), 8);
    let cpu_only = documents("kind: DynamoGraphDeployment\nspec: {services: {F: {}}}")
        .unwrap()
        .remove(0);
    assert_eq!(largest_gpu_request(&cpu_only), 0);
}

#[test]
fn every_fixture_names_its_upstream_source_and_has_a_graph() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let fixture = read_fixture(&path);
        assert!(
            fixture.yaml.starts_with("# Upstream: ai-dynamo/dynamo "),
            "{}: the header does not name the upstream file",
            path.display()
        );
        assert!(
            readme.contains(&format!("`{}.yaml`", fixture.name)),
            "{}: not listed in README.md",
            path.display()
        );
    }
}
