//! Operator benchmark driver, run by `hack/bench-operator.sh` inside the cluster's network
//! namespace.
//!
//!   bench_operator operator N NAMESPACE   apply N three-service graphs, wait until all are
//!                                          `successful` (the operator must be running)
//!   bench_operator ceiling N NAMESPACE    make the operator's minimum writes for the same
//!                                          graphs with a bare client, and wait the same way
//!
//! The ceiling is the write pattern the operator needs, done without a controller: apply the
//! graph (the user's write), add its finalizer, apply the discovery ServiceAccount, Role and
//! RoleBinding, the three components (with their finalizer) and their Deployments and
//! Services (with owner references, built by the operator's own builders); then, as soon as a
//! graph's three Deployments are ready, write the three component statuses and the graph
//! status (the operator's own status functions). A graph is ready when its status write
//! returns. Both modes see readiness through a watch.
//!
//! Prints one JSON line: seconds from the start and from the last apply to the last ready,
//! p50/p99 of apply→ready per graph, and the writes the driver made.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dynamo_api::labels::{FINALIZER, label};
use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment};
use dynamo_operator::desired::config::OperatorConfig;
use dynamo_operator::desired::status::{component_status, graph_status};
use dynamo_operator::desired::{graph, pod, rbac, workload};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

/// Requests in flight, as many as the operator allows itself.
const CONCURRENCY: usize = dynamo_operator::client::MAX_IN_FLIGHT;
const MANAGER: &str = "bench";

fn graph_yaml(name: &str, namespace: &str) -> String {
    format!(
        r#"apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  backendFramework: vllm
  services:
    Frontend:
      componentType: frontend
      extraPodSpec: {{mainContainer: {{image: "vllm-runtime:bench"}}}}
    Prefill:
      componentType: worker
      subComponentType: prefill
      extraPodSpec: {{mainContainer: {{image: "vllm-runtime:bench", args: ["--is-prefill-worker"]}}}}
    Decode:
      componentType: worker
      subComponentType: decode
      extraPodSpec: {{mainContainer: {{image: "vllm-runtime:bench"}}}}
"#
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Counts the driver's writes.
#[derive(Default)]
struct Writes(AtomicU64);

impl Writes {
    fn one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, count, namespace] = &args[..] else {
        anyhow::bail!("usage: bench_operator operator|ceiling N NAMESPACE");
    };
    let count: usize = count.parse().context("N")?;
    let client = Client::try_default().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;
    let names: Vec<String> = (0..count).map(|i| format!("g{i:04}")).collect();
    let writes = Arc::new(Writes::default());

    // Readiness arrives on this channel, from a watch started before the first apply.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let watch = match mode.as_str() {
        "operator" => tokio::spawn(watch_graphs(client.clone(), namespace.clone(), ready_tx)),
        "ceiling" => tokio::spawn(watch_deployments_and_finish(
            client.clone(),
            namespace.clone(),
            ready_tx,
            writes.clone(),
        )),
        other => anyhow::bail!("unknown mode {other}"),
    };

    let started = Instant::now();
    let applied: HashMap<String, Instant> = match mode.as_str() {
        "operator" => apply_graphs(&client, namespace, &names, &writes).await?,
        _ => apply_minimum(&client, namespace, &names, &writes).await?,
    };
    let last_apply = applied.values().max().copied().unwrap_or(started);

    let mut ready_at: HashMap<String, Instant> = HashMap::new();
    let deadline = tokio::time::sleep(Duration::from_secs(1800));
    tokio::pin!(deadline);
    while ready_at.len() < count {
        tokio::select! {
            ready = ready_rx.recv() => {
                let Some((name, at)) = ready else {
                    anyhow::bail!("readiness watch ended: {:?}", watch.await);
                };
                ready_at.entry(name).or_insert(at);
            }
            _ = &mut deadline => anyhow::bail!("only {} of {count} ready after 30 minutes", ready_at.len()),
        }
    }
    watch.abort();
    let last_ready = ready_at.values().max().copied().unwrap();
    let mut latencies: Vec<f64> = names
        .iter()
        .map(|n| ready_at[n].duration_since(applied[n]).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "mode": mode,
            "graphs": count,
            "apply_seconds": last_apply.duration_since(started).as_secs_f64(),
            "last_apply_to_all_ready_seconds": last_ready.saturating_duration_since(last_apply).as_secs_f64(),
            "start_to_all_ready_seconds": last_ready.duration_since(started).as_secs_f64(),
            "p50_apply_to_ready_seconds": percentile(&latencies, 0.50),
            "p99_apply_to_ready_seconds": percentile(&latencies, 0.99),
            "driver_writes": writes.0.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// Reports each graph the first time it is seen `successful`.
async fn watch_graphs(
    client: Client,
    namespace: String,
    ready: mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<()> {
    let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client, &namespace);
    let mut seen = HashSet::new();
    let mut events = std::pin::pin!(watcher(graphs, watcher::Config::default()).boxed());
    while let Some(event) = events.try_next().await? {
        let (watcher::Event::Apply(graph) | watcher::Event::InitApply(graph)) = event else {
            continue;
        };
        let successful =
            graph.status.as_ref().and_then(|s| s.state.as_deref()) == Some("successful");
        if successful && seen.insert(graph.name_any()) {
            let _ = ready.send((graph.name_any(), Instant::now()));
        }
    }
    Ok(())
}

/// Watches the Deployments; once all three of a graph are ready, writes the component and
/// graph statuses (the operator's last writes) and reports the graph ready.
async fn watch_deployments_and_finish(
    client: Client,
    namespace: String,
    ready: mpsc::UnboundedSender<(String, Instant)>,
    writes: Arc<Writes>,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let mut ready_deployments: HashMap<String, HashMap<String, Deployment>> = HashMap::new();
    let mut finished = HashSet::new();
    let mut events = std::pin::pin!(watcher(deployments, watcher::Config::default()).boxed());
    while let Some(event) = events.try_next().await? {
        let (watcher::Event::Apply(deployment) | watcher::Event::InitApply(deployment)) = event
        else {
            continue;
        };
        if !workload::is_deployment_ready(&deployment) {
            continue;
        }
        let graph = deployment.labels()[label::GRAPH_DEPLOYMENT_NAME].clone();
        let of_graph = ready_deployments.entry(graph.clone()).or_default();
        of_graph.insert(deployment.name_any(), deployment);
        if of_graph.len() == 3 && finished.insert(graph.clone()) {
            let of_graph: Vec<Deployment> = of_graph.values().cloned().collect();
            let (client, namespace, ready, writes) = (
                client.clone(),
                namespace.clone(),
                ready.clone(),
                writes.clone(),
            );
            tokio::spawn(async move {
                match write_statuses(&client, &namespace, &graph, &of_graph, &writes).await {
                    Ok(()) => {
                        let _ = ready.send((graph, Instant::now()));
                    }
                    Err(e) => eprintln!("status writes of {graph}: {e:#}"),
                }
            });
        }
    }
    Ok(())
}

/// The status writes the operator makes once a graph's Deployments are ready: one per
/// component, then the graph's.
async fn write_statuses(
    client: &Client,
    namespace: &str,
    graph_name: &str,
    deployments: &[Deployment],
    writes: &Writes,
) -> anyhow::Result<()> {
    let components: Api<DynamoComponentDeployment> = Api::namespaced(client.clone(), namespace);
    let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client.clone(), namespace);
    let mut updated = Vec::new();
    for deployment in deployments {
        let mut live = components.get(&deployment.name_any()).await?;
        let status = component_status(&live, Some(deployment), None, None);
        writes.one();
        components
            .patch_status(
                &live.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "status": status })),
            )
            .await?;
        live.status = Some(status);
        updated.push(live);
    }
    let graph = graphs.get(graph_name).await?;
    let status = graph_status(&graph, &updated);
    anyhow::ensure!(
        status.state.as_deref() == Some("successful"),
        "aggregate of {graph_name} is {:?}",
        status.state
    );
    writes.one();
    graphs
        .patch_status(
            graph_name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "status": status })),
        )
        .await?;
    Ok(())
}

