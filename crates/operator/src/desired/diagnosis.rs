//! Why a component is not available: the first concrete cause found in the status of its
//! Deployment and pods, for status messages and events.
//!
//! Only `metadata.name` and `status` are read, so the objects may come from caches that strip
//! everything else. Causes are checked in this order, first match wins (the most actionable
//! first): the ReplicaSet cannot create pods; a pod is unschedulable; a container cannot start
//! (image pull, container config); a container is crash-looping; the rollout exceeded its
//! progress deadline; a running pod is not ready. Pods are examined in name order, so the
//! answer does not depend on cache order.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

/// Longest message returned, in characters (conditions and events stay readable).
pub const MAX_CAUSE_CHARS: usize = 300;

/// Waiting reasons that mean a container cannot be created or its image fetched.
const START_FAILURES: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The first concrete reason the component is not available, or `None` when the status shows
/// none (the caller keeps its generic message).
pub fn unavailable_cause(deployment: Option<&Deployment>, pods: &[Pod]) -> Option<String> {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| pod_name(a).cmp(pod_name(b)));
    deployment
        .and_then(replica_failure)
        .or_else(|| pods.iter().find_map(|pod| unschedulable(pod)))
        .or_else(|| pods.iter().find_map(|pod| start_failure(pod)))
        .or_else(|| pods.iter().find_map(|pod| crash_loop(pod)))
        .or_else(|| deployment.and_then(progress_deadline_exceeded))
        .or_else(|| pods.iter().find_map(|pod| not_ready(pod)))
        .map(bounded)
}

fn replica_failure(deployment: &Deployment) -> Option<String> {
    let condition = deployment_condition(deployment, "ReplicaFailure")?;
    (condition.status == "True").then(|| {
        format!(
            "ReplicaSet cannot create pods: {}",
            text_or(
                &condition.message,
                condition.reason.as_deref().unwrap_or("ReplicaFailure")
            )
        )
    })
}

fn progress_deadline_exceeded(deployment: &Deployment) -> Option<String> {
    let condition = deployment_condition(deployment, "Progressing")?;
    (condition.status == "False" && condition.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        .then(|| text_or(&condition.message, "ProgressDeadlineExceeded").to_owned())
}

fn unschedulable(pod: &Pod) -> Option<String> {
    let condition = pod_condition(pod, "PodScheduled")?;
    (condition.status == "False" && condition.reason.as_deref() == Some("Unschedulable")).then(
        || {
            format!(
                "pod {} unschedulable: {}",
                pod_name(pod),
                text_or(&condition.message, "no node fits")
            )
        },
    )
}

fn start_failure(pod: &Pod) -> Option<String> {
    container_statuses(pod).find_map(|container| {
        let waiting = container.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        START_FAILURES.contains(&reason).then(|| {
            let mut cause = format!(
                "pod {} container {}: {reason}",
                pod_name(pod),
                container.name
            );
            if let Some(message) = non_empty(&waiting.message) {
                cause.push_str(": ");
                cause.push_str(message);
            }
            cause
        })
    })
}

/// A container in CrashLoopBackOff, or one not ready again after it terminated and restarted
/// (a ready container with old restarts is not a cause).
fn crash_loop(pod: &Pod) -> Option<String> {
    container_statuses(pod).find_map(|container| {
        let back_off = container
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
        let last = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref());
        let restarted = last.is_some() && container.restart_count > 0 && !container.ready;
        if !back_off && !restarted {
            return None;
        }
        let mut cause = format!(
            "pod {} container {} is crash-looping: ",
            pod_name(pod),
            container.name
        );
        if let Some(last) = last {
            cause.push_str(&format!("last exit code {}", last.exit_code));
            if let Some(reason) = non_empty(&last.reason) {
                cause.push_str(&format!(" ({reason})"));
            }
            cause.push_str(", ");
        }
        let restarts = container.restart_count;
        cause.push_str(&format!(
            "{restarts} restart{}",
            if restarts == 1 { "" } else { "s" }
        ));
        Some(cause)
    })
}

fn not_ready(pod: &Pod) -> Option<String> {
    let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
    let condition = pod_condition(pod, "Ready")?;
    (running && condition.status == "False").then(|| {
        format!(
            "pod {} not ready: {}",
            pod_name(pod),
            text_or(&condition.message, "readiness probe failing")
        )
    })
}

