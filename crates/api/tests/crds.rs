//! The generated CRDs: committed files are current, structural, small, and carry the
//! constraints users rely on.

use std::path::Path;

use dynamo_api::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Helm release Secrets hold at most 1 MiB; upstream's CRDs (about 2.9 MB) did not fit.
const SIZE_BUDGET_BYTES: usize = 600 * 1024;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

fn by_kind(kind: &str) -> CustomResourceDefinition {
    crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap()
}

/// Follows a `.a.b.c` path through `properties` (and map values for `*`).
fn property<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(schema, |node, part| {
            if part == "*" {
                node.get("additionalProperties")
            } else if part == "[]" {
                node.get("items")
            } else {
                node.get("properties")?.get(part)
            }
        })
}

#[test]
fn committed_crd_files_are_what_crdgen_writes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/crds/templates");
    for (name, yaml) in crd::rendered().unwrap() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == yaml,
            "charts/crds/templates/{name} is stale; run `cargo run -p dynamo-api --bin crdgen`"
        );
    }
}

#[test]
fn generated_yaml_reads_back_into_the_same_crds() {
    for (crd, (_, yaml)) in crd::all().iter().zip(crd::rendered().unwrap()) {
        let parsed: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(&parsed, crd);
        assert!(
            !yaml.contains("{{"),
            "Helm would try to template {}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn all_crds_together_stay_well_under_the_helm_release_limit() {
    let sizes: Vec<(String, usize)> = crd::rendered()
        .unwrap()
        .into_iter()
        .map(|(name, yaml)| (name, yaml.len()))
        .collect();
    let total: usize = sizes.iter().map(|(_, size)| size).sum();
    println!("CRD sizes: {sizes:?}, total {total} bytes");
    assert!(
        total < SIZE_BUDGET_BYTES,
        "CRDs total {total} bytes: {sizes:?}"
    );
}

/// Structural schema rules the API server enforces: every node has a type (or is
/// int-or-string / preserve-unknown), no references, no type inside anyOf/allOf/oneOf.
fn assert_structural(node: &Value, path: &str) {
    let object = node
        .as_object()
        .unwrap_or_else(|| panic!("{path}: not an object"));
    assert!(!object.contains_key("$ref"), "{path}: $ref is not allowed");
    let typed = object.contains_key("type")
        || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    assert!(typed, "{path}: no type");
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, child) in properties {
            assert_structural(child, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = object.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(values) = object.get("additionalProperties").filter(|v| v.is_object()) {
        assert!(
            !object.contains_key("properties"),
            "{path}: properties and additionalProperties"
        );
        assert_structural(values, &format!("{path}.*"));
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        for branch in object
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for banned in [
                "type",
                "description",
                "default",
                "nullable",
                "additionalProperties",
            ] {
                assert!(
                    branch.get(banned).is_none(),
                    "{path}: {banned} inside {keyword}"
                );
            }
        }
    }
}

#[test]
fn schemas_are_structural() {
    for crd in crd::all() {
        assert_structural(&schema_of(&crd), &crd.spec.names.kind);
    }
}

#[test]
fn names_scope_subresources_and_helm_policy_match_upstream() {
    let expected = [
        ("DynamoGraphDeployment", "dynamographdeployments", "dgd"),
        (
            "DynamoComponentDeployment",
            "dynamocomponentdeployments",
            "dcd",
        ),
        ("DynamoModel", "dynamomodels", "dm"),
        (
            "DynamoGraphDeploymentScalingAdapter",
            "dynamographdeploymentscalingadapters",
            "dgdsa",
        ),
        ("DynamoWorkerMetadata", "dynamoworkermetadatas", "dwm"),
    ];
    let crds = crd::all();
    assert_eq!(crds.len(), expected.len());
    for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{plural}.nvidia.com").as_str())
        );
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_owned()][..])
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        // Workers write their metadata whole; it has no status to split off.
        let has_status = version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some());
        assert_eq!(has_status, kind != "DynamoWorkerMetadata", "{kind}");
        let annotations = crd.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    }
}

