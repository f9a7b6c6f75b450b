//! Custom resource types of the Dynamo platform (`nvidia.com/v1alpha1`), their label and
//! annotation keys, and the generator of their CRD YAML.

pub mod crd;
pub mod labels;
pub mod offline;
pub mod parse;
pub mod schema;
pub mod v1alpha1;
pub mod validation;

/// The storage ("hub") version that code works with: import `dynamo_api::hub::*` so a future
/// `v1beta1` becomes a one-line switch here.
pub use v1alpha1 as hub;
