//! DynamoComponentDeployment (`dcd`): one service of a graph, created by the graph controller.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::conditions_schema;
use super::{BackendFramework, DynamoComponentDeploymentSharedSpec, ServiceReplicaStatus};

/// One Dynamo service and its workload. The `DynamoComponent` printer column shows
/// `spec.serviceName` (upstream's column points at a field that no longer exists).
// Each printcolumn(...) repeats `type_ = ...`; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "nvidia.com",
    version = "v1alpha1",
    kind = "DynamoComponentDeployment",
    plural = "dynamocomponentdeployments",
    shortname = "dcd",
    namespaced,
    status = "DynamoComponentDeploymentStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "DynamoComponentDeployment deploys one service of a Dynamo graph.",
    annotation("helm.sh/resource-policy", "keep"),
    printcolumn(
        name = "DynamoComponent",
        type_ = "string",
        description = "Service name",
        json_path = ".spec.serviceName"
    ),
    printcolumn(
        name = "Available",
        type_ = "string",
        description = "Available condition status",
        json_path = ".status.conditions[?(@.type=='Available')].status"
    ),
    printcolumn(
        name = "Backend",
        type_ = "string",
        description = "Backend framework",
        json_path = ".spec.backendFramework"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoComponentDeploymentSpec {
    /// Inference backend: sglang, vllm or trtllm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_framework: Option<BackendFramework>,
    #[serde(flatten)]
    pub shared: DynamoComponentDeploymentSharedSpec,
}

/// Observed state of a DynamoComponentDeployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoComponentDeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available` is the readiness signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Option<Vec<Condition>>,
    /// Labels that select this component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<BTreeMap<String, String>>,
    /// Replica counts of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReplicaStatus>,
}
