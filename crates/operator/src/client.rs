//! The operator's API clients.
//!
//! The reconcilers' client speaks HTTP/2 when the API server offers it (kube-apiserver does,
//! as client-go uses it): every watch and request shares one TLS connection, where HTTP/1.1
//! needs a connection per request in flight (dozens in a rollout, each with its TLS state and
//! buffers, kept in the pool long after the burst). Keep-alive pings find a dead connection
//! as client-go's do. Requests in flight are bounded: every reconcile slot of every
//! controller, and every event being published, may hold one; beyond the bound they wait
//! their turn, which costs nothing when the API server is the bottleneck anyway. Leader
//! election has a client of its own, so a renewal never waits behind reconciles. A kubeconfig
//! that names a proxy gets kube's own (HTTP/1.1) stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tokio::sync::Semaphore;
use tower::filter::{FilterLayer, Predicate};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// Requests the reconcilers have in flight at most (watches hold a slot only until their
/// response headers arrive).
pub const MAX_IN_FLIGHT: usize = 48;

/// The request slots of the reconcilers' client; when every one is taken, requests queue and
/// the operator is limited by the API server.
#[derive(Clone, Debug)]
pub struct Slots(Arc<Semaphore>);

impl Default for Slots {
    fn default() -> Self {
        Slots(Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
    }
}

impl Slots {
    /// Every slot is taken.
    pub fn saturated(&self) -> bool {
        self.0.available_permits() == 0
    }
}

/// Whether this process may write. A leader may write only while its lease is surely its own:
/// until the renew deadline after its last successful renewal, by the monotonic clock. A
/// process that was stopped (SIGSTOP, a frozen VM, a long GC-like stall) and resumes after
/// another took the lease finds the fence closed before its first write, whatever its
/// reconciles were in the middle of; reads go on.
#[derive(Clone, Debug)]
pub struct WriteFence(Arc<FenceState>);

#[derive(Debug)]
struct FenceState {
    origin: Instant,
    /// Milliseconds after `origin` until which writes pass; `u64::MAX`: always.
    open_until: AtomicU64,
}

impl WriteFence {
    /// Always open: the process leads alone (no election).
    pub fn open() -> Self {
        Self::with(u64::MAX)
    }

    /// Closed until a lease is won.
    pub fn closed() -> Self {
        Self::with(0)
    }

    fn with(open_until: u64) -> Self {
        WriteFence(Arc::new(FenceState {
            origin: Instant::now(),
            open_until: AtomicU64::new(open_until),
        }))
    }

    /// Writes pass until `deadline`.
    pub fn open_until(&self, deadline: Instant) {
        let millis = deadline
            .saturating_duration_since(self.0.origin)
            .as_millis();
        let millis = u64::try_from(millis).unwrap_or(u64::MAX - 1);
        self.0.open_until.store(millis, Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.0.open_until.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        let until = self.0.open_until.load(Ordering::SeqCst);
        until == u64::MAX || (self.0.origin.elapsed().as_millis() as u64) < until
    }
}

/// A write attempted while the fence is closed.
#[derive(Debug, thiserror::Error)]
#[error("not writing {0}: this process no longer holds the leader lease")]
pub struct Fenced(String);

/// Lets reads through always and writes only while the fence is open.
#[derive(Clone, Debug)]
struct FencePredicate(WriteFence);

impl<B> Predicate<hyper::Request<B>> for FencePredicate {
    type Request = hyper::Request<B>;

