//! Upstream's example graphs (`e2e/fixtures/upstream/`, transcribed from ai-dynamo/dynamo) on
//! the platform as a user installs it with helm: each fixture is applied with kubectl into a
//! namespace of its own, as upstream's instructions have it, and every graph in it must become
//! Ready. For a fixture that does not, the report gives the graph's state and conditions, the
//! Deployments and pods that are not ready, and the namespace's Warning events (a ReplicaSet's
//! FailedCreate, a pod's FailedScheduling, ...).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use dynamo_e2e::graphs::{Outcome, documents, wait_ready};
use dynamo_e2e::platform::SharedPlatform;
use dynamo_e2e::{Cluster, TestNamespace};
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
        wait_ready(&namespace, &fixture.graphs, READY_WITHIN).await
    } else {
        Outcome::Refused(String::from_utf8_lossy(&applied.stderr).trim().to_owned())
    };
    Run {
        fixture: fixture.name,
        outcome,
        _namespace: namespace,
    }
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
