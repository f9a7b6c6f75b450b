//! Container defaults per `componentType`, and the environment every component pod gets.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, GRPCAction, HTTPGetAction, ObjectFieldSelector,
    Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use dynamo_api::v1alpha1::ComponentType;

use super::config::{DiscoveryBackend, OperatorConfig};
use super::naming::{MAIN_CONTAINER, PLANNER_SERVICE_ACCOUNT};

/// Frontend HTTP port (`http`).
pub const FRONTEND_PORT: i32 = 8000;
/// Worker system/health port (`system`), also the discovery Service port.
pub const SYSTEM_PORT: i32 = 9090;
/// Planner Prometheus port (`metrics`).
pub const PLANNER_METRICS_PORT: i32 = 9085;
/// Endpoint picker gRPC port (`grpc`).
pub const EPP_GRPC_PORT: i32 = 9002;
/// Endpoint picker gRPC health port (`grpc-health`).
pub const EPP_GRPC_HEALTH_PORT: i32 = 9003;
/// Endpoint picker metrics port (`metrics`).
pub const EPP_METRICS_PORT: i32 = 9090;

/// The default container and pod settings of one component type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentDefaults {
    /// The `main` container: command and args (frontend only), ports, env and probes.
    pub container: Container,
    /// Service account the type needs, if any.
    pub service_account_name: Option<String>,
}

/// Worker-like types get the system port, health env and worker probes.
pub fn is_worker(component_type: &ComponentType) -> bool {
    matches!(
        component_type,
        ComponentType::Worker | ComponentType::Prefill | ComponentType::Decode
    )
}

/// Defaults of `componentType` (`None`, `default` and unknown types get a bare `main` container).
pub fn component_defaults(component_type: Option<&ComponentType>) -> ComponentDefaults {
    let mut container = Container {
        name: MAIN_CONTAINER.to_owned(),
        ..Default::default()
    };
    let mut service_account_name = None;
    match component_type {
        Some(ComponentType::Frontend) => {
            // Split as upstream: a manifest that sets only `args` (`-m dynamo.frontend
            // --router-mode kv`) keeps `python3`; one that sets only `command` keeps these args.
            container.command = Some(strings(&["python3"]));
            container.args = Some(strings(&["-m", "dynamo.frontend"]));
            container.ports = Some(vec![port("http", FRONTEND_PORT)]);
            container.env = Some(vec![
                env("DYNAMO_PORT", &FRONTEND_PORT.to_string()),
                env("DYN_HTTP_PORT", &FRONTEND_PORT.to_string()),
            ]);
            container.liveness_probe = Some(http_probe("/live", "http", Some(15), 10, 1, 3));
            container.readiness_probe = Some(http_probe("/health", "http", Some(10), 10, 3, 3));
        }
        Some(worker) if is_worker(worker) => {
            container.ports = Some(vec![port("system", SYSTEM_PORT)]);
            container.env = Some(vec![
                env("DYN_SYSTEM_ENABLED", "true"),
                env("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[\"generate\"]"),
                env("DYN_SYSTEM_PORT", &SYSTEM_PORT.to_string()),
                env("DYN_HEALTH_CHECK_ENABLED", "false"),
            ]);
            container.liveness_probe = Some(http_probe("/live", "system", None, 5, 4, 1));
            container.readiness_probe = Some(http_probe("/health", "system", None, 10, 4, 3));
            container.startup_probe = Some(http_probe("/live", "system", None, 10, 5, 720));
        }
        Some(ComponentType::Planner) => {
            container.ports = Some(vec![port("metrics", PLANNER_METRICS_PORT)]);
            container.env = Some(vec![env(
                "PLANNER_PROMETHEUS_PORT",
                &PLANNER_METRICS_PORT.to_string(),
            )]);
            service_account_name = Some(PLANNER_SERVICE_ACCOUNT.to_owned());
        }
        Some(ComponentType::Epp) => {
            container.ports = Some(vec![
                port("grpc", EPP_GRPC_PORT),
                port("grpc-health", EPP_GRPC_HEALTH_PORT),
                port("metrics", EPP_METRICS_PORT),
            ]);
            container.liveness_probe = Some(epp_probe());
            container.readiness_probe = Some(epp_probe());
        }
        _ => {}
    }
    ComponentDefaults {
        container,
        service_account_name,
    }
}

/// What the injected environment describes: the component and its graph.
#[derive(Clone, Copy, Debug)]
pub struct PodIdentity<'a> {
    pub dynamo_namespace: &'a str,
    pub component_type: Option<&'a str>,
    pub graph_name: &'a str,
    pub graph_namespace: &'a str,
    pub discovery_backend: DiscoveryBackend,
}

/// Variables every component gets: `DYN_*` identity, `POD_*` from the downward API, and
/// `DYN_DISCOVERY_BACKEND=kubernetes` unless the backend is etcd.
pub fn injected_env(identity: &PodIdentity<'_>) -> Vec<EnvVar> {
    let mut vars = vec![
        env("DYN_NAMESPACE", identity.dynamo_namespace),
        // Present without a value when the type is unset, as upstream sets it to "" (the API
        // server stores an empty value as none).
        EnvVar {
            name: "DYN_COMPONENT".to_owned(),
            value: identity.component_type.map(str::to_owned),
            ..Default::default()
        },
        env("DYN_PARENT_DGD_K8S_NAME", identity.graph_name),
        env("DYN_PARENT_DGD_K8S_NAMESPACE", identity.graph_namespace),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_UID", "metadata.uid"),
    ];
    if identity.discovery_backend == DiscoveryBackend::Kubernetes {
        vars.push(env(
            "DYN_DISCOVERY_BACKEND",
            DiscoveryBackend::Kubernetes.as_str(),
        ));
    }
    vars
}

/// Operator-level variables (lowest precedence), each only when configured. Without a NATS
/// address the runtime's event plane is ZeroMQ: left to itself, a kubernetes- or
/// etcd-discovery process looks for NATS on localhost for two minutes before it serves.
pub fn operator_env(config: &OperatorConfig) -> Vec<EnvVar> {
    let event_plane = config.nats_addr().is_none().then_some("zmq");
    [
        ("NATS_SERVER", config.nats_addr()),
        ("DYN_EVENT_PLANE", event_plane),
        ("ETCD_ENDPOINTS", config.etcd_addr()),
        ("MODEL_EXPRESS_URL", config.model_express_url()),
        ("PROMETHEUS_ENDPOINT", config.prometheus_endpoint()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| env(name, value)))
    .collect()
}

pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..Default::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

fn http_probe(
    path: &str,
    port: &str,
    initial_delay: Option<i32>,
    period: i32,
    timeout: i32,
    failure: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..Default::default()
        }),
        initial_delay_seconds: initial_delay,
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failure),
        ..Default::default()
    }
}

/// gRPC health on `grpc-health`, as in the Gateway API inference extension's own manifests.
fn epp_probe() -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: EPP_GRPC_HEALTH_PORT,
            service: Some("inference-extension".to_owned()),
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;
