//! What the API server's audit log says the operator did: which of its processes wrote when
//! (two processes writing in overlapping spans means two leaders; a process writing past the
//! renew deadline after its last renewal may be writing beside the next leader), and what it
//! deleted.

use std::collections::BTreeMap;
use std::io::BufRead;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The operator's user agent starts so (`dynamo-operator/<version> (<identity>)`).
const OPERATOR_AGENT: &str = "dynamo-operator/";

/// One write request of an operator process.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// When the API server received it.
    pub at: Timestamp,
    /// The process: the election identity in the user agent (`<pod>_<pid>`).
    pub process: String,
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The answer's status code.
    pub code: u16,
}

impl Write {
    /// A lease write: the election (a standby campaigns by writing the lease, the leader
    /// renews it), not the work.
    pub fn is_lease(&self) -> bool {
        self.resource == "leases"
    }
}

/// The write in one audit line, if it is a completed write by an operator process.
pub fn operator_write(line: &str) -> Option<Write> {
    // Most lines are other clients': skip them before parsing.
    if !line.contains(OPERATOR_AGENT) {
        return None;
    }
    let event: Value = serde_json::from_str(line).ok()?;
    if event["stage"] != "ResponseComplete" {
        return None;
    }
    let verb = event["verb"].as_str()?;
    if !matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) {
        return None;
    }
    let agent = event["userAgent"].as_str()?;
    let process = agent
        .strip_prefix(OPERATOR_AGENT)?
        .split_once(" (")?
        .1
        .strip_suffix(')')?;
    let object = &event["objectRef"];
    let resource = object["resource"].as_str().unwrap_or_default();
    Some(Write {
        at: event["requestReceivedTimestamp"].as_str()?.parse().ok()?,
        process: process.to_owned(),
        verb: verb.to_owned(),
        resource: resource.to_owned(),
        namespace: object["namespace"].as_str().unwrap_or_default().to_owned(),
        name: object["name"].as_str().unwrap_or_default().to_owned(),
        code: event["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
    })
}

/// Every operator write in the audit log at `path`.
pub fn operator_writes(path: &std::path::Path) -> anyhow::Result<Vec<Write>> {
    let file = std::fs::File::open(path)?;
    let mut writes = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        if let Some(write) = operator_write(&line?) {
            writes.push(write);
        }
    }
    Ok(writes)
}

/// The span in which a process wrote: its first and last write.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    pub process: String,
    pub first: Timestamp,
    pub last: Timestamp,
    pub writes: usize,
}

/// Each process's span of writes (lease writes left out), in order of their first write.
pub fn terms(writes: &[Write]) -> Vec<Term> {
    let mut by_process: BTreeMap<&str, Term> = BTreeMap::new();
    for write in writes.iter().filter(|w| !w.is_lease()) {
        let term = by_process.entry(&write.process).or_insert_with(|| Term {
            process: write.process.clone(),
            first: write.at,
            last: write.at,
            writes: 0,
        });
        term.first = term.first.min(write.at);
        term.last = term.last.max(write.at);
        term.writes += 1;
    }
    let mut terms: Vec<Term> = by_process.into_values().collect();
    terms.sort_by_key(|t| t.first);
    terms
}

/// The terms that began before an earlier one ended: each is a moment at which two operator
/// processes wrote. With one leader at a time, terms follow each other.
pub fn overlapping(terms: &[Term]) -> Vec<(&Term, &Term)> {
    let mut overlaps = Vec::new();
    let mut latest: Option<&Term> = None;
    for term in terms {
        if let Some(before) = latest
            && term.first <= before.last
        {
            overlaps.push((before, term));
        }
        if latest.is_none_or(|l| term.last > l.last) {
            latest = Some(term);
        }
    }
    overlaps
}

