//! Operator benchmark driver, run by `hack/bench-operator.sh` inside the cluster's network
//! namespace.
//!
//!   bench_operator operator N NAMESPACE   apply N three-service graphs, wait until all are
//!                                          `successful` (the operator must be running)
//!   bench_operator ceiling N NAMESPACE    apply the same Deployments and Services directly
//!                                          with a bare client and wait until all are ready
//!
//! Prints one JSON line: total seconds from the last apply to the last ready, and p50/p99 of
//! apply→ready per graph.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dynamo_api::v1alpha1::DynamoGraphDeployment;
use dynamo_operator::build::config::OperatorConfig;
use dynamo_operator::build::{graph, pod, rbac, workload};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

const CONCURRENCY: usize = 16;
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

    let started = Instant::now();
    let applied: HashMap<String, Instant> = match mode.as_str() {
        "operator" => apply_graphs(&client, namespace, &names).await?,
        "ceiling" => apply_children(&client, namespace, &names).await?,
        other => anyhow::bail!("unknown mode {other}"),
    };
    let last_apply = applied.values().max().copied().unwrap_or(started);

    let mut ready_at: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while ready_at.len() < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} ready after 30 minutes",
            ready_at.len()
        );
        for name in ready_now(&client, namespace, mode).await? {
            ready_at.entry(name).or_insert_with(Instant::now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
        })
    );
    Ok(())
}

/// Graph names that are ready now: `successful` graphs, or graphs whose three Deployments
/// are ready (ceiling).
async fn ready_now(client: &Client, namespace: &str, mode: &str) -> anyhow::Result<Vec<String>> {
    if mode == "operator" {
        let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client.clone(), namespace);
        return Ok(graphs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|g| g.status.as_ref().and_then(|s| s.state.as_deref()) == Some("successful"))
            .map(|g| g.name_any())
            .collect());
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut ready: HashMap<String, usize> = HashMap::new();
    for deployment in deployments.list(&ListParams::default()).await?.items {
        if workload::is_deployment_ready(&deployment) {
            let graph =
                deployment.labels()[dynamo_api::labels::label::GRAPH_DEPLOYMENT_NAME].clone();
            *ready.entry(graph).or_default() += 1;
        }
    }
    Ok(ready
        .into_iter()
        .filter(|(_, n)| *n == 3)
        .map(|(g, _)| g)
        .collect())
}

async fn apply_graphs(
    client: &Client,
    namespace: &str,
    names: &[String],
) -> anyhow::Result<HashMap<String, Instant>> {
    let graphs: Api<DynamoGraphDeployment> = Api::namespaced(client.clone(), namespace);
    let results = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let graphs = graphs.clone();
            async move {
                let graph: DynamoGraphDeployment =
                    dynamo_api::parse::from_yaml(&graph_yaml(&name, namespace))?;
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

/// The operator's own builders, applied by a bare client: what the operator's children are,
/// without the graph and component objects and their status writes.
async fn apply_children(
    client: &Client,
    namespace: &str,
    names: &[String],
) -> anyhow::Result<HashMap<String, Instant>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let config = OperatorConfig::default();
    let results = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let (deployments, services, config) =
                (deployments.clone(), services.clone(), config.clone());
            async move {
                let mut graph: DynamoGraphDeployment =
                    dynamo_api::parse::from_yaml(&graph_yaml(&name, namespace))?;
                graph.metadata.uid = Some(format!("bench-{name}"));
                let (mut account, mut role, mut binding) = rbac::discovery_rbac(&graph);
                account.metadata.owner_references = None;
                role.metadata.owner_references = None;
                binding.metadata.owner_references = None;
                let apply = PatchParams::apply(MANAGER);
                Api::<ServiceAccount>::namespaced(client.clone(), namespace)
                    .patch(&account.name_any(), &apply, &Patch::Apply(&account))
                    .await?;
                Api::<Role>::namespaced(client.clone(), namespace)
                    .patch(&role.name_any(), &apply, &Patch::Apply(&role))
                    .await?;
                Api::<RoleBinding>::namespaced(client.clone(), namespace)
                    .patch(&binding.name_any(), &apply, &Patch::Apply(&binding))
                    .await?;
                for component in graph::desired_components(&graph, &config)? {
                    let template = pod::pod_template(&component, &name, &config)?;
                    let mut deployment = workload::deployment(&component, template);
                    // No owners: the graph and its components do not exist in this mode.
                    deployment.metadata.owner_references = None;
                    let deployment_name = deployment.name_any();
                    deployments
                        .patch(
                            &deployment_name,
                            &PatchParams::apply(MANAGER),
                            &Patch::Apply(&deployment),
                        )
                        .await?;
                    if let Some(mut service) = workload::service(&component, &config) {
                        service.metadata.owner_references = None;
                        services
                            .patch(
                                &service.name_any(),
                                &PatchParams::apply(MANAGER),
                                &Patch::Apply(&service),
                            )
                            .await?;
                    }
                }
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}
