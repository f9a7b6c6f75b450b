//! The `dynamo_operator_resources_total` inventory gauge, counted from the watch caches (no API
//! calls): graphs by `status.state` (`unknown` when unset), components by their `Available`
//! condition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kube::ResourceExt;

use crate::caches::decoded;
use crate::context::Context;
use crate::desired::status::{AVAILABLE, holds};
use crate::metrics::InventoryLabels;

const INTERVAL: Duration = Duration::from_secs(30);

/// (kind, namespace, status) → count.
type Counts = BTreeMap<(&'static str, String, String), i64>;

/// Every [`INTERVAL`], once the caches have synced.
pub async fn count_resources(context: Arc<Context>) {
    if !context.caches.wait_synced(&context.config.served).await {
        return;
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let now = SystemTime::now();
        let excluded = context.scope.excluded(now);
        if !excluded.is_empty() {
            tracing::info!(
                ?excluded,
                "namespaces held by namespace-restricted operators"
            );
        }
        context
            .metrics
            .excluded_namespaces
            .set(excluded.len() as i64);
        publish(&context, count(&context, now));
    }
}

fn count(context: &Context, now: SystemTime) -> Counts {
    let mut counts = Counts::new();
    let in_scope = |namespace: Option<String>| context.scope.validates(namespace.as_deref(), now);
    for graph in context.caches.graphs.state() {
        if !in_scope(graph.namespace()) {
            continue;
        }
        let Some(graph) = decoded(&graph) else {
            continue;
        };
        let state = graph
            .status
            .as_ref()
            .and_then(|s| s.state.clone())
            .unwrap_or_else(|| "unknown".into());
        let key = (
            "DynamoGraphDeployment",
            graph.namespace().unwrap_or_default(),
            state,
        );
        *counts.entry(key).or_default() += 1;
    }
    for component in context.caches.components.state() {
        if !in_scope(component.namespace()) {
            continue;
        }
        let Some(component) = decoded(&component) else {
            continue;
        };
        let conditions = component
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref());
        let state = if holds(conditions, AVAILABLE) {
            "ready"
        } else {
            "not_ready"
        };
        let namespace = component.namespace().unwrap_or_default();
        *counts
            .entry(("DynamoComponentDeployment", namespace, state.into()))
            .or_default() += 1;
    }
    counts
}

fn publish(context: &Context, counts: Counts) {
    let gauge = &context.metrics.resources;
    gauge.clear();
    for ((resource_type, namespace, status), count) in counts {
        gauge
            .get_or_create(&InventoryLabels {
                resource_type,
                namespace,
                status,
            })
            .set(count);
    }
}
