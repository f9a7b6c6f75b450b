//! Whether a graph has converged: Ready, exactly its expected children (none missing, none
//! extra), and every user edit reflected in what it runs. Pure functions over what was listed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use dynamo_operator::desired::naming::component_name;

use crate::shapes::{ADAPTER, Child, Shape, expected_children};

/// What a user changed on a graph, last write wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    /// Replicas set on the graph's services.
    pub replicas: BTreeMap<String, i64>,
    /// Replicas set on the scaling adapter.
    pub adapter: Option<i64>,
    /// The last restart id set.
    pub restart: Option<String>,
}

/// An object the operator may have made, as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub kind: &'static str,
    pub name: String,
    /// The controlling owner reference (kind, name).
    pub owner: Option<(String, String)>,
    pub deleting: bool,
    /// `spec.replicas` of a Deployment or an adapter.
    pub replicas: Option<i64>,
}

impl Listed {
    pub fn from_json(kind: &'static str, object: &Value) -> Listed {
        let metadata = &object["metadata"];
        let owner = metadata["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"] == true)
            .map(|r| (str(&r["kind"]).to_owned(), str(&r["name"]).to_owned()));
        Listed {
            kind,
            name: str(&metadata["name"]).to_owned(),
            owner,
            deleting: !metadata["deletionTimestamp"].is_null(),
            replicas: object["spec"]["replicas"].as_i64(),
        }
    }
}

fn str(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// How one graph stands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why it is not Ready, if it is not.
    pub not_ready: Option<String>,
    /// Expected children that do not exist (or are being deleted).
    pub missing: Vec<String>,
    /// Children owned by the graph or its components that should not exist, or exist twice.
    pub duplicates: Vec<String>,
    /// User edits that the graph, its adapter or its Deployments do not show.
    pub unreflected: Vec<String>,
}

impl Verdict {
    pub fn converged(&self) -> bool {
        self.not_ready.is_none()
            && self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.unreflected.is_empty()
    }

