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
    pub const DEPLOYMENT_TARGET_TYPE: &str = "nvidia.com/dynamo-deployment-target-type";
    pub const METRICS_ENABLED: &str = "nvidia.com/metrics-enabled";
    pub const BASE_MODEL_HASH: &str = "nvidia.com/dynamo-base-model-hash";
    pub const DISCOVERY_BACKEND: &str = "nvidia.com/dynamo-discovery-backend";
    pub const DISCOVERY_ENABLED: &str = "nvidia.com/dynamo-discovery-enabled";
    /// `dynamo-operator` on model Services.
    pub const NVIDIA_MANAGED_BY: &str = "nvidia.com/managed-by";
    /// `dynamo-operator` on the RBAC objects the operator creates.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "dynamo-operator";
    pub const KAI_QUEUE: &str = "kai.scheduler/queue";
    pub const INSTANCE_ID: &str = "instance-id";
    /// `role: leader` selects the leader pod of a multinode service.
    pub const ROLE: &str = "role";
    pub const ROLE_LEADER: &str = "leader";
    pub const CHECKPOINT_SOURCE: &str = "nvidia.com/checkpoint-source";
    pub const CHECKPOINT_HASH: &str = "nvidia.com/checkpoint-hash";
    pub const CHECKPOINT_NAME: &str = "nvidia.com/checkpoint-name";
    pub const DGDR_NAME: &str = "dgdr.nvidia.com/name";
    pub const DGDR_NAMESPACE: &str = "dgdr.nvidia.com/namespace";
    /// Read, not written: `"true"` on a ServiceAccount makes it the default for component pods.
    pub const COMPONENT_POD: &str = "nvidia.com/dynamo-component-pod";
}

/// Annotations users put on a DynamoGraphDeployment's metadata.
pub mod graph_annotation {
    pub const ENABLE_GROVE: &str = "nvidia.com/enable-grove";
    pub const ENABLE_METRICS: &str = "nvidia.com/enable-metrics";
    pub const DISCOVERY_BACKEND: &str = "nvidia.com/dynamo-discovery-backend";
    pub const KAI_SCHEDULER_QUEUE: &str = "nvidia.com/kai-scheduler-queue";
}

/// Annotations users put in a service's `annotations`.
pub mod service_annotation {
    pub const DISABLE_IMAGE_PULL_SECRET_DISCOVERY: &str =
        "nvidia.com/disable-image-pull-secret-discovery";
    pub const DEPLOYMENT_STRATEGY: &str = "nvidia.com/deployment-strategy";
    pub const ROLLING_UPDATE_MAX_SURGE: &str = "nvidia.com/deployment-rolling-update-max-surge";
    pub const ROLLING_UPDATE_MAX_UNAVAILABLE: &str =
        "nvidia.com/deployment-rolling-update-max-unavailable";
    pub const ENABLE_DEBUG_MODE: &str = "nvidia.com/enable-debug-mode";
    pub const ENABLE_STEALING_TRAFFIC_DEBUG_MODE: &str =
        "nvidia.com/enable-stealing-traffic-debug-mode";
    pub const ENABLE_DEBUG_POD_RECEIVE_PRODUCTION_TRAFFIC: &str =
        "nvidia.com/enable-debug-pod-receive-production-traffic";
}

/// Annotations the operator writes.
pub mod operator_annotation {
    pub const RESTART_AT: &str = "nvidia.com/restartAt";
    pub const LAST_APPLIED_HASH: &str = "nvidia.com/last-applied-hash";
    pub const LAST_APPLIED_GENERATION: &str = "nvidia.com/last-applied-generation";
    /// Original model name on per-base-model Services.
    pub const BASE_MODEL: &str = "nvidia.com/dynamo-base-model";
    pub const DYN_NAMESPACE: &str = "nvidia.com/dyn-namespace";
    pub const DYN_COMPONENT: &str = "nvidia.com/dyn-component";
    pub const DYN_PARENT_DGD_NAME: &str = "nvidia.com/dyn-parent-dgd-name";
    pub const DYN_PARENT_DGD_NAMESPACE: &str = "nvidia.com/dyn-parent-dgd-namespace";
    pub const DYN_DISCOVERY_BACKEND: &str = "nvidia.com/dyn-discovery-backend";
    pub const DGDR_ADDITIONAL_RESOURCES: &str = "dgdr.nvidia.com/additional-resources";
}

/// Name of the Lease a namespace-restricted operator holds in its namespace.
pub const NAMESPACE_SCOPE_LEASE: &str = "dynamo-operator-namespace-scope";
