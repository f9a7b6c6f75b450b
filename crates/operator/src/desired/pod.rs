//! DynamoComponentDeployment → the PodTemplateSpec of its workload.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvFromSource, EnvVar, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecretEnvSource, SecurityContext,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;

use dynamo_api::labels::{graph_annotation, label, operator_annotation};
use dynamo_api::v1alpha1::{
    BackendFramework, ComponentType, DynamoComponentDeployment, DynamoComponentDeploymentSharedSpec,
};

use super::backend::component_backend;
use super::config::{DiscoveryBackend, OperatorConfig};
use super::defaults::{PodIdentity, component_defaults, env, injected_env, operator_env};
use super::merge::{append_missing, merge_container, merge_env, merge_over, merge_pod_spec};
use super::naming::{MAIN_CONTAINER, base_model_hash, discovery_service_account, dynamo_namespace};
use super::resources::container_resources;
use super::volumes::component_volumes;
use super::{BuildError, namespace_of};

/// Grace period of component pods unless `extraPodSpec` sets one.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 60;
/// Pod `fsGroup` unless the user supplies any pod securityContext.
pub const DEFAULT_FS_GROUP: i64 = 1000;

/// One service of a graph, as every pathway builds its pods from it: the component pathway
/// (one Deployment per DynamoComponentDeployment) and graph-level pathways alike.
#[derive(Clone, Copy, Debug)]
pub struct ServiceInput<'a> {
    /// Kubernetes namespace of the graph.
    pub namespace: &'a str,
    pub graph_name: &'a str,
    /// The service's key in the graph's `services`.
    pub service_name: &'a str,
    /// Name of the workload and value of the `nvidia.com/selector` pod label.
    pub component_name: &'a str,
    /// The Dynamo namespace the graph builder decided for the service.
    pub dynamo_namespace: &'a str,
    /// The graph's `backendFramework`; a worker's command line, when it names one, wins.
    pub backend: Option<BackendFramework>,
    pub spec: &'a DynamoComponentDeploymentSharedSpec,
}

/// What a DynamoComponentDeployment carries for [`ServiceInput`], owned.
pub struct ComponentService<'a> {
    namespace: String,
    graph_name: String,
    dynamo_namespace: String,
    dcd: &'a DynamoComponentDeployment,
}

impl<'a> ComponentService<'a> {
    /// The service of `dcd`: what the graph builder wrote into it (graph label, service name,
    /// Dynamo namespace); a component made by hand, without a graph, gets the same defaults
    /// the graph builder would give it.
    pub fn of(dcd: &'a DynamoComponentDeployment) -> Result<Self, BuildError> {
        let namespace = namespace_of(dcd)?;
        let graph_name = dcd
            .labels()
            .get(label::GRAPH_DEPLOYMENT_NAME)
            .cloned()
            .unwrap_or_default();
        let spec = &dcd.spec.shared;
        let dynamo_namespace = spec
            .dynamo_namespace
            .clone()
            .filter(|n| !n.is_empty() && !graph_name.is_empty())
            .unwrap_or_else(|| {
                dynamo_namespace(
                    &namespace,
                    &graph_name,
                    spec.global_dynamo_namespace.unwrap_or(false),
                )
            });
        Ok(ComponentService {
            namespace,
            graph_name,
            dynamo_namespace,
            dcd,
        })
    }

    pub fn input(&self) -> ServiceInput<'_> {
        let spec = &self.dcd.spec.shared;
        ServiceInput {
            namespace: &self.namespace,
            graph_name: &self.graph_name,
            service_name: spec.service_name.as_deref().unwrap_or_default(),
            component_name: self.dcd.metadata.name.as_deref().unwrap_or_default(),
            dynamo_namespace: &self.dynamo_namespace,
            backend: self.dcd.spec.backend_framework,
            spec,
        }
    }
}