fn deployment_condition<'a>(
    deployment: &'a Deployment,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    deployment
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Init containers first (a pod waits on them), then the app containers.
fn container_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    let init = status.and_then(|s| s.init_container_statuses.as_ref());
    let main = status.and_then(|s| s.container_statuses.as_ref());
    init.into_iter().chain(main).flatten()
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn text_or<'a>(text: &'a Option<String>, fallback: &'a str) -> &'a str {
    non_empty(text).unwrap_or(fallback)
}

/// One line (whitespace runs collapsed) of at most [`MAX_CAUSE_CHARS`] characters.
fn bounded(cause: String) -> String {
    let line = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= MAX_CAUSE_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_CAUSE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn deployment(conditions: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "g-worker"},
            "status": {"replicas": 1, "conditions": conditions},
        }))
        .unwrap()
    }

    fn pod(name: &str, status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).unwrap()
    }

    const FORBIDDEN: &str = "pods \"g-planner-5d9f-\" is forbidden: error looking up service account ns/planner-serviceaccount: serviceaccount \"planner-serviceaccount\" not found";

    fn replica_failure() -> Value {
        json!({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
               "message": FORBIDDEN})
    }

    fn deadline_exceeded() -> Value {
        json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
               "message": "ReplicaSet \"g-worker-7c8\" has timed out progressing."})
    }

    fn pending_unschedulable() -> Value {
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}]})
    }

    fn running(ready: bool, containers: Value) -> Value {
        json!({"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": if ready { "True" } else { "False" },
             "reason": "ContainersNotReady", "message": "containers with unready status: [main]"}],
            "containerStatuses": containers})
    }

    fn waiting(name: &str, reason: &str, message: &str) -> Value {
        json!({"name": name, "image": "img", "imageID": "", "ready": false, "restartCount": 0,
               "state": {"waiting": {"reason": reason, "message": message}}})
    }

    fn image_pull_backoff() -> Value {
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
               "containerStatuses": [waiting("main", "ImagePullBackOff",
                   "Back-off pulling image \"nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.0.0\"")]})
    }

    fn crash_looping() -> Value {
        running(
            false,
            json!([{"name": "main", "image": "img", "imageID": "", "ready": false,
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": "back-off 1m20s restarting failed container"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
        )
    }

    fn main_ready(ready: bool) -> Value {
        json!([{"name": "main", "image": "img", "imageID": "", "ready": ready, "restartCount": 0,
                "state": {"running": {}}}])
    }

    #[test]
    fn one_cause_each() {
        // (case, deployment conditions, pods, expected cause)
        type Case = (&'static str, Option<Value>, Vec<Pod>, Option<String>);
        let cases: Vec<Case> = vec![
            (
                "a: ReplicaSet cannot create pods",
                Some(json!([replica_failure()])),
                vec![],
                Some(format!("ReplicaSet cannot create pods: {FORBIDDEN}")),
            ),
            (
                "b: unschedulable",
                Some(json!([])),
                vec![pod("g-worker-1", pending_unschedulable())],
                Some("pod g-worker-1 unschedulable: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu.".into()),
            ),
            (
                "c: image pull",
                None,
                vec![pod("g-worker-1", image_pull_backoff())],
                Some("pod g-worker-1 container main: ImagePullBackOff: Back-off pulling image \"nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.0.0\"".into()),
            ),
            (
                "c: init container config error, no message",
                None,
                vec![pod("g-worker-1", json!({"phase": "Pending",
                    "initContainerStatuses": [waiting("init", "CreateContainerConfigError", "")],
                    "containerStatuses": [waiting("main", "PodInitializing", "")]}))],
                Some("pod g-worker-1 container init: CreateContainerConfigError".into()),
            ),
            (
                "d: CrashLoopBackOff",
                None,
                vec![pod("g-worker-1", crash_looping())],
                Some("pod g-worker-1 container main is crash-looping: last exit code 1 (Error), 4 restarts".into()),
            ),
            (
                "d: restarted and not ready again",
                None,
                vec![pod("g-worker-1", running(false, json!([
                    {"name": "main", "image": "img", "imageID": "", "ready": false,
                     "restartCount": 1, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}])))],
                Some("pod g-worker-1 container main is crash-looping: last exit code 137 (OOMKilled), 1 restart".into()),
            ),
            (
                "e: progress deadline",
                Some(json!([deadline_exceeded()])),
                vec![],
                Some("ReplicaSet \"g-worker-7c8\" has timed out progressing.".into()),
            ),
            (
                "f: running, not ready",
                Some(json!([{"type": "Available", "status": "False"}])),
                vec![pod("g-worker-1", running(false, main_ready(false)))],
                Some("pod g-worker-1 not ready: containers with unready status: [main]".into()),
            ),
            (
                "f: no condition message",
                None,
                vec![pod("g-worker-1", json!({"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}]}))],
                Some("pod g-worker-1 not ready: readiness probe failing".into()),
            ),
            ("nothing at all", None, vec![], None),
            ("no pods, no conditions", Some(json!([])), vec![], None),
            (
                "a scheduled ready pod",
                Some(json!([{"type": "Available", "status": "True"},
                             {"type": "Progressing", "status": "True",
                              "reason": "NewReplicaSetAvailable"}])),
                vec![pod("g-worker-1", running(true, main_ready(true)))],
                None,
            ),
            (
                "a ready container with old restarts",
                None,
                vec![pod("g-worker-1", running(true, json!([
                    {"name": "main", "image": "img", "imageID": "", "ready": true,
                     "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1}}}])))],
                None,
            ),
            (
                "a pending pod still being created",
                None,
                vec![pod("g-worker-1", json!({"phase": "Pending",
                    "containerStatuses": [waiting("main", "ContainerCreating", "")]}))],
                None,
            ),
            (
                "conditions not in the failing state",
                Some(json!([{"type": "ReplicaFailure", "status": "False", "message": "old"},
                             {"type": "Progressing", "status": "False", "reason": "Other"}])),
                vec![],
                None,
            ),
        ];
        for (case, conditions, pods, expected) in cases {
            let deployment = conditions.map(deployment);
            assert_eq!(
                unavailable_cause(deployment.as_ref(), &pods),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn the_most_actionable_cause_wins() {
        let all_pods = || {
            vec![
                pod("d-not-ready", running(false, main_ready(false))),
                pod("c-crash", crash_looping()),
                pod("b-image", image_pull_backoff()),
                pod("a-unschedulable", pending_unschedulable()),
            ]
        };
        let everything = deployment(json!([deadline_exceeded(), replica_failure()]));
        let only_deadline = deployment(json!([deadline_exceeded()]));
        // (case, deployment, pods kept by name prefix, expected start of the cause)
        let cases: [(&str, Option<&Deployment>, &[&str], &str); 7] = [
            (
                "replica failure first",
                Some(&everything),
                &["a", "b", "c", "d"],
                "ReplicaSet cannot create pods",
            ),
            (
                "then unschedulable",
                Some(&only_deadline),
                &["a", "b", "c", "d"],
                "pod a-unschedulable unschedulable",
            ),
            (
                "then image pull",
                Some(&only_deadline),
                &["b", "c", "d"],
                "pod b-image container main: ImagePullBackOff",
            ),
            (
                "then crash loop",
                Some(&only_deadline),
                &["c", "d"],
                "pod c-crash container main is crash-looping",
            ),
            (
                "then the deadline",
                Some(&only_deadline),
                &["d"],
                "ReplicaSet \"g-worker-7c8\" has timed out",
            ),
            ("then not ready", None, &["d"], "pod d-not-ready not ready"),
            ("pods in name order", None, &["c", "d"], "pod c-crash"),
        ];
        for (case, deployment, keep, expected) in cases {
            let pods: Vec<Pod> = all_pods()
                .into_iter()
                .filter(|p| keep.iter().any(|k| pod_name(p).starts_with(k)))
                .collect();
            let cause = unavailable_cause(deployment, &pods).unwrap();
            assert!(cause.starts_with(expected), "{case}: {cause}");
        }
        // Same pods, any order: the same answer.
        let two = |first: &str, second: &str| {
            let status = || running(false, main_ready(false));
            vec![pod(first, status()), pod(second, status())]
        };
        assert_eq!(
            unavailable_cause(None, &two("w-2", "w-1")),
            unavailable_cause(None, &two("w-1", "w-2"))
        );
        assert!(
            unavailable_cause(None, &two("w-2", "w-1"))
                .unwrap()
                .starts_with("pod w-1 ")
        );
    }

    #[test]
    fn causes_are_one_bounded_line() {
        let long = format!("line one\nline two {}", "x".repeat(400));
        let pods = [pod(
            "p",
            json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False", "message": long}]}),
        )];
        let cause = unavailable_cause(None, &pods).unwrap();
        assert!(!cause.contains('\n'), "{cause}");
        assert_eq!(cause.chars().count(), MAX_CAUSE_CHARS);
        assert!(cause.starts_with("pod p not ready: line one line two xxx"));
        assert!(cause.ends_with('…'));
        assert_eq!(bounded("a  b\tc".into()), "a b c");
    }
}