    fn check(&mut self, request: hyper::Request<B>) -> Result<Self::Request, BoxError> {
        if passes(request.method(), &self.0) {
            Ok(request)
        } else {
            Err(Fenced(format!("{} {}", request.method(), request.uri().path())).into())
        }
    }
}

fn passes(method: &hyper::Method, fence: &WriteFence) -> bool {
    use hyper::Method;
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || fence.is_open()
}

/// Where the server speaks only HTTP/1.1: connections kept open after a burst (the rest close).
const IDLE_HTTP1_CONNECTIONS: usize = 8;

/// An HTTP/2 ping when the connection has been silent this long (client-go: 30 s)...
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// ... and the connection is dropped when its answer takes longer (client-go: 15 s).
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// The inferred configuration (in-cluster, or the kubeconfig), with this process's user agent.
pub async fn config() -> kube::Result<Config> {
    let mut config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    config.headers.push((
        hyper::header::USER_AGENT,
        user_agent(&crate::leader::identity()),
    ));
    Ok(config)
}

/// `dynamo-operator/<version> (<identity>)`: the API server's audit log and metrics then tell
/// which replica, and which process of it, made a request (the identity is the one the
/// process campaigns with for the lease).
fn user_agent(identity: &str) -> hyper::header::HeaderValue {
    let agent = format!("dynamo-operator/{} ({identity})", env!("CARGO_PKG_VERSION"));
    hyper::header::HeaderValue::from_str(&agent)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("dynamo-operator"))
}

/// The reconcilers' client: HTTP/2 where offered, each request holding one of `slots`, writes
/// only while `fence` is open.
pub fn bounded(config: Config, slots: &Slots, fence: &WriteFence) -> kube::Result<Client> {
    let limit = GlobalConcurrencyLimitLayer::with_semaphore(slots.0.clone());
    let fenced = FilterLayer::new(FencePredicate(fence.clone()));
    if config.proxy_url.is_some() {
        return Ok(ClientBuilder::try_from(config)?
            .with_layer(&fenced)
            .with_layer(&limit)
            .build());
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let connector = tls.enable_all_versions().wrap_connector(http);
    let http = HttpClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .pool_max_idle_per_host(IDLE_HTTP1_CONNECTIONS)
        .build(connector);
    // The fence is checked once a request has its slot, right before it is sent: a request
    // may wait for a slot for seconds.
    let service = ServiceBuilder::new()
        .layer(limit)
        .layer(fenced)
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace))
}

/// A client with no bound, for leader election (its callers bound each request in time).
pub fn direct(config: Config) -> kube::Result<Client> {
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_lets_reads_through_and_writes_only_while_open() {
        use hyper::Method;
        let fence = WriteFence::closed();
        let table = [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::POST, false),
            (Method::PUT, false),
            (Method::PATCH, false),
            (Method::DELETE, false),
        ];
        for (method, passes_closed) in &table {
            assert_eq!(passes(method, &fence), *passes_closed, "{method} closed");
        }
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(table.iter().all(|(m, _)| passes(m, &fence)));
        fence.close();
        assert!(!passes(&Method::PATCH, &fence));
        assert!(passes(&Method::PATCH, &WriteFence::open()));
    }

    #[test]
    fn the_fence_closes_at_its_deadline_by_itself() {
        let fence = WriteFence::closed();
        fence.open_until(Instant::now() + Duration::from_millis(50));
        assert!(fence.is_open());
        std::thread::sleep(Duration::from_millis(80));
        // What a process stopped past its renew deadline finds when it resumes.
        assert!(!fence.is_open());
        // A deadline already past leaves it closed.
        fence.open_until(Instant::now() - Duration::from_secs(1));
        assert!(!fence.is_open());
    }

    #[tokio::test]
    async fn a_fenced_write_never_reaches_the_server() {
        use std::sync::atomic::AtomicUsize;
        use tower::{Service, ServiceExt};
        let reached = Arc::new(AtomicUsize::new(0));
        let fence = WriteFence::closed();
        let server = {
            let reached = reached.clone();
            tower::service_fn(move |_: hyper::Request<()>| {
                reached.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, BoxError>(()) }
            })
        };
        let mut client = ServiceBuilder::new()
            .layer(FilterLayer::new(FencePredicate(fence.clone())))
            .service(server);
        let request = |method| {
            hyper::Request::builder()
                .method(method)
                .uri("/apis/apps/v1/namespaces/ns/deployments/d")
                .body(())
                .unwrap()
        };
        let refused = client
            .ready()
            .await
            .unwrap()
            .call(request(hyper::Method::PATCH))
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not writing PATCH /apis/apps/v1/namespaces/ns/deployments/d: this process no longer holds the leader lease"
        );
        assert_eq!(reached.load(Ordering::SeqCst), 0);
        client
            .ready()
            .await
            .unwrap()
            .call(request(hyper::Method::GET))
            .await
            .unwrap();
        fence.open_until(Instant::now() + Duration::from_secs(10));
        client
            .ready()
            .await
            .unwrap()
            .call(request(hyper::Method::PATCH))
            .await
            .unwrap();
        assert_eq!(reached.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_user_agent_names_the_process() {
        assert_eq!(
            user_agent("dynamo-operator-7f9c-x2x_41").to_str().unwrap(),
            format!(
                "dynamo-operator/{} (dynamo-operator-7f9c-x2x_41)",
                env!("CARGO_PKG_VERSION")
            )
        );
        // A pod name is always a valid header value; anything else falls back to the name.
        assert_eq!(user_agent("bad\nname").to_str().unwrap(), "dynamo-operator");
    }
}