#[test]
fn every_printer_column_points_at_a_field_that_exists() {
    for crd in crd::all() {
        let schema = schema_of(&crd);
        let version = &crd.spec.versions[0];
        for column in version.additional_printer_columns.as_ref().unwrap() {
            let path = &column.json_path;
            if path.starts_with(".metadata.") {
                continue;
            }
            // `.status.conditions[?(@.type=="Ready")].status` → `.status.conditions.[].status`
            let field_path = match path.split_once('[') {
                Some((list, rest)) => {
                    format!("{list}.[]{}", rest.split_once(']').unwrap().1)
                }
                None => path.clone(),
            };
            assert!(
                property(&schema, &field_path).is_some(),
                "{}: column {} points at missing {path}",
                crd.spec.names.kind,
                column.name
            );
        }
    }
    let dcd = by_kind("DynamoComponentDeployment");
    let columns = dcd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["DynamoComponent", "Available", "Backend", "Age"]);
}

#[test]
fn graph_schema_carries_the_documented_constraints() {
    let schema = schema_of(&by_kind("DynamoGraphDeployment"));
    let spec = property(&schema, ".spec").unwrap();
    assert_eq!(property(spec, ".services").unwrap()["maxProperties"], 25);
    assert_eq!(property(spec, ".pvcs").unwrap()["maxItems"], 100);
    let pvc = property(spec, ".pvcs.[]").unwrap();
    assert_eq!(pvc["required"], serde_json::json!(["name"]));
    let rule = pvc["x-kubernetes-validations"][0]["rule"].as_str().unwrap();
    assert!(rule.contains("has(self.storageClass)"), "{rule}");
    assert_eq!(
        property(spec, ".backendFramework").unwrap()["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.is_string())
            .collect::<Vec<_>>(),
        ["sglang", "vllm", "trtllm"]
    );
    assert_eq!(property(spec, ".restart.id").unwrap()["minLength"], 1);
    assert_eq!(
        property(spec, ".restart.strategy.type").unwrap()["default"],
        "Sequential"
    );

    let service = property(spec, ".services.*").unwrap();
    assert_eq!(property(service, ".replicas").unwrap()["minimum"], 0.0);
    let node_count = property(service, ".multinode.nodeCount").unwrap();
    assert_eq!(node_count["minimum"], 2.0);
    assert_eq!(node_count["default"], 2);
    for field in ["gpu", "gpuType", "cpu", "memory", "custom"] {
        assert!(
            property(service, &format!(".resources.limits.{field}")).is_some(),
            "{field}"
        );
    }
    assert!(property(service, ".resources.claims.[].name").is_some());
    assert_eq!(
        property(service, ".volumeMounts.[]").unwrap()["required"],
        serde_json::json!(["name"])
    );
    assert_eq!(
        property(service, ".modelRef").unwrap()["required"],
        serde_json::json!(["name"])
    );
    // As upstream's: a checkpoint identity names its model and backend.
    let identity = property(service, ".checkpoint.identity").unwrap();
    assert_eq!(
        identity["required"],
        serde_json::json!(["backendFramework", "model"])
    );
    assert_eq!(
        property(identity, ".tensorParallelSize").unwrap()["minimum"],
        1.0
    );
    for deprecated in ["dynamoNamespace", "autoscaling"] {
        assert!(
            property(service, &format!(".{deprecated}")).is_some(),
            "{deprecated}"
        );
    }
    assert_eq!(
        property(service, ".eppConfig.config").unwrap()["x-kubernetes-preserve-unknown-fields"],
        true
    );

    // extraPodSpec is a real PodSpec and mainContainer a real Container, both partial.
    let extra = property(service, ".extraPodSpec").unwrap();
    assert!(
        extra.get("required").is_none(),
        "containers must not be required"
    );
    assert!(property(extra, ".tolerations.[].key").is_some());
    assert!(property(extra, ".containers.[].image").is_some());
    let main = property(extra, ".mainContainer").unwrap();
    assert!(main.get("required").is_none(), "name must not be required");
    assert!(property(main, ".ports.[].containerPort").is_some());
    assert_eq!(
        property(main, ".resources.limits.*").unwrap()["x-kubernetes-int-or-string"],
        true
    );
}

#[test]
fn component_and_model_schemas_carry_their_fields() {
    let dcd = schema_of(&by_kind("DynamoComponentDeployment"));
    for field in [
        "backendFramework",
        "serviceName",
        "extraPodSpec",
        "multinode",
        "envFromSecret",
    ] {
        assert!(
            property(&dcd, &format!(".spec.{field}")).is_some(),
            "{field}"
        );
    }
    for field in ["observedGeneration", "conditions", "podSelector", "service"] {
        assert!(
            property(&dcd, &format!(".status.{field}")).is_some(),
            "{field}"
        );
    }
    let dm = schema_of(&by_kind("DynamoModel"));
    let spec = property(&dm, ".spec").unwrap();
    assert_eq!(
        spec["required"],
        serde_json::json!(["baseModelName", "modelName"])
    );
    assert_eq!(property(spec, ".modelType").unwrap()["default"], "base");
    assert_eq!(
        property(spec, ".source").unwrap()["required"],
        serde_json::json!(["uri"])
    );
    for field in [
        "endpoints",
        "readyEndpoints",
        "totalEndpoints",
        "conditions",
    ] {
        assert!(
            property(&dm, &format!(".status.{field}")).is_some(),
            "{field}"
        );
    }
}

#[test]
fn schemas_offer_no_null_values_and_integral_bounds() {
    for (name, yaml) in crd::rendered().unwrap() {
        assert!(!yaml.contains("nullable"), "{name} has nullable fields");
        assert!(
            !yaml.contains("- null"),
            "{name} lists null as an enum value"
        );
        assert!(!yaml.contains("minimum: 0.0"), "{name} has a float bound");
    }
}

fn column_names_and_paths(crd: &CustomResourceDefinition) -> Vec<(String, String, String)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone()))
        .collect()
}

