//! DynamoComponentDeployment → Deployment, Service, Ingress and Istio VirtualService, and the
//! readiness rule of a Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use kube::{Resource, ResourceExt};
use serde_json::json;

use dynamo_api::labels::{label, operator_annotation, service_annotation};
use dynamo_api::v1alpha1::{ComponentType, DynamoComponentDeployment};

use super::config::{DiscoveryBackend, OperatorConfig};
use super::defaults::{EPP_GRPC_PORT, FRONTEND_PORT, SYSTEM_PORT};
use super::naming::{base_model_hash, exposed_name, ingress_host};
use super::non_empty as set;

/// Default `maxSurge` and `maxUnavailable` of the rolling update.
pub const DEFAULT_ROLLING_UPDATE: &str = "25%";

/// The component's Deployment: named like the component, selecting `nvidia.com/selector:
/// <name>`, `replicas` (default 1), and a RollingUpdate strategy (25% / 25%, overridable with the
/// `nvidia.com/deployment-rolling-update-max-surge|max-unavailable` annotations) unless
/// `nvidia.com/deployment-strategy: Recreate`.
pub fn deployment(dcd: &DynamoComponentDeployment, template: PodTemplateSpec) -> Deployment {
    let annotations = dcd.spec.shared.annotations.clone().unwrap_or_default();
    let strategy = match annotations
        .get(service_annotation::DEPLOYMENT_STRATEGY)
        .map(String::as_str)
    {
        Some("Recreate") => DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        },
        _ => {
            let knob = |key: &str| {
                let value = annotations
                    .get(key)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .unwrap_or(DEFAULT_ROLLING_UPDATE);
                match value.parse::<i32>() {
                    Ok(number) => IntOrString::Int(number),
                    Err(_) => IntOrString::String(value.to_owned()),
                }
            };
            DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(knob(service_annotation::ROLLING_UPDATE_MAX_SURGE)),
                    max_unavailable: Some(knob(service_annotation::ROLLING_UPDATE_MAX_UNAVAILABLE)),
                }),
            }
        }
    };
    Deployment {
        metadata: child_metadata(dcd),
        spec: Some(DeploymentSpec {
            replicas: Some(dcd.spec.shared.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector(dcd)),
                ..Default::default()
            },
            strategy: Some(strategy),
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// The component's Service: for frontends always (`http` 8000), for every component when the
/// discovery backend is kubernetes (`system` 9090; `grpc` 9002 for epp), else `None`.
///
/// It selects on `nvidia.com/selector: <component>`. Upstream selects on component type plus
/// Dynamo namespace, which also matches the pods of other services of the same type in the graph
/// (a prefill and a decode worker are both `worker`); the selector label matches exactly this
/// component's pods.
pub fn service(dcd: &DynamoComponentDeployment, config: &OperatorConfig) -> Option<Service> {
    let spec = &dcd.spec.shared;
    let kind = spec.component_type();
    let frontend = kind == Some(ComponentType::Frontend);
    let discovery = config.effective_discovery_backend(spec.annotations.as_ref());
    let kubernetes = discovery == DiscoveryBackend::Kubernetes;
    if !frontend && !kubernetes {
        return None;
    }
    let (port_name, port) = match kind {
        Some(ComponentType::Frontend) => ("http", FRONTEND_PORT),
        Some(ComponentType::Epp) => ("grpc", EPP_GRPC_PORT),
        _ => ("system", SYSTEM_PORT),
    };
    let mut metadata = child_metadata(dcd);
    metadata.name = Some(exposed_name(&dcd.name_any()));
    let labels = metadata.labels.get_or_insert_default();
    if kubernetes {
        labels.insert(
            label::DISCOVERY_BACKEND.to_owned(),
            DiscoveryBackend::Kubernetes.as_str().to_owned(),
        );
        if !frontend {
            labels.insert(label::DISCOVERY_ENABLED.to_owned(), "true".to_owned());
        }
    }
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            // A multinode component's pods are leaders and workers; only leaders serve.
            selector: Some(if dcd.spec.shared.node_count() >= 2 {
                super::groups::leader_selector(dcd)
            } else {
                selector(dcd)
            }),
            ports: Some(vec![ServicePort {
                name: Some(port_name.to_owned()),
                port,
                target_port: Some(IntOrString::String(port_name.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// The frontend's Ingress when `ingress.enabled` and an ingress class is known (the service's, else
/// the operator's): host `<hostPrefix><host>.<hostSuffix>` (suffix: the service's, else the
/// operator's, else `local`; host defaults to the component name), path `/` (Prefix) to Service
/// port 8000, TLS when a Secret is known (the service's, else the operator's).
pub fn ingress(dcd: &DynamoComponentDeployment, config: &OperatorConfig) -> Option<Ingress> {
    let exposure = Exposure::of(dcd, config)?;
    let class = exposure.class?;
    let mut metadata = child_metadata(dcd);
    metadata.name = Some(exposed_name(&dcd.name_any()));
    metadata
        .labels
        .get_or_insert_default()
        .extend(exposure.labels.clone());
    metadata.annotations = Some(exposure.annotations.clone()).filter(|a| !a.is_empty());
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: exposed_name(&dcd.name_any()),
            port: Some(ServiceBackendPort {
                number: Some(FRONTEND_PORT),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(class),
            rules: Some(vec![IngressRule {
                host: Some(exposure.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend,
                    }],
                }),
            }]),
            tls: exposure.tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![exposure.host]),
                    secret_name: Some(secret),
                }]
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// Group, version and kind of the Istio VirtualService.
pub fn virtual_service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1beta1", "VirtualService"),
        "virtualservices",
    )
}

/// The frontend's Istio VirtualService when `ingress.enabled`, `ingress.useVirtualService` and a
/// gateway is known (the service's `virtualServiceGateway`, else the operator's): the ingress
/// host, prefix `/` routed to the component's Service on port 8000.
pub fn virtual_service(
    dcd: &DynamoComponentDeployment,
    config: &OperatorConfig,
) -> Option<DynamicObject> {
    let exposure = Exposure::of(dcd, config)?;
    let gateway = exposure.gateway.filter(|_| exposure.use_virtual_service)?;
    let mut metadata = child_metadata(dcd);
    metadata
        .labels
        .get_or_insert_default()
        .extend(exposure.labels);
    metadata.annotations = Some(exposure.annotations).filter(|a| !a.is_empty());
    let name = exposed_name(&dcd.name_any());
    metadata.name = Some(name.clone());
    let mut object = DynamicObject::new(&name, &virtual_service_resource()).data(json!({
        "spec": {
            "hosts": [exposure.host],
            "gateways": [gateway],
            "http": [{
                "match": [{"uri": {"prefix": "/"}}],
                "route": [{"destination": {
                    "host": name,
                    "port": {"number": FRONTEND_PORT},
                }}],
            }],
        }
    }));
    object.metadata = metadata;
    Some(object)
}

/// Whether a Deployment has fully rolled out: not paused, its generation observed, and updated,
/// available and total replicas at the desired count (default 1) with `Available=True`.
/// Zero desired replicas count as ready once the generation is observed.
pub fn is_deployment_ready(deployment: &Deployment) -> bool {
    let Some(spec) = &deployment.spec else {
        return false;
    };
    if spec.paused == Some(true) {
        return false;
    }
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return false;
    }
    let desired = spec.replicas.unwrap_or(1);
    if desired == 0 {
        return true;
    }
    status.updated_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) == desired
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True")
}

/// How an enabled frontend is exposed, with the operator's settings filling the gaps.
struct Exposure {
    host: String,
    class: Option<String>,
    tls_secret: Option<String>,
    gateway: Option<String>,
    use_virtual_service: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

impl Exposure {
    /// `None` unless the component is a frontend with `ingress.enabled`.
    fn of(dcd: &DynamoComponentDeployment, config: &OperatorConfig) -> Option<Self> {
        let spec = &dcd.spec.shared;
        if spec.component_type() != Some(ComponentType::Frontend) {
            return None;
        }
        let ingress = spec.ingress.as_ref().filter(|i| i.enabled == Some(true))?;
        let owned = |value: Option<&str>| value.map(str::to_owned);
        let host = set(&ingress.host).map_or_else(|| dcd.name_any(), str::to_owned);
        let suffix = set(&ingress.host_suffix).or(config.ingress_host_suffix());
        let tls = ingress.tls.as_ref().and_then(|t| set(&t.secret_name));
        Some(Self {
            host: ingress_host(set(&ingress.host_prefix), &host, suffix),
            class: owned(set(&ingress.ingress_controller_class_name).or(config.ingress_class())),
            tls_secret: owned(tls.or(config.ingress_tls_secret())),
            gateway: owned(
                set(&ingress.virtual_service_gateway).or(config.virtual_service_gateway()),
            ),
            use_virtual_service: ingress.use_virtual_service == Some(true),
            labels: ingress.labels.clone().unwrap_or_default(),
            annotations: ingress.annotations.clone().unwrap_or_default(),
        })
    }
}

/// Name, namespace, labels, annotations and the controller reference to the component, as
/// upstream's component pathway puts them on the Deployment and the Service: the component's
/// `spec.labels` and metadata labels, `spec.annotations` and `extraPodMetadata.annotations`, and
/// for a `modelRef` the base-model hash label and name annotation. A component read from the
/// API server always has the uid the reference needs; one without (built by hand) gives
/// children without an owner.
pub(crate) fn child_metadata(dcd: &DynamoComponentDeployment) -> ObjectMeta {
    let spec = &dcd.spec.shared;
    let mut labels = spec.labels.clone().unwrap_or_default();
    labels.extend(dcd.labels().clone());
    let mut annotations = spec.annotations.clone().unwrap_or_default();
    if let Some(extra) = spec.extra_pod_metadata.as_ref() {
        annotations.extend(extra.annotations.clone().unwrap_or_default());
    }
    if let Some(model) = &spec.model_ref {
        labels.insert(
            label::BASE_MODEL_HASH.to_owned(),
            base_model_hash(&model.name),
        );
        annotations.insert(
            operator_annotation::BASE_MODEL.to_owned(),
            model.name.clone(),
        );
    }
    ObjectMeta {
        name: Some(dcd.name_any()),
        namespace: dcd.namespace(),
        labels: Some(labels).filter(|l| !l.is_empty()),
        annotations: Some(annotations).filter(|a| !a.is_empty()),
        owner_references: dcd.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..Default::default()
    }
}

fn selector(dcd: &DynamoComponentDeployment) -> BTreeMap<String, String> {
    BTreeMap::from([(label::SELECTOR.to_owned(), dcd.name_any())])
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
