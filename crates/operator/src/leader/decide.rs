//! The election's decisions: pure functions of the lease, our identity and the clock.

use std::time::{Duration, SystemTime};

use dynamo_common::scope::lease_expiry;

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

impl Timing {
    /// The lease's `leaseDurationSeconds`: whole seconds, rounded up, at least 1.
    pub fn lease_seconds(&self) -> i32 {
        (self.lease_duration.as_secs_f64().ceil() as i32).max(1)
    }

    /// Why these timings cannot keep one leader, if they cannot: the leader must give up
    /// (renew deadline) before its lease runs out for the others.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("--leader-election-retry-period must be positive".into());
        }
        if self.renew_deadline <= self.retry_period || self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "leader election needs retry period < renew deadline < lease duration (got {:?}, {:?}, {:?})",
                self.retry_period, self.renew_deadline, self.lease_duration
            ));
        }
        Ok(())
    }
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
    Follow { holder: String, until: SystemTime },
}

/// The decision for `identity` about `lease` (None: no lease yet) at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some((lease, spec)) = lease.and_then(|l| Some((l, l.spec.as_ref()?))) else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => match lease_expiry(lease) {
            Some(until) if until > SystemTime::from(now) => Decision::Follow {
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
        lease_duration_seconds: Some(timing.lease_seconds()),
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
                until: at(15).into()
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

    #[test]
    fn timings_must_let_the_leader_give_up_before_its_lease_runs_out() {
        let s = Duration::from_secs;
        assert_eq!(Timing::default().check(), Ok(()));
        let timing = |lease, renew, retry| Timing {
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        };
        assert!(timing(s(10), s(10), s(2)).check().is_err());
        assert!(timing(s(15), s(2), s(2)).check().is_err());
        assert!(timing(s(15), s(10), Duration::ZERO).check().is_err());
        assert_eq!(
            timing(
                Duration::from_millis(1500),
                s(1),
                Duration::from_millis(100)
            )
            .lease_seconds(),
            2
        );
        assert_eq!(
            timing(Duration::from_millis(10), s(1), s(1)).lease_seconds(),
            1
        );
    }
}
