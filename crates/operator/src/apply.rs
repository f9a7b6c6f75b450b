//! Declarative writes of owned children: server-side apply under one field manager, skipped
//! when the live object already holds every field we want, so a converged reconcile writes
//! nothing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::client::Slots;
pub use crate::progress::Pace;
use crate::progress::{Decision, MEMORY, ProgressClock, hash_json};

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "dynamo-operator";

pub use dynamo_common::json::contains;

/// Applies children and counts the writes it makes (`dynamo_operator_api_writes_total`).
#[derive(Debug)]
pub struct Applier {
    writes: Counter,
    /// The client's request slots: all taken, progress-only status writes wait longer.
    slots: Slots,
    /// When each object's status was last written (see [`Applier::write_status`]).
    progress: Mutex<ProgressClock>,
    /// Children created a moment ago that the watch cache may not show yet.
    created: Mutex<RecentCreates>,
}

/// Objects this process created a moment ago (by kind, namespace and name, with a hash of
/// what was applied), until the watch cache shows them: a reconcile that runs first (another
/// child's event woke it) must not apply the same object again. An entry ends when the cache
/// shows the object, so one deleted later is re-created, or after [`MEMORY`].
#[derive(Debug, Default)]
struct RecentCreates {
    by_key: HashMap<String, (Instant, u64)>,
    prune_at: usize,
}

impl RecentCreates {
    /// Whether `desired` (hashed) was created under `key` within [`MEMORY`] of `now`.
    fn holds(&self, key: &str, desired: u64, now: Instant) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|(at, hash)| *hash == desired && now.duration_since(*at) < MEMORY)
    }

    fn record(&mut self, key: String, desired: u64, now: Instant) {
        if self.by_key.len() >= self.prune_at.max(1024) {
            self.by_key
                .retain(|_, (at, _)| now.duration_since(*at) < MEMORY);
            self.prune_at = 2 * self.by_key.len();
        }
        self.by_key.insert(key, (now, desired));
    }

    fn seen(&mut self, key: &str) {
        self.by_key.remove(key);
    }
}

/// What [`Applier::write_status`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    Unchanged,
    Written,
    /// A progress-only change within the window: reconcile again after this long.
    Deferred(Duration),
}

/// What `ensure` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Created,
    Updated,
}

impl Applier {
    pub fn new(writes: Counter, slots: Slots) -> Self {
        Applier {
            writes,
            slots,
            progress: Mutex::default(),
            created: Mutex::default(),
        }
    }

    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Counts a write made outside `ensure`/`delete`/`write_status`.
    pub fn count_write(&self) {
        self.writes.inc();
    }

    /// Makes the object named like `desired` hold `desired`'s fields. `live` is the current
    /// object, if known; when it already contains everything, nothing is written.
    pub async fn ensure<K>(
        &self,
        api: &Api<K>,
        desired: &K,
        live: Option<&K>,
    ) -> kube::Result<(K, Change)>
    where
        K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    {
        let desired_value = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
        let name = desired.name_any();
        let kind = desired_value["kind"].as_str().unwrap_or_default();
        let key = format!("{kind}/{}/{name}", desired.namespace().unwrap_or_default());
        let now = Instant::now();
        // Hashed only for objects the cache does not show (a converged reconcile skips it).
        let hash = live.is_none().then(|| hash_json(&desired_value));
        if let Some(live) = live {
            self.created.lock().unwrap().seen(&key);
            let live_value = serde_json::to_value(live).map_err(kube::Error::SerdeError)?;
            if contains(&live_value, &desired_value) {
                return Ok((live.clone(), Change::Unchanged));
            }
        } else if let Some(hash) = hash
            && self.created.lock().unwrap().holds(&key, hash, now)
        {
            // Created a moment ago; the cache has not caught up. What was applied stands in.
            return Ok((desired.clone(), Change::Unchanged));
        }
        tracing::info!(%kind, %name, created = live.is_none(), "applying");
        self.writes.inc();
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired_value),
            )
            .await?;
        let change = match hash {
            None => Change::Updated,
            Some(hash) => {
                self.created.lock().unwrap().record(key, hash, now);
                Change::Created
            }
        };
        Ok((applied, change))
    }

    /// Deletes `object` (foreground is not needed: its own children carry owner references).
    pub async fn delete<K>(&self, api: &Api<K>, object: &K) -> kube::Result<()>
    where
        K: Resource + DeserializeOwned + Clone + Debug,
    {
        self.writes.inc();
        let params = DeleteParams {
            preconditions: object.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&object.name_any(), &params).await {
            Ok(_) => Ok(()),
            // Gone already; or (409, the uid precondition failed) gone and made anew under the
            // same name, by this operator from a newer view than the cache's.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Merge-patches the status subresource of `object` with `status` when it differs from
    /// `current` (the cached status), paced as [`crate::progress`] says: every status write
    /// goes through one memory of what was written, so a reconcile that read a stale cache
    /// neither writes the same status twice nor leaves a newer one unwritten.
    pub async fn write_status<K, S>(
        &self,
        api: &Api<K>,
        object: &K,
        current: Option<&S>,
        status: &S,
        pace: Pace,
    ) -> kube::Result<StatusWrite>
    where
        K: Resource + DeserializeOwned + Clone + Debug,
        K::DynamicType: Default,
        S: Serialize,
    {
        let value = |s: &S| serde_json::to_value(s).map_err(kube::Error::SerdeError);
        let cached = current.map(value).transpose()?;
        let new = value(status)?;
        let key = object.uid().unwrap_or_else(|| object.name_any());
        let now = Instant::now();
        let decision = self.progress.lock().unwrap().decide(
            &key,
            cached.as_ref(),
            &new,
            now,
            pace,
            self.slots.saturated(),
        );
        match decision {
            Decision::Unchanged => return Ok(StatusWrite::Unchanged),
            Decision::Wait(wait) => return Ok(StatusWrite::Deferred(wait)),
            Decision::Write => {}
        }
        let name = object.name_any();
        tracing::info!(kind = %K::kind(&Default::default()), %name, "writing status");
        tracing::debug!(%name, status = %new, "status written");
        self.writes.inc();
        let patch = serde_json::json!({ "status": new });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.progress.lock().unwrap().record(&key, &new, now);
        Ok(StatusWrite::Written)
    }
}

/// Whether `child` has a controller owner reference to the object with `owner_uid`.
pub fn owned_by<K: Resource>(child: &K, owner_uid: &str) -> bool {
    child
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_created_a_moment_ago_is_not_applied_again_until_the_cache_shows_it() {
        let mut created = RecentCreates::default();
        let start = Instant::now();
        created.record("Service/team/g-frontend".into(), 1, start);
        let soon = start + Duration::from_secs(1);
        assert!(created.holds("Service/team/g-frontend", 1, soon));
        assert!(
            !created.holds("Service/team/g-frontend", 2, soon),
            "a different desired object is applied"
        );
        assert!(!created.holds("Service/team/g-decode", 1, soon));
        assert!(
            !created.holds("Service/team/g-frontend", 1, start + MEMORY),
            "the cache is the truth again after a while"
        );
        created.seen("Service/team/g-frontend");
        assert!(
            !created.holds("Service/team/g-frontend", 1, soon),
            "once the cache showed it, a missing object was deleted: create it again"
        );
    }
}
