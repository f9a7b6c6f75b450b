//! Reconcile metrics, named and labelled as upstream's.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub resource_type: &'static str,
    pub namespace: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub resource_type: &'static str,
    pub namespace: String,
    pub error_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InventoryLabels {
    pub resource_type: &'static str,
    pub namespace: String,
    pub status: String,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    duration: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    total: Family<ReconcileLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    pub resources: Family<InventoryLabels, Gauge>,
    /// Create, update, patch and delete calls the operator made.
    pub writes: Counter,
    /// Namespaces left to namespace-restricted operators (cluster-wide mode).
    pub excluded_namespaces: Gauge,
    /// 1 while this process is the elected leader (or runs without election), else 0.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(dynamo_common::process_metrics::ProcessCollector));
        let duration =
            Family::<ReconcileLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        let total = Family::<ReconcileLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let resources = Family::<InventoryLabels, Gauge>::default();
        let writes = Counter::default();
        let excluded_namespaces = Gauge::default();
        let leader = Gauge::default();
        registry.register(
            "dynamo_operator_leader",
            "1 while this process holds leadership and reconciles",
            leader.clone(),
        );
        registry.register(
            "dynamo_operator_excluded_namespaces",
            "Namespaces holding a live namespace-scope lease, left to their own operator",
            excluded_namespaces.clone(),
        );
        registry.register(
            "dynamo_operator_api_writes",
            "Writes to the Kubernetes API (a converged reconcile makes none)",
            writes.clone(),
        );
        registry.register_with_unit(
            "dynamo_operator_reconcile_duration",
            "Time spent in one reconcile",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "dynamo_operator_reconcile",
            "Reconciles, by result",
            total.clone(),
        );
        registry.register(
            "dynamo_operator_reconcile_errors",
            "Failed reconciles, by Kubernetes API error class",
            errors.clone(),
        );
        registry.register(
            "dynamo_operator_resources_total",
            "Managed resources, by state",
            resources.clone(),
        );
        Metrics {
            registry,
            duration,
            total,
            errors,
            resources,
            writes,
            excluded_namespaces,
            leader,
        }
    }
}

impl Metrics {
    pub fn record(
        &self,
        resource_type: &'static str,
        namespace: &str,
        started: Instant,
        error_type: Option<&'static str>,
    ) {
        let labels = ReconcileLabels {
            resource_type,
            namespace: namespace.to_owned(),
            result: if error_type.is_some() {
                "error"
            } else {
                "success"
            },
        };
        self.duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.total.get_or_create(&labels).inc();
        if let Some(error_type) = error_type {
            self.errors
                .get_or_create(&ErrorLabels {
                    resource_type,
                    namespace: namespace.to_owned(),
                    error_type,
                })
                .inc();
        }
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The upstream error classes of a Kubernetes API error.
pub fn error_type(error: &kube::Error) -> &'static str {
    let kube::Error::Api(status) = error else {
        return "internal";
    };
    match (status.code, status.reason.as_str()) {
        (404, _) => "not_found",
        (409, "AlreadyExists") => "already_exists",
        (409, _) => "conflict",
        (422, _) => "validation",
        (400, _) => "bad_request",
        (401, _) => "unauthorized",
        (403, _) => "forbidden",
        (408, _) | (504, _) => "timeout",
        (500, "ServerTimeout") => "server_timeout",
        (503, _) => "unavailable",
        (429, _) => "rate_limited",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator's series every query of the chart's Grafana dashboard reads (the webhook's
    /// are the webhook's own).
    #[test]
    fn every_dashboard_query_of_the_operator_has_its_series() {
        let metrics = Metrics::default();
        metrics.record(
            "DynamoGraphDeployment",
            "ns",
            Instant::now(),
            Some("conflict"),
        );
        metrics.writes.inc();
        metrics
            .resources
            .get_or_create(&InventoryLabels {
                resource_type: "DynamoGraphDeployment",
                namespace: "ns".into(),
                status: "successful".into(),
            })
            .set(1);
        let text = metrics.encode();
        let dashboard = include_str!(
            "../../../charts/platform/components/operator/dashboards/dynamo-operator.json"
        );
        let mut queried: Vec<&str> = dashboard
            .match_indices("dynamo_operator_")
            .map(|(start, _)| {
                let rest = &dashboard[start..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|name| !name.starts_with("dynamo_operator_webhook_"))
            .collect();
        queried.sort_unstable();
        queried.dedup();
        assert!(queried.len() >= 6, "{queried:?}");
        for name in queried {
            assert!(
                text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                "the dashboard queries {name}, which the operator does not export:\n{text}"
            );
        }
        assert!(text.contains("# TYPE dynamo_operator_resources_total gauge"));
        assert!(text.contains("\nprocess_resident_memory_bytes "));
    }
}
