//! Well-known label and annotation keys, as the upstream platform spells them.
//!
//! Users' manifests, dashboards and selectors rely on these exact strings.

/// Finalizer placed on every Dynamo custom resource.
pub const FINALIZER: &str = "nvidia.com/finalizer";

/// Labels the operator sets on the objects it creates.
pub mod label {
    pub const SELECTOR: &str = "nvidia.com/selector";
    pub const GRAPH_DEPLOYMENT_NAME: &str = "nvidia.com/dynamo-graph-deployment-name";
    pub const COMPONENT: &str = "nvidia.com/dynamo-component";
    pub const DYNAMO_NAMESPACE: &str = "nvidia.com/dynamo-namespace";
    pub const COMPONENT_TYPE: &str = "nvidia.com/dynamo-component-type";
    pub const SUB_COMPONENT_TYPE: &str = "nvidia.com/dynamo-sub-component-type";
    pub const METRICS_ENABLED: &str = "nvidia.com/metrics-enabled";
    pub const BASE_MODEL_HASH: &str = "nvidia.com/dynamo-base-model-hash";
    pub const DISCOVERY_BACKEND: &str = "nvidia.com/dynamo-discovery-backend";
    pub const DISCOVERY_ENABLED: &str = "nvidia.com/dynamo-discovery-enabled";
    /// `dynamo-operator` on the RBAC objects the operator creates.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "dynamo-operator";
    /// `"true"` on ServiceAccounts component pods may run as when they name none (the chart's
    /// `<fullname>-component`).
    pub const COMPONENT_POD: &str = "nvidia.com/dynamo-component-pod";
    /// `leader` or `worker` on the pods of a multinode group (the component Service selects
    /// the leaders).
    pub const ROLE: &str = "role";
    /// The group (replica) index of a multinode service's LeaderWorkerSet, PodGroup and pods.
    pub const INSTANCE_ID: &str = "instance-id";
}

/// Annotations users put on a DynamoGraphDeployment's metadata.
pub mod graph_annotation {
    pub const ENABLE_METRICS: &str = "nvidia.com/enable-metrics";
    pub const DISCOVERY_BACKEND: &str = "nvidia.com/dynamo-discovery-backend";
}

/// Annotations users put in a service's `annotations`.
pub mod service_annotation {
    pub const DEPLOYMENT_STRATEGY: &str = "nvidia.com/deployment-strategy";
    pub const ROLLING_UPDATE_MAX_SURGE: &str = "nvidia.com/deployment-rolling-update-max-surge";
    pub const ROLLING_UPDATE_MAX_UNAVAILABLE: &str =
        "nvidia.com/deployment-rolling-update-max-unavailable";
}

/// Annotations the operator writes.
pub mod operator_annotation {
    pub const RESTART_AT: &str = "nvidia.com/restartAt";
    /// Original model name on per-base-model Services.
    pub const BASE_MODEL: &str = "nvidia.com/dynamo-base-model";
    pub const DYN_NAMESPACE: &str = "nvidia.com/dyn-namespace";
    pub const DYN_COMPONENT: &str = "nvidia.com/dyn-component";
    pub const DYN_DISCOVERY_BACKEND: &str = "nvidia.com/dyn-discovery-backend";
}

/// Name of the Lease a namespace-restricted operator holds in its namespace.
pub const NAMESPACE_SCOPE_LEASE: &str = "dynamo-operator-namespace-scope";
