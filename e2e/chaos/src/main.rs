//! Chaos run driver, run by `hack/chaos.sh` inside the cluster's network namespace with the
//! platform installed:
//!
//!   chaos N SECONDS    (env: DYNAMO_E2E_STATE, CHAOS_HACK, CHAOS_PLATFORM_NAMESPACE, CHAOS_SEED)
//!
//! 1. Plants objects that are the user's, not the operator's, beside the graphs.
//! 2. Applies N graphs of four shapes, spread over the first half of the window, while the
//!    injector makes faults for SECONDS.
//! 3. Waits until every graph has converged, then checks the invariants (`two_leaders`: two
//!    operator processes writing in overlapping spans, or a process writing when it had not
//!    renewed its lease within the renew deadline) and prints one line:
//!    `chaos: graphs=N converged=N duplicates=0 lost=0 foreign_deleted=0 two_leaders=0
//!    failed_admissions_of_valid=0 seconds_to_converge=X`. Exits 1 unless every count is as
//!    it should be.

mod audit;
mod check;
mod faults;
mod kinds;
mod random;
mod shapes;
mod writes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dynamo_api::labels::label;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use check::{Listed, Verdict};
use faults::{Graph, Run};
use kinds::api;
use shapes::{ADAPTER, COMPONENT, GRAPH, Shape};
use writes::Tally;

/// Namespaces the graphs are spread over.
const NAMESPACES: usize = 4;
/// The user's field manager.
const USER: &str = "chaos-user";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, audit, log] = &args[..]
        && audit == "audit"
    {
        let two_leaders = leadership(&audit::operator_writes(std::path::Path::new(log))?);
        println!("chaos: two_leaders={two_leaders}");
        std::process::exit(if two_leaders == 0 { 0 } else { 1 });
    }
    let [_, count, seconds] = &args[..] else {
        anyhow::bail!("usage: chaos N SECONDS | chaos audit AUDIT_LOG");
    };
    let count: usize = count.parse().context("N")?;
    let seconds: u64 = seconds.parse().context("SECONDS")?;
    let seed: u64 = match std::env::var("CHAOS_SEED") {
        Ok(seed) => seed.parse().context("CHAOS_SEED")?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    eprintln!("chaos: {count} graphs, {seconds} s of faults, seed {seed}");
    let client = Client::try_default().await?;
    let run = Run {
        client: client.clone(),
        state: PathBuf::from(std::env::var("DYNAMO_E2E_STATE").context("DYNAMO_E2E_STATE")?),
        hack: PathBuf::from(std::env::var("CHAOS_HACK").context("CHAOS_HACK")?),
        platform_namespace: std::env::var("CHAOS_PLATFORM_NAMESPACE")
            .unwrap_or_else(|_| "dynamo-system".into()),
        graphs: (0..count)
            .map(|i| Graph {
                name: format!("g{i:04}"),
                namespace: namespace(i),
                shape: Shape::of(i),
            })
            .collect(),
        applied: Mutex::new(Vec::new()),
        edits: Mutex::new(BTreeMap::new()),
        tally: Tally::default(),
        // A stop of at least this long outlasts the renew deadline.
        stop_for: renew_deadline() + Duration::from_secs(2),
    };

    let foreign = plant_foreign_objects(&client).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut random = random::Random::new(seed);
    let (_, made) = tokio::join!(
        apply_graphs(&run, started + Duration::from_secs(seconds / 2)),
        faults::inject(&run, until, &mut random),
    );
    let faults: Vec<String> = made
        .iter()
        .map(|(fault, n)| format!("{}={n}", fault.name()))
        .collect();
    eprintln!(
        "chaos: faults made: {}; user writes {} (retried {} times)",
        faults.join(" "),
        Tally::get(&run.tally.written),
        Tally::get(&run.tally.retried)
    );

    let injected = Instant::now();
    let within = Duration::from_secs(300 + count as u64);
    let (verdicts, gone) = converge(&run, within).await;
    let seconds_to_converge = injected.elapsed().as_secs_f64();
    let converged = verdicts.iter().filter(|(_, v)| v.converged()).count();
    for (graph, verdict) in verdicts.iter().filter(|(_, v)| !v.converged()).take(10) {
        eprintln!("chaos: {graph} has not converged: {}", verdict.why());
    }
    let duplicates: usize = verdicts.values().map(|v| v.duplicates.len()).sum();
    let lost = gone
        + verdicts
            .values()
            .map(|v| v.missing.len() + v.unreflected.len())
            .sum::<usize>();

    let writes = audit::operator_writes(&run.state.join("logs/audit.log"))?;
    let two_leaders = leadership(&writes);
    let foreign_deleted = foreign_deleted(&client, &foreign, &writes).await;

    let failed = Tally::get(&run.tally.failed);
    println!(
        "chaos: graphs={count} converged={converged} duplicates={duplicates} lost={lost} \
         foreign_deleted={foreign_deleted} two_leaders={two_leaders} failed_admissions_of_valid={failed} \
         seconds_to_converge={seconds_to_converge:.1}"
    );
    let clean = converged == count
        && duplicates == 0
        && lost == 0
        && foreign_deleted == 0
        && two_leaders == 0
        && failed == 0;
    std::process::exit(if clean { 0 } else { 1 });
}