    /// One line for a report.
    pub fn why(&self) -> String {
        let mut parts = Vec::new();
        if let Some(reason) = &self.not_ready {
            parts.push(format!("not ready: {reason}"));
        }
        for (what, list) in [
            ("missing", &self.missing),
            ("extra", &self.duplicates),
            ("edit not reflected", &self.unreflected),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", list.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// The verdict on `graph` (as stored) of `shape`, given the user's `edits` and `owned`, the
/// listed objects whose controlling owner is this graph or one of its components.
pub fn verdict(graph: &Value, shape: Shape, edits: &Edits, owned: &[&Listed]) -> Verdict {
    let name = str(&graph["metadata"]["name"]);
    let mut verdict = Verdict {
        not_ready: not_ready(graph),
        ..Verdict::default()
    };

    let expected = expected_children(name, shape);
    let key = |c: &Child| {
        (
            c.kind,
            c.name.clone(),
            c.owner_kind.to_owned(),
            c.owner.clone(),
        )
    };
    let wanted: BTreeSet<_> = expected.iter().map(key).collect();
    let mut seen = BTreeSet::new();
    for object in owned {
        let Some((owner_kind, owner)) = &object.owner else {
            continue;
        };
        let id = (
            object.kind,
            object.name.clone(),
            owner_kind.clone(),
            owner.clone(),
        );
        if object.deleting {
            continue;
        }
        if !wanted.contains(&id) || !seen.insert(id) {
            verdict
                .duplicates
                .push(format!("{} {}", object.kind, object.name));
        }
    }
    for child in &expected {
        if !seen.contains(&key(child)) {
            verdict
                .missing
                .push(format!("{} {}", child.kind, child.name));
        }
    }

    let replicas_of = |kind: &str, name: &str| {
        owned
            .iter()
            .find(|o| o.kind == kind && o.name == name && !o.deleting)
            .and_then(|o| o.replicas)
    };
    let component = |service: &str| component_name(name, service);
    // Services nobody scaled run the replicas of the manifest (1).
    for service in shape.scalable() {
        let want = edits.replicas.get(*service).copied().unwrap_or(1);
        let stored = graph["spec"]["services"][*service]["replicas"]
            .as_i64()
            .unwrap_or(1);
        if stored != want {
            verdict
                .unreflected
                .push(format!("{service} replicas {want} stored as {stored}"));
        }
        let running = replicas_of("Deployment", &component(service));
        if running.is_some() && running != Some(want) {
            verdict.unreflected.push(format!(
                "{service} replicas {want}, Deployment has {}",
                running.unwrap_or_default()
            ));
        }
    }
    if let Some(service) = shape.adapted() {
        let want = edits.adapter.unwrap_or(1);
        let adapter = replicas_of(ADAPTER, &component(service));
        if adapter.is_some() && adapter != Some(want) {
            verdict.unreflected.push(format!(
                "adapter replicas {want} stored as {}",
                adapter.unwrap_or_default()
            ));
        }
        let running = replicas_of("Deployment", &component(service));
        if running.is_some() && running != Some(want) {
            verdict.unreflected.push(format!(
                "adapter replicas {want}, Deployment has {}",
                running.unwrap_or_default()
            ));
        }
    }
    if let Some(id) = &edits.restart {
        let restart = &graph["status"]["restart"];
        let (observed, phase) = (str(&restart["observedID"]), str(&restart["phase"]));
        if observed != id || phase != "Completed" {
            verdict.unreflected.push(format!(
                "restart {id}: observed {observed:?}, phase {phase:?}"
            ));
        }
    }
    verdict
}

/// Why the stored graph is not Ready (None when it is): `Ready` condition true, state
/// `successful`, and the status is of the current generation.
fn not_ready(graph: &Value) -> Option<String> {
    let status = &graph["status"];
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let state = str(&status["state"]);
    let generation = graph["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    match ready {
        Some(c) if c["status"] == "True" && state == "successful" => {
            if observed.is_some() && observed != generation {
                Some(format!(
                    "status of generation {observed:?}, spec is {generation:?}"
                ))
            } else {
                None
            }
        }
        Some(c) => Some(format!(
            "state {state:?}, Ready {}: {}",
            str(&c["status"]),
            str(&c["message"])
        )),
        None => Some(format!("state {state:?}, no Ready condition")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::COMPONENT;
    use serde_json::json;

    fn ready_graph(name: &str) -> Value {
        json!({
            "metadata": {"name": name, "generation": 2},
            "spec": {"services": {"VllmDecodeWorker": {"replicas": 1}}},
            "status": {"state": "successful", "observedGeneration": 2,
                       "conditions": [{"type": "Ready", "status": "True", "message": ""}]},
        })
    }

    /// The listed objects of a converged graph.
    fn converged(name: &str, shape: Shape) -> Vec<Listed> {
        expected_children(name, shape)
            .into_iter()
            .map(|c| Listed {
                kind: c.kind,
                name: c.name,
                owner: Some((c.owner_kind.to_owned(), c.owner)),
                deleting: false,
                replicas: matches!(c.kind, "Deployment" | ADAPTER).then_some(1),
            })
            .collect()
    }

    fn judge(graph: &Value, listed: &[Listed], edits: &Edits) -> Verdict {
        let owned: Vec<&Listed> = listed.iter().collect();
        verdict(graph, Shape::Aggregated, edits, &owned)
    }

    #[test]
    fn a_converged_graph_passes() {
        let listed = converged("g", Shape::Aggregated);
        let verdict = judge(&ready_graph("g"), &listed, &Edits::default());
        assert!(verdict.converged(), "{}", verdict.why());
    }

    #[test]
    fn missing_extra_and_twice_are_told_apart() {
        let mut listed = converged("g", Shape::Aggregated);
        listed.retain(|l| !(l.kind == "Service" && l.name == "g-frontend"));
        listed.push(Listed {
            kind: "Deployment",
            name: "g-frontend-2".into(),
            owner: Some((COMPONENT.into(), "g-frontend".into())),
            deleting: false,
            replicas: Some(1),
        });
        let twice = listed.iter().find(|l| l.kind == "Role").cloned().unwrap();
        listed.push(twice);
        let verdict = judge(&ready_graph("g"), &listed, &Edits::default());
        assert_eq!(verdict.missing, ["Service g-frontend"]);
        assert_eq!(
            verdict.duplicates,
            [
                "Deployment g-frontend-2",
                "Role g-k8s-service-discovery-role"
            ]
        );
        assert!(!verdict.converged());
    }

    #[test]
    fn an_object_being_deleted_is_neither_there_nor_extra() {
        let mut listed = converged("g", Shape::Aggregated);
        for l in listed.iter_mut().filter(|l| l.kind == "Deployment") {
            l.deleting = true;
        }
        let verdict = judge(&ready_graph("g"), &listed, &Edits::default());
        assert_eq!(verdict.missing.len(), 2);
        assert!(verdict.duplicates.is_empty());
    }

    #[test]
    fn edits_must_show_in_spec_and_deployment() {
        let listed = converged("g", Shape::Aggregated);
        let edits = Edits {
            replicas: BTreeMap::from([("VllmDecodeWorker".to_owned(), 3)]),
            ..Edits::default()
        };
        let verdict = judge(&ready_graph("g"), &listed, &edits);
        assert_eq!(
            verdict.unreflected,
            [
                "VllmDecodeWorker replicas 3 stored as 1",
                "VllmDecodeWorker replicas 3, Deployment has 1"
            ]
        );
        let restart = Edits {
            restart: Some("r1".into()),
            ..Edits::default()
        };
        let mut graph = ready_graph("g");
        graph["status"]["restart"] = json!({"observedID": "r1", "phase": "Restarting"});
        assert_eq!(judge(&graph, &listed, &restart).unreflected.len(), 1);
        graph["status"]["restart"]["phase"] = json!("Completed");
        assert!(judge(&graph, &listed, &restart).converged());
    }

    #[test]
    fn adapter_replicas_reach_the_deployment() {
        let mut listed = converged("g", Shape::Adapter);
        let edits = Edits {
            adapter: Some(2),
            ..Edits::default()
        };
        let owned = |listed: &[Listed]| {
            let owned: Vec<&Listed> = listed.iter().collect();
            verdict(&ready_graph("g"), Shape::Adapter, &edits, &owned)
        };
        assert_eq!(owned(&listed).unreflected.len(), 2);
        for l in listed
            .iter_mut()
            .filter(|l| l.name == "g-vllmdecodeworker" && l.replicas.is_some())
        {
            l.replicas = Some(2);
        }
        assert!(owned(&listed).converged(), "{}", owned(&listed).why());
    }

    #[test]
    fn readiness_needs_the_current_generation() {
        let listed = converged("g", Shape::Aggregated);
        let mut graph = ready_graph("g");
        graph["metadata"]["generation"] = json!(3);
        let verdict = judge(&graph, &listed, &Edits::default());
        assert!(verdict.not_ready.unwrap().contains("generation"));
        let pending = json!({"metadata": {"name": "g"}, "spec": {}, "status": {"state": "pending",
            "conditions": [{"type": "Ready", "status": "False", "message": "waiting for g-frontend"}]}});
        let verdict = judge(&pending, &listed, &Edits::default());
        assert_eq!(
            verdict.not_ready.as_deref(),
            Some("state \"pending\", Ready False: waiting for g-frontend")
        );
    }
}
