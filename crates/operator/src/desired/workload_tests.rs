//! Table tests of the workload builders (a separate file to keep `workload.rs` readable).

use super::*;
use crate::desired::component_pod_template;
use crate::desired::testing::single;
use serde_json::Value;

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn frontend(ingress: &str) -> DynamoComponentDeployment {
    single(
        None,
        &format!("{{componentType: frontend, ingress: {ingress}}}"),
        &Default::default(),
    )
}

fn assert_child_metadata(metadata: &ObjectMeta) {
    assert_eq!(metadata.name.as_deref(), Some("g-svc"));
    assert_eq!(metadata.namespace.as_deref(), Some("ns"));
    let labels = metadata.labels.as_ref().unwrap();
    assert_eq!(labels[label::COMPONENT], "Svc");
    assert_eq!(labels[label::DYNAMO_NAMESPACE], "ns-g");
    assert_eq!(labels[label::GRAPH_DEPLOYMENT_NAME], "g");
    let owners = metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "DynamoComponentDeployment");
    assert_eq!(owners[0].api_version, "nvidia.com/v1alpha1");
    assert_eq!(
        (owners[0].name.as_str(), owners[0].uid.as_str()),
        ("g-svc", "uid-g-svc")
    );
    assert_eq!(owners[0].controller, Some(true));
}

#[test]
fn deployment_replicas_selector_and_template() {
    for (service, replicas) in [("{}", 1), ("{replicas: 0}", 0), ("{replicas: 3}", 3)] {
        let dcd = single(None, service, &Default::default());
        let template = component_pod_template(&dcd, &Default::default()).unwrap();
        let deployment = deployment(&dcd, template.clone());
        assert_child_metadata(&deployment.metadata);
        let spec = deployment.spec.unwrap();
        assert_eq!(spec.replicas, Some(replicas), "{service}");
        assert_eq!(
            json_of(&spec.selector),
            json!({"matchLabels": {"nvidia.com/selector": "g-svc"}})
        );
        assert_eq!(spec.template, template);
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels[label::SELECTOR], "g-svc");
    }
}

#[test]
fn deployment_and_service_carry_the_services_labels_and_annotations() {
    let dcd = single(
        None,
        "{componentType: worker, modelRef: {name: abc}, labels: {team: a}, annotations: {note: spec, nvidia.com/restartAt: r1}, extraPodMetadata: {labels: {pod-only: x}, annotations: {note: extra, scrape: 'true'}}}",
        &Default::default(),
    );
    let template = component_pod_template(&dcd, &Default::default()).unwrap();
    let deployment = deployment(&dcd, template);
    let service = service(&dcd, &Default::default()).unwrap();
    for metadata in [&deployment.metadata, &service.metadata] {
        assert_child_metadata(metadata);
        let labels = metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels[label::BASE_MODEL_HASH], "ba7816bf");
        assert!(!labels.contains_key("pod-only"));
        assert_eq!(
            json_of(&metadata.annotations),
            json!({"note": "extra", "scrape": "true", "nvidia.com/restartAt": "r1",
                   "nvidia.com/dynamo-base-model": "abc"})
        );
    }
    let pod = deployment.spec.unwrap().template.metadata.unwrap();
    assert_eq!(
        json_of(&pod.annotations),
        json!({"note": "extra", "scrape": "true", "nvidia.com/restartAt": "r1"})
    );
    // The Ingress keeps only its own annotations.
    let dcd = frontend("{enabled: true, ingressControllerClassName: nginx}");
    let mut with_annotations = dcd.clone();
    with_annotations.spec.shared.annotations =
        Some([("note".to_owned(), "spec".to_owned())].into());
    let ingress = ingress(&with_annotations, &Default::default()).unwrap();
    assert_eq!(ingress.metadata.annotations, None);
}

