//! `offline::check` against our own CRDs: what the API server would refuse (schema keywords,
//! CEL rules), in its words and at its field paths, followed by the webhook's rules.

use std::path::Path;

use dynamo_api::offline::{self, Finding, Source};
use serde_json::{Value, json};

fn graph(spec: Value) -> Value {
    json!({
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": "g", "namespace": "team"},
        "spec": spec,
    })
}

/// A graph with one service `W` holding `service`.
fn graph_with_service(service: Value) -> Value {
    graph(json!({"services": {"W": service}}))
}

/// (path, message, warning) of the findings from `source`.
fn from(source: Source, findings: &[Finding]) -> Vec<(String, String, bool)> {
    findings
        .iter()
        .filter(|finding| finding.source == source)
        .map(|f| (f.path.clone(), f.message.clone(), f.warning))
        .collect()
}

fn check(object: &Value) -> Vec<Finding> {
    offline::check(object, None).expect("one of our kinds")
}

fn errors(path: &str, message: &str) -> Vec<(String, String, bool)> {
    vec![(path.to_owned(), message.to_owned(), false)]
}

#[test]
fn every_example_and_fixture_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["examples", "crates/api/tests/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|ext| ext != "yaml") {
                continue;
            }
            let object: Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let findings = check(&object);
            let refusals: Vec<&Finding> = findings.iter().filter(|f| !f.warning).collect();
            assert!(refusals.is_empty(), "{}: {refusals:#?}", path.display());
            let again = offline::check(&object, Some(&object)).unwrap();
            assert!(
                again.iter().all(|f| f.warning),
                "{} re-applied: {again:#?}",
                path.display()
            );
        }
    }
}

