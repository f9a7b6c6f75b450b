//! Rolling restarts (`spec.restart`): which services carry the new `nvidia.com/restartAt`
//! value, and the `status.restart` progress.
//!
//! A new `restart.id` is first recorded as `Pending` with the first step; the next reconcile
//! stamps the step's services (`Restarting`). A step is done when each of its services carries
//! the id and its component has rolled out at its latest generation; then the next service of
//! the order is stamped (Sequential), until `Completed`. Services outside the current step keep
//! the value they have, so nothing restarts twice. A rollout that stalls (its Deployment's
//! progress deadline passed) ends the restart as `Failed`.

use std::collections::BTreeMap;

use dynamo_api::labels::operator_annotation::RESTART_AT;
use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, Restart, RestartPhase, RestartStatus, RestartStrategyType,
};
use kube::Resource;

use super::status::{AVAILABLE, ROLLOUT_STALLED};

/// Where one service's rollout stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRollout {
    /// The `nvidia.com/restartAt` value its component carries now.
    pub restart_at: Option<String>,
    /// Its component is available at its latest generation.
    pub rolled_out: bool,
    /// Its rollout stopped making progress.
    pub stalled: bool,
}

/// What to write: the restart status and each service's `restartAt` value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RestartPlan {
    pub status: Option<RestartStatus>,
    /// `restartAt` per service; services without one carry none.
    pub restart_at: BTreeMap<String, String>,
}

/// The next restart step of a graph whose services stand as `services`.
pub fn plan_restart(
    restart: Option<&Restart>,
    status: Option<&RestartStatus>,
    services: &BTreeMap<String, ServiceRollout>,
) -> RestartPlan {
    let mut restart_at: BTreeMap<String, String> = services
        .iter()
        .filter_map(|(name, s)| Some((name.clone(), s.restart_at.clone()?)))
        .collect();
    let keep = |restart_at| RestartPlan {
        status: status.cloned(),
        restart_at,
    };
    let Some(restart) = restart.filter(|r| !r.id.is_empty()) else {
        return keep(restart_at);
    };
    let id = restart.id.as_str();
    let observed = status.and_then(|s| s.observed_id.as_deref()) == Some(id);
    let phase = status.and_then(|s| s.phase).filter(|_| observed);
    let order = order(restart, services);
    let parallel =
        restart.strategy.as_ref().and_then(|s| s.type_) == Some(RestartStrategyType::Parallel);
    let first_step = if parallel {
        order.clone()
    } else {
        order.iter().take(1).cloned().collect()
    };
    let restart_status = |phase, in_progress: Vec<String>| RestartStatus {
        observed_id: Some(id.to_owned()),
        phase: Some(phase),
        in_progress: (!in_progress.is_empty()).then_some(in_progress),
    };

    let step = match phase {
        Some(RestartPhase::Completed | RestartPhase::Failed) => return keep(restart_at),
        None => {
            return RestartPlan {
                status: Some(restart_status(RestartPhase::Pending, first_step)),
                restart_at,
            };
        }
        Some(RestartPhase::Pending | RestartPhase::Restarting) => status
            .and_then(|s| s.in_progress.clone())
            .unwrap_or_else(|| first_step.clone()),
    };
    // Services removed since the step began have nothing left to restart.
    let step: Vec<String> = step
        .into_iter()
        .filter(|s| services.contains_key(s))
        .collect();
    let stamped = |name: &String| services[name].restart_at.as_deref() == Some(id);
    if step.iter().any(|s| stamped(s) && services[s].stalled) {
        return RestartPlan {
            status: Some(restart_status(RestartPhase::Failed, step)),
            restart_at,
        };
    }
    let waiting: Vec<String> = step
        .iter()
        .filter(|s| !(stamped(s) && services[*s].rolled_out))
        .cloned()
        .collect();
    let next = if !waiting.is_empty() {
        if parallel { waiting } else { step }
    } else if parallel {
        Vec::new()
    } else {
        // The service after the last one of this step, in order.
        let last = step.last().and_then(|l| order.iter().position(|o| o == l));
        match last {
            Some(at) => order.iter().skip(at + 1).take(1).cloned().collect(),
            None => first_step.into_iter().filter(|s| !stamped(s)).collect(),
        }
    };
    if next.is_empty() {
        return RestartPlan {
            status: Some(restart_status(RestartPhase::Completed, Vec::new())),
            restart_at,
        };
    }
    for service in &next {
        restart_at.insert(service.clone(), id.to_owned());
    }
    RestartPlan {
        status: Some(restart_status(RestartPhase::Restarting, next)),
        restart_at,
    }
}

