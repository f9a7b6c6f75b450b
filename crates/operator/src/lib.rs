//! dynamo-operator: the controllers (thin reconcilers), the pure builders of their child
//! objects, declarative writes and metrics.

pub mod apply;
pub mod build;
pub mod client;
pub mod compact;
pub mod controllers;
pub mod events;
pub mod lora;
pub mod metrics;
pub mod scope_marker;
