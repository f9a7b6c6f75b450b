//! What an update of a DynamoGraphDeployment may not change.

use super::graph::{Services, services, validate_graph_create};
use super::{Outcome, Rule, UpdateContext, check_backend_framework, name_list};
use crate::v1alpha1::DynamoGraphDeployment;

/// `system:serviceaccount:<namespace>:planner-serviceaccount`: the planner scales graphs in its
/// own namespace, so it may change replicas owned by a scaling adapter there.
pub fn planner_service_account(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:planner-serviceaccount")
}

/// UPDATE of a DynamoGraphDeployment: the create rules on `new`, then what may not change.
/// An object being deleted is always allowed, so its finalizers can be removed.
pub fn validate_graph_update(
    old: &DynamoGraphDeployment,
    new: &DynamoGraphDeployment,
    context: &UpdateContext<'_>,
) -> Outcome {
    if new.metadata.deletion_timestamp.is_some() {
        return Outcome::default();
    }
    let mut out = validate_graph_create(new);
    check_backend_framework(
        &mut out,
        old.spec.backend_framework,
        new.spec.backend_framework,
    );
    let (old_services, new_services) = (services(old), services(new));
    check_service_set(old_services, new_services, &mut out);
    let may_scale = may_set_adapter_replicas(new, context);
    for (name, new_spec) in new_services {
        let Some(old_spec) = old_services.get(name) else {
            continue;
        };
        if old_spec.is_multinode() != new_spec.is_multinode() {
            out.error(
                format!("spec.services.{name}.multinode"),
                Rule::NodeTopologyChanged,
                format!(
                    "cannot change node topology (between single-node and multi-node) after creation (nodeCount was {}, now {})",
                    old_spec.node_count(),
                    new_spec.node_count()
                ),
            );
        }
        let adapter = new_spec.scaling_adapter.as_ref().and_then(|a| a.enabled) == Some(true);
        // Unset replicas mean 1, so writing the default explicitly is not a change.
        let (was, now) = (
            old_spec.replicas.unwrap_or(1),
            new_spec.replicas.unwrap_or(1),
        );
        if adapter && was != now && !may_scale {
            out.error(
                format!("spec.services.{name}.replicas"),
                Rule::ReplicasOwnedByAdapter,
                format!(
                    "cannot be modified directly when scaling adapter is enabled (was {was}, now {now}); scale or update the related DynamoGraphDeploymentScalingAdapter {}-{} instead",
                    new.metadata.name.as_deref().unwrap_or_default(),
                    name.to_lowercase()
                ),
            );
        }
    }
    out
}

/// Services may be edited but not added or removed: they name every child object.
fn check_service_set(old: &Services, new: &Services, out: &mut Outcome) {
    let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
    let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    let mut changes = Vec::new();
    if !added.is_empty() {
        changes.push(format!("services added: {}", name_list(&added)));
    }
    if !removed.is_empty() {
        changes.push(format!("services removed: {}", name_list(&removed)));
    }
    if !changes.is_empty() {
        out.error(
            "spec.services",
            Rule::ServicesChanged,
            format!(
                "service topology is immutable and cannot be modified after creation: {}",
                changes.join(", ")
            ),
        );
    }
}

