use super::*;
use dynamo_api::v1alpha1::{DynamoModelSpec, ModelSource};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

fn endpoint(ip: &str, pod: &str, ready: Option<bool>, kind: &str) -> Endpoint {
    Endpoint {
        addresses: vec![ip.to_owned()],
        conditions: Some(EndpointConditions {
            ready,
            ..Default::default()
        }),
        target_ref: Some(ObjectReference {
            kind: Some(kind.to_owned()),
            name: Some(pod.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn slice(endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ..Default::default()
    }
}

fn lora() -> DynamoModel {
    DynamoModel::new(
        "m",
        DynamoModelSpec {
            model_name: "sql-lora".into(),
            base_model_name: "llama".into(),
            model_type: Some(ModelType::Lora),
            source: Some(ModelSource {
                uri: "hf://a/b@main".into(),
            }),
        },
    )
}

#[test]
fn candidates_are_pod_ips_once_each_with_their_readiness() {
    let slices = [
        slice(vec![
            endpoint("10.0.0.2", "a", Some(true), "Pod"),
            endpoint("10.0.0.3", "b", Some(false), "Pod"),
            endpoint("10.0.0.4", "c", None, "Pod"),
        ]),
        slice(vec![
            endpoint("10.0.0.2", "a", Some(true), "Pod"),
            endpoint("not-an-ip/evil", "d", Some(true), "Pod"),
            endpoint("10.0.0.9", "node", Some(true), "Node"),
        ]),
    ];
    let found = candidates(&slices);
    let addresses: Vec<(&str, bool)> = found
        .iter()
        .map(|c| (c.address.as_str(), c.ready))
        .collect();
    assert_eq!(
        addresses,
        [
            ("http://10.0.0.2:9090", true),
            ("http://10.0.0.3:9090", false),
            ("http://10.0.0.4:9090", true)
        ]
    );
}

#[test]
fn only_ready_endpoints_not_yet_loaded_are_called() {
    let found = candidates(&[slice(vec![
        endpoint("10.0.0.2", "a", Some(true), "Pod"),
        endpoint("10.0.0.3", "b", Some(false), "Pod"),
        endpoint("10.0.0.4", "c", Some(true), "Pod"),
    ])]);
    let status = DynamoModelStatus {
        endpoints: Some(endpoints(&found, &["http://10.0.0.2:9090".into()], true)),
        ..Default::default()
    };
    let calls: Vec<&str> = to_load(&found, Some(&status))
        .iter()
        .map(|c| c.address.as_str())
        .collect();
    assert_eq!(calls, ["http://10.0.0.4:9090"]);
    // A new pod at a loaded address is loaded again.
    let replaced = candidates(&[slice(vec![endpoint("10.0.0.2", "a2", Some(true), "Pod")])]);
    assert_eq!(to_load(&replaced, Some(&status)).len(), 1);
}

#[test]
fn readiness_reasons() {
    let found = candidates(&[slice(vec![
        endpoint("10.0.0.2", "a", Some(true), "Pod"),
        endpoint("10.0.0.3", "b", Some(true), "Pod"),
    ])]);
    let partial = endpoints(&found, &["http://10.0.0.2:9090".into()], true);
    assert_eq!(endpoints_ready(&partial, true).1, "NotReady");
    assert!(endpoints_ready(&partial, true).2.contains("1 of 2"));
    let all = endpoints(
        &found,
        &["http://10.0.0.2:9090".into(), "http://10.0.0.3:9090".into()],
        true,
    );
    assert_eq!(
        endpoints_ready(&all, true),
        (
            true,
            "AllEndpointsReady",
            "the adapter is loaded on all 2 endpoints".into()
        )
    );
    let base = endpoints(&found, &[], false);
    assert!(base.iter().all(|e| !e.ready));
    assert_eq!(endpoints_ready(&base, false).1, "EndpointsDiscovered");
    assert_eq!(endpoints_ready(&[], true).1, "NoEndpoints");
}

#[test]
fn load_request_body() {
    assert_eq!(
        load_request(&lora()),
        serde_json::json!({"lora_name": "sql-lora", "source": {"uri": "hf://a/b@main"}})
    );
    assert!(loads_over_http(&lora()));
}

#[test]
fn the_model_service_is_headless_selects_the_hash_and_is_owned_without_control() {
    let mut dcd = DynamoComponentDeployment::new("g-worker", Default::default());
    dcd.metadata.namespace = Some("ns".into());
    dcd.metadata.uid = Some("u1".into());
    assert!(model_service(&dcd).unwrap().is_none());
    dcd.spec.shared.model_ref = Some(Box::new(dynamo_api::v1alpha1::ModelReference {
        name: "abc".into(),
        revision: None,
    }));
    let service = model_service(&dcd).unwrap().unwrap();
    assert_eq!(
        service.metadata.name.as_deref(),
        Some("dynamo-model-ba7816bf")
    );
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.selector.unwrap()[label::BASE_MODEL_HASH], "ba7816bf");
    assert_eq!(spec.ports.unwrap()[0].port, 9090);
    let owner = &service.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.uid.as_str(), owner.controller), ("u1", None));
    assert_eq!(model_service_manager(&dcd), "dynamo-operator/u1");
}
