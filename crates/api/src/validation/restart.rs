//! Rules of a DynamoGraphDeployment's `spec.restart`.

use std::collections::{BTreeMap, BTreeSet};

use super::{Outcome, Rule, name_list};
use crate::v1alpha1::{Restart, RestartStrategyType};

/// `id` is required; a sequential `order` must name every service exactly once, since the
/// restart walks it step by step and would never reach a service left out.
pub(crate) fn validate_restart<V>(
    restart: &Restart,
    services: &BTreeMap<String, V>,
    out: &mut Outcome,
) {
    if restart.id.is_empty() {
        out.error("spec.restart.id", Rule::RestartIdRequired, "is required");
    }
    let Some(strategy) = &restart.strategy else {
        return;
    };
    let order = strategy.order.as_deref().unwrap_or_default();
    if order.is_empty() {
        return;
    }
    let path = "spec.restart.strategy.order";
    if strategy.type_ == Some(RestartStrategyType::Parallel) {
        out.error(
            path,
            Rule::RestartOrderWithParallel,
            "cannot be specified when strategy is Parallel",
        );
        return;
    }
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for (i, name) in order.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            repeated.insert(name.as_str());
        } else if !services.contains_key(name) {
            out.error(
                format!("{path}[{i}]"),
                Rule::RestartOrderUnknownService,
                format!("unknown service {name:?}"),
            );
        }
    }
    if !repeated.is_empty() {
        let repeated: Vec<&str> = repeated.into_iter().collect();
        out.error(
            path,
            Rule::RestartOrderDuplicate,
            format!("must be unique (repeated: {})", name_list(&repeated)),
        );
    }
    let missing: Vec<&str> = services
        .keys()
        .map(String::as_str)
        .filter(|name| !seen.contains(name))
        .collect();
    if !missing.is_empty() {
        out.error(
            path,
            Rule::RestartOrderIncomplete,
            format!("must list every service (missing: {})", name_list(&missing)),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::validation::testing::{failures, graph, single};
    use crate::validation::{Outcome, Rule, validate_graph_create};

    const PATH: &str = "spec.restart.strategy.order";

    /// A graph with services A and B and the given restart block.
    fn with_restart(restart: &str) -> Outcome {
        validate_graph_create(&graph(&format!(
            "  services:\n    A: {{}}\n    B: {{}}\n  restart:\n{restart}"
        )))
    }

    #[test]
    fn valid_restarts() {
        for restart in [
            "    id: r1\n",
            "    id: r1\n    strategy:\n      type: Parallel\n",
            "    id: r1\n    strategy:\n      order: []\n      type: Parallel\n",
            "    id: r1\n    strategy:\n      order: [B, A]\n",
            "    id: r1\n    strategy:\n      type: Sequential\n      order: [A, B]\n",
        ] {
            let outcome = with_restart(restart);
            assert!(outcome.is_allowed(), "{restart}: {outcome}");
        }
    }

    #[test]
    fn id_is_required() {
        let message = single(
            &with_restart("    id: \"\"\n"),
            "spec.restart.id",
            Rule::RestartIdRequired,
        );
        assert_eq!(message, "is required");
    }

    #[test]
    fn order_only_with_sequential() {
        let outcome = with_restart(
            "    id: r\n    strategy:\n      type: Parallel\n      order: [A, A, X]\n",
        );
        // The order is meaningless here, so its contents are not judged.
        let message = single(&outcome, PATH, Rule::RestartOrderWithParallel);
        assert_eq!(message, "cannot be specified when strategy is Parallel");
    }

    #[test]
    fn order_is_unique_complete_and_known() {
        let cases: [(&str, Vec<(&str, Rule)>); 4] = [
            ("[A, B, A]", vec![(PATH, Rule::RestartOrderDuplicate)]),
            ("[A]", vec![(PATH, Rule::RestartOrderIncomplete)]),
            (
                "[A, C]",
                vec![
                    (
                        "spec.restart.strategy.order[1]",
                        Rule::RestartOrderUnknownService,
                    ),
                    (PATH, Rule::RestartOrderIncomplete),
                ],
            ),
            (
                "[A, A, C, B]",
                vec![
                    (
                        "spec.restart.strategy.order[2]",
                        Rule::RestartOrderUnknownService,
                    ),
                    (PATH, Rule::RestartOrderDuplicate),
                ],
            ),
        ];
        for (order, expected) in cases {
            let outcome =
                with_restart(&format!("    id: r\n    strategy:\n      order: {order}\n"));
            let expected: Vec<(String, Rule)> = expected
                .into_iter()
                .map(|(p, r)| (p.to_owned(), r))
                .collect();
            assert_eq!(failures(&outcome), expected, "{order}");
        }
        let outcome = with_restart("    id: r\n    strategy:\n      order: [C, A, C]\n");
        let messages: Vec<&str> = outcome.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown service \"C\"",
                "must be unique (repeated: [C])",
                "must list every service (missing: [B])"
            ]
        );
    }
}