/// The pod template of a component (see [`component_pod_template`] for a
/// DynamoComponentDeployment).
///
/// The `main` container starts from the defaults of its `componentType`; a `main` entry of
/// `extraPodSpec.containers`, then `extraPodSpec.mainContainer`, is merged over it field by
/// field (probes keep their default handler unless the user names one; ports, mounts and env
/// merge by key; see [`super::merge`]); `livenessProbe` and `readinessProbe` from the spec
/// replace the probes wholesale, as upstream. Environment, lowest precedence first:
/// operator-level variables < component defaults and injected `DYN_*`/`POD_*` (and
/// `VLLM_CACHE_ROOT` for a vLLM worker with a compilation cache volume) < `mainContainer.env` <
/// the service's `envs` (which already hold the graph's `envs` beneath them). A worker's
/// backend is the one its command line runs (see [`super::backend`]). The pod gets the PVC and
/// shared-memory volumes, `envFromSecret`, resources, the default service account, grace
/// period, restart policy and security context; then the user's `extraPodSpec` fields are
/// merged over it (volumes and image pull secrets by name, other lists replaced) and extra
/// `containers` are appended. Generated mounts and volumes (claims, shared memory) are added
/// last, unless the user's own already use the path or name. The pod's labels and annotations
/// are those of `pod_labels` and `pod_annotations` below.
pub fn pod_template(
    service: &ServiceInput<'_>,
    config: &OperatorConfig,
) -> Result<PodTemplateSpec, BuildError> {
    let spec = service.spec;
    let graph_name = service.graph_name;
    let namespace = service.namespace;
    let dyn_namespace = service.dynamo_namespace;
    let typed = spec.component_type();
    let component_type = typed.as_ref().map(ComponentType::as_str);
    let discovery = config.effective_discovery_backend(spec.annotations.as_ref());
    let defaults = component_defaults(typed.as_ref());
    let user_pod = spec
        .extra_pod_spec
        .as_ref()
        .and_then(|e| e.pod_spec.as_deref());
    // Overrides of the main container: a `containers` entry named `main`, then `mainContainer`.
    let user_mains: Vec<&Container> = user_pod
        .iter()
        .flat_map(|pod| pod.containers.iter())
        .filter(|c| c.name == MAIN_CONTAINER)
        .chain(
            spec.extra_pod_spec
                .iter()
                .flat_map(|e| e.main_container.as_deref()),
        )
        .collect();

    let mut main = Container {
        env: None,
        resources: spec.resources.as_deref().and_then(container_resources),
        ..defaults.container.clone()
    };
    for user in &user_mains {
        main = merge_container(&main, user)?;
    }
    let backend = component_backend(
        typed.as_ref(),
        main.command.as_deref().unwrap_or_default(),
        main.args.as_deref().unwrap_or_default(),
        service.backend,
    )?;
    let volumes = component_volumes(spec, backend)?;
    if main.command.is_none() && main.args.as_ref().is_some_and(|a| !a.is_empty()) {
        // Upstream's default command: args written for it are shell command lines.
        main.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    }
    // The service-level probes replace wholesale, as upstream (only `mainContainer` probes
    // merge field by field).
    if let Some(probe) = &spec.liveness_probe {
        main.liveness_probe = Some((**probe).clone());
    }
    if let Some(probe) = &spec.readiness_probe {
        main.readiness_probe = Some((**probe).clone());
    }

    let identity = injected_env(&PodIdentity {
        dynamo_namespace: dyn_namespace,
        component_type,
        graph_name,
        graph_namespace: namespace,
        discovery_backend: discovery,
    });
    // vLLM keeps its compilation cache under VLLM_CACHE_ROOT: point it at the cache volume.
    let compilation_cache = volumes
        .compilation_cache
        .as_deref()
        .filter(|_| backend == Some(BackendFramework::Vllm))
        .map(|path| env("VLLM_CACHE_ROOT", path));
    let component_env: Vec<EnvVar> = defaults
        .container
        .env
        .iter()
        .flatten()
        .chain(&identity)
        .chain(&compilation_cache)
        .cloned()
        .collect();
    let operator = operator_env(config);
    let mut levels: Vec<&[EnvVar]> = vec![&operator, &component_env];
    levels.extend(
        user_mains
            .iter()
            .map(|c| c.env.as_deref().unwrap_or_default()),
    );
    levels.push(spec.envs.as_deref().unwrap_or_default());
    main.env = Some(merge_env(levels)).filter(|env| !env.is_empty());

    if let Some(secret) = spec.env_from_secret.as_deref().filter(|s| !s.is_empty()) {
        let source = EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        append_missing(main.env_from.get_or_insert_default(), [source], |s| {
            s.secret_ref.as_ref().map(|r| r.name.clone())
        });
    }
    if !volumes.mounts.is_empty() {
        append_missing(
            main.volume_mounts.get_or_insert_default(),
            volumes.mounts,
            |m| m.mount_path.clone(),
        );
    }

    let user_security_context = user_pod.is_some_and(|p| p.security_context.is_some());
    let base = PodSpec {
        containers: vec![main],
        termination_grace_period_seconds: Some(TERMINATION_GRACE_PERIOD_SECONDS),
        restart_policy: Some("Always".to_owned()),
        service_account_name: defaults.service_account_name.clone().or_else(|| {
            (discovery == DiscoveryBackend::Kubernetes)
                .then(|| discovery_service_account(graph_name))
        }),
        security_context: pod_security_context(!user_security_context, config),
        ..Default::default()
    };
    let mut pod = match user_pod {
        Some(user) => merge_pod_spec(&base, user)?,
        None => base,
    };
    let sidecars = user_pod
        .iter()
        .flat_map(|p| p.containers.iter())
        .filter(|c| c.name != MAIN_CONTAINER)
        .cloned();
    append_missing(&mut pod.containers, sidecars, |c| c.name.clone());
    if !volumes.volumes.is_empty() {
        append_missing(pod.volumes.get_or_insert_default(), volumes.volumes, |v| {
            v.name.clone()
        });
    }
    if config.restricted_security_context {
        for container in &mut pod.containers {
            container.security_context = Some(merge_over(
                &restricted_container_security_context(),
                &container.security_context,
                "securityContext",
            )?);
        }
    }

    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(service, discovery)),
            annotations: Some(pod_annotations(spec)).filter(|a| !a.is_empty()),
            ..Default::default()
        }),
        spec: Some(pod),
    })
}

