//! Admission rules for the Dynamo custom resources, as pure functions over the typed objects.
//!
//! The webhook calls them on CREATE and UPDATE through [`Validate`]; the controllers call the
//! create rules when webhooks are off. Every failing field is reported (not only the first), so
//! one denial tells the user everything to fix.

mod component;
mod epp;
mod graph;
mod kinds;
mod model;
mod restart;
mod update;

use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub use component::{validate_component_create, validate_component_update};
pub use graph::validate_graph_create;
pub use kinds::{KindVisitor, Validate, with_kind};
pub use model::{validate_model_create, validate_model_update};
pub use update::{planner_service_account, validate_graph_update};

/// Declares [`Rule`], [`Rule::ALL`] and [`Rule::id`] from one `Variant => "id"` list.
macro_rules! rules {
    ($($variant:ident => $id:literal,)+) => {
        /// The rule a field breaks; its [`id`](Rule::id) is the denial metric's `reason` label.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($variant,)+
        }

        impl Rule {
            pub const ALL: [Rule; [$($id),+].len()] = [$(Rule::$variant),+];

            /// Stable snake_case id, used as a metric label value: never rename one.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)+
                }
            }
        }
    };
}

rules! {
    NoServices => "no_services",
    TooManyServices => "too_many_services",
    PvcNameRequired => "pvc_name_required",
    PvcIncomplete => "pvc_incomplete",
    RestartIdRequired => "restart_id_required",
    RestartOrderWithParallel => "restart_order_with_parallel",
    RestartOrderDuplicate => "restart_order_duplicate",
    RestartOrderIncomplete => "restart_order_incomplete",
    RestartOrderUnknownService => "restart_order_unknown_service",
    NegativeReplicas => "negative_replicas",
    IngressHostRequired => "ingress_host_required",
    MountPointRequired => "mount_point_required",
    SharedMemorySizeRequired => "shared_memory_size_required",
    EppMultinode => "epp_multinode",
    EppReplicas => "epp_replicas",
    EppConfigRequired => "epp_config_required",
    EppConfigAmbiguous => "epp_config_ambiguous",
    EppConfigMapNameRequired => "epp_config_map_name_required",
    ImmutableField => "immutable_field",
    ServicesChanged => "services_changed",
    NodeTopologyChanged => "node_topology_changed",
    ReplicasOwnedByAdapter => "replicas_owned_by_adapter",
    ModelNameRequired => "model_name_required",
    BaseModelNameRequired => "base_model_name_required",
    LoraSourceRequired => "lora_source_required",
    LoraSourceUriInvalid => "lora_source_uri_invalid",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One failing field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path as in parse errors, e.g. `spec.services.Frontend.replicas`.
    pub path: String,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The verdict on one object: allowed when `errors` is empty; `warnings` go back to the client
/// either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn is_allowed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The metric `reason` of a denial: the first error's rule id; `None` when allowed.
    pub fn denial_reason(&self) -> Option<&'static str> {
        self.errors.first().map(|error| error.rule.id())
    }

    /// The denial message naming every failing field, `path: message; path: message`.
    pub fn message(&self) -> String {
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn error(
        &mut self,
        path: impl Into<String>,
        rule: Rule,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            path: path.into(),
            rule,
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            f.write_str("allowed")
        } else {
            f.write_str(&self.message())
        }
    }
}

/// Who is asking for an update, for the rules that depend on the requester.
#[derive(Clone, Copy, Debug, Default)]
pub struct UpdateContext<'a> {
    /// `userInfo.username` of the AdmissionReview (empty when absent: then nobody is privileged).
    pub username: &'a str,
    /// Usernames that may change replicas owned by a scaling adapter, typically the operator's
    /// ServiceAccount `system:serviceaccount:<ns>:<release>-dynamo-operator-controller-manager`.
    /// The planner's ServiceAccount in the object's namespace is always allowed as well.
    pub privileged_service_accounts: &'a [String],
}

/// Kubernetes treats a zero quantity like an absent one for "required" sizes (upstream checks
/// `Quantity.IsZero()`), so `size: 0Gi` is as missing as no size at all.
pub(crate) fn quantity_is_zero(quantity: Option<&Quantity>) -> bool {
    let Some(Quantity(text)) = quantity else {
        return true;
    };
    let number: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
        .collect();
    // An unparsable quantity is not "missing"; the API server rejects it on its own.
    text.trim().is_empty() || number.parse::<f64>().is_ok_and(|n| n == 0.0)
}

