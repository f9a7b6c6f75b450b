//! Status types shared by the kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `status.conditions` of every kind: standard Kubernetes conditions, merged by `type`.
pub(crate) fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = crate::schema::core::<Vec<Condition>>(generator);
    schema.insert("x-kubernetes-list-type".to_owned(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".to_owned(),
        serde_json::json!(["type"]),
    );
    schema
}

/// Workload kind that runs a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ComponentKind {
    PodClique,
    PodCliqueScalingGroup,
    Deployment,
    LeaderWorkerSet,
}

/// Replica counts of one service's workload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReplicaStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_kind: Option<ComponentKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_name: Option<String>,
    /// Names of the workloads when a service has several (one per multinode replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_names: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub updated_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ready_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub available_replicas: Option<i32>,
}