/// Writes (lease writes left out) a process made more than `deadline` after its last
/// successful lease write, or before any: it may no longer lead when the API server gets them.
/// `slack` allows for the time between the process's own clock check and the server's receipt.
pub fn outside_lease(
    writes: &[Write],
    deadline: std::time::Duration,
    slack: std::time::Duration,
) -> Vec<&Write> {
    let limit = k8s_openapi::jiff::SignedDuration::try_from(deadline + slack)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    let mut renewed: BTreeMap<&str, Timestamp> = BTreeMap::new();
    let mut ordered: Vec<&Write> = writes.iter().collect();
    ordered.sort_by_key(|w| w.at);
    let mut outside = Vec::new();
    for write in ordered {
        if write.is_lease() {
            if (200..300).contains(&write.code) {
                renewed.insert(&write.process, write.at);
            }
            continue;
        }
        let within = renewed
            .get(write.process.as_str())
            .is_some_and(|at| write.at.duration_since(*at) <= limit);
        if !within {
            outside.push(write);
        }
    }
    outside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(agent: &str, verb: &str, resource: &str, at: &str) -> String {
        serde_json::json!({
            "kind": "Event", "stage": "ResponseComplete", "verb": verb, "userAgent": agent,
            "objectRef": {"resource": resource, "namespace": "ns", "name": "x"},
            "requestReceivedTimestamp": at, "responseStatus": {"code": 200},
        })
        .to_string()
    }

    #[test]
    fn only_the_operators_writes_count() {
        let agent = "dynamo-operator/0.1.0 (op-7d9-abc_41)";
        let write = operator_write(&line(
            agent,
            "patch",
            "deployments",
            "2026-12-04T10:00:00.5Z",
        ))
        .unwrap();
        assert_eq!(write.process, "op-7d9-abc_41");
        assert_eq!(write.resource, "deployments");
        assert_eq!(
            operator_write(&line(agent, "get", "deployments", "2026-12-04T10:00:00Z")),
            None
        );
        let lease =
            operator_write(&line(agent, "update", "leases", "2026-12-04T10:00:00Z")).unwrap();
        assert!(lease.is_lease());
        assert_eq!(lease.code, 200);
        assert_eq!(
            operator_write(&line(
                "kubectl/v1.36",
                "patch",
                "deployments",
                "2026-12-04T10:00:00Z"
            )),
            None
        );
        let received = line(agent, "patch", "deployments", "2026-12-04T10:00:00Z")
            .replace("ResponseComplete", "ResponseStarted");
        assert_eq!(operator_write(&received), None);
    }

    fn write(process: &str, second: u32) -> Write {
        Write {
            at: format!("2026-12-04T10:00:{second:02}Z").parse().unwrap(),
            process: process.into(),
            verb: "patch".into(),
            resource: "deployments".into(),
            namespace: "ns".into(),
            name: "x".into(),
            code: 200,
        }
    }

    fn renewal(process: &str, second: u32, code: u16) -> Write {
        Write {
            resource: "leases".into(),
            verb: "update".into(),
            code,
            ..write(process, second)
        }
    }

    #[test]
    fn writes_must_follow_a_renewal_within_the_deadline() {
        use std::time::Duration;
        let writes = [
            renewal("a_1", 0, 200),
            write("a_1", 5),
            // Stopped after second 8; a failed renewal (a standby's 409) renews nothing.
            renewal("a_1", 8, 200),
            renewal("b_2", 10, 409),
            write("a_1", 19),
            // b_2 writes before it ever won.
            write("b_2", 12),
            renewal("b_2", 24, 200),
            write("b_2", 25),
        ];
        let outside = outside_lease(&writes, Duration::from_secs(10), Duration::from_millis(500));
        let seen: Vec<(&str, String)> = outside
            .iter()
            .map(|w| (w.process.as_str(), w.at.to_string()))
            .collect();
        assert_eq!(
            seen,
            [
                ("b_2", "2026-12-04T10:00:12Z".to_owned()),
                ("a_1", "2026-12-04T10:00:19Z".to_owned()),
            ]
        );
        // Lease writes never count as outside.
        assert!(outside.iter().all(|w| !w.is_lease()));
    }

    #[test]
    fn a_handover_is_not_two_leaders() {
        let writes = [
            write("a_1", 1),
            write("a_1", 5),
            write("b_2", 20),
            write("c_3", 40),
            write("b_2", 30),
        ];
        let terms = terms(&writes);
        assert_eq!(
            terms.iter().map(|t| t.process.as_str()).collect::<Vec<_>>(),
            ["a_1", "b_2", "c_3"]
        );
        assert!(overlapping(&terms).is_empty());
    }

    #[test]
    fn a_deposed_leader_writing_again_is_two_leaders() {
        // a_1 is stopped after second 5, b_2 takes over at 20, a_1 resumes and writes at 25.
        let writes = [
            write("a_1", 5),
            write("b_2", 20),
            write("a_1", 25),
            write("b_2", 30),
        ];
        let terms = terms(&writes);
        let overlaps = overlapping(&terms);
        assert_eq!(overlaps.len(), 1);
        assert_eq!(overlaps[0].0.process, "a_1");
        assert_eq!(overlaps[0].1.process, "b_2");
    }

    #[test]
    fn a_term_inside_a_longer_one_overlaps() {
        let writes = [
            write("a_1", 1),
            write("a_1", 50),
            write("b_2", 10),
            write("c_3", 60),
        ];
        assert_eq!(overlapping(&terms(&writes)).len(), 1);
    }
}
