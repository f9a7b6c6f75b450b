//! Which status changes are written at once and which may wait: a status write carries
//! information a user reads, but a rollout changes replica counts and the reason a component
//! is not yet available (pod pending, container creating, not ready) several times a second.
//! What a user must see at once (the state, a condition turning true or false, a condition
//! appearing, the observed generation, the pod selector, a restart's progress) is urgent;
//! counts, reasons and messages are progress, written at most once per [`PROGRESS_WINDOW`]
//! per object ([`AGGREGATE_WINDOW`] for a graph, whose status sums up its components'), the
//! latest values winning (`kubectl get dgd -w` still shows them change). A component's first
//! status may wait one window: if it is available by then, that is its only write. A graph's
//! progress also waits [`AGGREGATE_SETTLE`] from its first change, so its components' changes
//! in a burst are one write (none, when the graph is ready by then). While the API client is
//! saturated (every request slot taken), a graph's progress waits [`BUSY_AGGREGATE_WINDOW`]:
//! a write that only reports progress yields to the writes that make it.
//! Every status write, paced or not, goes through one memory of what was written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// At most one progress-only status write per object within this window.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(5);

/// The window of a status that sums up other objects' ([`Pace::Aggregate`]): a graph's counts
/// and reasons change whenever any of its components' do.
pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(10);

/// How long a graph's progress waits from its first unwritten change, for the changes of its
/// other components.
pub const AGGREGATE_SETTLE: Duration = Duration::from_secs(10);

/// [`AGGREGATE_WINDOW`] while the API client is saturated.
pub const BUSY_AGGREGATE_WINDOW: Duration = Duration::from_secs(60);

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

/// How long a written status is what a new one is compared with (not the cache): longer than
/// a watch cache takes to show it.
pub const MEMORY: Duration = Duration::from_secs(15);

/// How long a write's time is kept for pacing the next one (the longest window), and a waiting
/// change's.
const KEEP: Duration = BUSY_AGGREGATE_WINDOW;

/// A status as written, for comparing: `lastTransitionTime` aside (a reconcile that read a
/// stale cache stamps a new one on an unchanged condition).
fn fingerprint(status: &Value) -> u64 {
    let mut status = status.clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        if let Some(condition) = condition.as_object_mut() {
            condition.remove("lastTransitionTime");
        }
    }
    hash_json(&status)
}

/// A hash of a JSON value's text, to compare what was written with what is wanted.
pub fn hash_json(value: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&value.to_string(), &mut hasher);
    std::hash::Hasher::finish(&hasher)
}

/// One object's last status write.
#[derive(Debug)]
struct Written {
    at: Instant,
    fingerprint: u64,
    /// A hash of its [`urgent_part`].
    urgent: u64,
}

/// How a status write may be paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// A verdict (a failure, a model's or adapter's status): written now.
    Now,
    /// A reconcile's regular status: urgent changes now, progress once per window.
    Progress,
    /// As [`Pace::Progress`], for a status summing up other objects': progress once per
    /// [`AGGREGATE_WINDOW`].
    Aggregate,
    /// As [`Pace::Progress`], and the object's first status waits a window unless it is
    /// settled by then (every condition true): a fresh component that is available within
    /// seconds gets one status write, not a pending one and then a ready one.
    SettleFirst,
}

impl Pace {
    /// The least time between progress writes; `busy`: the API client is saturated.
    fn window(self, busy: bool) -> Duration {
        match self {
            Pace::Aggregate if busy => BUSY_AGGREGATE_WINDOW,
            Pace::Aggregate => AGGREGATE_WINDOW,
            _ => PROGRESS_WINDOW,
        }
    }

    /// How long progress waits from its first unwritten change.
    fn settle(self) -> Duration {
        match self {
            Pace::Aggregate => AGGREGATE_SETTLE,
            _ => Duration::ZERO,
        }
    }
}

/// Whether every condition of `status` holds (there is at least one).
fn settled(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["status"] == "True"))
}