/// The service's `labels` (which hold the graph labels), then the operator's labels over them,
/// then `extraPodMetadata.labels` over everything, except `nvidia.com/selector`, which the
/// Deployment selects on and so is always the component name. Under Kubernetes discovery the
/// pods carry the discovery labels too (newer runtimes watch pods by them).
fn pod_labels(service: &ServiceInput<'_>, discovery: DiscoveryBackend) -> BTreeMap<String, String> {
    let spec = service.spec;
    let mut labels = spec.labels.clone().unwrap_or_default();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            labels.insert(key.to_owned(), value.to_owned());
        }
    };
    put(label::COMPONENT, Some(service.service_name));
    put(label::DYNAMO_NAMESPACE, Some(service.dynamo_namespace));
    put(label::GRAPH_DEPLOYMENT_NAME, Some(service.graph_name));
    put(label::COMPONENT_TYPE, spec.component_type.as_deref());
    put(
        label::SUB_COMPONENT_TYPE,
        spec.sub_component_type.as_deref(),
    );
    let metrics_disabled = spec
        .annotations
        .as_ref()
        .and_then(|a| a.get(graph_annotation::ENABLE_METRICS))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    if !metrics_disabled {
        put(label::METRICS_ENABLED, Some("true"));
    }
    if let Some(model) = &spec.model_ref {
        put(label::BASE_MODEL_HASH, Some(&base_model_hash(&model.name)));
    }
    if discovery == DiscoveryBackend::Kubernetes {
        put(label::DISCOVERY_BACKEND, Some(discovery.as_str()));
        put(label::DISCOVERY_ENABLED, Some("true"));
    }
    if let Some(extra) = &spec.extra_pod_metadata {
        labels.extend(extra.labels.clone().unwrap_or_default());
    }
    labels.insert(
        label::SELECTOR.to_owned(),
        service.component_name.to_owned(),
    );
    labels
}

/// `extraPodMetadata.annotations`, and the `nvidia.com/restartAt` of the service's
/// `annotations`, which rolls the pods. The rest of the service's `annotations` go on the
/// Deployment and Service, not on the pods, as upstream's component pathway has it.
fn pod_annotations(spec: &DynamoComponentDeploymentSharedSpec) -> BTreeMap<String, String> {
    let mut annotations = spec
        .extra_pod_metadata
        .as_ref()
        .and_then(|extra| extra.annotations.clone())
        .unwrap_or_default();
    if let Some(restart_at) = spec
        .annotations
        .as_ref()
        .and_then(|own| own.get(operator_annotation::RESTART_AT))
    {
        annotations.insert(
            operator_annotation::RESTART_AT.to_owned(),
            restart_at.clone(),
        );
    }
    annotations
}

fn pod_security_context(fs_group: bool, config: &OperatorConfig) -> Option<PodSecurityContext> {
    let restricted = config.restricted_security_context;
    (fs_group || restricted).then(|| PodSecurityContext {
        fs_group: fs_group.then_some(DEFAULT_FS_GROUP),
        run_as_non_root: restricted.then_some(true),
        seccomp_profile: restricted.then(|| SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The container part of the `restricted` Pod Security Standard (the pod part, non-root and
/// the RuntimeDefault seccomp profile, is on the pod security context).
fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod template of a DynamoComponentDeployment's workload.
pub fn component_pod_template(
    dcd: &DynamoComponentDeployment,
    config: &OperatorConfig,
) -> Result<PodTemplateSpec, BuildError> {
    pod_template(&ComponentService::of(dcd)?.input(), config)
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