/// Rejects a change of an immutable field; `None` is shown as `unset` (setting a field that was
/// unset is a change too, as upstream compares the plain values).
/// `spec.backendFramework` may not change once set (graphs and components alike).
pub(crate) fn check_backend_framework(
    out: &mut Outcome,
    old: Option<crate::v1alpha1::BackendFramework>,
    new: Option<crate::v1alpha1::BackendFramework>,
) {
    check_immutable(
        out,
        "spec.backendFramework",
        old.map(crate::v1alpha1::BackendFramework::as_str),
        new.map(crate::v1alpha1::BackendFramework::as_str),
        "Changing spec.backendFramework may cause unexpected behavior",
    );
}

pub(crate) fn check_immutable(
    out: &mut Outcome,
    path: &str,
    old: Option<&str>,
    new: Option<&str>,
    warning: &str,
) {
    if old == new {
        return;
    }
    let shown =
        |value: Option<&str>| value.map_or_else(|| "unset".to_owned(), |v| format!("{v:?}"));
    out.warn(warning);
    out.error(
        path,
        Rule::ImmutableField,
        format!(
            "is immutable and cannot be changed after creation (was {}, now {})",
            shown(old),
            shown(new)
        ),
    );
}

/// `[a, b]` for names in messages (sorted by the caller).
pub(crate) fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    format!("[{}]", names.join(", "))
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::parse::from_yaml;
    use crate::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment, DynamoModel};

    use super::{Outcome, Rule};

    /// A graph `g` in namespace `team-a` with the given (indented) spec body.
    pub fn graph(spec: &str) -> DynamoGraphDeployment {
        let yaml = format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: g\n  namespace: team-a\nspec:\n{spec}"
        );
        from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    pub fn component(spec: &str) -> DynamoComponentDeployment {
        let yaml = format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoComponentDeployment\nmetadata:\n  name: g-worker\n  namespace: team-a\nspec:\n{spec}"
        );
        from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    pub fn model(spec: &str) -> DynamoModel {
        let yaml = format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoModel\nmetadata:\n  name: m\n  namespace: team-a\nspec:\n{spec}"
        );
        from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// The (path, rule) pairs of the errors, in order.
    pub fn failures(outcome: &Outcome) -> Vec<(String, Rule)> {
        outcome
            .errors
            .iter()
            .map(|e| (e.path.clone(), e.rule))
            .collect()
    }

    /// Asserts exactly one error, at `path` for `rule`, and returns its message.
    pub fn single(outcome: &Outcome, path: &str, rule: Rule) -> String {
        assert_eq!(
            failures(outcome),
            vec![(path.to_owned(), rule)],
            "{outcome}"
        );
        outcome.errors[0].message.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn rule_ids_are_unique_snake_case() {
        let ids: HashSet<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), Rule::ALL.len());
        for id in ids {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id}"
            );
        }
    }

    #[test]
    fn rule_ids_stay_as_published() {
        assert_eq!(Rule::ALL.len(), 26);
        assert_eq!(Rule::ALL[0], Rule::NoServices);
        assert_eq!(Rule::NoServices.id(), "no_services");
        assert_eq!(
            Rule::RestartOrderUnknownService.id(),
            "restart_order_unknown_service"
        );
        assert_eq!(
            Rule::LoraSourceUriInvalid.to_string(),
            "lora_source_uri_invalid"
        );
    }

    #[test]
    fn denial_names_every_field_and_reports_the_first_rule() {
        let mut outcome = Outcome::default();
        assert!(outcome.is_allowed());
        assert_eq!(outcome.denial_reason(), None);
        outcome.error(
            "spec.backendFramework",
            Rule::ImmutableField,
            "is immutable",
        );
        outcome.error(
            "spec.services",
            Rule::ServicesChanged,
            "services added: [W]",
        );
        assert!(!outcome.is_allowed());
        assert_eq!(outcome.denial_reason(), Some("immutable_field"));
        assert_eq!(
            outcome.message(),
            "spec.backendFramework: is immutable; spec.services: services added: [W]"
        );
        assert_eq!(outcome.to_string(), outcome.message());
    }

    #[test]
    fn zero_and_absent_quantities_count_as_missing() {
        let q = |s: &str| Some(Quantity(s.to_owned()));
        for missing in ["", " ", "0", "0Gi", "0.0", "+0Mi"] {
            assert!(quantity_is_zero(q(missing).as_ref()), "{missing:?}");
        }
        assert!(quantity_is_zero(None));
        for present in ["8Gi", "1", "0.5Gi", "100M", "1e3", "garbage"] {
            assert!(!quantity_is_zero(q(present).as_ref()), "{present:?}");
        }
    }
}