#[test]
fn deployment_strategy_annotations() {
    let rolling = |surge: Value, unavailable: Value| json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
    let cases = [
        ("{}", rolling(json!("25%"), json!("25%"))),
        (
            "{nvidia.com/deployment-rolling-update-max-surge: '50%'}",
            rolling(json!("50%"), json!("25%")),
        ),
        (
            "{nvidia.com/deployment-rolling-update-max-unavailable: '0'}",
            rolling(json!("25%"), json!(0)),
        ),
        (
            "{nvidia.com/deployment-rolling-update-max-surge: '2', nvidia.com/deployment-rolling-update-max-unavailable: 10%}",
            rolling(json!(2), json!("10%")),
        ),
        (
            "{nvidia.com/deployment-strategy: RollingUpdate}",
            rolling(json!("25%"), json!("25%")),
        ),
        (
            "{nvidia.com/deployment-strategy: Recreate, nvidia.com/deployment-rolling-update-max-surge: '50%'}",
            json!({"type": "Recreate"}),
        ),
    ];
    for (annotations, expected) in cases {
        let dcd = single(
            None,
            &format!("{{annotations: {annotations}}}"),
            &Default::default(),
        );
        let deployment = deployment(&dcd, Default::default());
        assert_eq!(
            json_of(&deployment.spec.unwrap().strategy),
            expected,
            "{annotations}"
        );
    }
}

#[test]
fn service_ports_per_component_type_and_backend() {
    let etcd = OperatorConfig {
        discovery_backend: DiscoveryBackend::Etcd,
        ..Default::default()
    };
    let k8s = OperatorConfig::default();
    // (component type, config, expected (port name, number), discovery-backend, discovery-enabled)
    let cases = [
        (
            "frontend",
            &k8s,
            Some(("http", 8000)),
            Some("kubernetes"),
            None,
        ),
        ("frontend", &etcd, Some(("http", 8000)), None, None),
        (
            "worker",
            &k8s,
            Some(("system", 9090)),
            Some("kubernetes"),
            Some("true"),
        ),
        (
            "prefill",
            &k8s,
            Some(("system", 9090)),
            Some("kubernetes"),
            Some("true"),
        ),
        (
            "decode",
            &k8s,
            Some(("system", 9090)),
            Some("kubernetes"),
            Some("true"),
        ),
        (
            "planner",
            &k8s,
            Some(("system", 9090)),
            Some("kubernetes"),
            Some("true"),
        ),
        (
            "epp",
            &k8s,
            Some(("grpc", 9002)),
            Some("kubernetes"),
            Some("true"),
        ),
        (
            "default",
            &k8s,
            Some(("system", 9090)),
            Some("kubernetes"),
            Some("true"),
        ),
        ("worker", &etcd, None, None, None),
        ("planner", &etcd, None, None, None),
    ];
    for (kind, config, port, backend_label, enabled_label) in cases {
        let dcd = single(None, &format!("{{componentType: {kind}}}"), config);
        let service = service(&dcd, config);
        let Some((name, number)) = port else {
            assert!(service.is_none(), "{kind}");
            continue;
        };
        let service = service.unwrap();
        assert_child_metadata(&service.metadata);
        let spec = json_of(service.spec.as_ref().unwrap());
        assert_eq!(
            spec,
            json!({
                "selector": {"nvidia.com/selector": "g-svc"},
                "ports": [{"name": name, "port": number, "targetPort": name, "protocol": "TCP"}],
            }),
            "{kind}"
        );
        let labels = service.metadata.labels.unwrap();
        let get = |key: &str| labels.get(key).map(String::as_str);
        assert_eq!(get(label::DISCOVERY_BACKEND), backend_label, "{kind}");
        assert_eq!(get(label::DISCOVERY_ENABLED), enabled_label, "{kind}");
    }
}

