//! The validating admission webhook of the Dynamo platform: an HTTPS AdmissionReview server
//! for the upstream paths, with certificates reloaded from disk, namespace scoping by
//! namespace-scope leases, and Prometheus metrics.

pub mod admission;
pub mod metrics;
pub mod offline;
/// Namespace scoping lives in `dynamo-common`, shared with the operator.
pub use dynamo_common::scope;
pub mod server;
pub mod tls;
