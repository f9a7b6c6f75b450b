//! DynamoGraphDeploymentScalingAdapters: one per service with `scalingAdapter.enabled`, owned
//! by the graph; and what an adapter asks of its graph.

use std::collections::BTreeMap;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{
    DgdRef, DynamoGraphDeployment, DynamoGraphDeploymentScalingAdapter,
    DynamoGraphDeploymentScalingAdapterSpec,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use super::naming::component_name;
use super::{BuildError, controller_ref, namespace_of};

/// The adapters the graph should have, named `<graph>-<lower(service)>`, their replicas seeded
/// from the service (an adapter that exists keeps its own: it owns the count from then on).
pub fn desired_adapters(
    graph: &DynamoGraphDeployment,
) -> Result<Vec<DynamoGraphDeploymentScalingAdapter>, BuildError> {
    let owner = controller_ref(graph)?;
    let namespace = namespace_of(graph)?;
    let name = graph.name_any();
    Ok(graph
        .spec
        .services
        .iter()
        .flatten()
        .filter(|(_, spec)| {
            spec.scaling_adapter
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(false)
        })
        .map(|(service, spec)| DynamoGraphDeploymentScalingAdapter {
            metadata: ObjectMeta {
                name: Some(component_name(&name, service)),
                namespace: Some(namespace.clone()),
                labels: Some(BTreeMap::from([
                    (label::GRAPH_DEPLOYMENT_NAME.to_owned(), name.clone()),
                    (label::COMPONENT.to_owned(), service.clone()),
                ])),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            spec: DynamoGraphDeploymentScalingAdapterSpec {
                replicas: spec.replicas.unwrap_or(1),
                dgd_ref: DgdRef {
                    name: name.clone(),
                    service_name: service.clone(),
                },
            },
            status: None,
        })
        .collect())
}

/// The label selector of a service's pods, as the adapter's `status.selector` (HPA reads it
/// through the `scale` subresource).
pub fn service_selector(graph: &str, service: &str) -> String {
    format!(
        "{}={graph},{}={service}",
        label::GRAPH_DEPLOYMENT_NAME,
        label::COMPONENT
    )
}

/// What an adapter needs done to its graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scaling {
    /// The graph or its service is gone, or the service no longer has an adapter: nothing to
    /// write (the graph controller deletes adapters it no longer wants).
    Detached,
    /// The service already has the adapter's replicas.
    InSync,
    /// Write `replicas` into the service.
    Scale { from: i32, to: i32 },
}

/// Compares the adapter's replicas with the service's (absent counts as 1, as everywhere).
pub fn scaling(
    adapter: &DynamoGraphDeploymentScalingAdapter,
    graph: Option<&DynamoGraphDeployment>,
) -> Scaling {
    let service = graph
        .and_then(|g| g.spec.services.as_ref())
        .and_then(|s| s.get(&adapter.spec.dgd_ref.service_name))
        .filter(|s| {
            s.scaling_adapter
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(false)
        });
    let Some(service) = service else {
        return Scaling::Detached;
    };
    let current = service.replicas.unwrap_or(1);
    if current == adapter.spec.replicas {
        Scaling::InSync
    } else {
        Scaling::Scale {
            from: current,
            to: adapter.spec.replicas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::testing::graph;

    const GRAPH: &str = "metadata: {name: g}
spec:
  services:
    Frontend: {componentType: frontend}
    Worker: {componentType: worker, replicas: 2, scalingAdapter: {enabled: true}}
    Prefill: {componentType: worker, scalingAdapter: {enabled: true}}
    Decode: {componentType: worker, scalingAdapter: {enabled: false}}
";

    #[test]
    fn one_adapter_per_enabled_service_seeded_from_its_replicas() {
        let adapters = desired_adapters(&graph(GRAPH)).unwrap();
        let summary: Vec<(String, i32, &str)> = adapters
            .iter()
            .map(|a| {
                (
                    a.name_any(),
                    a.spec.replicas,
                    a.spec.dgd_ref.service_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("g-prefill".to_owned(), 1, "Prefill"),
                ("g-worker".to_owned(), 2, "Worker"),
            ]
        );
        let worker = &adapters[1];
        assert_eq!(worker.spec.dgd_ref.name, "g");
        assert_eq!(worker.labels()[label::COMPONENT], "Worker");
        assert_eq!(worker.labels()[label::GRAPH_DEPLOYMENT_NAME], "g");
        let owner = &worker.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DynamoGraphDeployment", Some(true))
        );
    }

    #[test]
    fn the_selector_names_graph_and_service() {
        assert_eq!(
            service_selector("g", "Worker"),
            "nvidia.com/dynamo-graph-deployment-name=g,nvidia.com/dynamo-component=Worker"
        );
    }

    #[test]
    fn scaling_compares_adapter_and_service_replicas() {
        let dgd = graph(GRAPH);
        let adapter = |service: &str, replicas: i32| DynamoGraphDeploymentScalingAdapter {
            metadata: ObjectMeta::default(),
            spec: DynamoGraphDeploymentScalingAdapterSpec {
                replicas,
                dgd_ref: DgdRef {
                    name: "g".into(),
                    service_name: service.into(),
                },
            },
            status: None,
        };
        let cases = [
            (adapter("Worker", 2), Some(&dgd), Scaling::InSync),
            (
                adapter("Worker", 3),
                Some(&dgd),
                Scaling::Scale { from: 2, to: 3 },
            ),
            (
                adapter("Worker", 0),
                Some(&dgd),
                Scaling::Scale { from: 2, to: 0 },
            ),
            (adapter("Prefill", 1), Some(&dgd), Scaling::InSync),
            (adapter("Decode", 4), Some(&dgd), Scaling::Detached),
            (adapter("Gone", 4), Some(&dgd), Scaling::Detached),
            (adapter("Worker", 4), None, Scaling::Detached),
        ];
        for (adapter, graph, expected) in cases {
            let service = adapter.spec.dgd_ref.service_name.clone();
            assert_eq!(scaling(&adapter, graph), expected, "{service}");
        }
    }
}
