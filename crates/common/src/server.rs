//! The one HTTP accept loop of the platform's servers (admission, admin, secure metrics),
//! after kubert's `server.rs`.
//!
//! Hardening, the same for all of them:
//! - a connection that sends no request headers within [`Options::header_read_timeout`]
//!   (2 s) is closed, so port scanners and slow clients cannot hold sockets open;
//! - a TLS client that has not finished its handshake within [`Options::handshake_timeout`]
//!   is dropped;
//! - an accept error pauses the loop (out of file descriptors would otherwise spin it), with
//!   a warning at a bounded rate;
//! - on shutdown the listener closes, open connections finish their in-flight requests and
//!   close (HTTP/2 with GOAWAY), and whatever is still open after
//!   [`Options::drain_timeout`] is dropped.
//!
//! HTTP/1.1 and HTTP/2 (ALPN or prior knowledge) are both served.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Builder = auto::Builder<TokioExecutor>;

/// How long the loop pauses after an accept error that would repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Accept errors are reported at most this often, with how many there were.
const ACCEPT_ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// HTTP/2 pings on a connection quiet for this long, and closes it if unanswered as long:
/// a peer that vanished without a FIN does not hold the connection for ever.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How a server is run; [`Options::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Names the server in logs.
    pub name: &'static str,
    /// A connection whose first request's headers have not arrived by then is closed; on
    /// HTTP/1 the same holds for each later request on the connection, idle time included.
    pub header_read_timeout: Duration,
    /// A TLS client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// How long open connections may finish after shutdown before they are dropped.
    pub drain_timeout: Duration,
}

impl Options {
    pub fn new(name: &'static str) -> Self {
        Options {
            name,
            header_read_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves `service` on every connection `listener` accepts, over TLS when `tls` is given,
/// until `shutdown` changes (or its sender is dropped); then drains and returns.
///
/// A tower service is served through `hyper_util::service::TowerToHyperService`.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    options: Options,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let name = options.name;
    let shared = Arc::new(Shared {
        builder: http_builder(&options),
        options,
    });
    let graceful = GracefulShutdown::new();
    // Dropping the set at the end aborts the connections that did not finish draining.
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                let pause = backoff.after(&e, Instant::now());
                if let Some(errors) = pause.report {
                    tracing::warn!(
                        "{name} server: accepting a connection failed ({errors} time(s) since the \
                         last warning), pausing {:?} after each: {e}",
                        pause.sleep,
                    );
                }
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(pause.sleep) => continue,
                }
            }
        };
        connections.spawn(connection(
            stream,
            peer,
            tls.clone(),
            service.clone(),
            shared.clone(),
            graceful.watcher(),
        ));
    }
    drop(listener);
    let open = graceful.count();
    let drain_timeout = shared.options.drain_timeout;
    match tokio::time::timeout(drain_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("{name} server: drained, {open} connection(s) were open"),
        Err(_) => tracing::warn!(
            "{name} server: dropping connections still open {drain_timeout:?} after shutdown"
        ),
    }
    connections.shutdown().await;
}

/// What every connection of a server shares.
struct Shared {
    builder: Builder,
    options: Options,
}

fn http_builder(options: &Options) -> Builder {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    builder
}

/// One accepted connection: the TLS handshake if any, then HTTP until either side closes.
async fn connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    service: S,
    shared: Arc<Shared>,
    watcher: Watcher,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let options = &shared.options;
    let name = options.name;
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let Some(acceptor) = tls else {
        return http(TokioIo::new(stream), peer, service, &shared, watcher).await;
    };
    match tokio::time::timeout(options.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => http(TokioIo::new(tls), peer, service, &shared, watcher).await,
        Ok(Err(e)) => tracing::debug!(%peer, "{name} server: TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(%peer, "{name} server: TLS handshake timed out"),
    }
}

async fn http<I, S, B>(io: I, peer: SocketAddr, service: S, shared: &Shared, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let options = &shared.options;
    let name = options.name;
    // hyper's HTTP/1 header timeout only starts once the protocol is known, that is after a
    // first byte; a client that sends nothing is timed here, until its first request.
    let requested = Arc::new(AtomicBool::new(false));
    let service = MarksRequests {
        inner: service,
        requested: requested.clone(),
    };
    let connection = watcher.watch(shared.builder.serve_connection(io, service));
    let mut connection = std::pin::pin!(connection);
    let timeout = options.header_read_timeout;
    let result = tokio::select! {
        result = &mut connection => result,
        _ = tokio::time::sleep(timeout) => {
            if !requested.load(Ordering::Relaxed) {
                return tracing::debug!(%peer, "{name} server: no request within {timeout:?}");
            }
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "{name} server: connection: {e}");
    }
}

/// The service of one connection, noting that a request's headers arrived.
struct MarksRequests<S> {
    inner: S,
    requested: Arc<AtomicBool>,
}

impl<S, R> hyper::service::Service<R> for MarksRequests<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.requested.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}

/// What the loop does after one accept error.
#[derive(Debug, PartialEq, Eq)]
struct Pause {
    sleep: Duration,
    /// When it is time to warn: how many errors there were since the last warning.
    report: Option<u64>,
}

/// Accept errors: a pause after each that would repeat at once, and warnings at a bounded
/// rate that say how many there were.
#[derive(Debug, Default)]
struct AcceptBackoff {
    unreported: u64,
    reported_at: Option<Instant>,
}

impl AcceptBackoff {
    fn after(&mut self, error: &io::Error, now: Instant) -> Pause {
        if is_peer_gone(error) {
            // The peer reset a connection still in the queue; the next one may be fine, and
            // each such error used up a queued connection, so retrying at once cannot spin.
            return Pause {
                sleep: Duration::ZERO,
                report: None,
            };
        }
        self.unreported += 1;
        let due = self
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_ERROR_REPORT_INTERVAL);
        let report = due.then(|| {
            self.reported_at = Some(now);
            std::mem::take(&mut self.unreported)
        });
        Pause {
            sleep: ACCEPT_ERROR_PAUSE,
            report,
        }
    }
}

fn is_peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests;
