//! Test inputs: graphs parsed from YAML (and the repository's examples) with the metadata the
//! API server would fill in (namespace `ns` unless given, uid `uid-<name>`).

use kube::ResourceExt;
use kube::api::ObjectMeta;

use dynamo_api::parse::from_yaml;
use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment};

use super::{OperatorConfig, desired_components};

/// A graph from the YAML after `apiVersion`/`kind` (so starting with `metadata:`).
pub(crate) fn graph(yaml: &str) -> DynamoGraphDeployment {
    let yaml = format!("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\n{yaml}");
    let mut dgd: DynamoGraphDeployment = from_yaml(&yaml).unwrap();
    fill(&mut dgd.metadata);
    dgd
}

/// A graph from `examples/<file>`.
pub(crate) fn example(file: &str) -> DynamoGraphDeployment {
    let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut dgd: DynamoGraphDeployment = from_yaml(&yaml).unwrap_or_else(|e| panic!("{path}: {e}"));
    fill(&mut dgd.metadata);
    dgd
}

/// The DynamoGraphDeployment of `e2e/fixtures/upstream/<file>` (upstream's example graphs, with
/// the Secrets and ConfigMaps they need in other documents of the file).
pub(crate) fn upstream_fixture(file: &str) -> DynamoGraphDeployment {
    let path = format!(
        "{}/../../e2e/fixtures/upstream/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let document = text
        .split("\n---\n")
        .find(|doc| doc.contains("\nkind: DynamoGraphDeployment\n"))
        .unwrap_or_else(|| panic!("{path}: no DynamoGraphDeployment"));
    graph_manifest(document)
}

/// A graph from a whole manifest (with `apiVersion` and `kind`).
pub(crate) fn graph_manifest(yaml: &str) -> DynamoGraphDeployment {
    let mut dgd: DynamoGraphDeployment = from_yaml(yaml).unwrap();
    fill(&mut dgd.metadata);
    dgd
}

/// The component of `service`, as the graph builder makes it and the API server stores it.
pub(crate) fn component(
    dgd: &DynamoGraphDeployment,
    service: &str,
    config: &OperatorConfig,
) -> DynamoComponentDeployment {
    let mut dcd = desired_components(dgd, config)
        .unwrap()
        .into_iter()
        .find(|c| c.spec.shared.service_name.as_deref() == Some(service))
        .unwrap_or_else(|| panic!("no service {service}"));
    fill(&mut dcd.metadata);
    dcd
}

/// The component of a one-service graph `g` in namespace `ns` (service `Svc`, backend
/// `backend`), whose service spec is `service_yaml` (a YAML mapping, block or flow style).
pub(crate) fn single(
    backend: Option<&str>,
    service_yaml: &str,
    config: &OperatorConfig,
) -> DynamoComponentDeployment {
    let mut spec = serde_json::json!({ "services": { "Svc": from_yaml::<serde_json::Value>(service_yaml).unwrap() } });
    if let Some(backend) = backend {
        spec["backendFramework"] = backend.into();
    }
    let dgd = graph(&format!("metadata: {{name: g}}\nspec: {spec}\n"));
    component(&dgd, "Svc", config)
}

pub(crate) fn names(list: &[DynamoComponentDeployment]) -> Vec<String> {
    list.iter().map(|c| c.name_any()).collect()
}

fn fill(metadata: &mut ObjectMeta) {
    metadata.namespace.get_or_insert_with(|| "ns".to_owned());
    let uid = format!("uid-{}", metadata.name.clone().unwrap_or_default());
    metadata.uid.get_or_insert(uid);
}