/// Where the service of `live`, its component as it is now, stands.
pub fn component_rollout(live: &DynamoComponentDeployment) -> ServiceRollout {
    let status = live.status.as_ref();
    let current = status.and_then(|s| s.observed_generation) == live.meta().generation;
    let available = status
        .and_then(|s| s.conditions.as_deref())
        .and_then(|c| c.iter().find(|c| c.type_ == AVAILABLE));
    ServiceRollout {
        restart_at: live
            .spec
            .shared
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESTART_AT))
            .cloned(),
        rolled_out: current && available.is_some_and(|c| c.status == "True"),
        stalled: current && available.is_some_and(|c| c.reason == ROLLOUT_STALLED),
    }
}

/// Puts each service's planned `restartAt` value into its component's `spec.annotations`.
pub fn stamp_restarts(components: &mut [DynamoComponentDeployment], plan: &RestartPlan) {
    for component in components {
        let service = component
            .spec
            .shared
            .service_name
            .clone()
            .unwrap_or_default();
        if let Some(id) = plan.restart_at.get(&service) {
            component
                .spec
                .shared
                .annotations
                .get_or_insert_default()
                .insert(RESTART_AT.to_owned(), id.clone());
        }
    }
}

/// The restart order: `strategy.order` (services it does not name follow alphabetically), else
/// alphabetical; only services that exist.
fn order(restart: &Restart, services: &BTreeMap<String, ServiceRollout>) -> Vec<String> {
    let mut order: Vec<String> = restart
        .strategy
        .as_ref()
        .and_then(|s| s.order.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| services.contains_key(s))
        .collect();
    for name in services.keys() {
        if !order.contains(name) {
            order.push(name.clone());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_api::v1alpha1::RestartStrategy;

    fn restart(id: &str, parallel: bool, order: &[&str]) -> Restart {
        Restart {
            id: id.into(),
            strategy: Some(RestartStrategy {
                type_: Some(if parallel {
                    RestartStrategyType::Parallel
                } else {
                    RestartStrategyType::Sequential
                }),
                order: (!order.is_empty()).then(|| order.iter().map(|s| s.to_string()).collect()),
            }),
        }
    }

    fn status(id: &str, phase: RestartPhase, in_progress: &[&str]) -> RestartStatus {
        RestartStatus {
            observed_id: Some(id.into()),
            phase: Some(phase),
            in_progress: (!in_progress.is_empty())
                .then(|| in_progress.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Services given as (name, restartAt, rolled out).
    fn services(items: &[(&str, Option<&str>, bool)]) -> BTreeMap<String, ServiceRollout> {
        items
            .iter()
            .map(|(name, at, rolled_out)| {
                (
                    name.to_string(),
                    ServiceRollout {
                        restart_at: at.map(str::to_owned),
                        rolled_out: *rolled_out,
                        stalled: false,
                    },
                )
            })
            .collect()
    }

    fn stamps(plan: &RestartPlan) -> Vec<(&str, &str)> {
        plan.restart_at
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// (current status, services (name, restartAt, rolled out), expected status, stamps).
    type Step = (
        Option<RestartStatus>,
        Vec<(&'static str, Option<&'static str>, bool)>,
        RestartStatus,
        Vec<(&'static str, &'static str)>,
    );

    #[test]
    fn a_sequential_restart_walks_the_order_one_service_at_a_time() {
        use RestartPhase::*;
        let spec = restart("r2", false, &["Worker", "Frontend", "Planner"]);
        let cases: Vec<Step> = vec![
            // A new id: recorded as Pending, nothing stamped yet.
            (
                Some(status("r1", Completed, &[])),
                vec![
                    ("Frontend", Some("r1"), true),
                    ("Planner", Some("r1"), true),
                    ("Worker", Some("r1"), true),
                ],
                status("r2", Pending, &["Worker"]),
                vec![("Frontend", "r1"), ("Planner", "r1"), ("Worker", "r1")],
            ),
            // Pending: the first service of the order is stamped.
            (
                Some(status("r2", Pending, &["Worker"])),
                vec![
                    ("Frontend", Some("r1"), true),
                    ("Planner", None, true),
                    ("Worker", Some("r1"), true),
                ],
                status("r2", Restarting, &["Worker"]),
                vec![("Frontend", "r1"), ("Worker", "r2")],
            ),
            // Stamped but not rolled out yet: wait.
            (
                Some(status("r2", Restarting, &["Worker"])),
                vec![
                    ("Frontend", None, true),
                    ("Planner", None, true),
                    ("Worker", Some("r2"), false),
                ],
                status("r2", Restarting, &["Worker"]),
                vec![("Worker", "r2")],
            ),
            // Rolled out: the next one in order, the rest untouched.
            (
                Some(status("r2", Restarting, &["Worker"])),
                vec![
                    ("Frontend", None, true),
                    ("Planner", None, true),
                    ("Worker", Some("r2"), true),
                ],
                status("r2", Restarting, &["Frontend"]),
                vec![("Frontend", "r2"), ("Worker", "r2")],
            ),
            // The last one rolled out: completed.
            (
                Some(status("r2", Restarting, &["Planner"])),
                vec![
                    ("Frontend", Some("r2"), true),
                    ("Planner", Some("r2"), true),
                    ("Worker", Some("r2"), true),
                ],
                status("r2", Completed, &[]),
                vec![("Frontend", "r2"), ("Planner", "r2"), ("Worker", "r2")],
            ),
        ];
        for (i, (current, items, expected, expected_stamps)) in cases.into_iter().enumerate() {
            let plan = plan_restart(Some(&spec), current.as_ref(), &services(&items));
            assert_eq!(plan.status, Some(expected), "case {i}");
            assert_eq!(stamps(&plan), expected_stamps, "case {i}");
        }
    }

    #[test]
    fn without_an_order_services_restart_alphabetically() {
        let spec = Restart {
            id: "r".into(),
            strategy: None,
        };
        let items = services(&[("b", None, true), ("a", None, true)]);
        let plan = plan_restart(Some(&spec), None, &items);
        assert_eq!(
            plan.status,
            Some(status("r", RestartPhase::Pending, &["a"]))
        );
    }

    #[test]
    fn a_parallel_restart_stamps_every_service_and_waits_for_all() {
        use RestartPhase::*;
        let spec = restart("p", true, &[]);
        let items = services(&[("a", None, true), ("b", None, true)]);
        let pending = plan_restart(Some(&spec), None, &items);
        assert_eq!(pending.status, Some(status("p", Pending, &["a", "b"])));
        let started = plan_restart(Some(&spec), pending.status.as_ref(), &items);
        assert_eq!(started.status, Some(status("p", Restarting, &["a", "b"])));
        assert_eq!(stamps(&started), vec![("a", "p"), ("b", "p")]);
        let half = services(&[("a", Some("p"), true), ("b", Some("p"), false)]);
        let waiting = plan_restart(Some(&spec), started.status.as_ref(), &half);
        assert_eq!(waiting.status, Some(status("p", Restarting, &["b"])));
        let done = services(&[("a", Some("p"), true), ("b", Some("p"), true)]);
        let completed = plan_restart(Some(&spec), waiting.status.as_ref(), &done);
        assert_eq!(completed.status, Some(status("p", Completed, &[])));
    }

    #[test]
    fn finished_or_absent_restarts_change_nothing() {
        let items = services(&[("a", Some("old"), true), ("b", None, true)]);
        let done = status("r", RestartPhase::Completed, &[]);
        let cases = [
            (None, Some(done.clone())),
            (Some(restart("r", false, &[])), Some(done.clone())),
            (Some(restart("", false, &[])), None),
            (
                Some(restart("r", false, &[])),
                Some(status("r", RestartPhase::Failed, &["a"])),
            ),
        ];
        for (spec, current) in cases {
            let plan = plan_restart(spec.as_ref(), current.as_ref(), &items);
            assert_eq!(plan.status, current, "{spec:?}");
            assert_eq!(stamps(&plan), vec![("a", "old")], "{spec:?}");
        }
    }

    #[test]
    fn a_stalled_rollout_fails_the_restart() {
        let spec = restart("r", false, &[]);
        let mut items = services(&[("a", Some("r"), false), ("b", None, true)]);
        items.get_mut("a").unwrap().stalled = true;
        let current = status("r", RestartPhase::Restarting, &["a"]);
        let plan = plan_restart(Some(&spec), Some(&current), &items);
        assert_eq!(plan.status, Some(status("r", RestartPhase::Failed, &["a"])));
        assert_eq!(stamps(&plan), vec![("a", "r")]);
    }

    #[test]
    fn a_service_removed_mid_step_moves_the_restart_on() {
        let spec = restart("r", false, &[]);
        let items = services(&[("b", Some("r"), true)]);
        let current = status("r", RestartPhase::Restarting, &["a"]);
        let plan = plan_restart(Some(&spec), Some(&current), &items);
        assert_eq!(plan.status, Some(status("r", RestartPhase::Completed, &[])));
    }
}
