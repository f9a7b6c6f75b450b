//! What the API server shows of a pod the agent runs: its phase, conditions and the one
//! container's state, written to the status subresource as the kubelet would.

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// The current time in RFC 3339 (UTC, seconds), as status timestamps are written.
pub fn now() -> String {
    // Without a date crate: `date` is on every machine that runs the agent.
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output();
    output
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// What the pod's one container is doing, for its status.
#[derive(Clone, Debug)]
pub enum State {
    Waiting(String),
    Running {
        since: String,
        ready: bool,
    },
    Terminated {
        code: i32,
        since: String,
        at: String,
    },
}

/// Writes the status of one pod; `restarts` and `pid` follow the process.
pub struct Reporter {
    pub api: Api<Pod>,
    pub name: String,
    pub container: Container,
    pub host_ip: String,
    pub pod_ip: String,
    pub started: String,
    pub restarts: i32,
    /// The running process, reported as `containerID: process://<pid>`.
    pub pid: Option<u32>,
}

impl Reporter {
    pub async fn report(&self, state: &State, phase: &str) {
        let ready = matches!(state, State::Running { ready: true, .. });
        let container_state = match state {
            State::Waiting(reason) => json!({"waiting": {"reason": reason}}),
            State::Running { since, .. } => json!({"running": {"startedAt": since}}),
            State::Terminated { code, since, at } => json!({"terminated": {
                "exitCode": code, "reason": if *code == 0 { "Completed" } else { "Error" },
                "startedAt": since, "finishedAt": at}}),
        };
        let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": self.started});
        let status = json!({"status": {
            "phase": phase,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.started,
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": [{
                "name": self.container.name,
                "image": self.container.image,
                "imageID": "",
                "ready": ready,
                "started": matches!(state, State::Running { .. }),
                "restartCount": self.restarts,
                "containerID": self.pid.map(|p| format!("process://{p}")),
                "state": container_state,
            }],
        }});
        if let Err(e) = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            tracing::warn!(pod = %self.name, "status update: {e}");
        }
    }
}
