//! Property tests over the AdmissionReview decoder and the rules: whatever arrives, the
//! handler answers and never panics.

use dynamo_common::scope::Scope;
use dynamo_webhook::admission::{self, Kind, Policy};
use dynamo_webhook::metrics::Metrics;
use proptest::prelude::*;
use serde_json::{Value, json};

fn policy() -> Policy {
    Policy {
        scope: Scope::cluster_wide(),
        replica_managers: vec!["system:serviceaccount:dynamo-system:dynamo-operator".into()],
    }
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9/:._-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Names of the fields the rules look at, so random values land where they matter.
fn spec_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "backendFramework",
        "services",
        "pvcs",
        "envs",
        "restart",
        "replicas",
        "multinode",
        "ingress",
        "volumeMounts",
        "sharedMemory",
        "scalingAdapter",
        "componentType",
        "eppConfig",
        "modelName",
        "baseModelName",
        "modelType",
        "source",
        "extraPodSpec",
        "resources",
    ])
}

fn review(kind: &str, operation: &str, object: Value, old: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "nvidia.com", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "nvidia.com", "version": "v1alpha1", "resource": "r"},
            "namespace": "ns",
            "operation": operation,
            "userInfo": {"username": "someone"},
            "object": object,
            "oldObject": old,
        }
    }))
    .unwrap()
}

fn object(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "nvidia.com/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": "ns"}, "spec": spec})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_get_an_answer(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let metrics = Metrics::default();
        for kind in Kind::ALL {
            let answer = admission::review(kind, &body, &policy(), &metrics);
            prop_assert!(answer.response.is_some());
        }
    }

    #[test]
    fn arbitrary_json_bodies_get_an_answer(body in any_json()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let answer = admission::review(Kind::GraphDeployment, &bytes, &policy(), &Metrics::default());
        prop_assert!(answer.response.is_some());
    }

    #[test]
    fn arbitrary_specs_on_create_and_update_never_panic(
        new_fields in prop::collection::btree_map(spec_key(), any_json(), 0..6),
        old_fields in prop::collection::btree_map(spec_key(), any_json(), 0..6),
        update in any::<bool>(),
    ) {
        let metrics = Metrics::default();
        let new: Value = Value::Object(new_fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let old: Value = Value::Object(old_fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        for kind in Kind::ALL {
            let operation = if update { "UPDATE" } else { "CREATE" };
            let body = review(kind.name(), operation, object(kind.name(), new.clone()), object(kind.name(), old.clone()));
            let answer = admission::review(kind, &body, &policy(), &metrics);
            let response = answer.response.unwrap();
            prop_assert_eq!(response.uid, "u");
        }
    }

    #[test]
    fn service_maps_with_random_service_specs_never_panic(
        services in prop::collection::btree_map("[A-Za-z]{1,8}", prop::collection::btree_map(spec_key(), any_json(), 0..5), 0..5),
        old_services in prop::collection::btree_map("[A-Za-z]{1,8}", prop::collection::btree_map(spec_key(), any_json(), 0..5), 0..5),
    ) {
        let to_spec = |services: std::collections::BTreeMap<String, std::collections::BTreeMap<&str, Value>>| {
            let services: serde_json::Map<String, Value> = services
                .into_iter()
                .map(|(name, fields)| (name, Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())))
                .collect();
            json!({"backendFramework": "vllm", "services": services})
        };
        let kind = "DynamoGraphDeployment";
        let body = review(kind, "UPDATE", object(kind, to_spec(services)), object(kind, to_spec(old_services)));
        let answer = admission::review(Kind::GraphDeployment, &body, &policy(), &Metrics::default());
        prop_assert!(answer.response.is_some());
    }
}