#[test]
fn schema_keywords_of_our_crds() {
    let many = |count: usize, item: fn(usize) -> Value| (0..count).map(item).collect::<Vec<_>>();
    let pvcs = many(101, |i| json!({"name": format!("p{i}")}));
    let services: serde_json::Map<String, Value> =
        (0..26).map(|i| (format!("s{i}"), json!({}))).collect();
    let cases = [
        (
            "nodeCount minimum",
            graph_with_service(json!({"multinode": {"nodeCount": 1}})),
            errors(
                "spec.services.W.multinode.nodeCount",
                "Invalid value: 1: spec.services.W.multinode.nodeCount in body should be greater than or equal to 2",
            ),
        ),
        (
            "replicas minimum",
            graph_with_service(json!({"replicas": -1})),
            errors(
                "spec.services.W.replicas",
                "Invalid value: -1: spec.services.W.replicas in body should be greater than or equal to 0",
            ),
        ),
        (
            "replicas type",
            graph_with_service(json!({"replicas": "two"})),
            errors(
                "spec.services.W.replicas",
                r#"Invalid value: "string": spec.services.W.replicas in body must be of type integer: "string""#,
            ),
        ),
        (
            "replicas int32",
            graph_with_service(json!({"replicas": 3_000_000_000_i64})),
            errors(
                "spec.services.W.replicas",
                r#"Invalid value: "": Checked value must be of type integer with format int32 in spec.services.W.replicas"#,
            ),
        ),
        (
            "pvcs maxItems",
            graph(json!({"pvcs": pvcs, "services": {"W": {}}})),
            errors("spec.pvcs", "Too many: 101: must have at most 100 items"),
        ),
        (
            "services maxProperties",
            graph(json!({"services": services})),
            errors("spec.services", "Too many: 26: must have at most 25 items"),
        ),
        (
            "pvc name required",
            graph(json!({"pvcs": [{"size": "1Gi"}], "services": {"W": {}}})),
            errors("spec.pvcs[0].name", "Required value"),
        ),
        (
            "pvc name minLength",
            graph(json!({"pvcs": [{"name": ""}], "services": {"W": {}}})),
            errors(
                "spec.pvcs[0].name",
                r#"Invalid value: "": spec.pvcs[0].name in body should be at least 1 chars long"#,
            ),
        ),
        (
            "pvc size int-or-string",
            graph(json!({"pvcs": [{"name": "p", "size": true}], "services": {"W": {}}})),
            errors(
                "spec.pvcs[0].size",
                r#"Invalid value: "boolean": spec.pvcs[0].size in body must be of type integer,string: "boolean""#,
            ),
        ),
        (
            "backendFramework enum",
            graph(json!({"backendFramework": "tensorflow", "services": {"W": {}}})),
            errors(
                "spec.backendFramework",
                r#"Unsupported value: "tensorflow": supported values: "sglang", "vllm", "trtllm""#,
            ),
        ),
        (
            "restart id minLength",
            graph(json!({"restart": {"id": ""}, "services": {"W": {}}})),
            errors(
                "spec.restart.id",
                r#"Invalid value: "": spec.restart.id in body should be at least 1 chars long"#,
            ),
        ),
        (
            "checkpoint identity requires the model",
            graph_with_service(
                json!({"checkpoint": {"enabled": true, "identity": {"backendFramework": "vllm"}}}),
            ),
            errors(
                "spec.services.W.checkpoint.identity.model",
                "Required value",
            ),
        ),
        (
            "tensorParallelSize minimum",
            graph_with_service(json!({"checkpoint": {"identity": {
                "model": "m", "backendFramework": "vllm", "tensorParallelSize": 0
            }}})),
            errors(
                "spec.services.W.checkpoint.identity.tensorParallelSize",
                "Invalid value: 0: spec.services.W.checkpoint.identity.tensorParallelSize in body should be greater than or equal to 1",
            ),
        ),
        (
            "modelRef name required",
            graph_with_service(json!({"modelRef": {"revision": "r"}})),
            errors("spec.services.W.modelRef.name", "Required value"),
        ),
        (
            "a core type inside extraPodSpec",
            graph_with_service(
                json!({"extraPodSpec": {"mainContainer": {"ports": [{"containerPort": "http"}]}}}),
            ),
            errors(
                "spec.services.W.extraPodSpec.mainContainer.ports[0].containerPort",
                r#"Invalid value: "string": spec.services.W.extraPodSpec.mainContainer.ports[0].containerPort in body must be of type integer: "string""#,
            ),
        ),
        (
            "spec required",
            json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoModel", "metadata": {"name": "m"}}),
            errors("spec", "Required value"),
        ),
        (
            "metadata name",
            json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoWorkerMetadata", "metadata": {"name": "Pod_1"}, "spec": {"data": {}}}),
            errors(
                "metadata.name",
                "Invalid value: \"Pod_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ),
        ),
        (
            "scaling adapter",
            json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeploymentScalingAdapter", "metadata": {"name": "a"}, "spec": {"replicas": -1, "dgdRef": {"name": "g", "serviceName": "W"}}}),
            errors(
                "spec.replicas",
                "Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ),
        ),
        (
            "model type enum",
            json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoModel", "metadata": {"name": "m"}, "spec": {"modelName": "a", "baseModelName": "b", "modelType": "LoRA"}}),
            errors(
                "spec.modelType",
                r#"Unsupported value: "LoRA": supported values: "base", "lora", "adapter""#,
            ),
        ),
    ];
    for (name, object, expected) in cases {
        assert_eq!(from(Source::Schema, &check(&object)), expected, "{name}");
    }
}

#[test]
fn unknown_fields_are_warnings_and_preserved_fields_are_kept() {
    let object = graph_with_service(json!({
        "replica": 2,
        "eppConfig": {"config": {"anything": {"goes": [1, "two"]}}},
    }));
    let findings = check(&object);
    assert_eq!(
        from(Source::Schema, &findings),
        vec![(
            "spec.services.W.replica".to_owned(),
            r#"unknown field "spec.services.W.replica""#.to_owned(),
            true
        )]
    );
}

#[test]
fn status_is_ignored_on_create() {
    let mut object = graph_with_service(json!({}));
    object["status"] = json!({"services": {"W": {"replicas": "many"}}, "bogus": 1});
    // Only the decoder's warning about the unknown field remains; the status itself is dropped.
    assert_eq!(
        from(Source::Schema, &check(&object)),
        vec![(
            "status.bogus".to_owned(),
            r#"unknown field "status.bogus""#.to_owned(),
            true
        )]
    );
}

#[test]
fn cel_rules_of_our_crds() {
    let pvc_rule = "When create is true, size, storageClass, and volumeAccessMode are required";
    let checkpoint_rule = "When enabled, either checkpointRef or both identity.model and identity.backendFramework must be specified";
    let pvc = |pvc: Value| graph(json!({"pvcs": [pvc], "services": {"W": {}}}));
    let checkpoint = |checkpoint: Value| graph_with_service(json!({"checkpoint": checkpoint}));
    let cases = [
        (
            "pvc create without size",
            pvc(
                json!({"name": "p", "create": true, "storageClass": "s", "volumeAccessMode": "ReadWriteOnce"}),
            ),
            errors("spec.pvcs[0]", &format!("Invalid value: {pvc_rule}")),
        ),
        (
            "pvc create complete",
            pvc(
                json!({"name": "p", "create": true, "size": "1Gi", "storageClass": "s", "volumeAccessMode": "ReadWriteOnce"}),
            ),
            vec![],
        ),
        (
            "pvc not created",
            pvc(json!({"name": "p", "create": false})),
            vec![],
        ),
        ("pvc create unset", pvc(json!({"name": "p"})), vec![]),
        (
            "checkpoint enabled with nothing",
            checkpoint(json!({"enabled": true})),
            errors(
                "spec.services[W].checkpoint",
                &format!("Invalid value: {checkpoint_rule}"),
            ),
        ),
        (
            "checkpoint with an empty reference",
            checkpoint(json!({"enabled": true, "checkpointRef": ""})),
            errors(
                "spec.services[W].checkpoint",
                &format!("Invalid value: {checkpoint_rule}"),
            ),
        ),
        (
            "checkpoint with a reference",
            checkpoint(json!({"enabled": true, "checkpointRef": "c"})),
            vec![],
        ),
        (
            "checkpoint with an identity",
            checkpoint(
                json!({"enabled": true, "identity": {"model": "m", "backendFramework": "vllm"}}),
            ),
            vec![],
        ),
        // `enabled` defaults to false before the rule reads `self.enabled`.
        (
            "checkpoint left disabled",
            checkpoint(json!({"mode": "Manual"})),
            vec![],
        ),
    ];
    for (name, object, expected) in cases {
        assert_eq!(from(Source::Cel, &check(&object)), expected, "{name}");
    }
}

#[test]
fn component_deployments_carry_the_checkpoint_rule_too() {
    let object = json!({
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoComponentDeployment",
        "metadata": {"name": "c"},
        "spec": {"checkpoint": {"enabled": true}},
    });
    let cel = from(Source::Cel, &check(&object));
    assert_eq!(cel.len(), 1, "{cel:?}");
    assert_eq!(cel[0].0, "spec.checkpoint");
}

#[test]
fn schema_then_cel_then_webhook() {
    let object = graph(json!({
        "pvcs": [{"name": "p", "create": true}],
        "services": {"W": {"multinode": {"nodeCount": 1}}},
        "restart": {"id": "r", "strategy": {"type": "Parallel", "order": ["W"]}},
    }));
    let findings = check(&object);
    let mut sources: Vec<Source> = findings.iter().map(|f| f.source).collect();
    sources.dedup();
    assert_eq!(
        sources,
        [Source::Schema, Source::Cel, Source::Webhook],
        "{findings:#?}"
    );
    assert_eq!(findings[0].rule, "minimum");
    assert!(findings[1].rule.contains("has(self.size)"), "{findings:#?}");
}

#[test]
fn an_object_that_does_not_decode_still_gets_its_schema_findings() {
    let findings = check(&graph_with_service(
        json!({"replicas": "two", "multinode": []}),
    ));
    let schema = from(Source::Schema, &findings);
    assert_eq!(schema.len(), 2, "{findings:#?}");
    assert!(
        schema
            .iter()
            .all(|(_, message, _)| message.contains("must be of type"))
    );
    // The type errors keep the CEL rules from running, as in the API server; no webhook
    // finding repeats the decode failure.
    assert_eq!(findings.len(), 3, "{findings:#?}");
    assert!(findings[2].warning && findings[2].source == Source::Cel);
}

#[test]
fn defaults_apply_before_the_webhook_rules() {
    // `multinode: {}` becomes `nodeCount: 2`, which an EPP may not have.
    let object = graph_with_service(json!({"componentType": "epp", "multinode": {}}));
    let webhook = from(Source::Webhook, &check(&object));
    assert!(
        webhook
            .iter()
            .any(|(path, _, _)| path.contains("multinode")),
        "{webhook:?}"
    );
}

#[test]
fn kinds_and_versions() {
    assert_eq!(offline::check(&json!({"kind": "Deployment"}), None), None);
    assert_eq!(offline::check(&json!({"spec": {}}), None), None);
    let mut object = graph_with_service(json!({}));
    object["apiVersion"] = json!("nvidia.com/v1beta1");
    assert_eq!(
        from(Source::Schema, &check(&object)),
        errors(
            "apiVersion",
            r#"no matches for kind "DynamoGraphDeployment" in version "nvidia.com/v1beta1""#
        )
    );
    object.as_object_mut().unwrap().remove("apiVersion");
    assert_eq!(
        from(Source::Schema, &check(&object)),
        errors("apiVersion", "apiVersion not set")
    );
}

#[test]
fn updates_ratchet_unchanged_fields_and_check_changed_ones() {
    // Created before `identity.model` was required, and never touched since.
    let legacy = graph(json!({"services": {
        "W": {"replicas": 1, "checkpoint": {"identity": {"backendFramework": "vllm"}}},
        "F": {"replicas": 1},
    }}));
    let scaled = graph(json!({"services": {
        "W": {"replicas": 1, "checkpoint": {"identity": {"backendFramework": "vllm"}}},
        "F": {"replicas": 2},
    }}));
    let findings = offline::check(&scaled, Some(&legacy)).unwrap();
    assert_eq!(
        from(Source::Schema, &findings),
        vec![(
            "spec.services.W.checkpoint.identity.model".to_owned(),
            "Required value".to_owned(),
            true
        )]
    );

    let touched = graph(json!({"services": {
        "W": {"replicas": 1, "checkpoint": {"identity": {"backendFramework": "sglang"}}},
        "F": {"replicas": 1},
    }}));
    let findings = offline::check(&touched, Some(&legacy)).unwrap();
    assert_eq!(
        from(Source::Schema, &findings),
        errors(
            "spec.services.W.checkpoint.identity.model",
            "Required value"
        )
    );
}

#[test]
fn updates_keep_the_old_status_and_run_the_webhook_update_rules() {
    let mut old = graph(json!({"backendFramework": "vllm", "services": {"W": {}}}));
    old["status"] = json!({"state": "successful"});
    let mut new = graph(json!({"backendFramework": "sglang", "services": {"W": {}}}));
    new["status"] = json!({"state": 7});
    let findings = offline::check(&new, Some(&old)).unwrap();
    assert_eq!(from(Source::Schema, &findings), vec![]);
    let webhook = from(Source::Webhook, &findings);
    assert!(
        webhook
            .iter()
            .any(|(path, _, _)| path == "spec.backendFramework"),
        "{webhook:?}"
    );
}

#[test]
fn updates_ratchet_cel_rules_of_unchanged_values() {
    let incomplete = json!({"name": "p", "create": true, "storageClass": "s"});
    let old = graph(json!({"pvcs": [incomplete], "services": {"W": {"replicas": 1}}}));
    let untouched = graph(json!({"pvcs": [incomplete], "services": {"W": {"replicas": 2}}}));
    let cel = from(
        Source::Cel,
        &offline::check(&untouched, Some(&old)).unwrap(),
    );
    assert_eq!(cel.len(), 1, "{cel:?}");
    assert!(cel[0].2, "an unchanged PVC only warns: {cel:?}");

    let edited = graph(json!({
        "pvcs": [{"name": "p", "create": true, "storageClass": "t"}],
        "services": {"W": {"replicas": 1}},
    }));
    let cel = from(Source::Cel, &offline::check(&edited, Some(&old)).unwrap());
    assert_eq!(cel.len(), 1, "{cel:?}");
    assert!(!cel[0].2, "an edited PVC is refused: {cel:?}");
}
