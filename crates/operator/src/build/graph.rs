//! DynamoGraphDeployment → the DynamoComponentDeployments of its services.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;

use dynamo_api::labels::{graph_annotation, label};
use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoComponentDeploymentSharedSpec, DynamoComponentDeploymentSpec,
    DynamoGraphDeployment, IngressSpec, IngressTlsSpec, component_type,
};

use super::merge::merge_env;
use super::naming::{PLANNER_SERVICE_ACCOUNT, component_name, dynamo_namespace};
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
/// Fails with [`BuildError::MultinodeUnsupported`] if any service spans several nodes.
pub fn desired_components(
    dgd: &DynamoGraphDeployment,
    config: &OperatorConfig,
) -> Result<Vec<DynamoComponentDeployment>, BuildError> {
    let owner = controller_ref(dgd)?;
    let namespace = namespace_of(dgd)?;
    let graph = dgd.name_any();
    let services = dgd.spec.services.clone().unwrap_or_default();
    if let Some((service, node_count)) = services
        .iter()
        .map(|(name, spec)| (name, node_count(spec)))
        .find(|(_, nodes)| *nodes >= 2)
    {
        return Err(BuildError::MultinodeUnsupported {
            service: service.clone(),
            node_count,
        });
    }
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

/// Nodes per replica: `multinode.nodeCount` (2 when the block is present without a count), else 1.
pub fn node_count(spec: &DynamoComponentDeploymentSharedSpec) -> i32 {
    spec.multinode
        .as_ref()
        .map_or(1, |multinode| multinode.node_count.unwrap_or(2))
}

fn apply_component_type_defaults(
    spec: &mut DynamoComponentDeploymentSharedSpec,
    graph: &str,
    config: &OperatorConfig,
) {
    match spec.component_type.as_deref() {
        Some(component_type::PLANNER) => {
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
                pod.service_account_name = Some(PLANNER_SERVICE_ACCOUNT.to_owned());
            }
        }
        Some(component_type::FRONTEND) if spec.ingress.is_none() => {
            spec.ingress = Some(Box::new(default_ingress(graph, config)));
        }
        _ => {}
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
mod tests {
    use super::*;
    use crate::build::testing::{example, graph, names};

    fn components(dgd: &DynamoGraphDeployment) -> Vec<DynamoComponentDeployment> {
        desired_components(dgd, &OperatorConfig::default()).unwrap()
    }

    fn by_service<'a>(
        list: &'a [DynamoComponentDeployment],
        service: &str,
    ) -> &'a DynamoComponentDeploymentSharedSpec {
        &list
            .iter()
            .find(|c| c.spec.shared.service_name.as_deref() == Some(service))
            .unwrap()
            .spec
            .shared
    }

    #[test]
    fn one_component_per_service_named_graph_dash_lowercase_service() {
        let cases = [
            (
                "vllm-agg.yaml",
                vec!["vllm-agg-frontend", "vllm-agg-vllmdecodeworker"],
            ),
            (
                "vllm-disagg.yaml",
                vec![
                    "vllm-disagg-frontend",
                    "vllm-disagg-vllmdecodeworker",
                    "vllm-disagg-vllmprefillworker",
                ],
            ),
            (
                "sglang-agg.yaml",
                vec!["sglang-agg-frontend", "sglang-agg-sglangdecodeworker"],
            ),
        ];
        for (file, expected) in cases {
            let dgd = example(file);
            let list = components(&dgd);
            assert_eq!(names(&list), expected, "{file}");
            for dcd in &list {
                assert_eq!(dcd.metadata.namespace.as_deref(), Some("ns"));
                assert_eq!(dcd.spec.backend_framework, dgd.spec.backend_framework);
                let owners = dcd.metadata.owner_references.as_ref().unwrap();
                assert_eq!(owners.len(), 1);
                assert_eq!(owners[0].kind, "DynamoGraphDeployment");
                assert_eq!(owners[0].name, dgd.name_any());
                assert_eq!(owners[0].uid, "uid-".to_owned() + &dgd.name_any());
                assert_eq!(owners[0].controller, Some(true));
            }
        }
    }

    #[test]
    fn labels_namespace_and_service_name() {
        let dgd = graph(
            "metadata: {name: g, namespace: team}\nspec:\n  services:\n    Worker:\n      componentType: worker\n      dynamoNamespace: ignored\n      labels: {team: x, nvidia.com/dynamo-component: spoofed}\n    Global:\n      globalDynamoNamespace: true\n",
        );
        let list = components(&dgd);
        for (service, dyn_ns, user_label) in
            [("Worker", "team-g", Some("x")), ("Global", "dynamo", None)]
        {
            let dcd = list
                .iter()
                .find(|c| c.spec.shared.service_name.as_deref() == Some(service))
                .unwrap();
            let expected = |labels: &BTreeMap<String, String>| {
                assert_eq!(labels[label::COMPONENT], service);
                assert_eq!(labels[label::DYNAMO_NAMESPACE], dyn_ns);
                assert_eq!(labels[label::GRAPH_DEPLOYMENT_NAME], "g");
                assert_eq!(labels.get("team").map(String::as_str), user_label);
            };
            expected(dcd.metadata.labels.as_ref().unwrap());
            expected(dcd.spec.shared.labels.as_ref().unwrap());
            assert_eq!(dcd.spec.shared.dynamo_namespace.as_deref(), Some(dyn_ns));
            // Created with the finalizer, so no separate write adds it.
            assert_eq!(
                dcd.metadata.finalizers.as_deref(),
                Some(&[dynamo_api::labels::FINALIZER.to_owned()][..])
            );
        }
    }

    #[test]
    fn graph_envs_merge_under_service_envs_sorted() {
        let dgd = graph(
            "metadata: {name: g}\nspec:\n  envs: [{name: Z, value: graph}, {name: SHARED, value: graph}]\n  services:\n    A:\n      envs: [{name: SHARED, value: service}, {name: B, value: service}]\n    Plain: {}\n",
        );
        let list = components(&dgd);
        let pairs = |service: &str| -> Vec<(String, String)> {
            by_service(&list, service)
                .envs
                .iter()
                .flatten()
                .map(|e| (e.name.clone(), e.value.clone().unwrap()))
                .collect()
        };
        let owned = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect()
        };
        assert_eq!(
            pairs("A"),
            owned(&[("B", "service"), ("SHARED", "service"), ("Z", "graph")])
        );
        assert_eq!(
            pairs("Plain"),
            owned(&[("SHARED", "graph"), ("Z", "graph")])
        );

        let none = components(&graph(
            "metadata: {name: g}\nspec:\n  services:\n    A: {}\n",
        ));
        assert_eq!(by_service(&none, "A").envs, None);
    }

    #[test]
    fn graph_annotations_propagate_into_spec_annotations() {
        let dgd = graph(
            "metadata:\n  name: g\n  annotations:\n    nvidia.com/enable-metrics: \"false\"\n    nvidia.com/dynamo-discovery-backend: etcd\n    nvidia.com/enable-grove: \"false\"\nspec:\n  services:\n    A:\n      annotations: {keep: me, nvidia.com/enable-metrics: \"true\"}\n",
        );
        let list = components(&dgd);
        let annotations = by_service(&list, "A").annotations.clone().unwrap();
        assert_eq!(
            annotations,
            BTreeMap::from([
                ("keep".to_owned(), "me".to_owned()),
                (
                    "nvidia.com/dynamo-discovery-backend".to_owned(),
                    "etcd".to_owned()
                ),
                ("nvidia.com/enable-metrics".to_owned(), "false".to_owned()),
            ])
        );
    }

    #[test]
    fn planner_gets_its_service_account_unless_set() {
        let dgd = graph(
            "metadata: {name: g}\nspec:\n  services:\n    Planner: {componentType: planner}\n    Custom:\n      componentType: planner\n      extraPodSpec: {serviceAccountName: mine}\n    Worker: {componentType: worker}\n",
        );
        let list = components(&dgd);
        let account = |service: &str| {
            by_service(&list, service)
                .extra_pod_spec
                .as_ref()
                .and_then(|e| e.pod_spec.as_ref())
                .and_then(|p| p.service_account_name.clone())
        };
        assert_eq!(
            account("Planner").as_deref(),
            Some("planner-serviceaccount")
        );
        assert_eq!(account("Custom").as_deref(), Some("mine"));
        assert_eq!(account("Worker"), None);
    }

    #[test]
    fn frontends_without_ingress_get_the_operator_default() {
        let dgd = graph(
            "metadata: {name: g}\nspec:\n  services:\n    Frontend: {componentType: frontend}\n    Own:\n      componentType: frontend\n      ingress: {enabled: false, host: mine}\n    Worker: {componentType: worker}\n",
        );
        let configured = OperatorConfig {
            ingress_controller_class_name: Some("nginx".into()),
            ingress_controller_tls_secret_name: Some("tls".into()),
            ingress_host_suffix: Some("example.com".into()),
            ..Default::default()
        };
        let gateway = OperatorConfig {
            istio_virtual_service_gateway: Some("istio-system/gw".into()),
            ..Default::default()
        };
        let ingress = |config: &OperatorConfig, service: &str| {
            let list = desired_components(&dgd, config).unwrap();
            by_service(&list, service).ingress.clone()
        };
        let unconfigured = ingress(&OperatorConfig::default(), "Frontend").unwrap();
        assert_eq!(unconfigured.enabled, Some(false));
        assert_eq!(unconfigured.host.as_deref(), Some("g"));
        assert_eq!(unconfigured.use_virtual_service, Some(false));

        let with_class = ingress(&configured, "Frontend").unwrap();
        assert_eq!(with_class.enabled, Some(true));
        assert_eq!(
            with_class.ingress_controller_class_name.as_deref(),
            Some("nginx")
        );
        assert_eq!(with_class.host_suffix.as_deref(), Some("example.com"));
        assert_eq!(with_class.tls.unwrap().secret_name.as_deref(), Some("tls"));

        let with_gateway = ingress(&gateway, "Frontend").unwrap();
        assert_eq!(with_gateway.enabled, Some(true));
        assert_eq!(with_gateway.use_virtual_service, Some(true));
        assert_eq!(with_gateway.ingress_controller_class_name, None);

        let own = ingress(&configured, "Own").unwrap();
        assert_eq!(
            (own.enabled, own.host.as_deref()),
            (Some(false), Some("mine"))
        );
        assert_eq!(ingress(&configured, "Worker"), None);
    }

    #[test]
    fn multinode_services_are_rejected() {
        let err =
            desired_components(&example("trtllm-multinode.yaml"), &Default::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no multinode orchestrator available (service TrtllmWorker has multinode.nodeCount 2; Grove or LeaderWorkerSet support is not in this release)"
        );
        assert_eq!(err.reason(), "MultinodeUnsupported");
        for (multinode, expected) in [
            ("{}", Some(2)),
            ("{nodeCount: 4}", Some(4)),
            ("{nodeCount: 1}", None),
        ] {
            let dgd = graph(&format!(
                "metadata: {{name: g}}\nspec:\n  services:\n    W:\n      multinode: {multinode}\n"
            ));
            match (desired_components(&dgd, &Default::default()), expected) {
                (Err(BuildError::MultinodeUnsupported { node_count, .. }), Some(n)) => {
                    assert_eq!(node_count, n, "{multinode}")
                }
                (Ok(list), None) => assert_eq!(list.len(), 1),
                (other, _) => panic!("{multinode}: {other:?}"),
            }
        }
    }

    #[test]
    fn parent_metadata_is_required() {
        let mut dgd = graph("metadata: {name: g}\nspec: {}\n");
        assert!(components(&dgd).is_empty());
        dgd.metadata.uid = None;
        assert_eq!(
            desired_components(&dgd, &Default::default()).unwrap_err(),
            BuildError::MissingMetadata {
                kind: "DynamoGraphDeployment",
                name: "g".into(),
                field: "uid"
            }
        );
        let mut dgd = graph("metadata: {name: g}\nspec: {}\n");
        dgd.metadata.namespace = None;
        let err = desired_components(&dgd, &Default::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DynamoGraphDeployment \"g\" has no metadata.namespace"
        );
    }
}
