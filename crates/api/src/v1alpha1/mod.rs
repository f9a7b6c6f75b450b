//! API version `nvidia.com/v1alpha1`.

mod component_deployment;
pub mod component_type;
mod extra_pod_spec;
mod graph_deployment;
mod model;
mod scaling_adapter;
mod shared;
mod status;
mod worker_metadata;

pub use component_deployment::*;
pub use component_type::ComponentType;
pub use extra_pod_spec::ExtraPodSpec;
pub use graph_deployment::*;
pub use model::*;
pub use scaling_adapter::*;
pub use shared::*;
pub use status::*;
pub use worker_metadata::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "nvidia.com";
pub const VERSION: &str = "v1alpha1";

/// Inference backend of a graph. Immutable once set (enforced by the admission webhook).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendFramework {
    Sglang,
    Vllm,
    Trtllm,
}

impl BackendFramework {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sglang => "sglang",
            Self::Vllm => "vllm",
            Self::Trtllm => "trtllm",
        }
    }
}

impl std::fmt::Display for BackendFramework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
