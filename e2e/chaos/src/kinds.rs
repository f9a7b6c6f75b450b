//! The kinds a chaos run reads and writes, by name.

use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};

use crate::shapes::{ADAPTER, COMPONENT, GRAPH};

/// The API of `kind` in `namespace`.
pub fn api(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version, plural) = match kind {
        GRAPH => ("nvidia.com", "v1alpha1", "dynamographdeployments"),
        COMPONENT => ("nvidia.com", "v1alpha1", "dynamocomponentdeployments"),
        ADAPTER => (
            "nvidia.com",
            "v1alpha1",
            "dynamographdeploymentscalingadapters",
        ),
        "Deployment" => ("apps", "v1", "deployments"),
        "Service" => ("", "v1", "services"),
        "ServiceAccount" => ("", "v1", "serviceaccounts"),
        "ConfigMap" => ("", "v1", "configmaps"),
        "Role" => ("rbac.authorization.k8s.io", "v1", "roles"),
        "RoleBinding" => ("rbac.authorization.k8s.io", "v1", "rolebindings"),
        other => unreachable!("no resource for {other}"),
    };
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}
