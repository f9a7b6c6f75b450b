//! `resources` of a service → the main container's ResourceRequirements.

use super::non_empty;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use dynamo_api::v1alpha1::{ResourceItem, Resources};

/// Resource name of `gpu` when no `gpuType` is given.
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Translates the service's resources: `cpu`/`memory` as is, `gpu` as resource `gpuType` (default
/// `nvidia.com/gpu`), `custom` entries by their own names, and DRA `claims`.
///
/// Unlike upstream, `requests.gpu` is honoured. A GPU is an extended resource, which Kubernetes
/// only accepts with an equal limit, so a GPU request without a GPU limit also becomes the limit.
/// A side without `gpuType` uses the other side's.
pub fn container_resources(resources: &Resources) -> Option<ResourceRequirements> {
    let requests_side = resources.requests.as_ref();
    let limits_side = resources.limits.as_ref();
    let gpu_type = |own: Option<&ResourceItem>, other: Option<&ResourceItem>| {
        own.and_then(|s| non_empty(&s.gpu_type))
            .or_else(|| other.and_then(|s| non_empty(&s.gpu_type)))
            .unwrap_or(DEFAULT_GPU_RESOURCE)
            .to_owned()
    };
    let mut requests = side(requests_side, &gpu_type(requests_side, limits_side));
    let limits_gpu = gpu_type(limits_side, requests_side);
    let mut limits = side(limits_side, &limits_gpu);
    let requested_gpu = requests_side.and_then(|s| non_empty(&s.gpu));
    let limited_gpu = limits_side.and_then(|s| non_empty(&s.gpu));
    if let (Some(gpu), None) = (requested_gpu, limited_gpu) {
        limits.insert(limits_gpu, Quantity(gpu.to_owned()));
    }
    let claims = resources.claims.clone().filter(|c| !c.is_empty());
    requests.retain(|_, q| !q.0.is_empty());
    limits.retain(|_, q| !q.0.is_empty());
    if requests.is_empty() && limits.is_empty() && claims.is_none() {
        return None;
    }
    Some(ResourceRequirements {
        requests: Some(requests).filter(|r| !r.is_empty()),
        limits: Some(limits).filter(|l| !l.is_empty()),
        claims,
    })
}

fn side(item: Option<&ResourceItem>, gpu_resource: &str) -> BTreeMap<String, Quantity> {
    let mut quantities = BTreeMap::new();
    let Some(item) = item else {
        return quantities;
    };
    for (name, value) in [
        ("cpu", &item.cpu),
        ("memory", &item.memory),
        (gpu_resource, &item.gpu),
    ] {
        if let Some(value) = non_empty(value) {
            quantities.insert(name.to_owned(), Quantity(value.to_owned()));
        }
    }
    for (name, value) in item.custom.iter().flatten() {
        quantities.insert(name.clone(), Quantity(value.clone()));
    }
    quantities
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn translate(yaml: &str) -> Value {
        let resources: Resources = dynamo_api::parse::from_yaml(yaml).unwrap();
        serde_json::to_value(container_resources(&resources)).unwrap()
    }

    #[test]
    fn resource_translation_table() {
        let cases = [
            ("{}", json!(null)),
            (
                "requests: {cpu: '2', memory: 4Gi}\nlimits: {cpu: '4', memory: 8Gi}",
                json!({"requests": {"cpu": "2", "memory": "4Gi"},
                       "limits": {"cpu": "4", "memory": "8Gi"}}),
            ),
            (
                "limits: {gpu: '1'}",
                json!({"limits": {"nvidia.com/gpu": "1"}}),
            ),
            (
                "limits: {gpu: '1', gpuType: nvidia.com/mig-1g.10gb}",
                json!({"limits": {"nvidia.com/mig-1g.10gb": "1"}}),
            ),
            // requests.gpu is honoured (upstream drops it) and mirrored as the limit.
            (
                "requests: {gpu: '2'}",
                json!({"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}),
            ),
            (
                "requests: {gpu: '1'}\nlimits: {gpu: '1', gpuType: amd.com/gpu}",
                json!({"requests": {"amd.com/gpu": "1"}, "limits": {"amd.com/gpu": "1"}}),
            ),
            (
                "requests: {gpu: '1', gpuType: amd.com/gpu}",
                json!({"requests": {"amd.com/gpu": "1"}, "limits": {"amd.com/gpu": "1"}}),
            ),
            (
                "limits: {gpu: '1', custom: {rdma/ib: '1', example.com/fpga: '2'}}",
                json!({"limits": {"nvidia.com/gpu": "1", "rdma/ib": "1", "example.com/fpga": "2"}}),
            ),
            ("requests: {cpu: ''}\nlimits: {memory: ''}", json!(null)),
            (
                "claims: [{name: gpu-claim}, {name: nic, request: rdma}]",
                json!({"claims": [{"name": "gpu-claim"}, {"name": "nic", "request": "rdma"}]}),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(translate(yaml), expected, "{yaml}");
        }
    }
}
