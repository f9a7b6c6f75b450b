//! Base models and their LoRA adapters: the headless Service per base model that makes its
//! serving pods discoverable (EndpointSlices), and the pure decisions of the DynamoModel
//! controller (which endpoints to call, what the status says).

use std::collections::BTreeMap;
use std::net::IpAddr;

use dynamo_api::labels::{label, operator_annotation};
use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoModel, DynamoModelStatus, EndpointInfo, ModelType,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::defaults::SYSTEM_PORT;
use super::naming::{base_model_hash, model_service_name};
use super::{BuildError, namespace_of};

/// The headless Service `dynamo-model-<hash8>` of the component's base model, if it has a
/// `modelRef`. Every component serving that model in the namespace owns it (plain owner
/// references, not a controller one), so it goes away with the last of them.
pub fn model_service(dcd: &DynamoComponentDeployment) -> Result<Option<Service>, BuildError> {
    let Some(model) = &dcd.spec.shared.model_ref else {
        return Ok(None);
    };
    let hash = base_model_hash(&model.name);
    let owner = super::controller_ref(dcd)?;
    Ok(Some(Service {
        metadata: ObjectMeta {
            name: Some(model_service_name(&model.name)),
            namespace: Some(namespace_of(dcd)?),
            labels: Some(BTreeMap::from([(
                label::BASE_MODEL_HASH.to_owned(),
                hash.clone(),
            )])),
            annotations: Some(BTreeMap::from([(
                operator_annotation::BASE_MODEL.to_owned(),
                model.name.clone(),
            )])),
            owner_references: Some(vec![OwnerReference {
                controller: None,
                block_owner_deletion: None,
                ..owner
            }]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(BTreeMap::from([(label::BASE_MODEL_HASH.to_owned(), hash)])),
            ports: Some(vec![ServicePort {
                name: Some("system".to_owned()),
                port: SYSTEM_PORT,
                target_port: Some(IntOrString::Int(SYSTEM_PORT)),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            // publishNotReadyAddresses stays unset (false): the API server omits a false
            // value, so setting it would make every reconcile look like a change.
            ..Default::default()
        }),
        status: None,
    }))
}

/// Field manager of one owner's apply of a shared model Service: each component's manager
/// owns its own owner reference, so one component's apply never drops another's.
pub fn model_service_manager(dcd: &DynamoComponentDeployment) -> String {
    format!("dynamo-operator/{}", dcd.uid().unwrap_or_default())
}

/// One serving pod of a base model, from an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    /// `http://<pod IP>:9090` (IPv6 in brackets).
    pub address: String,
    pub pod_name: Option<String>,
    /// The endpoint's `ready` condition (absent counts as ready, as Kubernetes says).
    pub ready: bool,
}

/// The pods behind a base model: every Pod-targeted endpoint of the slices, once each. Only
/// addresses that parse as IPs are taken, so nothing but pod IPs is ever called.
pub fn candidates(slices: &[EndpointSlice]) -> Vec<Candidate> {
    let mut seen = BTreeMap::new();
    for slice in slices {
        for endpoint in slice.endpoints.iter().flatten() {
            let Some(target) = endpoint.target_ref.as_ref() else {
                continue;
            };
            if target.kind.as_deref() != Some("Pod") {
                continue;
            }
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let address = match ip {
                IpAddr::V4(ip) => format!("http://{ip}:{SYSTEM_PORT}"),
                IpAddr::V6(ip) => format!("http://[{ip}]:{SYSTEM_PORT}"),
            };
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            seen.entry(address.clone()).or_insert(Candidate {
                address,
                pod_name: target.name.clone(),
                ready,
            });
        }
    }
    seen.into_values().collect()
}

/// Whether the model's adapters are loaded over HTTP (LoRA), or only listed (base, adapter).
pub fn loads_over_http(model: &DynamoModel) -> bool {
    model.spec.model_type == Some(ModelType::Lora)
}

/// The body of `POST /v1/loras`.
pub fn load_request(model: &DynamoModel) -> serde_json::Value {
    serde_json::json!({
        "lora_name": model.spec.model_name,
        "source": {"uri": model.spec.source.as_ref().map(|s| s.uri.as_str()).unwrap_or_default()},
    })
}

/// Endpoints that need a load request: ready candidates not already loaded at the same
/// address by the same pod (as the current status records).
pub fn to_load<'a>(
    candidates: &'a [Candidate],
    status: Option<&DynamoModelStatus>,
) -> Vec<&'a Candidate> {
    let loaded: Vec<&EndpointInfo> = status
        .and_then(|s| s.endpoints.as_ref())
        .map(|e| e.iter().filter(|e| e.ready).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .filter(|c| c.ready)
        .filter(|c| {
            !loaded
                .iter()
                .any(|l| l.address == c.address && l.pod_name == c.pod_name)
        })
        .collect()
}

/// The endpoints of the status: each candidate, ready when its adapter is loaded (`loaded`
/// holds the addresses that are). Base and adapter models are listed as not ready, as
/// upstream does: nothing is loaded into them.
pub fn endpoints(candidates: &[Candidate], loaded: &[String], lora: bool) -> Vec<EndpointInfo> {
    candidates
        .iter()
        .map(|c| EndpointInfo {
            address: c.address.clone(),
            pod_name: c.pod_name.clone(),
            ready: lora && c.ready && loaded.contains(&c.address),
        })
        .collect()
}

/// The `EndpointsReady` condition: (status, reason, message).
pub fn endpoints_ready(endpoints: &[EndpointInfo], lora: bool) -> (bool, &'static str, String) {
    let total = endpoints.len();
    let ready = endpoints.iter().filter(|e| e.ready).count();
    if total == 0 {
        (
            false,
            "NoEndpoints",
            "no serving endpoints found for the base model".into(),
        )
    } else if !lora {
        (
            true,
            "EndpointsDiscovered",
            format!("{total} serving endpoints found"),
        )
    } else if ready == total {
        (
            true,
            "AllEndpointsReady",
            format!("the adapter is loaded on all {total} endpoints"),
        )
    } else {
        (
            false,
            "NotReady",
            format!("the adapter is loaded on {ready} of {total} endpoints"),
        )
    }
}

/// A model's owner-free identity check: the hash its serving pods carry.
pub fn model_hash(model: &DynamoModel) -> String {
    base_model_hash(&model.spec.base_model_name)
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
