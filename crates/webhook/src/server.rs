//! The HTTPS admission server; health and metrics go through the shared admin server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::{self, Kind, Policy};
use crate::metrics::Metrics;
use crate::tls::ReloadingCert;

/// Largest review accepted: an object of up to 3 MiB, twice (object and oldObject), plus slack.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reading the body and answering; below the API server's default webhook timeout (10 s).
const HANDLER_TIMEOUT: Duration = Duration::from_secs(8);
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

/// Serves admission reviews over TLS until `shutdown` turns true, then drains.
pub async fn serve_admission(
    listener: TcpListener,
    app: Arc<App>,
    tls: rustls::ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |request| {
                let app = app.clone();
                async move {
                    let response = tokio::time::timeout(HANDLER_TIMEOUT, admit(app, request))
                        .await
                        .unwrap_or_else(|_| text(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"));
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("admission server drained"),
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("gave up draining after {DRAIN_TIMEOUT:?}"),
    }
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

pub async fn bind(address: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
