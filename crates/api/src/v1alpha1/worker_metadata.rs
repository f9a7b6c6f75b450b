//! DynamoWorkerMetadata (`dwm`): what a worker publishes about itself (endpoints, model cards,
//! event channels) when Kubernetes discovery is used. Workers write it; the operator only grants
//! access to it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Discovery data of one worker pod.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "nvidia.com",
    version = "v1alpha1",
    kind = "DynamoWorkerMetadata",
    plural = "dynamoworkermetadatas",
    shortname = "dwm",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "DynamoWorkerMetadata holds the discovery data a Dynamo worker publishes about itself.",
    annotation("helm.sh/resource-policy", "keep"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoWorkerMetadataSpec {
    /// The worker's discovery metadata, kept as the worker wrote it.
    #[schemars(schema_with = "schema::free_form_object")]
    pub data: serde_json::Value,
}
