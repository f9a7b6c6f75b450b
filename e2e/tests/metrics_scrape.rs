//! The running binaries export every series the chart's Grafana dashboard queries, and the
//! standard `process_*` series: scraped from a live operator and webhook that have just
//! reconciled a graph and admitted (and refused) objects.

use dynamo_e2e::manifests::{example, graph};
use dynamo_e2e::operator::{start_operator, wait_graph_ready};
use dynamo_e2e::webhook::{WebhookScope, rejects, start_webhook};
use std::time::Duration;

use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};

/// Every `dynamo_operator_*` series name the dashboard's queries use.
fn dashboard_series() -> Vec<String> {
    let path = Cluster::get()
        .repo
        .join("charts/platform/components/operator/dashboards/dynamo-operator.json");
    let dashboard = std::fs::read_to_string(&path).unwrap();
    let mut names: Vec<String> = dashboard
        .match_indices("dynamo_operator_")
        .map(|(start, _)| {
            let rest = &dashboard[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn exports(text: &str, name: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(['{', ' ']))
    })
}

#[tokio::test]
async fn running_binaries_export_every_series_the_dashboard_queries() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("scrape").await;
    let webhook = start_webhook(&ns, WebhookScope::Restricted).await;
    let operator = start_operator(&ns, &[]);
    assert_success(
        "apply vllm-agg",
        &ns.kubectl_apply(&example("vllm-agg.yaml")),
    );
    wait_graph_ready(&ns, "vllm-agg").await;
    // A refusal, so the denial series has a sample.
    rejects(
        &ns,
        &graph("empty").backend("vllm").no_services().yaml(),
        "spec.services",
    );

    // A component whose Deployment the API server refuses (a probe without a handler): its
    // reconcile fails, so the error counter has a sample too.
    assert_success(
        "apply refused",
        &ns.kubectl_apply(
            &graph("refused")
                .backend("vllm")
                .service(
                    "Worker",
                    "componentType: worker\nlivenessProbe:\n  periodSeconds: 7\n",
                )
                .yaml(),
        ),
    );
    // The error counter once the refused reconcile has run; the inventory gauge is counted
    // from the caches every 30 s, and its first count may have run before the graphs existed.
    for (what, series, within) in [
        (
            "a reconcile error",
            "dynamo_operator_reconcile_errors_total{",
            60,
        ),
        (
            "the inventory gauge",
            "dynamo_operator_resources_total{",
            45,
        ),
    ] {
        wait_until(what, Duration::from_secs(within), || async {
            operator.metrics().await.contains(series).then_some(())
        })
        .await;
    }

    let operator_text = operator.metrics().await;
    let webhook_text = webhook.metrics().await;
    let queried = dashboard_series();
    assert!(queried.len() >= 9, "dashboard series: {queried:?}");
    for name in &queried {
        let (binary, text) = if name.starts_with("dynamo_operator_webhook_") {
            ("webhook", &webhook_text)
        } else {
            ("operator", &operator_text)
        };
        assert!(
            exports(text, name),
            "the dashboard queries {name}, which the running {binary} does not export:\n{text}"
        );
    }
    for (binary, text) in [("operator", &operator_text), ("webhook", &webhook_text)] {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(exports(text, name), "{binary} lacks {name}:\n{text}");
        }
    }
    eprintln!(
        "{} dashboard series exported by the running binaries: {queried:?}",
        queried.len()
    );
}
