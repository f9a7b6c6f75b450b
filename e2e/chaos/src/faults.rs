//! The fault injector: every few seconds one fault, picked at random, until the time is up.
//!
//! Processes of the platform's pods are found through the node agent's pid files
//! (`$state/agent/pids/<pod uid>`); the operator leader through the Lease, whose holder is the
//! process's election identity `<pod>_<pid>`. Control-plane processes are crash-restarted by
//! `hack/cluster.sh restart`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dynamo_operator::desired::naming::component_name;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::check::Edits;
use crate::kinds::api;
use crate::random::Random;
use crate::shapes::{ADAPTER, GRAPH, Shape};
use crate::writes::Tally;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillLeader,
    KillWebhook,
    StopLeader,
    RestartApiServer,
    RestartEtcd,
    UserEdits,
    DeleteChildren,
}

pub const FAULTS: [Fault; 7] = [
    Fault::KillLeader,
    Fault::KillWebhook,
    Fault::StopLeader,
    Fault::RestartApiServer,
    Fault::RestartEtcd,
    Fault::UserEdits,
    Fault::DeleteChildren,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill_leader",
            Fault::KillWebhook => "kill_webhook",
            Fault::StopLeader => "stop_leader",
            Fault::RestartApiServer => "restart_apiserver",
            Fault::RestartEtcd => "restart_etcd",
            Fault::UserEdits => "user_edits",
            Fault::DeleteChildren => "delete_children",
        }
    }
}

/// A graph of the run.
pub struct Graph {
    pub name: String,
    pub namespace: String,
    pub shape: Shape,
}

/// What the load and the injector share.
pub struct Run {
    pub client: Client,
    /// The cluster's state directory (`hack/cluster.sh env`).
    pub state: PathBuf,
    /// `hack/`, for `cluster.sh restart`.
    pub hack: PathBuf,
    /// Where the platform runs.
    pub platform_namespace: String,
    pub graphs: Vec<Graph>,
    /// Indexes of the graphs the API server took.
    pub applied: Mutex<Vec<usize>>,
    /// The user's edits per graph index.
    pub edits: Mutex<BTreeMap<usize, Edits>>,
    pub tally: Tally,
    /// How long a stopped leader stays stopped, at least (longer than its renew deadline).
    pub stop_for: Duration,
}

/// Injects faults until `until`; returns how many of each were made.
pub async fn inject(run: &Run, until: Instant, random: &mut Random) -> BTreeMap<Fault, usize> {
    let mut made = BTreeMap::new();
    let mut stopped: Option<tokio::task::JoinHandle<()>> = None;
    let mut edits = 0usize;
    loop {
        let pause = Duration::from_secs(random.between(2, 6));
        if Instant::now() + pause >= until {
            break;
        }
        tokio::time::sleep(pause).await;
        let stopping = stopped.as_ref().is_some_and(|s| !s.is_finished());
        // While the leader is stopped, it stays so until SIGCONT: it is not killed meanwhile.
        let choices: Vec<Fault> = FAULTS
            .into_iter()
            .filter(|f| !stopping || !matches!(f, Fault::KillLeader | Fault::StopLeader))
            .collect();
        let fault = *random.pick(&choices);
        let done = match fault {
            Fault::KillLeader => match leader(run).await {
                Some((who, pid)) => {
                    eprintln!("chaos: SIGKILL operator leader {who}");
                    signal(pid, "KILL")
                }
                None => false,
            },
            Fault::KillWebhook => match webhook_pid(run, random).await {
                Some((pod, pid)) => {
                    eprintln!("chaos: SIGKILL webhook pod {pod}");
                    signal(pid, "KILL")
                }
                None => false,
            },
            Fault::StopLeader => {
                if let Some((who, pid)) = leader(run).await {
                    let pause = run.stop_for + Duration::from_secs(random.between(0, 8));
                    eprintln!("chaos: SIGSTOP operator leader {who} for {pause:?}");
                    let ok = signal(pid, "STOP");
                    stopped = Some(tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        eprintln!("chaos: SIGCONT pid {pid}");
                        signal(pid, "CONT");
                    }));
                    ok
                } else {
                    false
                }
            }
            Fault::RestartApiServer => restart(run, "kube-apiserver").await,
            Fault::RestartEtcd => restart(run, "etcd").await,
            Fault::UserEdits => {
                let burst = random.between(3, 8) as usize;
                for _ in 0..burst {
                    edit(run, random, edits).await;
                    edits += 1;
                }
                true
            }
            Fault::DeleteChildren => {
                for _ in 0..random.between(1, 4) {
                    delete_child(run, random).await;
                }
                true
            }
        };
        if done {
            *made.entry(fault).or_default() += 1;
        }
    }
    if let Some(stopped) = stopped {
        let _ = stopped.await;
    }
    made
}

