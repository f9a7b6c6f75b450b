//! Which status changes are written at once and which may wait: a status write carries
//! information a user reads, but a rollout changes replica counts and the reason a component
//! is not yet available (pod pending, container creating, not ready) several times a second.
//! What a user must see at once (the state, a condition turning true or false, a condition
//! appearing, the observed generation, the pod selector, a restart's progress) is urgent;
//! counts, reasons and messages are progress, written at most once per [`PROGRESS_WINDOW`]
//! per object, the latest values winning (`kubectl get dgd -w` still shows them change).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// At most one progress-only status write per object within this window.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(5);

/// The part of a status (as JSON) whose change is urgent.
fn urgent_part(status: &Value) -> Value {
    let mut conditions: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"]]))
        .collect();
    conditions.sort_by_key(|c| c.to_string());
    json!({
        "state": status["state"],
        "observedGeneration": status["observedGeneration"],
        "podSelector": status["podSelector"],
        "restart": status["restart"],
        "conditions": conditions,
    })
}

/// Whether going from `old` to `new` must be written at once (no status yet counts).
pub fn urgent_change(old: Option<&Value>, new: &Value) -> bool {
    old.is_none_or(|old| urgent_part(old) != urgent_part(new))
}

/// How long a written status is remembered: longer than a watch cache takes to show it.
const MEMORY: Duration = Duration::from_secs(10);

/// A status as written, for comparing: `lastTransitionTime` aside (a reconcile that read a
/// stale cache stamps a new one on an unchanged condition).
fn fingerprint(status: &Value) -> u64 {
    let mut status = status.clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        if let Some(condition) = condition.as_object_mut() {
            condition.remove("lastTransitionTime");
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&status.to_string(), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// One object's last status write.
#[derive(Debug)]
struct Written {
    at: Instant,
    fingerprint: u64,
    urgent: Value,
}

/// What to do with a computed status that differs from the cached one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Written a moment ago; the cache has not caught up yet.
    AlreadyWritten,
    Write,
    /// Progress only: write after this long.
    Wait(Duration),
}

/// The last status write of each object that changed recently: spaces progress-only writes,
/// and keeps a reconcile that read a stale cache from writing the same status again.
#[derive(Debug, Default)]
pub struct ProgressClock {
    written: HashMap<String, Written>,
}

impl ProgressClock {
    /// Whether to write `new` for object `key` at `now`, the cache holding `cached`.
    pub fn decide(&self, key: &str, cached: Option<&Value>, new: &Value, now: Instant) -> Decision {
        let recent = self
            .written
            .get(key)
            .filter(|w| now.duration_since(w.at) < MEMORY);
        if recent.is_some_and(|w| w.fingerprint == fingerprint(new)) {
            return Decision::AlreadyWritten;
        }
        let urgent = match recent {
            Some(written) => written.urgent != urgent_part(new),
            None => urgent_change(cached, new),
        };
        match recent.map(|w| w.at + PROGRESS_WINDOW) {
            Some(due) if !urgent && due > now => Decision::Wait(due - now),
            _ => Decision::Write,
        }
    }

    /// Records that `status` of `key` was written at `now`; forgets objects written long
    /// ago, so the clock holds only objects that are changing.
    pub fn record(&mut self, key: &str, status: &Value, now: Instant) {
        if self.written.len() >= 1024 {
            self.written
                .retain(|_, w| now.duration_since(w.at) < MEMORY);
        }
        let written = Written {
            at: now,
            fingerprint: fingerprint(status),
            urgent: urgent_part(status),
        };
        self.written.insert(key.to_owned(), written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn urgent_changes_are_what_a_user_must_see_at_once() {
        let base = json!({
            "state": "pending",
            "observedGeneration": 1,
            "conditions": [condition("Ready", "False", "NotReady", "waiting for 3 services")],
            "services": {"Frontend": {"replicas": 1, "readyReplicas": 0}},
        });
        let with = |path: &str, value: Value| {
            let mut v = base.clone();
            v[path] = value;
            v
        };
        let cases = [
            ("no status yet", None, base.clone(), true),
            ("same", Some(base.clone()), base.clone(), false),
            (
                "state",
                Some(base.clone()),
                with("state", json!("successful")),
                true,
            ),
            (
                "generation",
                Some(base.clone()),
                with("observedGeneration", json!(2)),
                true,
            ),
            (
                "condition status",
                Some(base.clone()),
                with(
                    "conditions",
                    json!([condition("Ready", "True", "NotReady", "x")]),
                ),
                true,
            ),
            (
                "reason while still not ready",
                Some(base.clone()),
                with(
                    "conditions",
                    json!([condition(
                        "Ready",
                        "False",
                        "Unschedulable",
                        "waiting for 3 services"
                    )]),
                ),
                false,
            ),
            (
                "a new condition",
                Some(base.clone()),
                with(
                    "conditions",
                    json!([
                        condition("Ready", "False", "NotReady", "waiting for 3 services"),
                        condition("Available", "False", "NotReady", "")
                    ]),
                ),
                true,
            ),
            (
                "restart progress",
                Some(base.clone()),
                with("restart", json!({"phase": "Restarting"})),
                true,
            ),
            (
                "message only",
                Some(base.clone()),
                with(
                    "conditions",
                    json!([condition(
                        "Ready",
                        "False",
                        "NotReady",
                        "waiting for 2 services"
                    )]),
                ),
                false,
            ),
            (
                "counts only",
                Some(base.clone()),
                with(
                    "services",
                    json!({"Frontend": {"replicas": 1, "readyReplicas": 1}}),
                ),
                false,
            ),
        ];
        for (what, old, new, expected) in cases {
            assert_eq!(urgent_change(old.as_ref(), &new), expected, "{what}");
        }
    }

    #[test]
    fn progress_waits_for_the_window_after_the_last_write() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        let pending = |ready: i64| {
            json!({"conditions": [condition("Available", "False", "NotReady", "")],
                   "service": {"readyReplicas": ready}})
        };
        let available = json!({"conditions": [condition("Available", "True", "Ready", "")]});
        assert_eq!(clock.decide("a", None, &pending(0), start), Decision::Write);
        clock.record("a", &pending(0), start);
        let half = start + PROGRESS_WINDOW / 2;
        assert_eq!(
            clock.decide("a", None, &pending(1), half),
            Decision::Wait(PROGRESS_WINDOW / 2),
            "a count changed: progress, even though the stale cache has no status"
        );
        assert_eq!(clock.decide("a", None, &available, half), Decision::Write);
        assert_eq!(clock.decide("b", None, &pending(1), half), Decision::Write);
        assert_eq!(
            clock.decide("a", None, &pending(1), start + PROGRESS_WINDOW),
            Decision::Write
        );
    }

    #[test]
    fn a_status_written_a_moment_ago_is_not_written_again() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        let written = json!({"conditions": [condition("Available", "True", "Ready", "")]});
        clock.record("a", &written, start);
        // Read from a stale cache: same verdict, a new transition time.
        let mut again = written.clone();
        again["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:00:09Z");
        let soon = start + Duration::from_millis(300);
        assert_eq!(
            clock.decide("a", None, &again, soon),
            Decision::AlreadyWritten
        );
        // Long after, the cache is the truth again.
        assert_eq!(
            clock.decide("a", None, &again, start + MEMORY),
            Decision::Write
        );
    }

    #[test]
    fn the_clock_forgets_objects_written_long_ago() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        let status = json!({});
        for i in 0..1024 {
            clock.record(&i.to_string(), &status, start);
        }
        clock.record("late", &status, start + MEMORY);
        assert_eq!(clock.written.len(), 1);
    }
}
