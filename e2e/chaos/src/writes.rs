//! The user's writes, made as a careful client makes them: a write that failed because the
//! control plane was away (API server or etcd restarting, the webhook's pod killed) is made
//! again; a write the platform refused is a valid write refused, and counted.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one failed attempt means.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The control plane could not take it now: try again.
    Transient,
    /// The platform refused it (admission denied it, or the schema): it will not pass later.
    Refused,
}

/// Classifies a failed write. Webhook calls that failed (the webhook is restarting) come back
/// as 500 `InternalError`, unreachable servers as transport errors; a denial names the webhook
/// with "denied the request", a schema violation is 422.
pub fn classify(error: &kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) => {
            let code = status.code;
            let denied = status.message.contains("denied the request");
            match code {
                _ if denied => Failure::Refused,
                // Not found: the object (an adapter) is not made yet; conflict: a write raced.
                404 | 409 | 429 => Failure::Transient,
                400 | 403 | 422 => Failure::Refused,
                _ => Failure::Transient,
            }
        }
        _ => Failure::Transient,
    }
}

/// Counts of the user's writes.
#[derive(Default)]
pub struct Tally {
    pub written: AtomicUsize,
    /// Attempts that failed and were made again.
    pub retried: AtomicUsize,
    /// Valid writes refused, or never taken within the deadline.
    pub failed: AtomicUsize,
}

/// How long a write is tried before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(180);

impl Tally {
    /// Makes the write until it is taken, it is refused, or the deadline passes. True when it
    /// was taken.
    pub async fn write<T, F, Fut>(&self, what: &str, mut attempt: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let error = match tokio::time::timeout(Duration::from_secs(30), attempt()).await {
                Ok(Ok(_)) => {
                    self.written.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Ok(Err(error)) => error,
                Err(_) => kube::Error::Service("no answer within 30 s".into()),
            };
            if classify(&error) == Failure::Refused {
                eprintln!("chaos: valid write refused: {what}: {error}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if started.elapsed() > DEADLINE {
                eprintln!("chaos: write not taken within {DEADLINE:?}: {what}: {error}");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            self.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, "").with_code(code).boxed())
    }

    #[test]
    fn the_control_plane_being_away_is_transient() {
        let webhook_down = api(
            500,
            "Internal error occurred: failed calling webhook \"vdgd.nvidia.com\": connect: connection refused",
        );
        assert_eq!(classify(&webhook_down), Failure::Transient);
        assert_eq!(
            classify(&api(503, "etcdserver: leader changed")),
            Failure::Transient
        );
        assert_eq!(classify(&api(504, "Timeout")), Failure::Transient);
        assert_eq!(
            classify(&api(409, "the object has been modified")),
            Failure::Transient
        );
        assert_eq!(classify(&api(404, "not found")), Failure::Transient);
        assert_eq!(
            classify(&kube::Error::Service("connection refused".into())),
            Failure::Transient
        );
    }

    #[test]
    fn a_refusal_is_final() {
        let denied = api(
            400,
            "admission webhook \"vdgd.nvidia.com\" denied the request: spec.services: ...",
        );
        assert_eq!(classify(&denied), Failure::Refused);
        assert_eq!(
            classify(&api(422, "spec.replicas: Invalid value")),
            Failure::Refused
        );
        assert_eq!(classify(&api(403, "forbidden")), Failure::Refused);
    }

    #[tokio::test]
    async fn a_write_is_made_again_until_taken() {
        let tally = Tally::default();
        let mut left = 2;
        let taken = tally
            .write("graph g", || {
                left -= 1;
                let result = if left >= 0 {
                    Err(api(500, "failed calling webhook"))
                } else {
                    Ok(())
                };
                async move { result }
            })
            .await;
        assert!(taken);
        assert_eq!(Tally::get(&tally.retried), 2);
        assert_eq!(Tally::get(&tally.written), 1);
        assert_eq!(Tally::get(&tally.failed), 0);
        let refused = tally
            .write("graph h", || async {
                Err::<(), _>(api(422, "Invalid value"))
            })
            .await;
        assert!(!refused);
        assert_eq!(Tally::get(&tally.failed), 1);
    }
}
