//! Upstream example graphs on the cluster: their documents, whether a graph is Ready, and
//! what the cluster says about one that is not.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

use crate::TestNamespace;

/// The documents of a multi-document YAML stream, as JSON values.
pub fn documents(yaml: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(Value::deserialize)
        .filter(|document| !matches!(document, Ok(Value::Null)))
        .collect()
}

#[derive(Debug)]
pub enum Outcome {
    Ready(Duration),
    /// kubectl apply failed (schema or webhook): its stderr.
    Refused(String),
    /// Not Ready in time: what the cluster says about it.
    NotReady(String),
}

pub fn graph_api(namespace: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("nvidia.com", "v1alpha1", "DynamoGraphDeployment");
    Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&gvk),
    )
}

/// Ready as `kubectl wait --for=condition=Ready` and the operator's own state agree: the
/// latest generation observed, state `successful`, condition Ready True.
pub fn graph_ready(graph: &Value) -> bool {
    let status = &graph["status"];
    status["observedGeneration"] == graph["metadata"]["generation"]
        && status["state"] == "successful"
        && status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

pub async fn wait_ready(namespace: &TestNamespace, graphs: &[String], within: Duration) -> Outcome {
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
        if started.elapsed() > within {
            return Outcome::NotReady(diagnose(namespace, graphs).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the cluster says about graphs that are not Ready, one fact a line.
pub async fn diagnose(namespace: &TestNamespace, graphs: &[String]) -> String {
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
pub fn graph_summary(graph: &Value) -> String {
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
pub fn pod_problem(pod: &Pod) -> Option<String> {
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

pub async fn list<K>(api: &Api<K>) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}
