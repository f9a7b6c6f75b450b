//! Custom resource types of the Dynamo platform (`nvidia.com/v1alpha1`), their label and
//! annotation keys, and the generator of their CRD YAML.

pub mod crd;
pub mod labels;
pub mod parse;
pub mod schema;
pub mod v1alpha1;
pub mod validation;
