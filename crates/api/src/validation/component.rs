//! Rules of the shared service spec (a DGD's `services.<name>`, a DCD's `spec`) and of the DCD.

use kube::ResourceExt;

use super::{Outcome, Rule, UpdateContext, check_backend_framework, quantity_is_zero};
use crate::labels::label;
use crate::v1alpha1::{
    BackendFramework, ComponentType, DynamoComponentDeployment, DynamoComponentDeploymentSharedSpec,
};

/// Dynamo namespace of services with `globalDynamoNamespace: true`.
const GLOBAL_DYNAMO_NAMESPACE: &str = "dynamo";
/// The only backend with a default compilation-cache mount.
const VLLM_COMPILATION_CACHE_PATH: &str = "/root/.cache/vllm";

/// Where a service spec sits and what it inherits from its owner.
pub(crate) struct ServiceScope<'a> {
    /// Field path of the spec: `spec` for a DCD, `spec.services.<name>` for a DGD.
    pub path: &'a str,
    pub backend: Option<BackendFramework>,
    /// Kubernetes namespace of the object (absent when checking a manifest offline).
    pub namespace: Option<&'a str>,
    /// The graph the service belongs to; names the computed Dynamo namespace.
    pub graph: &'a str,
}

impl ServiceScope<'_> {
    /// The Dynamo namespace the operator will use instead of a user-set `dynamoNamespace`.
    fn dynamo_namespace(&self, spec: &DynamoComponentDeploymentSharedSpec) -> String {
        if spec.global_dynamo_namespace == Some(true) {
            GLOBAL_DYNAMO_NAMESPACE.to_owned()
        } else {
            format!("{}-{}", self.namespace.unwrap_or("<namespace>"), self.graph)
        }
    }
}

/// The stateless rules every service spec must pass.
pub(crate) fn validate_service(
    spec: &DynamoComponentDeploymentSharedSpec,
    scope: &ServiceScope<'_>,
    out: &mut Outcome,
) {
    let path = scope.path;
    if let Some(value) = spec.dynamo_namespace.as_deref().filter(|v| !v.is_empty()) {
        out.warn(format!(
            "{path}.dynamoNamespace is deprecated and ignored. Value '{value}' will be replaced with '{}'. Remove this field from your configuration",
            scope.dynamo_namespace(spec)
        ));
    }
    if spec.autoscaling.is_some() {
        out.warn(format!(
            "{path}.autoscaling is deprecated and ignored. Use DynamoGraphDeploymentScalingAdapter with HPA, KEDA, or Planner for autoscaling instead"
        ));
    }
    if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
        out.error(
            format!("{path}.replicas"),
            Rule::NegativeReplicas,
            format!("must be non-negative (got {replicas})"),
        );
    }
    if let Some(ingress) = spec.ingress.as_ref().filter(|i| i.enabled == Some(true))
        && ingress.host.as_deref().unwrap_or_default().is_empty()
    {
        out.error(
            format!("{path}.ingress.host"),
            Rule::IngressHostRequired,
            "is required when ingress is enabled",
        );
    }
    validate_volume_mounts(spec, scope, out);
    if let Some(shm) = &spec.shared_memory
        && shm.disabled != Some(true)
        && quantity_is_zero(shm.size.as_ref())
    {
        out.error(
            format!("{path}.sharedMemory.size"),
            Rule::SharedMemorySizeRequired,
            "is required when disabled is false",
        );
    }
    if spec.component_type() == Some(ComponentType::Epp) {
        super::epp::validate_epp(spec, path, out);
    }
}

fn validate_volume_mounts(
    spec: &DynamoComponentDeploymentSharedSpec,
    scope: &ServiceScope<'_>,
    out: &mut Outcome,
) {
    for (i, mount) in spec.volume_mounts.iter().flatten().enumerate() {
        if !mount.mount_point.as_deref().unwrap_or_default().is_empty() {
            continue;
        }
        let path = format!("{}.volumeMounts[{i}].mountPoint", scope.path);
        if mount.use_as_compilation_cache != Some(true) {
            out.error(
                path,
                Rule::MountPointRequired,
                "is required when useAsCompilationCache is false",
            );
            continue;
        }
        // Without a known backend the operator decides later; only a known backend without a
        // default cache path can be rejected here.
        if let Some(backend @ (BackendFramework::Sglang | BackendFramework::Trtllm)) = scope.backend
        {
            out.error(
                path,
                Rule::MountPointRequired,
                format!(
                    "is required for a compilation cache with backend {backend} (only vllm has a default, {VLLM_COMPILATION_CACHE_PATH})"
                ),
            );
        }
    }
}

