use super::*;
use crate::desired::testing::{example, graph, names};

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
fn multinode_services_need_the_leader_worker_set_api() {
    let err =
        desired_components(&example("trtllm-multinode.yaml"), &Default::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no multinode orchestrator available: service TrtllmWorker has multinode.nodeCount 2, which needs LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) installed in the cluster"
    );
    assert_eq!(err.reason(), "MultinodeUnsupported");
    let served = OperatorConfig {
        served: crate::desired::config::ServedApis {
            leader_worker_set: true,
            ..Default::default()
        },
        ..Default::default()
    };
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
        // With LeaderWorkerSet served, every service gets its component (the component
        // controller runs the groups), carrying its multinode spec.
        let list = desired_components(&dgd, &served).unwrap();
        assert_eq!(list.len(), 1, "{multinode}");
        assert_eq!(
            list[0].spec.shared.node_count(),
            expected.unwrap_or(1),
            "{multinode}"
        );
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
