//! Names the operator gives to the objects it creates, and the values derived from names.

/// Name of the main container of every component pod.
pub const MAIN_CONTAINER: &str = "main";
/// Name of the `/dev/shm` volume.
pub const SHARED_MEMORY_VOLUME: &str = "shared-memory";
/// Mount path of the shared memory volume.
pub const SHARED_MEMORY_PATH: &str = "/dev/shm";
/// Default size of the shared memory tmpfs.
pub const SHARED_MEMORY_DEFAULT_SIZE: &str = "8Gi";
/// Service account of planner pods (created per namespace by the graph controller).
pub const PLANNER_SERVICE_ACCOUNT: &str = "planner-serviceaccount";
/// Service account of endpoint picker pods (created per namespace like the planner's).
pub const EPP_SERVICE_ACCOUNT: &str = "epp-serviceaccount";
/// Dynamo namespace of services with `globalDynamoNamespace: true`.
pub const GLOBAL_DYNAMO_NAMESPACE: &str = "dynamo";
/// Host suffix of Ingresses when neither the service nor the operator sets one.
pub const DEFAULT_INGRESS_HOST_SUFFIX: &str = "local";
/// Where vLLM keeps its compilation cache (default mount of `useAsCompilationCache`).
pub const VLLM_COMPILATION_CACHE_PATH: &str = "/root/.cache/vllm";

/// `<graph>-<lower(service)>`: the DynamoComponentDeployment of a service, and its Deployment,
/// Service, Ingress and VirtualService.
pub fn component_name(graph: &str, service: &str) -> String {
    format!("{graph}-{}", service.to_lowercase())
}

/// The graph service a component runs (`spec.serviceName`; a component made by hand without
/// one goes by its own name), as messages name it.
pub fn service_of(dcd: &dynamo_api::v1alpha1::DynamoComponentDeployment) -> String {
    dcd.spec
        .shared
        .service_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| kube::ResourceExt::name_any(dcd))
}

/// The name of a component's Service, Ingress and VirtualService: its own name with dots turned
/// into dashes, because a Service name must be a DNS-1035 label (a service key such as
/// `Qwen3-0.6B` is a valid component and Deployment name, but not a valid Service name).
pub fn exposed_name(component: &str) -> String {
    component.replace('.', "-")
}

/// The Dynamo namespace of a service: `dynamo` when global, else `<k8s-namespace>-<graph>`.
pub fn dynamo_namespace(k8s_namespace: &str, graph: &str, global: bool) -> String {
    if global {
        GLOBAL_DYNAMO_NAMESPACE.to_owned()
    } else {
        format!("{k8s_namespace}-{graph}")
    }
}

/// `<graph>-k8s-service-discovery`: the service account with Kubernetes discovery RBAC.
pub fn discovery_service_account(graph: &str) -> String {
    format!("{graph}-k8s-service-discovery")
}

/// First 8 hex digits of sha256(model name): the base-model hash label value.
pub fn base_model_hash(model_name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, model_name.as_bytes());
    digest.as_ref()[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `dynamo-model-<hash8>`: the headless Service of one base model.
pub fn model_service_name(model_name: &str) -> String {
    format!("dynamo-model-{}", base_model_hash(model_name))
}

/// `<prefix><host>.<suffix>`; the suffix defaults to `local`.
pub fn ingress_host(prefix: Option<&str>, host: &str, suffix: Option<&str>) -> String {
    let suffix = suffix
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_INGRESS_HOST_SUFFIX);
    format!("{}{host}.{suffix}", prefix.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_lowercase_the_service() {
        for (graph, service, expected) in [
            ("vllm-agg", "Frontend", "vllm-agg-frontend"),
            ("vllm-agg", "VllmDecodeWorker", "vllm-agg-vllmdecodeworker"),
            ("g", "planner", "g-planner"),
        ] {
            assert_eq!(component_name(graph, service), expected);
        }
    }

    #[test]
    fn dynamo_namespace_is_namespace_and_graph_unless_global() {
        assert_eq!(dynamo_namespace("team-a", "g", false), "team-a-g");
        assert_eq!(dynamo_namespace("team-a", "g", true), "dynamo");
    }

    #[test]
    fn base_model_hash_is_eight_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(base_model_hash("abc"), "ba7816bf");
        let hash = base_model_hash("meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!(hash.len(), 8);
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(model_service_name("abc"), "dynamo-model-ba7816bf");
    }

    #[test]
    fn ingress_host_composition() {
        for (prefix, host, suffix, expected) in [
            (None, "g", None, "g.local"),
            (None, "g", Some(""), "g.local"),
            (Some("api-"), "g", None, "api-g.local"),
            (Some("api-"), "g", Some("example.com"), "api-g.example.com"),
            (
                None,
                "chat",
                Some("dev.example.com"),
                "chat.dev.example.com",
            ),
        ] {
            assert_eq!(ingress_host(prefix, host, suffix), expected);
        }
    }

    #[test]
    fn discovery_service_account_name() {
        assert_eq!(discovery_service_account("g"), "g-k8s-service-discovery");
    }
}
