//! The HTTPS admission server: reviews as a tower service (a handler timeout and a
//! concurrency bound) on the shared accept loop; health and metrics go through the shared
//! admin server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use dynamo_common::server::{self, Options};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, Service, ServiceBuilder};

use crate::admission::{self, Kind, Policy};
use crate::metrics::Metrics;
use crate::tls::ReloadingCert;

/// Largest review accepted: an object of up to 3 MiB, twice (object and oldObject), plus slack.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Reading the body and answering; below the API server's default webhook timeout (10 s).
const HANDLER_TIMEOUT: Duration = Duration::from_secs(8);
/// Reviews handled at once; more wait for a slot. A review is well under a millisecond of
/// CPU, so 256 in flight is far more than the webhook's cores can run anyway, and the bound
/// keeps a burst of large reviews (up to 8 MiB each) from growing memory without limit.
const MAX_CONCURRENT_REVIEWS: usize = 256;
/// How long in-flight reviews may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

pub struct App {
    pub policy: Policy,
    pub metrics: Metrics,
    pub cert: Arc<ReloadingCert>,
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// One admission request.
async fn admit(app: Arc<App>, request: Request<Incoming>) -> Response<Body> {
    let Some(kind) = Kind::from_path(request.uri().path()) else {
        return text(StatusCode::NOT_FOUND, "no webhook at this path\n");
    };
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/json\n",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "review larger than 8 MiB\n");
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
    };
    let review = admission::review(kind, &body, &app.policy, &app.metrics);
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&review).expect("an AdmissionReview serializes"),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `handler` answered within `timeout` (else 503 "timed out"), at most `concurrency` at once.
/// Every call answers `Ok`: the error type is only what tower's layers declare.
///
/// The timeout counts from when a slot is free: a review queued longer is given up by the
/// API server (its own webhook timeout), which cancels the wait.
fn limited<S, R>(
    handler: S,
    timeout: Duration,
    concurrency: usize,
) -> impl Service<R, Response = Response<Body>, Error = BoxError, Future: Send> + Clone + Send
where
    S: Service<R, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    ServiceBuilder::new()
        .map_result(|result: Result<Response<Body>, BoxError>| {
            // The handler cannot fail, so the only error is the timeout's.
            Ok::<_, BoxError>(
                result.unwrap_or_else(|_| text(StatusCode::SERVICE_UNAVAILABLE, "timed out\n")),
            )
        })
        .layer(ConcurrencyLimitLayer::new(concurrency))
        .layer(TimeoutLayer::new(timeout))
        .service(handler)
}

/// Serves admission reviews over TLS until `shutdown` turns true, then drains.
pub async fn serve_admission(
    listener: TcpListener,
    app: Arc<App>,
    tls: rustls::ServerConfig,
    shutdown: watch::Receiver<bool>,
) {
    let handler = tower::service_fn(move |request: Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(admit(app, request).await) }
    });
    let service = limited(handler, HANDLER_TIMEOUT, MAX_CONCURRENT_REVIEWS);
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let options = Options {
        drain_timeout: DRAIN_TIMEOUT,
        ..Options::new("admission")
    };
    let service = TowerToHyperService::new(service);
    server::serve(listener, Some(acceptor), service, shutdown, options).await;
}

/// Readiness (a certificate is loaded) and metrics for the shared admin server.
impl dynamo_common::admin::Probes for App {
    fn ready(&self) -> Result<(), String> {
        if self.cert.is_ready() {
            Ok(())
        } else {
            Err("no serving certificate loaded".into())
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;
    use tower::ServiceExt;

    /// Answers 200 once `gate` gives it a permit.
    fn gated()
    -> impl Service<Arc<Semaphore>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        tower::service_fn(|gate: Arc<Semaphore>| async move {
            let _permit = gate.acquire().await;
            Ok(text(StatusCode::OK, "ok\n"))
        })
    }

    async fn body(response: Response<Body>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_review_past_the_timeout_is_answered_503_timed_out() {
        let service = limited(gated(), Duration::from_millis(100), 4);
        let stuck = Arc::new(Semaphore::new(0));
        let response = service.clone().oneshot(stuck).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await, "timed out\n");
        let open = Arc::new(Semaphore::new(1));
        let response = service.oneshot(open).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn reviews_beyond_the_bound_wait_for_a_slot() {
        let service = limited(gated(), Duration::from_secs(60), 1);
        let gate = Arc::new(Semaphore::new(0));
        let first = tokio::spawn(service.clone().oneshot(gate.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = service.clone();
        let waiting = tokio::time::timeout(Duration::from_millis(100), second.ready()).await;
        assert!(
            waiting.is_err(),
            "a second review got a slot while one runs"
        );
        gate.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        tokio::time::timeout(Duration::from_secs(1), second.ready())
            .await
            .expect("the slot is free again")
            .unwrap();
    }
}
