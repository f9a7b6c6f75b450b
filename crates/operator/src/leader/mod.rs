//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! The decision is a pure function of the lease, our identity and the clock
//! ([`decide`](decide::decide)); [`Elector`] applies it against the API with the lease's
//! resourceVersion as precondition, so two candidates can never both win the same round.
//! Every request is bounded in time: a renewal gets what is left of the renew deadline, so a
//! request that hangs (kube sets no read timeout) can never keep a deposed leader reconciling.

mod decide;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

pub use decide::{Decision, Timing, claimed, decide};

use crate::client::WriteFence;

/// Runs the election for one Lease.
pub struct Elector {
    api: kube::Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// Opened to the renew deadline after each won round, closed when leadership is lost.
    fence: WriteFence,
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
        fence: WriteFence,
    ) -> Self {
        Elector {
            api: kube::Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity,
            timing,
            fence,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: read the lease and claim it if the decision says so. True when we hold it
    /// afterwards. A lost race (conflict, already exists) is a plain `false`.
    async fn round(&self) -> kube::Result<bool> {
        use kube::api::{ObjectMeta, PostParams};
        // The lease is surely ours until the renew deadline after the round began: the
        // renewal time we write is no earlier than this.
        let attempt = Instant::now();
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
            Ok(_) => {
                self.fence.open_until(attempt + self.timing.renew_deadline);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One round, given up after `limit`.
    async fn round_within(&self, limit: Duration) -> Result<bool, String> {
        match tokio::time::timeout(limit, self.round()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&self) {
        let mut following = None;
        loop {
            match self.round_within(self.timing.renew_deadline).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {
                    let holder = tokio::time::timeout(
                        self.timing.retry_period,
                        self.api.get_opt(&self.name),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
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
    /// renew deadline (the lease may soon be someone else's) or another holder took it. Each
    /// attempt may take only what is left of the deadline, so this returns at the deadline at
    /// the latest, before the lease can expire for the others.
    pub async fn keep(&self) -> Lost {
        let lost = self.renew_until_lost().await;
        self.fence.close();
        lost
    }

    async fn renew_until_lost(&self) -> Lost {
        let deadline = self.timing.renew_deadline;
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(
                self.timing
                    .retry_period
                    .min(deadline.saturating_sub(renewed.elapsed())),
            )
            .await;
            let left = deadline.saturating_sub(renewed.elapsed());
            if left.is_zero() {
                return Lost(deadline);
            }
            let attempt = Instant::now();
            match self.round_within(left).await {
                Ok(true) => renewed = attempt,
                Ok(false) => return Lost(deadline),
                Err(e) => tracing::warn!(lease = %self.name, "renewing leadership: {e}"),
            }
            if renewed.elapsed() >= deadline {
                return Lost(deadline);
            }
        }
    }

    /// Gives the lease up (clean shutdown), so a standby takes over at its next round.
    pub async fn release(&self) {
        if tokio::time::timeout(
            self.timing.retry_period.max(Duration::from_secs(2)),
            self.give_up(),
        )
        .await
        .is_err()
        {
            tracing::warn!(lease = %self.name, "releasing leadership: no answer in time");
        }
    }

    async fn give_up(&self) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response};

    use super::{Elector, Timing};
    use crate::client::WriteFence;

    /// An API server that has no lease, takes the first claim, and then never answers again
    /// (the leader is cut off, or frozen, after winning).
    fn answers_once() -> kube::Client {
        let claimed = Arc::new(AtomicBool::new(false));
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let claimed = claimed.clone();
            async move {
                if claimed.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let (status, body) = if request.method() == Method::POST {
                    claimed.store(true, Ordering::SeqCst);
                    let body = request.into_body().collect().await?.to_bytes();
                    (201, body)
                } else {
                    let missing = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
                    (404, Bytes::from_static(missing.as_bytes()))
                };
                Ok::<_, tower::BoxError>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(body))
                        .unwrap(),
                )
            }
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn writes_pass_only_until_the_renew_deadline_after_the_last_renewal() {
        let timing = Timing {
            lease_duration: Duration::from_millis(900),
            renew_deadline: Duration::from_millis(600),
            retry_period: Duration::from_millis(100),
        };
        let fence = WriteFence::closed();
        let elector = Elector::new(
            answers_once(),
            "kube-system",
            "dynamo",
            "pod-a_1".into(),
            timing,
            fence.clone(),
        );
        assert!(
            !fence.is_open(),
            "nothing is written before the lease is won"
        );
        let won = Instant::now();
        elector.acquire().await;
        assert!(fence.is_open(), "the winner writes");

        // No renewal gets an answer from now on. The fence closes at the renew deadline by
        // itself: a process that was frozen meanwhile finds it closed before `keep` has run.
        while fence.is_open() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let closed_after = won.elapsed();
        assert!(
            closed_after <= timing.renew_deadline + Duration::from_millis(100),
            "closed {closed_after:?} after winning"
        );
        // Well before anyone else may take the lease.
        assert!(closed_after < timing.lease_duration);
        elector.keep().await;
        assert!(!fence.is_open());
    }
}
