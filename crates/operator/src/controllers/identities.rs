//! The identities a graph's pods run as: the per-graph discovery ServiceAccount, Role and
//! RoleBinding, and the per-namespace planner and EPP ServiceAccounts bound to the chart's
//! ClusterRoles (cluster-wide mode only; a restricted install's chart creates those).

use dynamo_api::v1alpha1::{ComponentType, DynamoGraphDeployment};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};

use super::reconcile::Error;
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
    let client = &context.client;
    ensure_named(
        context,
        &Api::namespaced(client.clone(), namespace),
        &account,
    )
    .await?;
    ensure_named(
        context,
        &Api::<Role>::namespaced(client.clone(), namespace),
        &role,
    )
    .await?;
    ensure_named(
        context,
        &Api::<RoleBinding>::namespaced(client.clone(), namespace),
        &binding,
    )
    .await?;
    Ok(())
}

async fn ensure_named<K>(context: &Context, api: &Api<K>, desired: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let live = api.get_opt(&desired.name_any()).await?;
    context.applier.ensure(api, desired, live.as_ref()).await?;
    Ok(())
}

/// `planner-serviceaccount` when the graph has a planner, `epp-serviceaccount` when it has an
/// endpoint picker, each bound to its ClusterRole. A ServiceAccount or RoleBinding of that
/// name the operator did not create is left exactly as it is.
pub async fn ensure_workload_identities(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
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
        if accounts.get_opt(account).await?.is_none() {
            context.applier.count_write();
            create_if_absent(&accounts, &service_account).await?;
            let note = format!("Created ServiceAccount {account}");
            context.normal(graph, "CreateServiceAccount", note);
        }
        match binding {
            Some(binding) => ensure_binding(context, namespace, &binding).await?,
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
) -> Result<(), Error> {
    let api: Api<RoleBinding> = Api::namespaced(context.client.clone(), namespace);
    match api.get_opt(&desired.name_any()).await? {
        None => {}
        Some(live) if !managed_by_operator(&live.metadata) => return Ok(()),
        Some(live) if live.role_ref == desired.role_ref && live.subjects == desired.subjects => {
            return Ok(());
        }
        Some(live) => context.applier.delete(&api, &live).await?,
    }
    context.applier.count_write();
    create_if_absent(&api, desired).await
}

/// Creates `object`; one created in the meantime (by another graph's reconcile) is fine.
async fn create_if_absent<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
