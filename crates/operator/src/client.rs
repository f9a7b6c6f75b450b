//! The operator's API clients.
//!
//! The reconcilers' client has kube's default stack with a bound on requests in flight: every
//! reconcile slot of every controller, and every event being published, may hold a request;
//! unbounded, a burst of work opens one HTTP/1.1 connection per request (hundreds, each with
//! its TLS state and buffers). Requests beyond the bound wait their turn, which costs nothing
//! when the API server is the bottleneck anyway. Leader election has a client of its own, so a
//! renewal never waits behind reconciles.

use kube::client::ClientBuilder;
use kube::{Client, Config};
use tower::limit::ConcurrencyLimitLayer;

/// Requests the reconcilers have in flight at most (watches hold a slot only until their
/// response headers arrive).
pub const MAX_IN_FLIGHT: usize = 48;

/// The inferred configuration (in-cluster, or the kubeconfig).
pub async fn config() -> kube::Result<Config> {
    Config::infer().await.map_err(kube::Error::InferConfig)
}

/// The reconcilers' client: at most [`MAX_IN_FLIGHT`] requests at once.
pub fn bounded(config: Config) -> kube::Result<Client> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .build())
}

/// A client with no bound, for leader election (its callers bound each request in time).
pub fn direct(config: Config) -> kube::Result<Client> {
    Client::try_from(config)
}
