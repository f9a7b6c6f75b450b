//! Every example manifest parses into the typed structs and serializes back without losing
//! or adding a field.

use std::path::{Path, PathBuf};

use dynamo_api::parse;
use dynamo_api::v1alpha1::{
    BackendFramework, DynamoComponentDeployment, DynamoGraphDeployment,
    DynamoGraphDeploymentScalingAdapter, DynamoModel, DynamoWorkerMetadata, ModelType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifests() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = ["examples", "crates/api/tests/fixtures"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).expect("manifest directory"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
}

/// Parses `yaml` as `T` and checks that it serializes back to the same document.
fn assert_round_trip<T: DeserializeOwned + Serialize>(path: &Path, yaml: &str) -> T {
    let typed: T = parse::from_yaml(yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let original: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        written,
        original,
        "{} changed in a round trip",
        path.display()
    );
    typed
}

#[test]
fn every_manifest_round_trips_without_losing_fields() {
    let paths = manifests();
    assert!(
        paths.len() >= 7,
        "expected the examples and fixtures, found {paths:?}"
    );
    for path in paths {
        let yaml = std::fs::read_to_string(&path).unwrap();
        let kind: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        match kind["kind"].as_str() {
            Some("DynamoGraphDeployment") => {
                assert_round_trip::<DynamoGraphDeployment>(&path, &yaml);
            }
            Some("DynamoComponentDeployment") => {
                assert_round_trip::<DynamoComponentDeployment>(&path, &yaml);
            }
            Some("DynamoModel") => {
                assert_round_trip::<DynamoModel>(&path, &yaml);
            }
            Some("DynamoGraphDeploymentScalingAdapter") => {
                assert_round_trip::<DynamoGraphDeploymentScalingAdapter>(&path, &yaml);
            }
            Some("DynamoWorkerMetadata") => {
                assert_round_trip::<DynamoWorkerMetadata>(&path, &yaml);
            }
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        }
    }
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative)).unwrap()
}

#[test]
fn disaggregated_example_reads_as_typed_fields() {
    let graph: DynamoGraphDeployment =
        parse::from_yaml(&read("examples/vllm-disagg.yaml")).unwrap();
    assert_eq!(graph.spec.backend_framework, Some(BackendFramework::Vllm));
    let pvc = &graph.spec.pvcs.as_ref().unwrap()[0];
    assert_eq!(pvc.create, Some(true));
    assert_eq!(pvc.size.as_ref().unwrap().0, "100Gi");
    let services = graph.spec.services.as_ref().unwrap();
    assert_eq!(services.len(), 3);
    let prefill = &services["VllmPrefillWorker"];
    assert_eq!(prefill.env_from_secret.as_deref(), Some("hf-token-secret"));
    let limits = prefill.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits.gpu.as_deref(), Some("1"));
    assert_eq!(limits.custom.as_ref().unwrap()["rdma/ib"], "1");
    assert_eq!(
        prefill.volume_mounts.as_ref().unwrap()[0]
            .mount_point
            .as_deref(),
        Some("/models")
    );
    let extra = prefill.extra_pod_spec.as_ref().unwrap();
    let main = extra.main_container.as_ref().unwrap();
    assert_eq!(main.name, "", "an unnamed main container stays unnamed");
    assert_eq!(main.command.as_ref().unwrap()[2], "dynamo.vllm");
    let pod = extra.pod_spec.as_ref().unwrap();
    assert!(pod.containers.is_empty());
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
}

#[test]
fn multinode_and_lora_examples_read_as_typed_fields() {
    let graph: DynamoGraphDeployment =
        parse::from_yaml(&read("examples/trtllm-multinode.yaml")).unwrap();
    let worker = &graph.spec.services.as_ref().unwrap()["TrtllmWorker"];
    assert_eq!(worker.multinode.as_ref().unwrap().node_count, Some(2));
    let model: DynamoModel = parse::from_yaml(&read("examples/dynamomodel-lora.yaml")).unwrap();
    assert_eq!(model.spec.model_type, Some(ModelType::Lora));
    assert_eq!(
        model.spec.source.unwrap().uri,
        "hf://acme/llama-3.1-8b-sql-lora@main"
    );
}

#[test]
fn free_form_epp_config_is_kept_as_written() {
    let graph: DynamoGraphDeployment =
        parse::from_yaml(&read("crates/api/tests/fixtures/legacy-fields.yaml")).unwrap();
    let epp = &graph.spec.services.as_ref().unwrap()["Epp"];
    let config = epp.epp_config.as_ref().unwrap().config.as_ref().unwrap();
    assert_eq!(
        config["plugins"][0]["parameters"]["anything"][2]["nested"],
        true
    );
}

#[test]
fn scaling_adapter_and_worker_metadata_read_as_typed_fields() {
    let adapter: DynamoGraphDeploymentScalingAdapter =
        parse::from_yaml(&read("crates/api/tests/fixtures/scaling-adapter.yaml")).unwrap();
    assert_eq!(adapter.spec.replicas, 3);
    assert_eq!(adapter.spec.dgd_ref.name, "vllm-disagg");
    assert_eq!(adapter.spec.dgd_ref.service_name, "VllmDecodeWorker");
    let status = adapter.status.unwrap();
    assert_eq!(status.replicas, Some(2));
    assert!(
        status
            .selector
            .unwrap()
            .contains("dynamo-component=VllmDecodeWorker")
    );
    assert!(status.last_scale_time.is_some());

    let metadata: DynamoWorkerMetadata =
        parse::from_yaml(&read("crates/api/tests/fixtures/worker-metadata.yaml")).unwrap();
    let endpoint = &metadata.spec.data["endpoints"]["dyn-e2e-mock/backend/generate/520f855aa375f"];
    assert_eq!(endpoint["instance_id"], 1443625844750175_u64);
}
