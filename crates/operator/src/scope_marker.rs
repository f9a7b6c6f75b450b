//! The namespace-scope marker a namespace-restricted operator keeps in its namespace: Lease
//! `dynamo-operator-namespace-scope`, which tells cluster-wide operators (and their webhooks)
//! to leave the namespace alone while it is live.

use std::time::Duration;

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// Why the marker could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error(
        "--namespace-scope-lease-duration and --namespace-scope-lease-renew-interval must be positive and the interval shorter than the duration"
    )]
    Timing,
    #[error(
        "namespace-scope lease not renewed {failures} times in a row (last: {last}); stopping to avoid two operators managing {namespace}"
    )]
    Lost {
        failures: u32,
        last: kube::Error,
        namespace: String,
    },
}

pub struct ScopeMarker {
    api: Api<Lease>,
    namespace: String,
    holder: String,
    duration: Duration,
    renew: Duration,
}

/// Consecutive renewal failures tolerated: floor(duration / renew) - 1, at least 1 (upstream's
/// rule), so the process stops before its marker can expire unnoticed.
pub fn max_failures(duration: Duration, renew: Duration) -> u32 {
    let rounds = (duration.as_secs_f64() / renew.as_secs_f64()).floor() as u32;
    rounds.saturating_sub(1).max(1)
}

impl ScopeMarker {
    pub fn new(
        client: Client,
        namespace: &str,
        version: &str,
        duration: Duration,
        renew: Duration,
    ) -> Result<Self, MarkerError> {
        if duration.is_zero() || renew.is_zero() || renew >= duration {
            return Err(MarkerError::Timing);
        }
        Ok(ScopeMarker {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            holder: format!("namespace-restricted-operator-{version}"),
            duration,
            renew,
        })
    }

    fn spec(&self, acquired: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            ..Default::default()
        }
    }

    /// Creates the marker or renews it.
    async fn touch(&self) -> kube::Result<()> {
        match self.api.get_opt(NAMESPACE_SCOPE_LEASE).await? {
            Some(mut lease) => {
                let acquired = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
                lease.spec = Some(self.spec(acquired));
                self.api
                    .replace(NAMESPACE_SCOPE_LEASE, &PostParams::default(), &lease)
                    .await?;
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(NAMESPACE_SCOPE_LEASE.into()),
                        ..Default::default()
                    },
                    spec: Some(self.spec(None)),
                };
                self.api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }

    /// Creates the marker, then renews it every interval. Returns only when renewals failed
    /// too often; the caller must stop.
    pub async fn keep(&self) -> MarkerError {
        let allowed = max_failures(self.duration, self.renew);
        let mut failures = 0;
        loop {
            match self.touch().await {
                Ok(()) => failures = 0,
                Err(last) => {
                    failures += 1;
                    tracing::warn!(
                        failures,
                        allowed,
                        "renewing the namespace-scope lease: {last}"
                    );
                    if failures > allowed {
                        return MarkerError::Lost {
                            failures,
                            last,
                            namespace: self.namespace.clone(),
                        };
                    }
                }
            }
            tokio::time::sleep(self.renew).await;
        }
    }

    /// Deletes the marker (clean shutdown): cluster-wide operators resume the namespace at once.
    pub async fn delete(&self) {
        let deleted = tokio::time::timeout(
            Duration::from_secs(5),
            self.api
                .delete(NAMESPACE_SCOPE_LEASE, &DeleteParams::default()),
        )
        .await;
        match deleted {
            Ok(Ok(_)) => {
                tracing::info!(namespace = %self.namespace, "deleted the namespace-scope lease")
            }
            Ok(Err(e)) => tracing::warn!("deleting the namespace-scope lease: {e}"),
            Err(_) => tracing::warn!("deleting the namespace-scope lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerated_failures_follow_the_upstream_rule() {
        let s = Duration::from_secs;
        assert_eq!(max_failures(s(30), s(10)), 2);
        assert_eq!(max_failures(s(15), s(10)), 1);
        assert_eq!(max_failures(s(60), s(10)), 5);
    }
}