#[test]
fn scaling_adapter_exposes_the_scale_subresource_and_its_columns() {
    let crd = by_kind("DynamoGraphDeploymentScalingAdapter");
    let subresources = crd.spec.versions[0].subresources.as_ref().unwrap();
    assert!(subresources.status.is_some());
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    let owned = |(name, type_, path): (&str, &str, &str)| {
        (name.to_owned(), type_.to_owned(), path.to_owned())
    };
    assert_eq!(
        column_names_and_paths(&crd),
        [
            ("DGD", "string", ".spec.dgdRef.name"),
            ("SERVICE", "string", ".spec.dgdRef.serviceName"),
            ("REPLICAS", "integer", ".status.replicas"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ]
        .map(owned)
    );

    let schema = schema_of(&crd);
    let spec = property(&schema, ".spec").unwrap();
    assert_eq!(spec["required"], serde_json::json!(["dgdRef", "replicas"]));
    assert_eq!(property(spec, ".replicas").unwrap()["minimum"], 0.0);
    let dgd_ref = property(spec, ".dgdRef").unwrap();
    assert_eq!(
        dgd_ref["required"],
        serde_json::json!(["name", "serviceName"])
    );
    for field in ["name", "serviceName"] {
        assert_eq!(
            property(dgd_ref, &format!(".{field}")).unwrap()["minLength"],
            1,
            "{field}"
        );
    }
    assert_eq!(
        property(&schema, ".status.replicas").unwrap()["type"],
        "integer"
    );
    assert_eq!(
        property(&schema, ".status.selector").unwrap()["type"],
        "string"
    );
    assert_eq!(
        property(&schema, ".status.lastScaleTime").unwrap()["format"],
        "date-time"
    );
}

#[test]
fn worker_metadata_keeps_whatever_data_a_worker_writes() {
    let crd = by_kind("DynamoWorkerMetadata");
    let version = &crd.spec.versions[0];
    assert!(
        version.subresources.is_none(),
        "no status or scale subresource"
    );
    assert_eq!(
        column_names_and_paths(&crd),
        [(
            "Age".to_owned(),
            "date".to_owned(),
            ".metadata.creationTimestamp".to_owned()
        )]
    );
    let schema = schema_of(&crd);
    let spec = property(&schema, ".spec").unwrap();
    assert_eq!(spec["required"], serde_json::json!(["data"]));
    let data = property(spec, ".data").unwrap();
    assert_eq!(data["type"], "object");
    assert_eq!(data["x-kubernetes-preserve-unknown-fields"], true);
    assert!(property(&schema, ".status").is_none());
}
