//! Declarative writes of owned children: server-side apply under one field manager, skipped
//! when the live object already holds every field we want, so a converged reconcile writes
//! nothing.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::progress::{Decision, ProgressClock};

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "dynamo-operator";

pub use dynamo_common::json::contains;

/// Applies children and counts the writes it makes (`dynamo_operator_api_writes_total`).
#[derive(Debug, Default)]
pub struct Applier {
    writes: Counter,
    /// When each object's status was last written (see [`Applier::write_progress`]).
    progress: Mutex<ProgressClock>,
}

/// What [`Applier::write_progress`] did.
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
    pub fn new(writes: Counter) -> Self {
        Applier {
            writes,
            progress: Mutex::default(),
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
        if let Some(live) = live {
            let live_value = serde_json::to_value(live).map_err(kube::Error::SerdeError)?;
            if contains(&live_value, &desired_value) {
                return Ok((live.clone(), Change::Unchanged));
            }
        }
        let name = desired.name_any();
        let kind = desired_value["kind"].as_str().unwrap_or_default();
        tracing::info!(%kind, %name, created = live.is_none(), "applying");
        self.writes.inc();
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired_value),
            )
            .await?;
        let change = if live.is_some() {
            Change::Updated
        } else {
            Change::Created
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
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// [`Applier::write_status`] for a reconcile's regular status: an urgent change (see
    /// [`crate::progress`]) is written now; a progress-only one waits until the object's last
    /// status write is [`crate::progress::PROGRESS_WINDOW`] old. `key` names the object (its
    /// uid).
    pub async fn write_progress<K, S>(
        &self,
        api: &Api<K>,
        key: &str,
        name: &str,
        current: Option<&S>,
        status: &S,
    ) -> kube::Result<StatusWrite>
    where
        K: Resource + DeserializeOwned + Clone + Debug,
        S: Serialize + PartialEq,
    {
        if current == Some(status) {
            return Ok(StatusWrite::Unchanged);
        }
        let value = |s: &S| serde_json::to_value(s).map_err(kube::Error::SerdeError);
        let cached = current.map(value).transpose()?;
        let new = value(status)?;
        let now = Instant::now();
        let decision = self
            .progress
            .lock()
            .unwrap()
            .decide(key, cached.as_ref(), &new, now);
        match decision {
            Decision::AlreadyWritten => return Ok(StatusWrite::Unchanged),
            Decision::Wait(wait) => return Ok(StatusWrite::Deferred(wait)),
            Decision::Write => {}
        }
        self.write_status(api, name, current, status).await?;
        self.progress.lock().unwrap().record(key, &new, now);
        Ok(StatusWrite::Written)
    }

    /// Merge-patches the status subresource when `status` differs from `current`.
    pub async fn write_status<K, S>(
        &self,
        api: &Api<K>,
        name: &str,
        current: Option<&S>,
        status: &S,
    ) -> kube::Result<bool>
    where
        K: Resource + DeserializeOwned + Clone + Debug,
        S: Serialize + PartialEq,
    {
        if current == Some(status) {
            return Ok(false);
        }
        tracing::info!(%name, "writing status");
        self.writes.inc();
        let patch = serde_json::json!({ "status": status });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(true)
    }
}

/// Whether `child` has a controller owner reference to the object with `owner_uid`.
pub fn owned_by<K: Resource>(child: &K, owner_uid: &str) -> bool {
    child
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}
