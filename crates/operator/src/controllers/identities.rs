//! The identities a graph's pods run as: the per-graph discovery ServiceAccount, Role and
//! RoleBinding, and the per-namespace planner and EPP ServiceAccounts bound to the chart's
//! ClusterRoles (cluster-wide mode only; a restricted install's chart creates those).
//!
//! What exists is read from the watch caches of the objects the operator made (label
//! `app.kubernetes.io/managed-by: dynamo-operator`), never from the API: a converged graph's
//! reconcile makes no request here. An object of the same name someone else made is not in
//! those caches; creating ours then fails with a conflict, and the name is remembered as
//! [`Foreign`] so it is not tried again.

use std::collections::HashSet;
use std::sync::Mutex;

use dynamo_api::v1alpha1::{ComponentType, DynamoGraphDeployment};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};

use super::reconcile::Error;
use crate::caches::cached;
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::naming::{EPP_SERVICE_ACCOUNT, PLANNER_SERVICE_ACCOUNT};
use crate::desired::rbac::{discovery_rbac, managed_by_operator, workload_identity};

/// The ServiceAccount, Role and RoleBinding component pods run as under Kubernetes discovery.
pub async fn ensure_discovery_identity(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<(), Error> {
    let (account, role, binding) = discovery_rbac(graph);
    let caches = &context.caches;
    ensure_named(context, namespace, &caches.identity_accounts, &account).await?;
    ensure_named(context, namespace, &caches.identity_roles, &role).await?;
    ensure_named(context, namespace, &caches.identity_bindings, &binding).await?;
    Ok(())
}

/// Applies `desired` unless its cached copy already holds every field.
async fn ensure_named<K>(
    context: &Context,
    namespace: &str,
    cache: &Store<Compact<K>>,
    desired: &K,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let live = cached(cache, namespace, &desired.name_any());
    let api = Api::namespaced(context.client.clone(), namespace);
    context.applier.ensure(&api, desired, live.as_ref()).await?;
    Ok(())
}

/// Names of identity objects someone else made, found by a create that conflicted: left
/// alone, and not tried again while the operator runs.
#[derive(Debug, Default)]
pub struct Foreign(Mutex<HashSet<String>>);

impl Foreign {
    fn key(kind: &str, namespace: &str, name: &str) -> String {
        format!("{kind}/{namespace}/{name}")
    }

    fn contains(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .contains(&Self::key(kind, namespace, name))
    }

    fn insert(&self, kind: &str, namespace: &str, name: &str) {
        self.0
            .lock()
            .unwrap()
            .insert(Self::key(kind, namespace, name));
    }
}

/// `planner-serviceaccount` when the graph has a planner, `epp-serviceaccount` when it has an
/// endpoint picker, each bound to its ClusterRole. A ServiceAccount or RoleBinding of that
/// name the operator did not create is left exactly as it is.
pub async fn ensure_workload_identities(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    foreign: &Foreign,
) -> Result<(), Error> {
    let Some(roles) = &context.config.workload_roles else {
        return Ok(());
    };
    let has = |wanted: ComponentType| {
        graph
            .spec
            .services
            .iter()
            .flatten()
            .any(|(_, service)| service.component_type() == Some(wanted.clone()))
    };
    let needed = [
        (
            has(ComponentType::Planner),
            PLANNER_SERVICE_ACCOUNT,
            roles.planner.as_deref(),
            "--planner-cluster-role-name",
        ),
        (
            has(ComponentType::Epp),
            EPP_SERVICE_ACCOUNT,
            roles.epp.as_deref(),
            "--epp-cluster-role-name",
        ),
    ];
    for (_, account, role, flag) in needed.into_iter().filter(|(needed, ..)| *needed) {
        let (service_account, binding) = workload_identity(namespace, account, role);
        let accounts: Api<ServiceAccount> = Api::namespaced(context.client.clone(), namespace);
        let ours = cached(&context.caches.identity_accounts, namespace, account).is_some();
        if !ours && !foreign.contains("ServiceAccount", namespace, account) {
            context.applier.count_write();
            if create_if_absent(&accounts, &service_account).await? {
                let note = format!("Created ServiceAccount {account}");
                context.normal(graph, "CreateServiceAccount", note);
            } else if someone_elses(&accounts, account).await? {
                foreign.insert("ServiceAccount", namespace, account);
            }
        }
        match binding {
            Some(binding) => ensure_binding(context, namespace, &binding, foreign).await?,
            None => context.warning(
                graph,
                "WorkloadRoleMissing",
                format!(
                    "ServiceAccount {account} has no permissions: the operator runs without {flag}"
                ),
            ),
        }
    }
    Ok(())
}

/// Creates the binding, or re-creates one of ours whose role or subject changed (`roleRef` is
/// immutable); someone else's binding of that name is left alone.
async fn ensure_binding(
    context: &Context,
    namespace: &str,
    desired: &RoleBinding,
    foreign: &Foreign,
) -> Result<(), Error> {
    let name = desired.name_any();
    if foreign.contains("RoleBinding", namespace, &name) {
        return Ok(());
    }
    let api: Api<RoleBinding> = Api::namespaced(context.client.clone(), namespace);
    match cached(&context.caches.identity_bindings, namespace, &name) {
        None => {}
        Some(live) if !managed_by_operator(&live.metadata) => return Ok(()),
        Some(live) if live.role_ref == desired.role_ref && live.subjects == desired.subjects => {
            return Ok(());
        }
        Some(live) => context.applier.delete(&api, &live).await?,
    }
    context.applier.count_write();
    if !create_if_absent(&api, desired).await? && someone_elses(&api, &name).await? {
        foreign.insert("RoleBinding", namespace, &name);
    }
    Ok(())
}

/// After a create conflicted: whether the object of that name lacks our `managed-by` label
/// (ours may be one another reconcile created a moment ago, not yet in the cache). The one
/// read of this module, once per name and process.
async fn someone_elses<K>(api: &Api<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    Ok(api
        .get_opt(name)
        .await?
        .is_some_and(|live| !managed_by_operator(live.meta())))
}

/// Creates `object`; whether it was created (false: one of that name exists already).
async fn create_if_absent<K>(api: &Api<K>, object: &K) -> Result<bool, Error>
where
    K: Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