/// The operator leader: its election identity and process id.
async fn leader(run: &Run) -> Option<(String, u32)> {
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), &run.platform_namespace);
    let operators: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .iter()
        .map(|p| p.name_any())
        .filter(|n| n.contains("controller-manager"))
        .collect();
    let leases: Api<Lease> = Api::all(run.client.clone());
    let leases = leases.list(&ListParams::default()).await.ok()?;
    let holder = leases
        .items
        .iter()
        .filter_map(|l| l.spec.as_ref()?.holder_identity.clone())
        .find(|h| {
            operators
                .iter()
                .any(|pod| h.starts_with(&format!("{pod}_")))
        })?;
    let pid: u32 = holder.rsplit_once('_')?.1.parse().ok()?;
    is_ours(pid, "dynamo-operator").then_some((holder, pid))
}

/// One running webhook pod, and its process.
async fn webhook_pid(run: &Run, random: &mut Random) -> Option<(String, u32)> {
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), &run.platform_namespace);
    let candidates: Vec<(String, u32)> = pods
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .iter()
        .filter(|p| p.name_any().contains("-webhook-"))
        .filter_map(|p| {
            let pid = std::fs::read_to_string(run.state.join("agent/pids").join(p.uid()?)).ok()?;
            let pid: u32 = pid.trim().parse().ok()?;
            is_ours(pid, "dynamo-webhook").then(|| (p.name_any(), pid))
        })
        .collect();
    (!candidates.is_empty()).then(|| random.pick(&candidates).clone())
}

/// Whether process `pid` runs `binary` (never signal a recycled pid).
fn is_ours(pid: u32, binary: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(binary))
        .unwrap_or(false)
}

fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

async fn restart(run: &Run, component: &str) -> bool {
    eprintln!("chaos: restarting {component}");
    let status = tokio::process::Command::new(run.hack.join("cluster.sh"))
        .args(["restart", component])
        .status()
        .await;
    let ok = status.as_ref().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("chaos: restart of {component} failed: {status:?}");
    }
    ok
}

/// One user edit on a graph the API server took: scale a service, restart the graph, or
/// scale its adapter. The edit is recorded once taken.
async fn edit(run: &Run, random: &mut Random, sequence: usize) {
    let Some(index) = pick_applied(run, random) else {
        return;
    };
    let graph = &run.graphs[index];
    let graphs = api(&run.client, &graph.namespace, GRAPH);
    let params = PatchParams::default();
    match random.between(0, 2) {
        0 if !graph.shape.scalable().is_empty() => {
            let service = *random.pick(graph.shape.scalable());
            let replicas = random.between(1, 3) as i64;
            let body =
                Patch::Merge(json!({"spec": {"services": {service: {"replicas": replicas}}}}));
            let what = format!(
                "scale {}/{} {service} to {replicas}",
                graph.namespace, graph.name
            );
            if run
                .tally
                .write(&what, || graphs.patch(&graph.name, &params, &body))
                .await
            {
                record(run, index, |e| {
                    e.replicas.insert(service.to_owned(), replicas);
                });
            }
        }
        1 if graph.shape.adapted().is_some() => {
            let service = graph.shape.adapted().unwrap_or_default();
            let adapters = api(&run.client, &graph.namespace, ADAPTER);
            let name = component_name(&graph.name, service);
            let replicas = random.between(1, 3) as i64;
            let body = Patch::Merge(json!({"spec": {"replicas": replicas}}));
            let what = format!("scale adapter {}/{name} to {replicas}", graph.namespace);
            if run
                .tally
                .write(&what, || adapters.patch(&name, &params, &body))
                .await
            {
                record(run, index, |e| e.adapter = Some(replicas));
            }
        }
        _ => {
            let id = format!("chaos-{sequence}");
            let body = Patch::Merge(json!({"spec": {"restart": {"id": id}}}));
            let what = format!("restart {}/{} as {id}", graph.namespace, graph.name);
            if run
                .tally
                .write(&what, || graphs.patch(&graph.name, &params, &body))
                .await
            {
                record(run, index, |e| e.restart = Some(id.clone()));
            }
        }
    }
}

fn record(run: &Run, index: usize, change: impl FnOnce(&mut Edits)) {
    let mut edits = run.edits.lock().unwrap_or_else(|e| e.into_inner());
    change(edits.entry(index).or_default());
}

fn pick_applied(run: &Run, random: &mut Random) -> Option<usize> {
    let applied = run.applied.lock().unwrap_or_else(|e| e.into_inner());
    (!applied.is_empty()).then(|| *random.pick(&applied))
}

/// Deletes one of a graph's Deployments or Services by hand, as a user cleaning up might.
async fn delete_child(run: &Run, random: &mut Random) {
    let Some(index) = pick_applied(run, random) else {
        return;
    };
    let graph = &run.graphs[index];
    let service = random.pick(graph.shape.services());
    let kind = *random.pick(&["Deployment", "Service"]);
    let name = component_name(&graph.name, service);
    match api(&run.client, &graph.namespace, kind)
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => eprintln!("chaos: deleted {kind} {}/{name}", graph.namespace),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            eprintln!(
                "chaos: {kind} {}/{name} is not there to delete",
                graph.namespace
            )
        }
        Err(e) => eprintln!(
            "chaos: could not delete {kind} {}/{name}: {e}",
            graph.namespace
        ),
    }
}
