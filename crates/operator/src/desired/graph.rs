//! DynamoGraphDeployment → the DynamoComponentDeployments of its services.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;

use dynamo_api::labels::{graph_annotation, label};
use dynamo_api::v1alpha1::{
    ComponentType, DynamoComponentDeployment, DynamoComponentDeploymentSharedSpec,
    DynamoComponentDeploymentSpec, DynamoGraphDeployment, IngressSpec, IngressTlsSpec,
};

use super::merge::merge_env;
use super::naming::{
    EPP_SERVICE_ACCOUNT, PLANNER_SERVICE_ACCOUNT, component_name, dynamo_namespace,
};
use super::{BuildError, OperatorConfig, controller_ref, namespace_of};

/// Graph annotations copied into every component's `spec.annotations` (the graph's value wins).
const PROPAGATED_ANNOTATIONS: [&str; 2] = [
    graph_annotation::ENABLE_METRICS,
    graph_annotation::DISCOVERY_BACKEND,
];

/// One DynamoComponentDeployment per service, in service-name order.
///
/// Each is named `<graph>-<lower(service)>`, owned by the graph (controller reference), labelled
/// with the component, Dynamo namespace and graph name (on its metadata and in `spec.labels`),
/// and carries the computed Dynamo namespace, the service name, the graph's backend framework,
/// the graph `envs` under the service's own, the graph's metrics/discovery annotations, the
/// planner service account, and the operator's default ingress for frontends without one.
///
/// Fails with [`BuildError::MultinodeUnsupported`] if a service spans several nodes and the
/// cluster serves no LeaderWorkerSet API.
pub fn desired_components(
    dgd: &DynamoGraphDeployment,
    config: &OperatorConfig,
) -> Result<Vec<DynamoComponentDeployment>, BuildError> {
    let services = dgd.spec.services.as_ref();
    if let Some((service, node_count)) = services
        .into_iter()
        .flatten()
        .map(|(name, spec)| (name, spec.node_count()))
        .find(|(_, nodes)| *nodes >= 2)
        .filter(|_| !config.served.leader_worker_set)
    {
        return Err(BuildError::MultinodeUnsupported {
            service: service.clone(),
            node_count,
        });
    }
    graph_components(dgd, config)
}

/// The DynamoComponentDeployments of [`desired_components`], whatever orchestrator runs the
/// multinode services: the graph-level pathway (Grove) builds its pods from them, without
/// applying them.
pub fn graph_components(
    dgd: &DynamoGraphDeployment,
    config: &OperatorConfig,
) -> Result<Vec<DynamoComponentDeployment>, BuildError> {
    let owner = controller_ref(dgd)?;
    let namespace = namespace_of(dgd)?;
    let graph = dgd.name_any();
    let services = dgd.spec.services.clone().unwrap_or_default();
    let graph_envs = dgd.spec.envs.as_deref().unwrap_or_default();
    let graph_annotations = dgd.annotations();

    let mut components = Vec::with_capacity(services.len());
    for (service_name, mut spec) in services {
        let global = spec.global_dynamo_namespace.unwrap_or(false);
        let dyn_namespace = dynamo_namespace(&namespace, &graph, global);
        let graph_labels = BTreeMap::from([
            (label::COMPONENT.to_owned(), service_name.clone()),
            (label::DYNAMO_NAMESPACE.to_owned(), dyn_namespace.clone()),
            (label::GRAPH_DEPLOYMENT_NAME.to_owned(), graph.clone()),
        ]);
        let mut labels = spec.labels.take().unwrap_or_default();
        labels.extend(graph_labels);

        spec.service_name = Some(service_name.clone());
        spec.dynamo_namespace = Some(dyn_namespace);
        spec.labels = Some(labels.clone());
        let envs = merge_env([graph_envs, spec.envs.as_deref().unwrap_or_default()]);
        spec.envs = (!envs.is_empty()).then_some(envs);
        for key in PROPAGATED_ANNOTATIONS {
            if let Some(value) = graph_annotations.get(key) {
                spec.annotations
                    .get_or_insert_default()
                    .insert(key.to_owned(), value.clone());
            }
        }
        apply_component_type_defaults(&mut spec, &graph, config);

        components.push(DynamoComponentDeployment {
            metadata: ObjectMeta {
                name: Some(component_name(&graph, &service_name)),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                owner_references: Some(vec![owner.clone()]),
                // Created with its finalizer: the component controller need not add it in a
                // write (and a reconcile round) of its own.
                finalizers: Some(vec![dynamo_api::labels::FINALIZER.to_owned()]),
                ..Default::default()
            },
            spec: DynamoComponentDeploymentSpec {
                backend_framework: dgd.spec.backend_framework,
                shared: spec,
            },
            status: None,
        });
    }
    Ok(components)
}

fn apply_component_type_defaults(
    spec: &mut DynamoComponentDeploymentSharedSpec,
    graph: &str,
    config: &OperatorConfig,
) {
    let account = match spec.component_type() {
        Some(ComponentType::Planner) => Some(PLANNER_SERVICE_ACCOUNT),
        Some(ComponentType::Epp) => Some(EPP_SERVICE_ACCOUNT),
        _ => None,
    };
    if let Some(account) = account {
        let pod = spec
            .extra_pod_spec
            .get_or_insert_default()
            .pod_spec
            .get_or_insert_default();
        if pod
            .service_account_name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            pod.service_account_name = Some(account.to_owned());
        }
    }
    if spec.component_type() == Some(ComponentType::Frontend) && spec.ingress.is_none() {
        spec.ingress = Some(Box::new(default_ingress(graph, config)));
    }
}

/// The operator-wide ingress of a frontend: enabled when a VirtualService gateway or an Ingress
/// class is configured; host = graph name; suffix, class and TLS Secret from the operator.
fn default_ingress(graph: &str, config: &OperatorConfig) -> IngressSpec {
    let gateway = config.virtual_service_gateway().is_some();
    let class = config.ingress_class();
    IngressSpec {
        enabled: Some(gateway || class.is_some()),
        host: Some(graph.to_owned()),
        use_virtual_service: Some(gateway),
        host_suffix: config.ingress_host_suffix().map(str::to_owned),
        ingress_controller_class_name: class.map(str::to_owned),
        tls: config.ingress_tls_secret().map(|secret| IngressTlsSpec {
            secret_name: Some(secret.to_owned()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
