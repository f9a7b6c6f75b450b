//! The per-service spec shared by `DynamoGraphDeployment.spec.services.<name>` and the body of a
//! `DynamoComponentDeployment`.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec};
use k8s_openapi::api::core::v1::{ConfigMapKeySelector, EnvVar, Probe, ResourceClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::extra_pod_spec::ExtraPodSpec;
use super::{BackendFramework, ComponentType};
use crate::schema;

/// One service of an inference graph: how its pods are built, exposed and scaled.
// Large optional parts are boxed: the operator caches this struct once per service of every
// graph and component (and a map node reserves room for eleven values), so an unset field
// should cost a pointer, not kilobytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoComponentDeploymentSharedSpec {
    /// Annotations copied onto the generated resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels copied onto the generated resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Name of the service; set by the graph controller to the key in `services`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Role of the component: frontend, worker, prefill, decode, planner, epp or default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_type: Option<String>,
    /// Sub-role of the component, for example prefill or decode; copied to a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_component_type: Option<String>,
    /// Deprecated and ignored: the operator computes the Dynamo namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamo_namespace: Option<String>,
    /// When true the Dynamo namespace is the constant `dynamo` instead of `<namespace>-<graph>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_dynamo_namespace: Option<bool>,
    /// Compute resources of the main container, with GPU count and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Box<Resources>>,
    /// Deprecated and ignored: scale with a DynamoGraphDeploymentScalingAdapter instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Box<Autoscaling>>,
    /// Environment variables of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Vec<EnvVar>>")]
    pub envs: Option<Vec<EnvVar>>,
    /// Name of a Secret whose keys become environment variables of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from_secret: Option<String>,
    /// PersistentVolumeClaims mounted into the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// How a frontend is exposed outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Box<IngressSpec>>,
    /// The base model this component serves; enables model discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ref: Option<Box<ModelReference>>,
    /// The `/dev/shm` tmpfs (enabled, 8Gi, unless configured here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_memory: Option<Box<SharedMemorySpec>>,
    /// Labels and annotations merged onto the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_metadata: Option<Box<ExtraPodMetadata>>,
    /// Pod spec fields and a `mainContainer` merged over the generated defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_spec: Option<ExtraPodSpec>,
    /// Replaces the default liveness probe of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Probe>")]
    pub liveness_probe: Option<Box<Probe>>,
    /// Replaces the default readiness probe of the main container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Probe>")]
    pub readiness_probe: Option<Box<Probe>>,
    /// Number of replicas (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Runs each replica across several nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multinode: Option<MultinodeSpec>,
    /// When enabled, a DynamoGraphDeploymentScalingAdapter owns `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_adapter: Option<ScalingAdapter>,
    /// Endpoint picker configuration, only for `componentType: epp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epp_config: Option<Box<EppConfig>>,
    /// Checkpoint/restore of the model state for faster start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Box<ServiceCheckpointConfig>>,
}

impl DynamoComponentDeploymentSharedSpec {
    /// Nodes per replica: `multinode.nodeCount`, 2 when the `multinode` block is present without
    /// a count (the CRD default), else 1.
    pub fn node_count(&self) -> i32 {
        self.multinode
            .as_ref()
            .map_or(1, |multinode| multinode.node_count.unwrap_or(2))
    }

    /// Each replica spans several nodes.
    pub fn is_multinode(&self) -> bool {
        self.node_count() >= 2
    }

    /// The role of the service; `None` when `componentType` is unset or empty (the generic
    /// defaults apply either way).
    pub fn component_type(&self) -> Option<ComponentType> {
        self.component_type
            .as_deref()
            .filter(|value| !value.is_empty())
            .map(ComponentType::from)
    }
}

/// Requests, limits and dynamic resource claims of the main container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceItem>,
    /// Dynamic resource allocation claims, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Vec<ResourceClaim>>")]
    pub claims: Option<Vec<ResourceClaim>>,
}

/// One side (requests or limits) of a component's resources, as quantity strings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Number of GPUs, as resource `gpuType` (default `nvidia.com/gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// Resource name used for `gpu`, for example `nvidia.com/mig-1g.10gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// Any other resources, by resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
}

/// Deprecated horizontal autoscaling settings; accepted so old manifests still parse.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<HorizontalPodAutoscalerBehavior>")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Vec<MetricSpec>>")]
    pub metrics: Option<Vec<MetricSpec>>,
}