/// What to do with a computed status that differs from the cached one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write: the cache holds it, or it was written a moment ago and the cache has
    /// not caught up yet.
    Unchanged,
    Write,
    /// Progress only: write after this long.
    Wait(Duration),
}

/// The last status write of each object that changed recently: spaces progress-only writes,
/// and keeps a reconcile that read a stale cache from writing the same status again.
#[derive(Debug, Default)]
pub struct ProgressClock {
    written: HashMap<String, Written>,
    /// Objects whose change waits to settle (a first status, [`Pace::SettleFirst`]; a graph's
    /// progress, [`Pace::Aggregate`]), since when.
    waiting: HashMap<String, Instant>,
    /// Size at which the maps are next pruned of what they no longer need.
    prune_at: usize,
}

/// The smallest size at which the clock prunes its maps.
const PRUNE_AT: usize = 1024;

impl ProgressClock {
    /// Whether to write `new` for object `key` at `now`, the cache holding `cached`; `busy`:
    /// the API client is saturated.
    pub fn decide(
        &mut self,
        key: &str,
        cached: Option<&Value>,
        new: &Value,
        now: Instant,
        pace: Pace,
        busy: bool,
    ) -> Decision {
        let last = self.written.get(key);
        let recent = last.filter(|w| now.duration_since(w.at) < MEMORY);
        let unchanged = match recent {
            Some(written) => written.fingerprint == fingerprint(new),
            // What the cache holds is the truth only when nothing was written since.
            None => cached == Some(new),
        };
        if unchanged {
            self.waiting.remove(key);
            return Decision::Unchanged;
        }
        if pace == Pace::Now {
            return Decision::Write;
        }
        if pace == Pace::SettleFirst && cached.is_none() && recent.is_none() && !settled(new) {
            return self.settle(key, now, PROGRESS_WINDOW, None);
        }
        let urgent = match recent {
            Some(written) => written.urgent != hash_json(&urgent_part(new)),
            None => urgent_change(cached, new),
        };
        if urgent {
            return Decision::Write;
        }
        let window_over = last.map(|w| w.at + pace.window(busy));
        self.settle(key, now, pace.settle(), window_over)
    }

    /// Write once the change of `key` has waited `settle` since it was first seen, and not
    /// before `not_before`.
    fn settle(
        &mut self,
        key: &str,
        now: Instant,
        settle: Duration,
        not_before: Option<Instant>,
    ) -> Decision {
        let mut due = not_before;
        if !settle.is_zero() {
            self.prune(now);
            let since = *self.waiting.entry(key.to_owned()).or_insert(now);
            due = due.max(Some(since + settle));
        }
        match due.and_then(|due| due.checked_duration_since(now)) {
            Some(wait) if !wait.is_zero() => Decision::Wait(wait),
            _ => Decision::Write,
        }
    }

    /// Records that `status` of `key` was written at `now`; forgets objects written long
    /// ago, so the clock holds only objects that are changing.
    pub fn record(&mut self, key: &str, status: &Value, now: Instant) {
        self.prune(now);
        self.waiting.remove(key);
        let written = Written {
            at: now,
            fingerprint: fingerprint(status),
            urgent: hash_json(&urgent_part(status)),
        };
        self.written.insert(key.to_owned(), written);
    }