fn namespace(index: usize) -> String {
    format!("chaos-{}", index % NAMESPACES)
}

/// Prints each operator process's span of writes and every write made beside another leader;
/// returns how many (overlapping spans, and writes outside the writer's lease).
fn leadership(writes: &[audit::Write]) -> usize {
    let terms = audit::terms(writes);
    for term in &terms {
        eprintln!(
            "chaos: operator process {} wrote {} times from {} to {}",
            term.process, term.writes, term.first, term.last
        );
    }
    let overlaps = audit::overlapping(&terms);
    for (before, after) in &overlaps {
        eprintln!(
            "chaos: TWO LEADERS: {} wrote until {} while {} wrote from {}",
            before.process, before.last, after.process, after.first
        );
    }
    let deadline = renew_deadline();
    let outside = audit::outside_lease(writes, deadline, Duration::from_millis(500));
    for write in &outside {
        eprintln!(
            "chaos: TWO LEADERS: {} wrote ({} {} {}/{}) at {}, not within {deadline:?} of renewing its lease",
            write.process, write.verb, write.resource, write.namespace, write.name, write.at
        );
    }
    overlaps.len() + outside.len()
}

/// The operator's renew deadline (its default, which the chart keeps): a leader that has not
/// renewed within it must not write.
fn renew_deadline() -> Duration {
    dynamo_operator::leader::Timing::default().renew_deadline
}

/// An object the user made and the operator must leave alone: (kind, namespace, name, uid).
type Foreign = (String, String, String, String);

/// Per namespace a ConfigMap, and a Deployment and a Service that carry a graph's labels but
/// no owner (as a user's own sidecar service might).
async fn plant_foreign_objects(client: &Client) -> anyhow::Result<Vec<Foreign>> {
    let mut planted = Vec::new();
    for i in 0..NAMESPACES {
        let ns = namespace(i);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .patch(
                &ns,
                &PatchParams::apply(USER),
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                ),
            )
            .await?;
        let graph = format!("g{i:04}");
        let labels = json!({
            label::GRAPH_DEPLOYMENT_NAME: graph,
            label::COMPONENT: "Frontend",
        });
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "user-config", "labels": labels}, "data": {"k": "v"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": format!("{graph}-user-sidecar"), "labels": labels},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "user-sidecar"}},
                            "template": {"metadata": {"labels": {"app": "user-sidecar"}},
                                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": format!("{graph}-user-sidecar"), "labels": labels},
                   "spec": {"selector": {"app": "user-sidecar"}, "ports": [{"port": 80}]}}),
        ];
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let stored = api(client, &ns, &kind)
                .patch(name, &PatchParams::apply(USER), &Patch::Apply(&object))
                .await
                .with_context(|| format!("planting {kind} {ns}/{name}"))?;
            planted.push((
                kind,
                ns.clone(),
                stored.name_any(),
                stored.uid().unwrap_or_default(),
            ));
        }
    }
    Ok(planted)
}

/// The user's objects that are gone or were replaced, plus deletions by the operator of
/// anything it does not make (graphs, namespaces, the user's objects).
async fn foreign_deleted(client: &Client, foreign: &[Foreign], writes: &[audit::Write]) -> usize {
    let mut deleted = 0;
    for (kind, ns, name, uid) in foreign {
        let objects = api(client, ns, kind);
        let mut now = objects.get_opt(name).await;
        for _ in 0..30 {
            if now.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            now = objects.get_opt(name).await;
        }
        let now = match now {
            Ok(now) => now,
            Err(e) => {
                // Unknown is not deleted; the run fails on what made the API unreachable.
                eprintln!("chaos: could not read the user's {kind} {ns}/{name}: {e}");
                continue;
            }
        };
        if now.as_ref().and_then(|o| o.uid()).as_deref() != Some(uid.as_str()) {
            eprintln!("chaos: the user's {kind} {ns}/{name} was deleted");
            deleted += 1;
        }
    }
    for write in writes.iter().filter(|w| w.verb.starts_with("delete")) {
        let users = foreign
            .iter()
            .any(|(_, ns, name, _)| *ns == write.namespace && *name == write.name);
        if users
            || matches!(
                write.resource.as_str(),
                "dynamographdeployments" | "namespaces"
            )
        {
            eprintln!(
                "chaos: the operator ({}) deleted {} {}/{}",
                write.process, write.resource, write.namespace, write.name
            );
            deleted += 1;
        }
    }
    deleted
}