fn component_scope(component: &DynamoComponentDeployment) -> ServiceScope<'_> {
    ServiceScope {
        path: "spec",
        backend: component.spec.backend_framework,
        namespace: component.metadata.namespace.as_deref(),
        // A DCD made by the graph controller is labelled with its graph; a standalone DCD is
        // its own graph.
        graph: component
            .labels()
            .get(label::GRAPH_DEPLOYMENT_NAME)
            .map_or_else(
                || component.metadata.name.as_deref().unwrap_or_default(),
                String::as_str,
            ),
    }
}

/// CREATE of a DynamoComponentDeployment: the shared service rules on `spec`.
pub fn validate_component_create(component: &DynamoComponentDeployment) -> Outcome {
    let mut out = Outcome::default();
    validate_service(
        &component.spec.shared,
        &component_scope(component),
        &mut out,
    );
    out
}

/// UPDATE of a DynamoComponentDeployment: the create rules on `new`, and `backendFramework`
/// stays as it was. An object being deleted is always allowed, so its finalizers can go.
pub fn validate_component_update(
    old: &DynamoComponentDeployment,
    new: &DynamoComponentDeployment,
    _context: &UpdateContext<'_>,
) -> Outcome {
    if new.metadata.deletion_timestamp.is_some() {
        return Outcome::default();
    }
    let mut out = validate_component_create(new);
    check_backend_framework(
        &mut out,
        old.spec.backend_framework,
        new.spec.backend_framework,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{component, failures, single};

    fn dcd(body: &str) -> Outcome {
        validate_component_create(&component(body))
    }

    #[test]
    fn a_plain_component_is_allowed() {
        let outcome = dcd("  backendFramework: vllm\n  componentType: worker\n  replicas: 0\n");
        assert_eq!(outcome, Outcome::default());
    }

    #[test]
    fn replicas_must_be_non_negative() {
        let message = single(
            &dcd("  replicas: -1\n"),
            "spec.replicas",
            Rule::NegativeReplicas,
        );
        assert_eq!(message, "must be non-negative (got -1)");
    }

    #[test]
    fn enabled_ingress_needs_a_host() {
        let cases = [
            ("  ingress:\n    enabled: true\n", true),
            ("  ingress:\n    enabled: true\n    host: \"\"\n", true),
            (
                "  ingress:\n    enabled: true\n    host: llm.example.com\n",
                false,
            ),
            ("  ingress:\n    enabled: false\n", false),
            ("  ingress:\n    host: \"\"\n", false),
        ];
        for (body, fails) in cases {
            let expected = if fails {
                vec![("spec.ingress.host".to_owned(), Rule::IngressHostRequired)]
            } else {
                vec![]
            };
            assert_eq!(failures(&dcd(body)), expected, "{body}");
        }
    }

    #[test]
    fn volume_mounts_need_a_mount_point_unless_a_defaulted_compilation_cache() {
        let mounts = |backend: &str, entry: &str| {
            dcd(&format!(
                "  backendFramework: {backend}\n  volumeMounts:\n    - name: pvc\n{entry}"
            ))
        };
        let path = "spec.volumeMounts[0].mountPoint";
        let cases = [
            ("vllm", "      mountPoint: /data\n", None),
            (
                "vllm",
                "",
                Some("is required when useAsCompilationCache is false"),
            ),
            (
                "vllm",
                "      mountPoint: \"\"\n",
                Some("is required when useAsCompilationCache is false"),
            ),
            (
                "vllm",
                "      useAsCompilationCache: false\n",
                Some("is required when useAsCompilationCache is false"),
            ),
            ("vllm", "      useAsCompilationCache: true\n", None),
            (
                "sglang",
                "      useAsCompilationCache: true\n",
                Some(
                    "is required for a compilation cache with backend sglang (only vllm has a default, /root/.cache/vllm)",
                ),
            ),
            (
                "trtllm",
                "      useAsCompilationCache: true\n",
                Some(
                    "is required for a compilation cache with backend trtllm (only vllm has a default, /root/.cache/vllm)",
                ),
            ),
            (
                "trtllm",
                "      useAsCompilationCache: true\n      mountPoint: /cache\n",
                None,
            ),
        ];
        for (backend, entry, expected) in cases {
            let outcome = mounts(backend, entry);
            match expected {
                None => assert!(outcome.is_allowed(), "{backend} {entry}: {outcome}"),
                Some(message) => {
                    assert_eq!(single(&outcome, path, Rule::MountPointRequired), message);
                }
            }
        }
        // No backend: the operator decides; nothing to reject yet.
        let unknown = dcd("  volumeMounts:\n    - name: pvc\n      useAsCompilationCache: true\n");
        assert!(unknown.is_allowed(), "{unknown}");
    }

    #[test]
    fn enabled_shared_memory_needs_a_size() {
        let cases = [
            ("  sharedMemory:\n    size: 16Gi\n", false),
            ("  sharedMemory:\n    disabled: true\n", false),
            (
                "  sharedMemory:\n    disabled: false\n    size: 1Gi\n",
                false,
            ),
            ("  sharedMemory: {}\n", true),
            ("  sharedMemory:\n    disabled: false\n", true),
            ("  sharedMemory:\n    size: \"0\"\n", true),
        ];
        for (body, fails) in cases {
            let expected = if fails {
                vec![(
                    "spec.sharedMemory.size".to_owned(),
                    Rule::SharedMemorySizeRequired,
                )]
            } else {
                vec![]
            };
            assert_eq!(failures(&dcd(body)), expected, "{body}");
        }
    }

    #[test]
    fn deprecated_fields_warn_without_failing() {
        let outcome = dcd("  dynamoNamespace: old\n  autoscaling:\n    enabled: true\n");
        assert!(outcome.is_allowed());
        assert_eq!(outcome.warnings.len(), 2, "{:?}", outcome.warnings);
        assert_eq!(
            outcome.warnings[0],
            "spec.dynamoNamespace is deprecated and ignored. Value 'old' will be replaced with 'team-a-g-worker'. Remove this field from your configuration"
        );
        assert!(outcome.warnings[1].starts_with("spec.autoscaling is deprecated and ignored."));

        // The graph label names the Dynamo namespace; global services use `dynamo`.
        let mut labelled = component("  dynamoNamespace: old\n");
        labelled
            .labels_mut()
            .insert(label::GRAPH_DEPLOYMENT_NAME.into(), "g".into());
        let warning = &validate_component_create(&labelled).warnings[0];
        assert!(warning.contains("replaced with 'team-a-g'"), "{warning}");
        let global = dcd("  dynamoNamespace: old\n  globalDynamoNamespace: true\n");
        assert!(
            global.warnings[0].contains("replaced with 'dynamo'"),
            "{:?}",
            global.warnings
        );
        assert!(dcd("  dynamoNamespace: \"\"\n").warnings.is_empty());
    }

    #[test]
    fn every_failing_field_is_reported() {
        let outcome = dcd(
            "  replicas: -2\n  ingress:\n    enabled: true\n  volumeMounts:\n    - name: a\n  sharedMemory: {}\n",
        );
        assert_eq!(
            failures(&outcome),
            vec![
                ("spec.replicas".to_owned(), Rule::NegativeReplicas),
                ("spec.ingress.host".to_owned(), Rule::IngressHostRequired),
                (
                    "spec.volumeMounts[0].mountPoint".to_owned(),
                    Rule::MountPointRequired
                ),
                (
                    "spec.sharedMemory.size".to_owned(),
                    Rule::SharedMemorySizeRequired
                ),
            ]
        );
    }

    #[test]
    fn update_keeps_the_backend_and_reruns_the_create_rules() {
        let context = UpdateContext::default();
        let old = component("  backendFramework: vllm\n");
        assert!(validate_component_update(&old, &old, &context).is_allowed());

        let new = component("  backendFramework: sglang\n  replicas: -1\n");
        let outcome = validate_component_update(&old, &new, &context);
        assert_eq!(
            failures(&outcome),
            vec![
                ("spec.replicas".to_owned(), Rule::NegativeReplicas),
                ("spec.backendFramework".to_owned(), Rule::ImmutableField),
            ]
        );
        assert_eq!(
            outcome.errors[1].message,
            "is immutable and cannot be changed after creation (was \"vllm\", now \"sglang\")"
        );
        assert_eq!(
            outcome.warnings,
            ["Changing spec.backendFramework may cause unexpected behavior"]
        );

        let unset = validate_component_update(&component("  replicas: 1\n"), &old, &context);
        assert!(
            unset.errors[0]
                .message
                .ends_with("(was unset, now \"vllm\")"),
            "{unset}"
        );
    }

    #[test]
    fn an_object_being_deleted_may_always_be_updated() {
        let old = component("  backendFramework: vllm\n");
        let mut new = component("  backendFramework: sglang\n  replicas: -1\n");
        new.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            validate_component_update(&old, &new, &UpdateContext::default()),
            Outcome::default()
        );
    }
}
