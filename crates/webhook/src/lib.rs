//! The validating admission webhook of the Dynamo platform: an HTTPS AdmissionReview server
//! for the upstream paths, with certificates reloaded from disk, namespace scoping by
//! namespace-scope leases (`dynamo_common::scope`), and Prometheus metrics.

pub mod admission;
pub mod metrics;
pub mod offline;
pub mod run;
pub mod server;
pub mod tls;