/// The operator (via the adapter) and the planner own adapter-managed replicas; nobody else.
/// An unknown requester (empty username) is never privileged.
fn may_set_adapter_replicas(graph: &DynamoGraphDeployment, context: &UpdateContext<'_>) -> bool {
    let user = context.username;
    !user.is_empty()
        && (context
            .privileged_service_accounts
            .iter()
            .any(|sa| sa == user)
            || graph
                .metadata
                .namespace
                .as_deref()
                .is_some_and(|ns| planner_service_account(ns) == user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{failures, graph, single};

    const OPERATOR: &str =
        "system:serviceaccount:dynamo-system:dynamo-platform-dynamo-operator-controller-manager";

    fn alice() -> UpdateContext<'static> {
        UpdateContext {
            username: "alice",
            privileged_service_accounts: &[],
        }
    }

    #[test]
    fn backend_is_immutable() {
        let old = graph("  backendFramework: vllm\n  services:\n    W: {}\n");
        assert!(validate_graph_update(&old, &old, &alice()).is_allowed());
        let new = graph("  backendFramework: sglang\n  services:\n    W: {}\n");
        let outcome = validate_graph_update(&old, &new, &alice());
        let message = single(&outcome, "spec.backendFramework", Rule::ImmutableField);
        assert_eq!(
            message,
            "is immutable and cannot be changed after creation (was \"vllm\", now \"sglang\")"
        );
        assert_eq!(
            outcome.warnings,
            ["Changing spec.backendFramework may cause unexpected behavior"]
        );
    }

    #[test]
    fn services_cannot_be_added_or_removed() {
        let old = graph("  services:\n    A: {}\n    B: {}\n");
        let cases = [
            (
                "  services:\n    A: {}\n    B: {}\n    D: {}\n    C: {}\n",
                Some("services added: [C, D]"),
            ),
            ("  services:\n    B: {}\n", Some("services removed: [A]")),
            (
                "  services:\n    A: {}\n    Z: {}\n",
                Some("services added: [Z], services removed: [B]"),
            ),
            ("  services:\n    B:\n      replicas: 3\n    A: {}\n", None),
        ];
        for (body, expected) in cases {
            let outcome = validate_graph_update(&old, &graph(body), &alice());
            match expected {
                None => assert!(outcome.is_allowed(), "{outcome}"),
                Some(tail) => {
                    let message = single(&outcome, "spec.services", Rule::ServicesChanged);
                    assert_eq!(
                        message,
                        format!(
                            "service topology is immutable and cannot be modified after creation: {tail}"
                        )
                    );
                }
            }
        }
    }

    #[test]
    fn a_service_cannot_switch_between_single_and_multi_node() {
        let with = |multinode: &str| {
            graph(&format!(
                "  services:\n    W:\n      replicas: 1\n{multinode}"
            ))
        };
        let single_node = with("");
        let two = with("      multinode:\n        nodeCount: 2\n");
        let four = with("      multinode:\n        nodeCount: 4\n");
        let defaulted = with("      multinode: {}\n");
        assert!(validate_graph_update(&two, &four, &alice()).is_allowed());
        assert!(validate_graph_update(&defaulted, &two, &alice()).is_allowed());
        for (old, new) in [
            (&single_node, &two),
            (&four, &single_node),
            (&single_node, &defaulted),
        ] {
            single(
                &validate_graph_update(old, new, &alice()),
                "spec.services.W.multinode",
                Rule::NodeTopologyChanged,
            );
        }
        let message = single(
            &validate_graph_update(&single_node, &four, &alice()),
            "spec.services.W.multinode",
            Rule::NodeTopologyChanged,
        );
        assert!(message.ends_with("(nodeCount was 1, now 4)"), "{message}");
    }

    #[test]
    fn adapter_owned_replicas_change_only_by_the_operator_or_the_planner() {
        let with = |replicas: &str| {
            graph(&format!(
                "  services:\n    Worker:\n      scalingAdapter:\n        enabled: true\n{replicas}"
            ))
        };
        let (unset, one, three) = (
            with(""),
            with("      replicas: 1\n"),
            with("      replicas: 3\n"),
        );
        let privileged = [OPERATOR.to_owned()];
        let context = |username| UpdateContext {
            username,
            privileged_service_accounts: &privileged,
        };
        let path = "spec.services.Worker.replicas";

        let message = single(
            &validate_graph_update(&one, &three, &alice()),
            path,
            Rule::ReplicasOwnedByAdapter,
        );
        assert_eq!(
            message,
            "cannot be modified directly when scaling adapter is enabled (was 1, now 3); scale or update the related DynamoGraphDeploymentScalingAdapter g-worker instead"
        );
        single(
            &validate_graph_update(&three, &unset, &context("")),
            path,
            Rule::ReplicasOwnedByAdapter,
        );
        // Another namespace's planner, or a look-alike name, is not privileged.
        single(
            &validate_graph_update(
                &one,
                &three,
                &context("system:serviceaccount:other:planner-serviceaccount"),
            ),
            path,
            Rule::ReplicasOwnedByAdapter,
        );

        assert!(validate_graph_update(&one, &three, &context(OPERATOR)).is_allowed());
        let planner = planner_service_account("team-a");
        assert!(validate_graph_update(&one, &three, &context(&planner)).is_allowed());
        // Unset means 1: spelling the default out is not a change.
        assert!(validate_graph_update(&unset, &one, &alice()).is_allowed());
        // Without the adapter anyone scales.
        let plain = |n: i32| graph(&format!("  services:\n    Worker:\n      replicas: {n}\n"));
        assert!(validate_graph_update(&plain(1), &plain(5), &alice()).is_allowed());
    }

    #[test]
    fn every_error_of_an_update_is_returned_together() {
        let old = graph(
            "  backendFramework: vllm\n  services:\n    A:\n      scalingAdapter:\n        enabled: true\n    B: {}\n",
        );
        let new = graph(
            "  backendFramework: trtllm\n  services:\n    A:\n      replicas: 2\n      scalingAdapter:\n        enabled: true\n      multinode:\n        nodeCount: 2\n    C:\n      replicas: -1\n",
        );
        let outcome = validate_graph_update(&old, &new, &alice());
        assert_eq!(
            failures(&outcome),
            vec![
                (
                    "spec.services.C.replicas".to_owned(),
                    Rule::NegativeReplicas
                ),
                ("spec.backendFramework".to_owned(), Rule::ImmutableField),
                ("spec.services".to_owned(), Rule::ServicesChanged),
                (
                    "spec.services.A.multinode".to_owned(),
                    Rule::NodeTopologyChanged
                ),
                (
                    "spec.services.A.replicas".to_owned(),
                    Rule::ReplicasOwnedByAdapter
                ),
            ]
        );
        assert_eq!(outcome.denial_reason(), Some("negative_replicas"));
        let message = outcome.message();
        assert!(message.starts_with("spec.services.C.replicas: must be non-negative (got -1); spec.backendFramework: is immutable"), "{message}");
    }

    #[test]
    fn an_object_being_deleted_may_always_be_updated() {
        let old = graph("  backendFramework: vllm\n  services:\n    A: {}\n");
        let mut new = graph("  backendFramework: sglang\n");
        new.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            validate_graph_update(&old, &new, &alice()),
            Outcome::default()
        );
    }
}