#[test]
fn ingress_host_class_and_tls() {
    let operator = OperatorConfig {
        ingress_controller_class_name: Some("operator-class".into()),
        ingress_controller_tls_secret_name: Some("operator-tls".into()),
        ingress_host_suffix: Some("operator.example".into()),
        ..Default::default()
    };
    let none = OperatorConfig::default();
    // (ingress yaml, config, expected host, class, tls secret); host None = no Ingress
    let cases = [
        (
            "{enabled: true, host: chat, ingressControllerClassName: nginx}",
            &none,
            Some("chat.local"),
            "nginx",
            None,
        ),
        (
            "{enabled: true, host: chat, hostPrefix: api-, hostSuffix: example.com, ingressControllerClassName: nginx, tls: {secretName: s}}",
            &none,
            Some("api-chat.example.com"),
            "nginx",
            Some("s"),
        ),
        (
            "{enabled: true, host: chat}",
            &operator,
            Some("chat.operator.example"),
            "operator-class",
            Some("operator-tls"),
        ),
        (
            "{enabled: true}",
            &operator,
            Some("g-svc.operator.example"),
            "operator-class",
            Some("operator-tls"),
        ),
        ("{enabled: true, host: chat}", &none, None, "", None),
        (
            "{enabled: false, host: chat, ingressControllerClassName: nginx}",
            &none,
            None,
            "",
            None,
        ),
        (
            "{host: chat, ingressControllerClassName: nginx}",
            &none,
            None,
            "",
            None,
        ),
    ];
    for (spec, config, host, class, tls) in cases {
        let dcd = frontend(spec);
        let ingress = ingress(&dcd, config);
        let Some(host) = host else {
            assert!(ingress.is_none(), "{spec}");
            continue;
        };
        let ingress = ingress.unwrap();
        assert_child_metadata(&ingress.metadata);
        let mut expected = json!({
            "ingressClassName": class,
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "g-svc", "port": {"number": 8000}}}}]}}],
        });
        if let Some(secret) = tls {
            expected["tls"] = json!([{"hosts": [host], "secretName": secret}]);
        }
        assert_eq!(json_of(ingress.spec.as_ref().unwrap()), expected, "{spec}");
    }
}

#[test]
fn ingress_labels_annotations_and_only_frontends() {
    let dcd = frontend(
        "{enabled: true, ingressControllerClassName: nginx, labels: {expose: 'yes'}, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 10m}}",
    );
    let ingress = ingress(&dcd, &Default::default()).unwrap();
    assert_eq!(ingress.metadata.labels.as_ref().unwrap()["expose"], "yes");
    assert_eq!(
        json_of(&ingress.metadata.annotations),
        json!({"nginx.ingress.kubernetes.io/proxy-body-size": "10m"})
    );
    let worker = single(
        None,
        "{componentType: worker, ingress: {enabled: true, ingressControllerClassName: nginx}}",
        &Default::default(),
    );
    assert!(super::ingress(&worker, &Default::default()).is_none());
}

#[test]
fn virtual_service_needs_enabled_use_and_a_gateway() {
    let gateway = OperatorConfig {
        istio_virtual_service_gateway: Some("istio-system/gw".into()),
        ..Default::default()
    };
    let none = OperatorConfig::default();
    let cases = [
        (
            "{enabled: true, useVirtualService: true, host: chat}",
            &gateway,
            Some("istio-system/gw"),
        ),
        (
            "{enabled: true, useVirtualService: true, virtualServiceGateway: mine}",
            &gateway,
            Some("mine"),
        ),
        (
            "{enabled: true, useVirtualService: true, virtualServiceGateway: mine}",
            &none,
            Some("mine"),
        ),
        ("{enabled: true, useVirtualService: true}", &none, None),
        ("{enabled: true, useVirtualService: false}", &gateway, None),
        ("{enabled: false, useVirtualService: true}", &gateway, None),
    ];
    for (spec, config, expected) in cases {
        let built = virtual_service(&frontend(spec), config);
        let Some(gw) = expected else {
            assert!(built.is_none(), "{spec}");
            continue;
        };
        let object = built.unwrap();
        assert_child_metadata(&object.metadata);
        let types = object.types.as_ref().unwrap();
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("networking.istio.io/v1beta1", "VirtualService")
        );
        assert_eq!(object.data["spec"]["gateways"], json!([gw]), "{spec}");
        assert_eq!(
            object.data["spec"]["http"][0]["route"][0]["destination"],
            json!({"host": "g-svc", "port": {"number": 8000}})
        );
    }
    let object = virtual_service(
        &frontend("{enabled: true, useVirtualService: true, host: chat}"),
        &gateway,
    )
    .unwrap();
    assert_eq!(object.data["spec"]["hosts"], json!(["chat.local"]));
    assert_eq!(virtual_service_resource().plural, "virtualservices");
}

