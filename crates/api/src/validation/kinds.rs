//! The admission rules as one trait on the kinds, and the one table from a kind's name to its
//! type: the webhook, `dynamo-webhook validate` and the tests all dispatch through it.

use kube::Resource;
use serde::de::DeserializeOwned;

use super::{
    Outcome, UpdateContext, validate_component_create, validate_component_update,
    validate_graph_create, validate_graph_update, validate_model_create, validate_model_update,
};
use crate::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment, DynamoModel};

/// The admission rules of one kind.
pub trait Validate: Resource<DynamicType = ()> + DeserializeOwned {
    /// CREATE: the rules a new object must pass (also the stateless half of UPDATE).
    fn validate_create(&self) -> Outcome;

    /// UPDATE from `old` to `self`: the create rules, and what may not change. An object being
    /// deleted is always allowed, so its finalizers can be removed.
    fn validate_update(&self, old: &Self, context: &UpdateContext<'_>) -> Outcome;
}

impl Validate for DynamoGraphDeployment {
    fn validate_create(&self) -> Outcome {
        validate_graph_create(self)
    }

    fn validate_update(&self, old: &Self, context: &UpdateContext<'_>) -> Outcome {
        validate_graph_update(old, self, context)
    }
}

impl Validate for DynamoComponentDeployment {
    fn validate_create(&self) -> Outcome {
        validate_component_create(self)
    }

    fn validate_update(&self, old: &Self, context: &UpdateContext<'_>) -> Outcome {
        validate_component_update(old, self, context)
    }
}

impl Validate for DynamoModel {
    fn validate_create(&self) -> Outcome {
        validate_model_create(self)
    }

    fn validate_update(&self, old: &Self, context: &UpdateContext<'_>) -> Outcome {
        validate_model_update(old, self, context)
    }
}

/// Code generic over the validated kinds, run by [`with_kind`] for one of them (a closure cannot
/// be generic over a type, so this is the usual visitor).
pub trait KindVisitor {
    type Output;
    fn visit<K: Validate>(self) -> Self::Output;
}

/// Runs `visitor` for the kind named `kind` (`DynamoGraphDeployment`, ...); `None` for a kind
/// without admission rules. A new kind with rules is added here and nowhere else.
pub fn with_kind<V: KindVisitor>(kind: &str, visitor: V) -> Option<V::Output> {
    fn named<K: Validate>(kind: &str) -> bool {
        K::kind(&()) == kind
    }
    if named::<DynamoGraphDeployment>(kind) {
        Some(visitor.visit::<DynamoGraphDeployment>())
    } else if named::<DynamoComponentDeployment>(kind) {
        Some(visitor.visit::<DynamoComponentDeployment>())
    } else if named::<DynamoModel>(kind) {
        Some(visitor.visit::<DynamoModel>())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::Rule;
    use crate::validation::testing::{component, graph, model};

    /// Reports the kind name of the type it was run for.
    struct KindName;

    impl KindVisitor for KindName {
        type Output = String;
        fn visit<K: Validate>(self) -> String {
            K::kind(&()).into_owned()
        }
    }

    #[test]
    fn each_kind_name_runs_the_visitor_for_its_own_type() {
        for kind in [
            "DynamoGraphDeployment",
            "DynamoComponentDeployment",
            "DynamoModel",
        ] {
            assert_eq!(with_kind(kind, KindName).as_deref(), Some(kind));
        }
        for other in [
            "Deployment",
            "dynamographdeployment",
            "DynamoGraphDeploymentScalingAdapter",
            "DynamoWorkerMetadata",
            "",
        ] {
            assert_eq!(with_kind(other, KindName), None, "{other:?}");
        }
    }

    #[test]
    fn the_trait_runs_each_kinds_rules() {
        let context = UpdateContext::default();
        let bad_graph = graph("  services: {}\n");
        assert_eq!(
            bad_graph.validate_create().denial_reason(),
            Some(Rule::NoServices.id())
        );
        let old = graph("  backendFramework: vllm\n  services:\n    W: {}\n");
        let new = graph("  backendFramework: sglang\n  services:\n    W: {}\n");
        assert_eq!(
            new.validate_update(&old, &context).denial_reason(),
            Some(Rule::ImmutableField.id())
        );

        let bad_component = component("  replicas: -1\n");
        assert_eq!(
            bad_component.validate_create().denial_reason(),
            Some(Rule::NegativeReplicas.id())
        );

        let base = model("  modelName: m\n  baseModelName: b\n");
        let renamed = model("  modelName: m\n  baseModelName: c\n");
        assert!(base.validate_create().is_allowed());
        assert_eq!(
            renamed.validate_update(&base, &context).denial_reason(),
            Some(Rule::ImmutableField.id())
        );
    }
}
