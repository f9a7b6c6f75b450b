//! dynamo-operator: the controllers (thin reconcilers), the pure decisions behind them
//! (`desired`: child objects and statuses), declarative writes, events and metrics.
//!
//! `main → run → watches → controllers → context / caches → desired, apply, events, metrics`

pub mod allocator;
pub mod apply;
pub mod args;
pub mod backoff;
pub mod caches;
pub mod client;
pub mod compact;
pub mod context;
pub mod controllers;
pub mod desired;
pub mod events;
pub mod index;
pub mod inventory;
pub mod kinds;
pub mod leader;
pub mod lora;
pub mod metrics;
pub mod progress;
pub mod run;
pub mod scope_marker;
pub mod served;
pub mod watches;
