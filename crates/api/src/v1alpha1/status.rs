//! Status types shared by the kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator writes in `status.conditions`.
pub mod condition_type {
    /// A DynamoGraphDeployment: every component is available.
    pub const READY: &str = "Ready";
    /// A DynamoComponentDeployment: its workload is ready.
    pub const AVAILABLE: &str = "Available";
    /// A DynamoModel: a Service serves its base model.
    pub const SERVICES_FOUND: &str = "ServicesFound";
    /// A DynamoModel: its endpoints are ready (and, for LoRA, loaded).
    pub const ENDPOINTS_READY: &str = "EndpointsReady";
    /// A DynamoModel: `False` when its spec breaks an admission rule (the webhook being off).
    pub const VALID: &str = "Valid";
}

/// `status.state` of a DynamoGraphDeployment, as upstream spells it.
pub mod graph_state {
    pub const PENDING: &str = "pending";
    pub const SUCCESSFUL: &str = "successful";
    pub const FAILED: &str = "failed";
}

/// `status.state` of a DynamoGraphDeployment (the field itself stays a string, as upstream's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GraphState {
    /// Not every component is available yet.
    Pending,
    /// Every component is available.
    Successful,
    /// The graph could not be reconciled.
    Failed,
}

impl GraphState {
    pub const ALL: [GraphState; 3] = [Self::Pending, Self::Successful, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => graph_state::PENDING,
            Self::Successful => graph_state::SUCCESSFUL,
            Self::Failed => graph_state::FAILED,
        }
    }

    /// The state spelled `value`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

impl std::fmt::Display for GraphState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_states_keep_upstream_spelling() {
        let cases = [
            (GraphState::Pending, "pending"),
            (GraphState::Successful, "successful"),
            (GraphState::Failed, "failed"),
        ];
        for (state, text) in cases {
            assert_eq!(state.as_str(), text);
            assert_eq!(state.to_string(), text);
            assert_eq!(GraphState::parse(text), Some(state));
        }
        assert_eq!(GraphState::parse("Successful"), None);
        assert_eq!(GraphState::parse(""), None);
    }
}
