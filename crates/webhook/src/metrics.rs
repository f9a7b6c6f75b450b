//! Webhook metrics, named and labelled as upstream's so dashboards keep working; the denial
//! `reason` is the rule that failed (upstream reports an API error class there).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub resource_type: &'static str,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub resource_type: &'static str,
    pub operation: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    pub resource_type: &'static str,
    pub operation: &'static str,
    pub reason: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

pub struct Metrics {
    pub registry: Registry,
    pub duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub requests: Family<ResultLabels, Counter>,
    pub denials: Family<DenialLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(dynamo_common::process_metrics::ProcessCollector));
        let duration =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        let requests = Family::<ResultLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        registry.register_with_unit(
            "dynamo_operator_webhook_duration",
            "Time to answer an admission review",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "dynamo_operator_webhook_requests",
            "Admission reviews answered, by result",
            requests.clone(),
        );
        registry.register(
            "dynamo_operator_webhook_denials",
            "Admission reviews denied, by the rule that failed",
            denials.clone(),
        );
        Metrics {
            registry,
            duration,
            requests,
            denials,
        }
    }
}

impl Metrics {
    /// Records one answered review.
    pub fn observe(
        &self,
        resource_type: &'static str,
        operation: &'static str,
        seconds: f64,
        denied: Option<&'static str>,
    ) {
        let operation_labels = OperationLabels {
            resource_type,
            operation,
        };
        self.duration
            .get_or_create(&operation_labels)
            .observe(seconds);
        self.requests
            .get_or_create(&ResultLabels {
                resource_type,
                operation,
                result: if denied.is_some() {
                    "denied"
                } else {
                    "allowed"
                },
            })
            .inc();
        if let Some(reason) = denied {
            self.denials
                .get_or_create(&DenialLabels {
                    resource_type,
                    operation,
                    reason,
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_upstream_metric_names_with_the_rule_as_reason() {
        let metrics = Metrics::default();
        metrics.observe(
            "DynamoGraphDeployment",
            "UPDATE",
            0.002,
            Some("immutable_field"),
        );
        metrics.observe("DynamoGraphDeployment", "CREATE", 0.001, None);
        let text = metrics.encode();
        assert!(
            text.contains("dynamo_operator_webhook_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains(
            r#"dynamo_operator_webhook_requests_total{resource_type="DynamoGraphDeployment",operation="UPDATE",result="denied"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"dynamo_operator_webhook_denials_total{resource_type="DynamoGraphDeployment",operation="UPDATE",reason="immutable_field"} 1"#
        ), "{text}");
    }
}