async fn apply_graphs(
    client: &Client,
    namespace: &str,
    names: &[String],
    writes: &Writes,
) -> anyhow::Result<HashMap<String, Instant>> {
    let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client.clone(), namespace);
    let results = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let graphs = graphs.clone();
            async move {
                let graph: DynamoGraphDeployment =
                    dynamo_api::parse::from_yaml(&graph_yaml(&name, namespace))?;
                writes.one();
                graphs
                    .patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&graph))
                    .await?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

/// Applies `object` with the bench's field manager and returns what the server stored.
async fn apply<K>(api: &Api<K>, object: &K, writes: &Writes) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    writes.one();
    Ok(api
        .patch(
            &object.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

/// The operator's minimum writes for each graph up to its children; statuses follow from the
/// readiness watch.
async fn apply_minimum(
    client: &Client,
    namespace: &str,
    names: &[String],
    writes: &Writes,
) -> anyhow::Result<HashMap<String, Instant>> {
    let config = OperatorConfig::default();
    let results = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let config = config.clone();
            async move {
                let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client.clone(), namespace);
                let graph: DynamoGraphDeployment =
                    dynamo_api::parse::from_yaml(&graph_yaml(&name, namespace))?;
                let graph = apply(&graphs, &graph, writes).await?;
                let applied_at = Instant::now();
                writes.one();
                let finalizer = serde_json::json!({"metadata": {"finalizers": [FINALIZER]}});
                graphs
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&finalizer))
                    .await?;
                let (account, role, binding) = rbac::discovery_rbac(&graph);
                apply(
                    &Api::namespaced(client.clone(), namespace),
                    &account,
                    writes,
                )
                .await?;
                apply(&Api::namespaced(client.clone(), namespace), &role, writes).await?;
                apply(
                    &Api::namespaced(client.clone(), namespace),
                    &binding,
                    writes,
                )
                .await?;
                let _: (&ServiceAccount, &Role, &RoleBinding) = (&account, &role, &binding);
                let components: Api<DynamoComponentDeployment> =
                    Api::namespaced(client.clone(), namespace);
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
                let services: Api<Service> = Api::namespaced(client.clone(), namespace);
                for mut component in graph::desired_components(&graph, &config)? {
                    component.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
                    let component = apply(&components, &component, writes).await?;
                    let template = pod::component_pod_template(&component, &config)?;
                    apply(
                        &deployments,
                        &workload::deployment(&component, template),
                        writes,
                    )
                    .await?;
                    if let Some(service) = workload::service(&component, &config) {
                        apply(&services, &service, writes).await?;
                    }
                }
                anyhow::Ok((name, applied_at))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}
