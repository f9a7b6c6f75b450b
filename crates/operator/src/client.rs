//! The operator's API client: kube's default stack with a bound on requests in flight.
//!
//! Every reconcile slot of every controller, and every event being published, may hold a
//! request; unbounded, a burst of work opens one HTTP/1.1 connection per request (hundreds,
//! each with its TLS state and buffers, kept for the pool's idle timeout). A bound keeps the
//! connection pool, and the memory it holds, small; requests beyond it wait their turn, which
//! costs nothing when the API server is the bottleneck anyway.

use kube::client::ClientBuilder;
use kube::{Client, Config};
use tower::limit::ConcurrencyLimitLayer;

/// Requests the operator has in flight at most (watches hold a slot only until their
/// response headers arrive).
pub const MAX_IN_FLIGHT: usize = 48;

/// A client for the inferred configuration (in-cluster, or the kubeconfig).
pub async fn connect() -> kube::Result<Client> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(MAX_IN_FLIGHT))
        .build())
}
