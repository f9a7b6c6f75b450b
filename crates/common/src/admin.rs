//! A small plain-HTTP server for `/healthz`, `/readyz` and `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{self, Options};

/// What the admin server asks its owner.
pub trait Probes: Send + Sync + 'static {
    /// Ready to do its job (caches synced, certificate loaded, ...); `Err` says why not.
    fn ready(&self) -> Result<(), String>;
    /// The OpenMetrics text exposition.
    fn metrics(&self) -> String;
}

fn reply(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Answers one admin request.
pub fn respond(probes: &dyn Probes, path: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" | "/livez" => reply(StatusCode::OK, "ok\n".into(), TEXT),
        "/readyz" => match probes.ready() {
            Ok(()) => reply(StatusCode::OK, "ok\n".into(), TEXT),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"), TEXT),
        },
        "/metrics" => reply(
            StatusCode::OK,
            probes.metrics(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into(), TEXT),
    }
}

/// Serves `probes` on `listener` until `shutdown` changes, then drains.
pub async fn serve(
    listener: TcpListener,
    probes: Arc<dyn Probes>,
    shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let probes = probes.clone();
        async move { Ok::<_, Infallible>(respond(probes.as_ref(), request.uri().path())) }
    });
    server::serve(listener, None, service, shutdown, Options::new("admin")).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<(), String>);
    impl Probes for Fixed {
        fn ready(&self) -> Result<(), String> {
            self.0.clone()
        }
        fn metrics(&self) -> String {
            "# EOF\n".into()
        }
    }

    #[test]
    fn readiness_follows_the_probe() {
        assert_eq!(respond(&Fixed(Ok(())), "/readyz").status(), StatusCode::OK);
        let not_ready = respond(&Fixed(Err("caches not synced".into())), "/readyz");
        assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            respond(&Fixed(Err("x".into())), "/healthz").status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&Fixed(Ok(())), "/nope").status(),
            StatusCode::NOT_FOUND
        );
    }
}
