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
use std::time::Duration;

use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{ClientBuilder, ConfigExt};
use kube::{Client, Config};
use tokio::sync::Semaphore;
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

/// Where the server speaks only HTTP/1.1: connections kept open after a burst (the rest close).
const IDLE_HTTP1_CONNECTIONS: usize = 8;

/// An HTTP/2 ping when the connection has been silent this long (client-go: 30 s)...
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// ... and the connection is dropped when its answer takes longer (client-go: 15 s).
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// The inferred configuration (in-cluster, or the kubeconfig).
pub async fn config() -> kube::Result<Config> {
    Config::infer().await.map_err(kube::Error::InferConfig)
}

/// The reconcilers' client: HTTP/2 where offered, each request holding one of `slots`.
pub fn bounded(config: Config, slots: &Slots) -> kube::Result<Client> {
    let limit = GlobalConcurrencyLimitLayer::with_semaphore(slots.0.clone());
    if config.proxy_url.is_some() {
        return Ok(ClientBuilder::try_from(config)?.with_layer(&limit).build());
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
    let service = ServiceBuilder::new()
        .layer(limit)
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