/// A PersistentVolumeClaim mounted into the main container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Claim name of the PersistentVolumeClaim.
    pub name: String,
    /// Path in the container; required unless `useAsCompilationCache` has a backend default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    /// Use this volume as the backend's compilation cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub use_as_compilation_cache: Option<bool>,
}

/// Ingress (or Istio VirtualService) of a frontend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_virtual_service: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service_gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngressTlsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_controller_class_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTlsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Reference to the base model a component serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelReference {
    /// Base model name, matched by DynamoModel `baseModelName`.
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Shared memory (`/dev/shm`) of the pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharedMemorySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Size limit of the tmpfs (default 8Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<Quantity>")]
    pub size: Option<Quantity>,
}

/// Extra pod metadata merged over the generated one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraPodMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Spreads each replica over `nodeCount` nodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultinodeSpec {
    /// Number of nodes per replica (at least 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2), extend("default" = 2))]
    pub node_count: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingAdapter {
    /// Create a DynamoGraphDeploymentScalingAdapter that owns this service's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
}

/// Endpoint picker (EPP) configuration: a user ConfigMap or an inline config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EppConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::core::<ConfigMapKeySelector>")]
    pub config_map_ref: Option<ConfigMapKeySelector>,
    /// Inline EndpointPickerConfig, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::free_form_object")]
    pub config: Option<serde_json::Value>,
}

/// How a checkpoint is obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CheckpointMode {
    #[default]
    Auto,
    Manual,
}

/// Checkpoint/restore configuration of a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!self.enabled || (has(self.checkpointRef) && size(self.checkpointRef) > 0) || (has(self.identity) && has(self.identity.model) && has(self.identity.backendFramework))"
).message("When enabled, either checkpointRef or both identity.model and identity.backendFramework must be specified"))]
pub struct ServiceCheckpointConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Auto"))]
    pub mode: Option<CheckpointMode>,
    /// Name of an existing DynamoCheckpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<CheckpointIdentity>,
}

/// What makes two checkpoints interchangeable; `model` and `backendFramework` are required.
// The schema requires both, as upstream's does; the fields stay `Option` so that objects stored
// before it did still decode (the API server lets their unchanged fields pass on update).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointIdentity {
    /// Model identifier, for example `meta-llama/Llama-3-70B`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub backend_framework: Option<BackendFramework>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamo_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub tensor_parallel_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub pipeline_parallel_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_model_len: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_parameters: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cached graph holds one of these per service in a map node sized for eleven, and
    /// every cached component one more: a spec that grows past 1 KiB inline multiplies the
    /// operator's memory.
    #[test]
    fn the_shared_spec_stays_small_inline() {
        let size = std::mem::size_of::<DynamoComponentDeploymentSharedSpec>();
        assert!(
            size <= 1024,
            "DynamoComponentDeploymentSharedSpec is {size} bytes inline"
        );
    }

    fn spec(yaml: &str) -> DynamoComponentDeploymentSharedSpec {
        crate::parse::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn node_count_follows_the_crd_default() {
        let cases = [
            ("replicas: 3", 1, false),
            ("multinode: {}", 2, true),
            ("multinode: {nodeCount: 4}", 4, true),
            ("multinode: {nodeCount: 1}", 1, false),
        ];
        for (yaml, nodes, multinode) in cases {
            let spec = spec(yaml);
            assert_eq!(spec.node_count(), nodes, "{yaml}");
            assert_eq!(spec.is_multinode(), multinode, "{yaml}");
        }
    }

    #[test]
    fn a_checkpoint_identity_stored_without_its_model_still_decodes() {
        let spec = spec("checkpoint: {identity: {backendFramework: vllm}}");
        let identity = spec.checkpoint.unwrap().identity.unwrap();
        assert_eq!(identity.model, None);
        assert_eq!(identity.backend_framework, Some(BackendFramework::Vllm));
    }

    #[test]
    fn component_type_is_typed_and_empty_means_unset() {
        let cases = [
            ("replicas: 1", None),
            ("componentType: \"\"", None),
            ("componentType: epp", Some(ComponentType::Epp)),
            ("componentType: frontend", Some(ComponentType::Frontend)),
            (
                "componentType: router",
                Some(ComponentType::Other("router".into())),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(spec(yaml).component_type(), expected, "{yaml}");
        }
    }
}