    /// Forgets writes and waiting changes older than [`KEEP`] (a waiting one is long due: its
    /// object was deleted meanwhile) once a map reaches the pruning size, which then doubles
    /// from what is left: amortized constant work per call.
    fn prune(&mut self, now: Instant) {
        if self.written.len().max(self.waiting.len()) < self.prune_at.max(PRUNE_AT) {
            return;
        }
        self.written.retain(|_, w| now.duration_since(w.at) < KEEP);
        self.waiting
            .retain(|_, since| now.duration_since(*since) < KEEP);
        self.prune_at = 2 * self.written.len().max(self.waiting.len());
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
        assert_eq!(
            clock.decide("a", None, &pending(0), start, Pace::Progress, false),
            Decision::Write
        );
        clock.record("a", &pending(0), start);
        let half = start + PROGRESS_WINDOW / 2;
        assert_eq!(
            clock.decide("a", None, &pending(1), half, Pace::Progress, false),
            Decision::Wait(PROGRESS_WINDOW / 2),
            "a count changed: progress, even though the stale cache has no status"
        );
        assert_eq!(
            clock.decide("a", None, &available, half, Pace::Progress, false),
            Decision::Write
        );
        assert_eq!(
            clock.decide("b", None, &pending(1), half, Pace::Progress, false),
            Decision::Write
        );
        assert_eq!(
            clock.decide(
                "a",
                None,
                &pending(1),
                start + PROGRESS_WINDOW,
                Pace::Progress,
                false
            ),
            Decision::Write
        );
    }

    /// A pending graph waiting for the services `waiting`.
    fn pending(waiting: &str) -> Value {
        json!({"state": "pending",
               "conditions": [condition("Ready", "False", "NotReady", waiting)]})
    }

    /// A successful graph.
    fn done() -> Value {
        json!({"state": "successful", "conditions": [condition("Ready", "True", "AllReady", "")]})
    }

