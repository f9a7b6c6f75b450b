//! Kubernetes events (events.k8s.io/v1) about the operator's objects, published in the
//! background.
//!
//! A reconcile hands an event to a bounded queue and goes on; a few publishers drain it. When
//! the API server falls behind and the queue is full, new events are dropped with a log line
//! (as client-go's broadcaster does): events are a record, and must neither hold reconcile
//! slots nor grow memory without bound. Publishing is paced ([`Pace`]: bursts of 50, then 5 a
//! second), so that a storm of new graphs spends the API server's time on the writes that bring
//! them up rather than on the record of them, as client-go's per-object spam filter and client
//! rate limit do. An event repeated on the same object within six minutes bumps the `series`
//! of the first one instead of creating another object; what is remembered for that is a few
//! dozen bytes per event, not the event.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

/// Events waiting to be published at most; more are dropped.
const QUEUE: usize = 1024;
/// Events being published at once.
const PUBLISHERS: usize = 2;
/// Events published at once after a quiet spell.
const BURST: f64 = 50.0;
/// Events published per second, on average, beyond the burst.
const RATE: f64 = 5.0;
/// How long a repeated event is folded into the series of the first.
const SERIES_WINDOW: Duration = Duration::from_secs(360);

/// One event to publish.
#[derive(Clone, Debug)]
pub struct Note {
    pub regarding: ObjectReference,
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// The event object already published for a (regarding object, type, reason) key.
struct Published {
    name: String,
    count: i32,
    at: Instant,
}

/// The queue side, kept in the reconcile context.
pub struct Events {
    queue: mpsc::Sender<Note>,
}

/// The publishing side: drains the queue into the API.
pub struct Publisher {
    receiver: mpsc::Receiver<Note>,
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

/// A token bucket: `burst` events at once, then `rate` a second.
#[derive(Debug)]
struct Pace {
    burst: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(burst: f64, rate: f64, now: Instant) -> Self {
        Pace {
            burst,
            rate,
            tokens: burst,
            at: now,
        }
    }

    /// Reserves the next event's turn: how long to wait before publishing it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst) - 1.0;
        self.at = now.max(self.at);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// What was published recently, by key; expired entries are swept every few seconds.
struct Series {
    by_key: HashMap<u64, Published>,
    swept: Instant,
}

impl Events {
    /// The queue and its publisher; `controller` and `instance` are the events' reporting
    /// controller and instance.
    pub fn new(controller: &str, instance: Option<String>) -> (Self, Publisher) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let publisher = Publisher {
            receiver,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            series: Mutex::new(Series {
                by_key: HashMap::new(),
                swept: Instant::now(),
            }),
        };
        (Events { queue }, publisher)
    }

    /// Queues `note`; never waits.
    pub fn publish(&self, note: Note) {
        if let Err(e) = self.queue.try_send(note) {
            let note = e.into_inner();
            tracing::warn!(reason = %note.reason, object = ?note.regarding.name, "event queue full; event dropped");
        }
    }
}

impl Publisher {
    /// Publishes queued events until every sender is gone.
    pub async fn run(self, client: Client) {
        let Publisher {
            receiver,
            controller,
            instance,
            series,
        } = self;
        let publisher = &Publishing {
            controller,
            instance,
            series,
        };
        let pace = &Mutex::new(Pace::new(BURST, RATE, Instant::now()));
        let notes = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|note| (note, receiver))
        });
        notes
            .for_each_concurrent(PUBLISHERS, |note| {
                let client = client.clone();
                async move {
                    let wait = pace.lock().unwrap().reserve(Instant::now());
                    tokio::time::sleep(wait).await;
                    match publisher.send(client, &note).await {
                        Ok(()) => {}
                        Err(kube::Error::Api(status)) => {
                            tracing::warn!(reason = %note.reason, "publishing event: {}", status.message)
                        }
                        Err(e) => tracing::warn!(reason = %note.reason, "publishing event: {e}"),
                    }
                }
            })
            .await;
    }
}

