//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! The decision is a pure function of the lease, our identity and the clock
//! ([`decide`]); [`Elector`] applies it against the API with the lease's resourceVersion as
//! precondition, so two candidates can never both win the same round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

/// Timing of the election (upstream's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed within this time stops acting as leader; it is shorter
    /// than `lease_duration`, so the old leader stops before anyone else may start.
    pub renew_deadline: Duration,
    /// How often candidates and the leader look at the lease.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the lease now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it (missing, released or expired): take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a live lease until the given time.
    Follow { holder: String, until: Timestamp },
}

fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let seconds = i64::from(spec.lease_duration_seconds?);
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    since
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .ok()
}

/// The decision for `identity` about `lease` (None: no lease yet) at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => match expiry(spec) {
            Some(until) if until > now => Decision::Follow {
                holder: holder.to_owned(),
                until,
            },
            _ => Decision::Acquire,
        },
    }
}

/// The lease spec after `decision` (Acquire or Renew) by `identity` at `now`.
pub fn claimed(
    previous: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    timing: &Timing,
    now: Timestamp,
) -> LeaseSpec {
    let time = MicroTime(now);
    let acquired = *decision == Decision::Acquire;
    LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(timing.lease_duration.as_secs() as i32),
        acquire_time: if acquired {
            Some(time.clone())
        } else {
            previous
                .and_then(|p| p.acquire_time.clone())
                .or(Some(time.clone()))
        },
        renew_time: Some(time),
        lease_transitions: Some(
            previous.and_then(|p| p.lease_transitions).unwrap_or(0)
                + i32::from(acquired && previous.is_some()),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: Some(MicroTime(at(renewed))),
                lease_duration_seconds: Some(duration),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_missing_released_or_expired_lease_is_acquired() {
        assert_eq!(decide(None, "a", at(0)), Decision::Acquire);
        assert_eq!(
            decide(Some(&lease(None, 0, 15)), "a", at(1)),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&lease(Some(""), 0, 15)), "a", at(1)),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 0, 15)), "a", at(15)),
            Decision::Acquire
        );
    }

    #[test]
    fn a_live_lease_of_another_is_followed_and_ours_is_renewed() {
        assert_eq!(
            decide(Some(&lease(Some("b"), 0, 15)), "a", at(14)),
            Decision::Follow {
                holder: "b".into(),
                until: at(15)
            }
        );
        assert_eq!(
            decide(Some(&lease(Some("a"), 0, 15)), "a", at(100)),
            Decision::Renew
        );
    }

    #[test]
    fn claiming_counts_transitions_and_keeps_the_acquire_time_on_renewal() {
        let timing = Timing::default();
        let old = lease(Some("b"), 0, 15).spec.unwrap();
        let taken = claimed(Some(&old), &Decision::Acquire, "a", &timing, at(20));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(20))));
        let renewed = claimed(Some(&taken), &Decision::Renew, "a", &timing, at(30));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(30))));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}

/// Runs the election for one Lease.
pub struct Elector {
    api: kube::Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
}

/// Leadership could not be renewed before the deadline; the caller must stop writing.
#[derive(Debug, thiserror::Error)]
#[error("leader election lost: the lease was not renewed within {0:?}")]
pub struct Lost(pub Duration);

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: String,
        timing: Timing,
    ) -> Self {
        Elector {
            api: kube::Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity,
            timing,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: read the lease and claim it if the decision says so. True when we hold it
    /// afterwards. A lost race (conflict, already exists) is a plain `false`.
    async fn round(&self) -> kube::Result<bool> {
        use kube::api::{ObjectMeta, PostParams};
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref(), &self.identity, now);
        if let Decision::Follow { .. } = decision {
            return Ok(false);
        }
        let spec = claimed(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &decision,
            &self.identity,
            &self.timing,
            now,
        );
        let result = match current {
            Some(mut lease) => {
                lease.spec = Some(spec);
                // resourceVersion stays set: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&self) {
        let mut following = None;
        loop {
            match self.round().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {
                    let holder = self
                        .api
                        .get_opt(&self.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|l| l.spec?.holder_identity);
                    if holder != following {
                        tracing::info!(lease = %self.name, ?holder, "waiting for leadership");
                        following = holder;
                    }
                }
                Err(e) => tracing::warn!(lease = %self.name, "leader election: {e}"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns when no renewal succeeded within the
    /// renew deadline (the lease may soon be someone else's) or another holder took it.
    pub async fn keep(&self) -> Lost {
        let mut renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.round().await {
                Ok(true) => renewed = std::time::Instant::now(),
                Ok(false) => return Lost(self.timing.renew_deadline),
                Err(e) => tracing::warn!(lease = %self.name, "renewing leadership: {e}"),
            }
            if renewed.elapsed() >= self.timing.renew_deadline {
                return Lost(self.timing.renew_deadline);
            }
        }
    }

    /// Gives the lease up (clean shutdown), so a standby takes over at its next round.
    pub async fn release(&self) {
        use kube::api::PostParams;
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            spec.lease_duration_seconds = Some(1);
        }
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released leadership"),
            Err(e) => tracing::warn!(lease = %self.name, "releasing leadership: {e}"),
        }
    }
}

/// This process's identity in elections: the pod name (or host name) and the process id.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()))
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}_{}", std::process::id())
}
