//! The per-graph identity of component pods under Kubernetes discovery: a ServiceAccount that
//! may read endpoints and manage DynamoWorkerMetadata in the graph's namespace.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::DynamoGraphDeployment;

use super::naming::discovery_service_account;

const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component` of every identity object the operator makes.
const RBAC_COMPONENT: &str = "rbac";

/// Upstream's labels of the discovery identity (`app.kubernetes.io/name` is the account's
/// name on all three objects), and the graph's name.
fn metadata(graph: &DynamoGraphDeployment, account: &str, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: graph.namespace(),
        labels: Some(
            [
                (label::GRAPH_DEPLOYMENT_NAME, graph.name_any().as_str()),
                (label::MANAGED_BY, label::MANAGED_BY_VALUE),
                (COMPONENT_LABEL, RBAC_COMPONENT),
                (NAME_LABEL, account),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        owner_references: graph.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// ServiceAccount `<graph>-k8s-service-discovery`, Role `…-role` and RoleBinding `…-binding`,
/// owned by the graph. The Role lets the runtime read endpoints, EndpointSlices and pods (the
/// runtime's container mode watches pods) and manage DynamoWorkerMetadata, as upstream's does.
pub fn discovery_rbac(graph: &DynamoGraphDeployment) -> (ServiceAccount, Role, RoleBinding) {
    let account = discovery_service_account(&graph.name_any());
    let role_name = format!("{account}-role");
    let service_account = ServiceAccount {
        metadata: metadata(graph, &account, account.clone()),
        ..Default::default()
    };
    let role = Role {
        metadata: metadata(graph, &account, role_name.clone()),
        rules: Some(vec![
            rule(&[""], &["endpoints", "pods"], &["get", "list", "watch"]),
            rule(
                &["discovery.k8s.io"],
                &["endpointslices"],
                &["get", "list", "watch"],
            ),
            rule(
                &["nvidia.com"],
                &["dynamoworkermetadatas"],
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
            ),
        ]),
    };
    let binding = RoleBinding {
        metadata: metadata(graph, &account, format!("{account}-binding")),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role_name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account,
            namespace: graph.namespace(),
            ..Default::default()
        }]),
    };
    (service_account, role, binding)
}

/// The ServiceAccount planner or EPP pods run as in a graph namespace, and its RoleBinding
/// `<account>-binding` to `cluster_role` (none without one). Not owned by any graph: they
/// serve every graph of the namespace and stay when a graph is deleted, as upstream.
pub fn workload_identity(
    namespace: &str,
    account: &str,
    cluster_role: Option<&str>,
) -> (ServiceAccount, Option<RoleBinding>) {
    let metadata = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(
            [
                (label::MANAGED_BY, label::MANAGED_BY_VALUE),
                (COMPONENT_LABEL, RBAC_COMPONENT),
                (NAME_LABEL, account),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        ..Default::default()
    };
    let service_account = ServiceAccount {
        metadata: metadata(account.to_owned()),
        ..Default::default()
    };
    let binding = cluster_role.map(|role| RoleBinding {
        metadata: metadata(format!("{account}-binding")),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        }]),
    });
    (service_account, binding)
}

/// Whether an existing object carries the operator's `managed-by` label: objects of the same
/// name a user made are never changed.
pub fn managed_by_operator(metadata: &ObjectMeta) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label::MANAGED_BY))
        .is_some_and(|v| v == label::MANAGED_BY_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_owner_and_binding_match_upstream() {
        let mut graph: DynamoGraphDeployment = dynamo_api::parse::from_yaml(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: g, namespace: ns, uid: u1}\nspec: {}\n",
        )
        .unwrap();
        graph.metadata.uid = Some("u1".into());
        let (account, role, binding) = discovery_rbac(&graph);
        assert_eq!(account.name_any(), "g-k8s-service-discovery");
        assert_eq!(role.name_any(), "g-k8s-service-discovery-role");
        assert_eq!(binding.name_any(), "g-k8s-service-discovery-binding");
        assert_eq!(binding.role_ref.name, "g-k8s-service-discovery-role");
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("g-k8s-service-discovery", Some("ns"))
        );
        for owners in [&account.metadata, &role.metadata, &binding.metadata]
            .map(|m| m.owner_references.clone().unwrap())
        {
            assert_eq!(owners[0].uid, "u1");
            assert_eq!(owners[0].controller, Some(true));
        }
        let rules = role.rules.unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.resources.as_ref().unwrap()[0] == "endpointslices")
        );
    }

    #[test]
    fn workload_identity_binds_the_cluster_role_and_has_no_owner() {
        let (account, binding) =
            workload_identity("team", "planner-serviceaccount", Some("d-planner"));
        assert_eq!(account.name_any(), "planner-serviceaccount");
        assert_eq!(account.metadata.namespace.as_deref(), Some("team"));
        assert!(account.metadata.owner_references.is_none());
        assert!(managed_by_operator(&account.metadata));
        let binding = binding.unwrap();
        assert_eq!(binding.name_any(), "planner-serviceaccount-binding");
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "d-planner");
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("planner-serviceaccount", Some("team"))
        );
        assert!(
            workload_identity("team", "epp-serviceaccount", None)
                .1
                .is_none()
        );
        assert!(!managed_by_operator(&ObjectMeta::default()));
    }
}
