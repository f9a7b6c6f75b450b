//! The controllers: each reads what it needs from the caches, asks `desired` what
//! should exist, applies it and writes status. What they share is in [`reconcile`].

pub mod component;
pub mod graph;
pub mod grove;
pub mod identities;
pub mod model;
pub mod mpi_secret;
pub mod reconcile;
pub mod scaling;

pub use reconcile::Error;