    #[test]
    fn a_graphs_progress_settles_then_is_written_at_most_once_per_window() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        clock.record("g", &pending("a, b"), start);
        let mut decide = |status: &Value, at: Instant, pace: Pace| {
            clock.decide("g", Some(&pending("a, b")), status, at, pace, false)
        };
        let early = start + PROGRESS_WINDOW;
        assert_eq!(
            decide(&pending("b"), early, Pace::Aggregate),
            Decision::Wait(
                AGGREGATE_WINDOW.max(PROGRESS_WINDOW + AGGREGATE_SETTLE) - PROGRESS_WINDOW
            ),
            "settling, and within the window"
        );
        assert_eq!(
            decide(&pending("b"), early, Pace::Progress),
            Decision::Write,
            "a component's progress: its window is over, no settling"
        );
        assert_eq!(
            decide(&done(), early, Pace::Aggregate),
            Decision::Write,
            "a state change is written at once"
        );
        let second = Duration::from_secs(1);
        assert_eq!(
            decide(&pending(""), early + 4 * second, Pace::Aggregate),
            Decision::Wait(AGGREGATE_SETTLE - 4 * second),
            "another component's change settles with the first (one write for the burst)"
        );
        assert_eq!(
            decide(&pending(""), early + AGGREGATE_SETTLE, Pace::Aggregate),
            Decision::Write
        );
        assert_eq!(
            decide(&pending("a, b"), early + AGGREGATE_SETTLE, Pace::Aggregate),
            Decision::Unchanged,
            "back to what the cache shows: nothing waits any more"
        );
        let again = early + 2 * AGGREGATE_SETTLE;
        assert_eq!(
            decide(&pending("a"), again, Pace::Aggregate),
            Decision::Wait(AGGREGATE_SETTLE),
            "a new change settles from when it was seen"
        );
    }

    #[test]
    fn while_the_client_is_saturated_a_graphs_progress_waits_the_busy_window() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        clock.record("g", &pending("a, b"), start);
        let progress = pending("b");
        let mut decide = |status: &Value, at: Instant, busy: bool| {
            clock.decide(
                "g",
                Some(&pending("a, b")),
                status,
                at,
                Pace::Aggregate,
                busy,
            )
        };
        // Seen first when the usual window is over.
        let seen = start + AGGREGATE_WINDOW;
        assert_eq!(
            decide(&progress, seen, true),
            Decision::Wait(BUSY_AGGREGATE_WINDOW - AGGREGATE_WINDOW),
            "busy: progress waits, though the cache shows the old status (memory over)"
        );
        assert_eq!(
            decide(&progress, seen + AGGREGATE_SETTLE, false),
            Decision::Write,
            "no longer busy: settled, and the usual window is over"
        );
        assert_eq!(
            decide(&done(), seen, true),
            Decision::Write,
            "busy or not, a state change is written at once"
        );
        assert_eq!(
            decide(&progress, start + BUSY_AGGREGATE_WINDOW, true),
            Decision::Write,
            "the busy window bounds the wait"
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
            clock.decide("a", None, &again, soon, Pace::Progress, false),
            Decision::Unchanged
        );
        // Long after, the cache is the truth again.
        assert_eq!(
            clock.decide("a", None, &again, start + MEMORY, Pace::Progress, false),
            Decision::Write
        );
    }

    #[test]
    fn a_first_status_waits_a_window_unless_it_is_settled() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        let pending = json!({"conditions": [condition("Available", "False", "NotReady", "")]});
        let available = json!({"conditions": [condition("Available", "True", "Ready", "")]});
        let mut decide = |key: &str, cached: Option<&Value>, new: &Value, at: Instant| {
            clock.decide(key, cached, new, at, Pace::SettleFirst, false)
        };
        assert_eq!(
            decide("a", None, &pending, start),
            Decision::Wait(PROGRESS_WINDOW)
        );
        let later = start + Duration::from_secs(2);
        assert_eq!(
            decide("a", None, &pending, later),
            Decision::Wait(PROGRESS_WINDOW - Duration::from_secs(2)),
            "the wait counts from the first look, not the latest"
        );
        assert_eq!(decide("a", None, &available, later), Decision::Write);
        assert_eq!(
            decide("a", None, &pending, start + PROGRESS_WINDOW),
            Decision::Write,
            "still not settled after a window: the pending status is written"
        );
        assert_eq!(
            decide("b", Some(&pending), &available, start),
            Decision::Write
        );
        assert_eq!(
            decide("c", Some(&available), &pending, start),
            Decision::Write,
            "only the first status waits"
        );
        let failed = json!({"conditions": [condition("Available", "False", "Refused", "x")]});
        assert_eq!(
            clock.decide("d", None, &failed, start, Pace::Now, false),
            Decision::Write
        );
    }

    #[test]
    fn a_verdict_is_written_now_but_not_twice() {
        let mut clock = ProgressClock::default();
        let start = Instant::now();
        let failed = |message: &str| {
            json!({"state": "failed",
                   "conditions": [condition("Ready", "False", "ReconcileFailed", message)]})
        };
        clock.record("g", &failed("a"), start);
        let soon = start + Duration::from_secs(1);
        assert_eq!(
            clock.decide("g", None, &failed("a"), soon, Pace::Now, false),
            Decision::Unchanged
        );
        assert_eq!(
            clock.decide(
                "g",
                Some(&failed("a")),
                &failed("b"),
                soon,
                Pace::Now,
                false
            ),
            Decision::Write,
            "a verdict's message is not progress"
        );
        // The failure was written; the cache still shows the status before it, equal to the one
        // computed now: that one must be written again, or the failure would stay.
        let pending = json!({"state": "pending",
                             "conditions": [condition("Ready", "False", "NotReady", "")]});
        assert_eq!(
            clock.decide("g", Some(&pending), &pending, soon, Pace::Progress, false),
            Decision::Write
        );
    }

    #[test]
    fn the_clock_forgets_objects_written_long_ago() {
        let start = Instant::now();
        let status = json!({});
        let full = || {
            let mut clock = ProgressClock::default();
            for i in 0..PRUNE_AT {
                clock.record(&i.to_string(), &status, start);
            }
            clock
        };
        let mut clock = full();
        clock.record("late", &status, start + MEMORY);
        assert_eq!(
            clock.written.len(),
            PRUNE_AT + 1,
            "kept to pace a busy window"
        );
        let mut clock = full();
        clock.record("late", &status, start + KEEP);
        assert_eq!(clock.written.len(), 1);
    }
}
