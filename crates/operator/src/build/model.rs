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

/// Delay before retrying after `failures` consecutive failed rounds: 2 s doubling to 60 s.
pub fn retry_delay(failures: u32) -> std::time::Duration {
    std::time::Duration::from_secs((2u64 << failures.min(5)).min(60))
}

/// A model's owner-free identity check: the hash its serving pods carry.
pub fn model_hash(model: &DynamoModel) -> String {
    base_model_hash(&model.spec.base_model_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_api::v1alpha1::{DynamoModelSpec, ModelSource};
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn endpoint(ip: &str, pod: &str, ready: Option<bool>, kind: &str) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some(kind.to_owned()),
                name: Some(pod.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(endpoints: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(endpoints),
            ..Default::default()
        }
    }

    fn lora() -> DynamoModel {
        DynamoModel::new(
            "m",
            DynamoModelSpec {
                model_name: "sql-lora".into(),
                base_model_name: "llama".into(),
                model_type: Some(ModelType::Lora),
                source: Some(ModelSource {
                    uri: "hf://a/b@main".into(),
                }),
            },
        )
    }

    #[test]
    fn candidates_are_pod_ips_once_each_with_their_readiness() {
        let slices = [
            slice(vec![
                endpoint("10.0.0.2", "a", Some(true), "Pod"),
                endpoint("10.0.0.3", "b", Some(false), "Pod"),
                endpoint("10.0.0.4", "c", None, "Pod"),
            ]),
            slice(vec![
                endpoint("10.0.0.2", "a", Some(true), "Pod"),
                endpoint("not-an-ip/evil", "d", Some(true), "Pod"),
                endpoint("10.0.0.9", "node", Some(true), "Node"),
            ]),
        ];
        let found = candidates(&slices);
        let addresses: Vec<(&str, bool)> = found
            .iter()
            .map(|c| (c.address.as_str(), c.ready))
            .collect();
        assert_eq!(
            addresses,
            [
                ("http://10.0.0.2:9090", true),
                ("http://10.0.0.3:9090", false),
                ("http://10.0.0.4:9090", true)
            ]
        );
    }

    #[test]
    fn only_ready_endpoints_not_yet_loaded_are_called() {
        let found = candidates(&[slice(vec![
            endpoint("10.0.0.2", "a", Some(true), "Pod"),
            endpoint("10.0.0.3", "b", Some(false), "Pod"),
            endpoint("10.0.0.4", "c", Some(true), "Pod"),
        ])]);
        let status = DynamoModelStatus {
            endpoints: Some(endpoints(&found, &["http://10.0.0.2:9090".into()], true)),
            ..Default::default()
        };
        let calls: Vec<&str> = to_load(&found, Some(&status))
            .iter()
            .map(|c| c.address.as_str())
            .collect();
        assert_eq!(calls, ["http://10.0.0.4:9090"]);
        // A new pod at a loaded address is loaded again.
        let replaced = candidates(&[slice(vec![endpoint("10.0.0.2", "a2", Some(true), "Pod")])]);
        assert_eq!(to_load(&replaced, Some(&status)).len(), 1);
    }

    #[test]
    fn readiness_reasons() {
        let found = candidates(&[slice(vec![
            endpoint("10.0.0.2", "a", Some(true), "Pod"),
            endpoint("10.0.0.3", "b", Some(true), "Pod"),
        ])]);
        let partial = endpoints(&found, &["http://10.0.0.2:9090".into()], true);
        assert_eq!(endpoints_ready(&partial, true).1, "NotReady");
        assert!(endpoints_ready(&partial, true).2.contains("1 of 2"));
        let all = endpoints(
            &found,
            &["http://10.0.0.2:9090".into(), "http://10.0.0.3:9090".into()],
            true,
        );
        assert_eq!(
            endpoints_ready(&all, true),
            (
                true,
                "AllEndpointsReady",
                "the adapter is loaded on all 2 endpoints".into()
            )
        );
        let base = endpoints(&found, &[], false);
        assert!(base.iter().all(|e| !e.ready));
        assert_eq!(endpoints_ready(&base, false).1, "EndpointsDiscovered");
        assert_eq!(endpoints_ready(&[], true).1, "NoEndpoints");
    }

    #[test]
    fn load_request_body_and_retry_delays() {
        assert_eq!(
            load_request(&lora()),
            serde_json::json!({"lora_name": "sql-lora", "source": {"uri": "hf://a/b@main"}})
        );
        assert!(loads_over_http(&lora()));
        let delays: Vec<u64> = (0..8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn the_model_service_is_headless_selects_the_hash_and_is_owned_without_control() {
        let mut dcd = DynamoComponentDeployment::new("g-worker", Default::default());
        dcd.metadata.namespace = Some("ns".into());
        dcd.metadata.uid = Some("u1".into());
        assert!(model_service(&dcd).unwrap().is_none());
        dcd.spec.shared.model_ref = Some(Box::new(dynamo_api::v1alpha1::ModelReference {
            name: "abc".into(),
            revision: None,
        }));
        let service = model_service(&dcd).unwrap().unwrap();
        assert_eq!(
            service.metadata.name.as_deref(),
            Some("dynamo-model-ba7816bf")
        );
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector.unwrap()[label::BASE_MODEL_HASH], "ba7816bf");
        assert_eq!(spec.ports.unwrap()[0].port, 9090);
        let owner = &service.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.uid.as_str(), owner.controller), ("u1", None));
        assert_eq!(model_service_manager(&dcd), "dynamo-operator/u1");
    }
}
