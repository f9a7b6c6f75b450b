//! Which namespaces a program acts on.
//!
//! A namespace-restricted program acts only on its namespace. A cluster-wide one (operator
//! or webhook) acts on every namespace except those holding a live
//! `dynamo-operator-namespace-scope` Lease: a namespace-restricted operator (and its own
//! webhook) owns those. The leases are kept in memory from a watch, never fetched per object.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

/// When a namespace-scope lease stops counting, if it is live at all.
///
/// Live means `renewTime` (or, for a lease not yet renewed, `acquireTime`) plus
/// `leaseDurationSeconds` is in the future. Upstream ignores `acquireTime`, so a fresh lease
/// only counts from its first renewal; counting it at once closes that gap.
pub fn lease_expiry(lease: &Lease) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    let seconds = u64::try_from(spec.lease_duration_seconds?).ok()?;
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    let since: SystemTime = since.0.into();
    Some(since + Duration::from_secs(seconds))
}

#[derive(Clone, Debug)]
pub enum Scope {
    /// Validate only this namespace.
    Restricted(String),
    /// Validate every namespace without a live namespace-scope lease.
    ClusterWide(Arc<RwLock<HashMap<String, SystemTime>>>),
}

impl Scope {
    pub fn cluster_wide() -> Self {
        Scope::ClusterWide(Arc::default())
    }

    /// Whether an object in `namespace` is ours to act on at `now`.
    pub fn validates(&self, namespace: Option<&str>, now: SystemTime) -> bool {
        match (self, namespace) {
            (Scope::Restricted(ours), Some(namespace)) => ours == namespace,
            (Scope::Restricted(_), None) => false,
            (Scope::ClusterWide(_), None) => true,
            (Scope::ClusterWide(leases), Some(namespace)) => leases
                .read()
                .unwrap()
                .get(namespace)
                .is_none_or(|expiry| *expiry <= now),
        }
    }

    fn record(&self, lease: &Lease) {
        let Scope::ClusterWide(leases) = self else {
            return;
        };
        let Some(namespace) = lease.metadata.namespace.clone() else {
            return;
        };
        let mut leases = leases.write().unwrap();
        match lease_expiry(lease) {
            Some(expiry) => leases.insert(namespace, expiry),
            None => leases.remove(&namespace),
        };
    }

    fn forget(&self, lease: &Lease) {
        if let (Scope::ClusterWide(leases), Some(namespace)) = (self, &lease.metadata.namespace) {
            leases.write().unwrap().remove(namespace);
        }
    }

    /// Namespaces currently excluded by a live marker (cluster-wide scopes only).
    pub fn excluded(&self, now: SystemTime) -> Vec<String> {
        match self {
            Scope::Restricted(_) => Vec::new(),
            Scope::ClusterWide(leases) => {
                let mut excluded: Vec<String> = leases
                    .read()
                    .unwrap()
                    .iter()
                    .filter(|(_, expiry)| **expiry > now)
                    .map(|(namespace, _)| namespace.clone())
                    .collect();
                excluded.sort();
                excluded
            }
        }
    }

    /// Keeps the lease table current for as long as the process runs; watch errors are logged
    /// and retried with backoff, never fatal. Only cluster-wide scopes watch.
    pub async fn watch_leases(self, client: Client) -> Result<(), watcher::Error> {
        use kube::runtime::WatchStreamExt;
        if matches!(self, Scope::Restricted(_)) {
            return Ok(());
        }
        let leases: Api<Lease> = Api::all(client);
        let config =
            watcher::Config::default().fields(&format!("metadata.name={NAMESPACE_SCOPE_LEASE}"));
        let mut stream = std::pin::pin!(watcher::watcher(leases, config).default_backoff());
        let mut relisted: Vec<Lease> = Vec::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!("namespace-scope lease watch: {e}");
                    continue;
                }
            };
            match event {
                Event::Apply(lease) => self.record(&lease),
                Event::Delete(lease) => self.forget(&lease),
                Event::Init => relisted.clear(),
                Event::InitApply(lease) => relisted.push(lease),
                Event::InitDone => {
                    if let Scope::ClusterWide(table) = &self {
                        table.write().unwrap().clear();
                    }
                    relisted.drain(..).for_each(|lease| self.record(&lease));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::ObjectMeta;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn lease(
        namespace: &str,
        acquired: Option<u64>,
        renewed: Option<u64>,
        duration: Option<i32>,
    ) -> Lease {
        let time = |s: u64| MicroTime(at(s).try_into().unwrap());
        Lease {
            metadata: ObjectMeta {
                name: Some(NAMESPACE_SCOPE_LEASE.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                acquire_time: acquired.map(time),
                renew_time: renewed.map(time),
                lease_duration_seconds: duration,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_live_lease_excludes_its_namespace_until_it_expires() {
        let scope = Scope::cluster_wide();
        scope.record(&lease("team-a", Some(0), Some(10), Some(30)));
        assert!(!scope.validates(Some("team-a"), at(39)));
        assert!(
            scope.validates(Some("team-a"), at(40)),
            "expired at renew + duration"
        );
        assert!(scope.validates(Some("team-b"), at(20)));
        assert!(scope.validates(None, at(20)));
    }

    #[test]
    fn a_fresh_lease_counts_from_its_acquire_time() {
        let scope = Scope::cluster_wide();
        scope.record(&lease("team-a", Some(0), None, Some(30)));
        assert!(!scope.validates(Some("team-a"), at(5)));
    }

    #[test]
    fn leases_without_times_or_duration_and_deleted_leases_do_not_count() {
        let scope = Scope::cluster_wide();
        scope.record(&lease("no-duration", Some(0), Some(0), None));
        scope.record(&lease("no-time", None, None, Some(30)));
        assert!(scope.validates(Some("no-duration"), at(1)));
        assert!(scope.validates(Some("no-time"), at(1)));
        let live = lease("team-a", Some(0), Some(0), Some(30));
        scope.record(&live);
        scope.forget(&live);
        assert!(scope.validates(Some("team-a"), at(1)));
    }

    #[test]
    fn a_restricted_scope_validates_only_its_namespace() {
        let scope = Scope::Restricted("mine".into());
        assert!(scope.validates(Some("mine"), at(0)));
        assert!(!scope.validates(Some("other"), at(0)));
        scope.record(&lease("mine", Some(0), Some(0), Some(30)));
        assert!(
            scope.validates(Some("mine"), at(1)),
            "restricted webhooks ignore leases"
        );
    }
}