/// Applies every graph (server-side, as `kubectl apply --server-side` does), spread evenly
/// until `by`; each is retried until the API server takes it.
async fn apply_graphs(run: &Run, by: Instant) {
    let count = run.graphs.len().max(1) as u32;
    let spacing = by.saturating_duration_since(Instant::now()) / count;
    let mut pending = Vec::new();
    for (index, graph) in run.graphs.iter().enumerate() {
        pending.push(async move {
            tokio::time::sleep(spacing * index as u32).await;
            let manifest =
                Patch::Apply(shapes::manifest(&graph.name, &graph.namespace, graph.shape));
            let graphs = api(&run.client, &graph.namespace, GRAPH);
            let what = format!(
                "apply {} graph {}/{}",
                graph.shape.name(),
                graph.namespace,
                graph.name
            );
            let params = PatchParams::apply(USER);
            if run
                .tally
                .write(&what, || graphs.patch(&graph.name, &params, &manifest))
                .await
            {
                run.applied
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(index);
            }
        });
    }
    futures::future::join_all(pending).await;
}

/// Lists the graphs and everything they may own until every graph has converged or `within`
/// has passed. Returns the last verdict per graph, and how many applied graphs are gone.
async fn converge(run: &Run, within: Duration) -> (BTreeMap<String, Verdict>, usize) {
    let started = Instant::now();
    let mut last = (BTreeMap::new(), 0);
    let mut report = Instant::now();
    loop {
        match judge(run).await {
            Ok(judged) => last = judged,
            Err(e) => eprintln!("chaos: listing failed: {e:#}"),
        }
        let converged = last.0.values().filter(|v| v.converged()).count();
        if converged == run.graphs.len() && last.1 == 0 {
            return last;
        }
        if started.elapsed() > within {
            eprintln!("chaos: not converged after {within:?}");
            return last;
        }
        if report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "chaos: {converged}/{} converged after {:.0} s",
                run.graphs.len(),
                started.elapsed().as_secs_f64()
            );
            report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

const CHILD_KINDS: [&str; 7] = [
    COMPONENT,
    ADAPTER,
    "Deployment",
    "Service",
    "ServiceAccount",
    "Role",
    "RoleBinding",
];

async fn judge(run: &Run) -> anyhow::Result<(BTreeMap<String, Verdict>, usize)> {
    let applied = run
        .applied
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let edits = run.edits.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut graphs: HashMap<(String, String), Value> = HashMap::new();
    let mut children: HashMap<String, Vec<Listed>> = HashMap::new();
    for i in 0..NAMESPACES {
        let ns = namespace(i);
        for graph in api(&run.client, &ns, GRAPH)
            .list(&ListParams::default())
            .await?
        {
            graphs.insert(
                (ns.clone(), graph.name_any()),
                serde_json::to_value(&graph)?,
            );
        }
        let listed = children.entry(ns.clone()).or_default();
        for kind in CHILD_KINDS {
            for object in api(&run.client, &ns, kind)
                .list(&ListParams::default())
                .await?
            {
                listed.push(Listed::from_json(kind, &serde_json::to_value(&object)?));
            }
        }
    }
    let mut verdicts = BTreeMap::new();
    let mut gone = 0;
    for (index, graph) in run.graphs.iter().enumerate() {
        let key = format!("{}/{}", graph.namespace, graph.name);
        let Some(stored) = graphs.get(&(graph.namespace.clone(), graph.name.clone())) else {
            if applied.contains(&index) {
                gone += 1;
            }
            verdicts.insert(
                key,
                Verdict {
                    not_ready: Some("not stored".into()),
                    ..Verdict::default()
                },
            );
            continue;
        };
        let listed = &children[&graph.namespace];
        let components: Vec<&str> = listed
            .iter()
            .filter(|l| l.kind == COMPONENT && owned_by(l, GRAPH, &graph.name))
            .map(|l| l.name.as_str())
            .collect();
        let owned: Vec<&Listed> = listed
            .iter()
            .filter(|l| {
                owned_by(l, GRAPH, &graph.name)
                    || components.iter().any(|c| owned_by(l, COMPONENT, c))
            })
            .collect();
        let edits = edits.get(&index).cloned().unwrap_or_default();
        verdicts.insert(key, check::verdict(stored, graph.shape, &edits, &owned));
    }
    Ok((verdicts, gone))
}

fn owned_by(listed: &Listed, kind: &str, name: &str) -> bool {
    listed
        .owner
        .as_ref()
        .is_some_and(|(k, n)| k == kind && n == name)
}
