//! DynamoGraphDeploymentScalingAdapter (`dgdsa`): the `scale` subresource of one service of a
//! graph, so HPA, KEDA and the Planner can scale that service like a Deployment.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired replica count of one service of a DynamoGraphDeployment.
// Each printcolumn(...) repeats `type_ = ...`; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "nvidia.com",
    version = "v1alpha1",
    kind = "DynamoGraphDeploymentScalingAdapter",
    plural = "dynamographdeploymentscalingadapters",
    shortname = "dgdsa",
    namespaced,
    status = "DynamoGraphDeploymentScalingAdapterStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    derive = "PartialEq",
    derive = "Default",
    doc = "DynamoGraphDeploymentScalingAdapter exposes the replicas of one service of a DynamoGraphDeployment through the scale subresource.",
    annotation("helm.sh/resource-policy", "keep"),
    printcolumn(
        name = "DGD",
        type_ = "string",
        description = "DynamoGraphDeployment name",
        json_path = ".spec.dgdRef.name"
    ),
    printcolumn(
        name = "SERVICE",
        type_ = "string",
        description = "Service name",
        json_path = ".spec.dgdRef.serviceName"
    ),
    printcolumn(
        name = "REPLICAS",
        type_ = "integer",
        description = "Current replicas",
        json_path = ".status.replicas"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoGraphDeploymentScalingAdapterSpec {
    /// Desired replicas of the service; written to the graph by the operator.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// The graph and service this adapter scales.
    pub dgd_ref: DgdRef,
}

/// A service of a DynamoGraphDeployment in the adapter's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DgdRef {
    /// Name of the DynamoGraphDeployment.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of the service in the graph's `spec.services`.
    #[schemars(length(min = 1))]
    pub service_name: String,
}

/// Observed state of a scaling adapter, read by the `scale` subresource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamoGraphDeploymentScalingAdapterStatus {
    /// Replicas of the service as the graph has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the service's pods, for HPA metrics (`key=value,key=value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// When the operator last wrote the adapter's replicas to the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
}
