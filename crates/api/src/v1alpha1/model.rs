//! DynamoModel (`dm`): a model (base, LoRA or adapter) served by a graph's workers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::conditions_schema;

/// A model and where it is served; LoRA models are loaded onto every serving endpoint.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "nvidia.com",
    version = "v1alpha1",
    kind = "DynamoModel",
    plural = "dynamomodels",
    shortname = "dm",
    namespaced,
    status = "DynamoModelStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "DynamoModel describes a model served by Dynamo workers and tracks its endpoints.",
    annotation("helm.sh/resource-policy", "keep"),
    printcolumn(
        name = "BaseModel",
        type_ = "string",
        description = "Base model name",
        json_path = ".spec.baseModelName"
    ),
    printcolumn(
        name = "Type",
        type_ = "string",
        description = "Model type",
        json_path = ".spec.modelType"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        description = "Ready endpoints",
        json_path = ".status.readyEndpoints"
    ),
    printcolumn(
        name = "Total",
        type_ = "integer",
        description = "Total endpoints",
        json_path = ".status.totalEndpoints"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoModelSpec {
    /// Name the model is served under (the LoRA name for LoRA models).
    #[schemars(length(min = 1))]
    pub model_name: String,
    /// Base model; matched against the `modelRef.name` of serving components.
    #[schemars(length(min = 1))]
    pub base_model_name: String,
    /// base, lora or adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "base"))]
    pub model_type: Option<ModelType>,
    /// Where the model artifacts come from; required for LoRA models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    #[default]
    Base,
    Lora,
    Adapter,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSource {
    /// `s3://bucket/path` or `hf://org/model@revision`.
    #[schemars(length(min = 1))]
    pub uri: String,
}

/// Observed state of a DynamoModel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoModelStatus {
    /// Serving endpoints found for the base model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<EndpointInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_endpoints: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_endpoints: Option<i32>,
    /// ServicesFound and EndpointsReady.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Option<Vec<Condition>>,
}

/// One serving endpoint of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointInfo {
    /// `http://<pod IP>:9090`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default)]
    pub ready: bool,
}