/// What the publishers share while they drain the queue.
struct Publishing {
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

impl Publishing {
    async fn send(&self, client: Client, note: &Note) -> kube::Result<()> {
        let namespace = note.regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(client, namespace);
        let key = self.key(note);
        let now = Instant::now();
        let repeat = {
            let mut series = self.series.lock().unwrap();
            if now.duration_since(series.swept) > Duration::from_secs(10) {
                series
                    .by_key
                    .retain(|_, published| now.duration_since(published.at) < SERIES_WINDOW);
                series.swept = now;
            }
            series
                .by_key
                .get_mut(&key)
                .filter(|published| now.duration_since(published.at) < SERIES_WINDOW)
                .map(|published| {
                    published.count += 1;
                    published.at = now;
                    (published.name.clone(), published.count)
                })
        };
        let time = MicroTime(k8s_openapi::jiff::Timestamp::now());
        if let Some((name, count)) = repeat {
            let series = EventSeries {
                count,
                last_observed_time: time.clone(),
            };
            let patch = serde_json::json!({ "series": series });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The first event expired or was deleted: start over with a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(note, time);
        let created = api.create(&PostParams::default(), &event).await?;
        self.series.lock().unwrap().by_key.insert(
            key,
            Published {
                name: created.metadata.name.unwrap_or_default(),
                count: 1,
                at: now,
            },
        );
        Ok(())
    }

    fn key(&self, note: &Note) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let regarding = &note.regarding;
        (
            &regarding.uid,
            &regarding.kind,
            &regarding.namespace,
            &regarding.name,
            note.warning,
            &note.reason,
            &note.note,
        )
            .hash(&mut hasher);
        hasher.finish()
    }

    fn event(&self, note: &Note, time: MicroTime) -> Event {
        let time_name = time.0.as_nanosecond();
        let object = note.regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                // Named as client-go names events: the object's name and the time in hex.
                name: Some(format!("{object}.{time_name:x}")),
                namespace: note.regarding.namespace.clone(),
                ..Default::default()
            },
            action: Some(note.reason.clone()),
            reason: Some(note.reason.clone()),
            note: Some(note.note.clone()),
            type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
            regarding: Some(note.regarding.clone()),
            event_time: Some(time),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(reason: &str, text: &str) -> Note {
        Note {
            regarding: ObjectReference {
                kind: Some("DynamoGraphDeployment".into()),
                namespace: Some("team".into()),
                name: Some("graph".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            warning: false,
            reason: reason.into(),
            note: text.into(),
        }
    }

    fn publishing(instance: Option<String>) -> Publishing {
        let (_, publisher) = Events::new("dynamo-operator", instance);
        Publishing {
            controller: publisher.controller,
            instance: publisher.instance,
            series: publisher.series,
        }
    }

    #[test]
    fn a_repeat_has_the_key_of_the_first_and_other_notes_do_not() {
        let events = publishing(None);
        let first = events.key(&note("CreateDeployment", "Created Deployment a"));
        assert_eq!(
            first,
            events.key(&note("CreateDeployment", "Created Deployment a"))
        );
        assert_ne!(
            first,
            events.key(&note("CreateDeployment", "Created Deployment b"))
        );
        assert_ne!(
            first,
            events.key(&note("UpdateDeployment", "Created Deployment a"))
        );
    }

    #[test]
    fn events_name_their_object_and_reporter() {
        let events = publishing(Some("pod-1".into()));
        let event = events.event(
            &Note {
                warning: true,
                ..note("ReconcileFailed", "spec.pvcs[0]: not found")
            },
            MicroTime(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        );
        assert_eq!(event.metadata.name.as_deref(), Some("graph.0"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(event.note.as_deref(), Some("spec.pvcs[0]: not found"));
    }

    #[test]
    fn events_go_out_in_a_burst_then_at_the_rate() {
        let start = Instant::now();
        let mut pace = Pace::new(3.0, 2.0, start);
        let waits: Vec<_> = (0..5).map(|_| pace.reserve(start)).collect();
        assert_eq!(
            waits,
            [0.0, 0.0, 0.0, 0.5, 1.0].map(Duration::from_secs_f64),
            "three at once, then one every half second"
        );
        // After a quiet spell the burst is back, but no more than the burst.
        let later = start + Duration::from_secs(60);
        let waits: Vec<_> = (0..4).map(|_| pace.reserve(later)).collect();
        assert_eq!(waits, [0.0, 0.0, 0.0, 0.5].map(Duration::from_secs_f64));
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let (events, publisher) = Events::new("dynamo-operator", None);
        for i in 0..QUEUE + 10 {
            events.publish(note("CreateDeployment", &format!("n{i}")));
        }
        let mut receiver = publisher.receiver;
        let mut queued = 0;
        while receiver.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE);
    }
}
