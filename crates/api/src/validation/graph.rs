//! Rules of a new DynamoGraphDeployment: its service set, PVCs, restart and services.

use std::collections::BTreeMap;

use super::component::{ServiceScope, validate_service};
use super::restart::validate_restart;
use super::{Outcome, Rule, quantity_is_zero};
use crate::v1alpha1::{
    DynamoComponentDeploymentSharedSpec, DynamoGraphDeployment, MAX_SERVICES, Pvc,
};

pub(crate) type Services = BTreeMap<String, DynamoComponentDeploymentSharedSpec>;

/// The services of a graph; none when `services` is absent.
pub(crate) fn services(graph: &DynamoGraphDeployment) -> &Services {
    static EMPTY: Services = BTreeMap::new();
    graph.spec.services.as_ref().unwrap_or(&EMPTY)
}

/// CREATE of a DynamoGraphDeployment (and the stateless half of UPDATE).
pub fn validate_graph_create(graph: &DynamoGraphDeployment) -> Outcome {
    let mut out = Outcome::default();
    let services = services(graph);
    if services.is_empty() {
        out.error(
            "spec.services",
            Rule::NoServices,
            "must have at least one service",
        );
    } else if services.len() > MAX_SERVICES {
        out.error(
            "spec.services",
            Rule::TooManyServices,
            format!(
                "must have at most {MAX_SERVICES} services (found {})",
                services.len()
            ),
        );
    }
    for (i, pvc) in graph.spec.pvcs.iter().flatten().enumerate() {
        validate_pvc(i, pvc, &mut out);
    }
    if let Some(restart) = &graph.spec.restart {
        validate_restart(restart, services, &mut out);
    }
    for (name, spec) in services {
        let path = format!("spec.services.{name}");
        let scope = ServiceScope {
            path: &path,
            backend: graph.spec.backend_framework,
            namespace: graph.metadata.namespace.as_deref(),
            graph: graph.metadata.name.as_deref().unwrap_or_default(),
        };
        validate_service(spec, &scope, &mut out);
    }
    out
}

fn validate_pvc(index: usize, pvc: &Pvc, out: &mut Outcome) {
    let path = |field: &str| format!("spec.pvcs[{index}].{field}");
    if pvc.name.is_empty() {
        out.error(path("name"), Rule::PvcNameRequired, "is required");
    }
    if pvc.create != Some(true) {
        return;
    }
    let missing = [
        (
            "storageClass",
            pvc.storage_class.as_deref().unwrap_or_default().is_empty(),
        ),
        ("size", quantity_is_zero(pvc.size.as_ref())),
        (
            "volumeAccessMode",
            pvc.volume_access_mode
                .as_deref()
                .unwrap_or_default()
                .is_empty(),
        ),
    ];
    for (field, absent) in missing {
        if absent {
            out.error(
                path(field),
                Rule::PvcIncomplete,
                "is required when create is true",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{failures, graph, single};

    #[test]
    fn a_graph_with_services_is_allowed() {
        let g = graph(
            "  backendFramework: vllm\n  services:\n    Frontend:\n      componentType: frontend\n    Worker:\n      replicas: 2\n",
        );
        assert_eq!(validate_graph_create(&g), Outcome::default());
    }

    #[test]
    fn service_count_is_bounded() {
        let message = single(
            &validate_graph_create(&graph("  backendFramework: vllm\n")),
            "spec.services",
            Rule::NoServices,
        );
        assert_eq!(message, "must have at least one service");
        single(
            &validate_graph_create(&graph("  services: {}\n")),
            "spec.services",
            Rule::NoServices,
        );
        let many = |n: usize| {
            let body: String = (0..n).map(|i| format!("    s{i}: {{}}\n")).collect();
            validate_graph_create(&graph(&format!("  services:\n{body}")))
        };
        assert!(many(MAX_SERVICES).is_allowed());
        let message = single(
            &many(MAX_SERVICES + 1),
            "spec.services",
            Rule::TooManyServices,
        );
        assert_eq!(message, "must have at most 25 services (found 26)");
    }

    #[test]
    fn pvcs_need_a_name_and_everything_to_create_them() {
        let with = |pvc: &str| {
            validate_graph_create(&graph(&format!(
                "  services:\n    W: {{}}\n  pvcs:\n    - {pvc}\n"
            )))
        };
        assert!(with("name: models").is_allowed());
        assert!(with("{name: m, create: false}").is_allowed());
        assert!(
            with("{name: m, create: true, size: 100Gi, storageClass: fast, volumeAccessMode: ReadWriteMany}")
                .is_allowed()
        );
        single(
            &with("name: \"\""),
            "spec.pvcs[0].name",
            Rule::PvcNameRequired,
        );
        let outcome = with("{name: \"\", create: true, size: \"0\"}");
        assert_eq!(
            failures(&outcome),
            vec![
                ("spec.pvcs[0].name".to_owned(), Rule::PvcNameRequired),
                ("spec.pvcs[0].storageClass".to_owned(), Rule::PvcIncomplete),
                ("spec.pvcs[0].size".to_owned(), Rule::PvcIncomplete),
                (
                    "spec.pvcs[0].volumeAccessMode".to_owned(),
                    Rule::PvcIncomplete
                ),
            ]
        );
        assert_eq!(outcome.errors[1].message, "is required when create is true");
    }

    #[test]
    fn service_rules_apply_under_the_service_path_with_the_graph_backend() {
        let g = graph(
            "  backendFramework: sglang\n  services:\n    Frontend:\n      replicas: -1\n      dynamoNamespace: x\n    Worker:\n      volumeMounts:\n        - name: cache\n          useAsCompilationCache: true\n",
        );
        let outcome = validate_graph_create(&g);
        assert_eq!(
            failures(&outcome),
            vec![
                (
                    "spec.services.Frontend.replicas".to_owned(),
                    Rule::NegativeReplicas
                ),
                (
                    "spec.services.Worker.volumeMounts[0].mountPoint".to_owned(),
                    Rule::MountPointRequired
                ),
            ]
        );
        assert_eq!(
            outcome.warnings,
            [
                "spec.services.Frontend.dynamoNamespace is deprecated and ignored. Value 'x' will be replaced with 'team-a-g'. Remove this field from your configuration"
            ]
        );
    }
}