#[test]
fn a_component_without_uid_gives_unowned_children() {
    let mut dcd = single(None, "{componentType: frontend}", &Default::default());
    dcd.metadata.uid = None;
    assert_eq!(
        deployment(&dcd, Default::default())
            .metadata
            .owner_references,
        None
    );
    let service = service(&dcd, &Default::default()).unwrap();
    assert_eq!(service.metadata.owner_references, None);
}

fn deployment_state(value: Value) -> Deployment {
    serde_json::from_value(value).unwrap()
}

#[test]
fn deployment_readiness() {
    let available = json!([{"type": "Available", "status": "True"}]);
    let ready_status = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                              "availableReplicas": 2, "conditions": available});
    let with = |patch: Value| {
        let mut status = ready_status.clone();
        crate::desired::merge::merge_values(&mut status, patch);
        status
    };
    let cases = [
        ("ready", json!({"replicas": 2}), ready_status.clone(), true),
        (
            "paused",
            json!({"replicas": 2, "paused": true}),
            ready_status.clone(),
            false,
        ),
        (
            "old generation",
            json!({"replicas": 2}),
            with(json!({"observedGeneration": 1})),
            false,
        ),
        (
            "not updated",
            json!({"replicas": 2}),
            with(json!({"updatedReplicas": 1})),
            false,
        ),
        (
            "not available",
            json!({"replicas": 2}),
            with(json!({"availableReplicas": 1})),
            false,
        ),
        (
            "old pods left",
            json!({"replicas": 2}),
            with(json!({"replicas": 3})),
            false,
        ),
        (
            "condition false",
            json!({"replicas": 2}),
            with(json!({"conditions": [{"type": "Available", "status": "False"}]})),
            false,
        ),
        (
            "no condition",
            json!({"replicas": 2}),
            with(json!({"conditions": []})),
            false,
        ),
        (
            "zero desired",
            json!({"replicas": 0}),
            json!({"observedGeneration": 2}),
            true,
        ),
        (
            "zero desired, unobserved",
            json!({"replicas": 0}),
            json!({"observedGeneration": 1}),
            false,
        ),
        (
            "default one",
            json!({}),
            with(json!({"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1})),
            true,
        ),
        (
            "default one, none yet",
            json!({}),
            json!({"observedGeneration": 2}),
            false,
        ),
    ];
    for (name, mut spec, status, expected) in cases {
        spec["selector"] = json!({});
        spec["template"] = json!({});
        let deployment = deployment_state(json!({
            "metadata": {"name": "d", "generation": 2}, "spec": spec, "status": status,
        }));
        assert_eq!(is_deployment_ready(&deployment), expected, "{name}");
    }
    assert!(!is_deployment_ready(&Deployment::default()));
}

#[test]
fn a_dotted_service_key_gives_dot_free_service_ingress_and_virtual_service_names() {
    let config = OperatorConfig {
        ingress_controller_class_name: Some("nginx".into()),
        istio_virtual_service_gateway: Some("gw".into()),
        ..Default::default()
    };
    let spec = serde_json::json!({"services": {"Qwen3-0.6B": {
        "componentType": "frontend",
        "ingress": {"enabled": true, "host": "chat", "useVirtualService": true},
    }}});
    let dgd = crate::desired::testing::graph(&format!("metadata: {{name: g}}\nspec: {spec}\n"));
    let dcd = crate::desired::testing::component(&dgd, "Qwen3-0.6B", &config);
    // The component and its Deployment keep the name (dots are valid there).
    assert_eq!(dcd.name_any(), "g-qwen3-0.6b");
    let service = service(&dcd, &config).unwrap();
    assert_eq!(service.name_any(), "g-qwen3-0-6b");
    let ingress = ingress(&dcd, &config).unwrap();
    assert_eq!(ingress.name_any(), "g-qwen3-0-6b");
    let backend = &json_of(&ingress)["spec"]["rules"][0]["http"]["paths"][0]["backend"];
    assert_eq!(backend["service"]["name"], "g-qwen3-0-6b");
    let virtual_service = virtual_service(&dcd, &config).unwrap();
    assert_eq!(virtual_service.name_any(), "g-qwen3-0-6b");
    assert_eq!(
        virtual_service.data["spec"]["http"][0]["route"][0]["destination"]["host"],
        "g-qwen3-0-6b"
    );
}
