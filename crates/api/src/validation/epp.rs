//! Constraints of the endpoint picker (`componentType: epp`).

use super::{Outcome, Rule};
use crate::v1alpha1::DynamoComponentDeploymentSharedSpec;

/// Constraints of the endpoint picker. The InferencePool API check needs the cluster and is
/// left to the caller.
pub(crate) fn validate_epp(
    spec: &DynamoComponentDeploymentSharedSpec,
    path: &str,
    out: &mut Outcome,
) {
    if spec.is_multinode() {
        out.error(
            format!("{path}.multinode"),
            Rule::EppMultinode,
            "EPP component cannot be multinode (multinode field must be nil or nodeCount must be 1)",
        );
    }
    if let Some(replicas) = spec.replicas.filter(|r| *r != 1) {
        out.error(
            format!("{path}.replicas"),
            Rule::EppReplicas,
            format!("EPP component must have exactly 1 replica (found {replicas} replicas)"),
        );
    }
    let Some(config) = &spec.epp_config else {
        out.error(
            format!("{path}.eppConfig"),
            Rule::EppConfigRequired,
            "is required for EPP components",
        );
        return;
    };
    match (&config.config_map_ref, &config.config) {
        (None, None) => out.error(
            format!("{path}.eppConfig"),
            Rule::EppConfigRequired,
            "either configMapRef or config must be specified (no default configuration provided)",
        ),
        (Some(_), Some(_)) => out.error(
            format!("{path}.eppConfig"),
            Rule::EppConfigAmbiguous,
            "configMapRef and config are mutually exclusive, only one can be specified",
        ),
        (Some(reference), None) if reference.name.is_empty() => out.error(
            format!("{path}.eppConfig.configMapRef.name"),
            Rule::EppConfigMapNameRequired,
            "is required",
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{component, single};
    use crate::validation::validate_component_create;

    fn dcd(body: &str) -> Outcome {
        validate_component_create(&component(body))
    }

    #[test]
    fn epp_constraints() {
        let epp = |extra: &str| dcd(&format!("  componentType: epp\n{extra}"));
        let inline = "  eppConfig:\n    config:\n      plugins: []\n";
        let by_ref = "  eppConfig:\n    configMapRef:\n      name: epp\n      key: config.yaml\n";
        assert!(epp(inline).is_allowed(), "{}", epp(inline));
        assert!(epp(by_ref).is_allowed(), "{}", epp(by_ref));
        assert!(epp(&format!("{inline}  replicas: 1\n")).is_allowed());

        let cases: [(String, &str, Rule); 6] = [
            (String::new(), "spec.eppConfig", Rule::EppConfigRequired),
            (
                "  eppConfig: {}\n".into(),
                "spec.eppConfig",
                Rule::EppConfigRequired,
            ),
            (
                "  eppConfig:\n    config: {}\n    configMapRef:\n      name: epp\n      key: k\n"
                    .into(),
                "spec.eppConfig",
                Rule::EppConfigAmbiguous,
            ),
            (
                "  eppConfig:\n    configMapRef:\n      name: \"\"\n      key: k\n".into(),
                "spec.eppConfig.configMapRef.name",
                Rule::EppConfigMapNameRequired,
            ),
            (
                format!("{inline}  replicas: 2\n"),
                "spec.replicas",
                Rule::EppReplicas,
            ),
            (
                format!("{inline}  multinode:\n    nodeCount: 2\n"),
                "spec.multinode",
                Rule::EppMultinode,
            ),
        ];
        for (extra, path, rule) in cases {
            single(&epp(&extra), path, rule);
        }
        // Not an EPP: none of this applies.
        assert!(dcd("  componentType: worker\n  replicas: 3\n").is_allowed());
    }
}
