//! DynamoGraphDeployment: one DynamoComponentDeployment per service, top-level PVCs, the
//! discovery identity, and the status aggregated from the components.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::component::announce;
use super::reconcile::{Error, no_cleanup, reconcile as reconcile_object};
use crate::apply::owned_by;
use crate::caches::decoded;
use crate::compact::Compact;
use crate::context::Context;
use crate::desired::config::DiscoveryBackend;
use crate::desired::graph::desired_components;
use crate::desired::pvc::{ClaimPlan, claim_plan};
use crate::desired::rbac::discovery_rbac;
use crate::desired::status::{SUCCESSFUL, graph_failed, graph_status};

const KIND: &str = "DynamoGraphDeployment";
/// Periodic resync that also catches drift no watch reports.
const RESYNC: Duration = Duration::from_secs(300);
/// How long an ensured discovery identity is trusted before it is checked again (a
/// hand-deleted ServiceAccount comes back within this time, on the next reconcile).
const IDENTITY_TTL: Duration = Duration::from_secs(60);

/// The graph controller: the shared context and what only this controller remembers.
pub struct Graphs {
    context: Arc<Context>,
    /// When each graph's discovery identity was last ensured, by graph uid.
    identities: Mutex<HashMap<String, Instant>>,
}

impl Graphs {
    pub fn new(context: Arc<Context>) -> Self {
        Graphs {
            context,
            identities: Mutex::default(),
        }
    }

    /// Whether the discovery identity of graph `uid` was ensured within [`IDENTITY_TTL`]: a
    /// graph is reconciled on every child status change, and its ServiceAccount, Role and
    /// RoleBinding need not be read each time. Marks it ensured when it returns false.
    fn identity_recent(&self, uid: &str) -> bool {
        let mut seen = self.identities.lock().unwrap();
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < IDENTITY_TTL);
        if seen.contains_key(uid) {
            return true;
        }
        seen.insert(uid.to_owned(), now);
        false
    }

    fn forget_identity(&self, uid: &str) {
        self.identities.lock().unwrap().remove(uid);
    }
}

impl AsRef<Context> for Graphs {
    fn as_ref(&self) -> &Context {
        &self.context
    }
}

pub async fn reconcile(
    cached: Arc<Compact<DynamoGraphDeployment>>,
    graphs: Arc<Graphs>,
) -> Result<Action, Error> {
    let Some(graph) = decoded(&cached) else {
        return Ok(Action::await_change());
    };
    let shared = graphs.clone();
    reconcile_object(
        Arc::new(graph),
        &graphs.context,
        KIND,
        |graph, namespace| async move { apply(&graph, &namespace, &shared).await },
        no_cleanup,
    )
    .await
}

async fn apply(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    graphs: &Graphs,
) -> Result<Action, Error> {
    let context = graphs.context.as_ref();
    let api: Api<DynamoGraphDeployment> = Api::namespaced(context.client.clone(), namespace);
    let desired = match desired_components(graph, &context.config) {
        Ok(desired) => desired,
        Err(e) => {
            fail(graph, &api, context, e.to_string()).await?;
            // Nothing will change until the user edits the graph.
            return Ok(Action::await_change());
        }
    };
    if let Some(message) = ensure_pvcs(graph, namespace, context).await? {
        fail(graph, &api, context, message).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    }

    let discovery = context
        .config
        .effective_discovery_backend(graph.metadata.annotations.as_ref());
    let uid = graph.uid().unwrap_or_default();
    if discovery == DiscoveryBackend::Kubernetes
        && !graphs.identity_recent(&uid)
        && let Err(e) = ensure_discovery_identity(graph, namespace, context).await
    {
        // Not ensured after all: look again next time.
        graphs.forget_identity(&uid);
        return Err(e);
    }

    let applied = sync_components(graph, namespace, context, &uid, desired).await?;
    let status = graph_status(graph, &applied);
    let ready = status.state.as_deref() == Some(SUCCESSFUL);
    context
        .applier
        .write_status(&api, &graph.name_any(), graph.status.as_ref(), &status)
        .await?;
    Ok(Action::requeue(if ready {
        RESYNC
    } else {
        Duration::from_secs(60)
    }))
}

/// Applies the desired components and deletes those of removed services; the components as
/// they are now.
async fn sync_components(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
    uid: &str,
    desired: Vec<DynamoComponentDeployment>,
) -> Result<Vec<DynamoComponentDeployment>, Error> {
    let components: Api<DynamoComponentDeployment> =
        Api::namespaced(context.client.clone(), namespace);
    // The component controller's cache: every component in scope, without API calls.
    let mut existing: BTreeMap<String, DynamoComponentDeployment> = context
        .caches
        .components
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace) && owned_by(c.as_ref(), uid))
        .filter_map(|c| decoded(&c))
        .map(|c| (c.name_any(), c))
        .collect();

    let mut applied = Vec::with_capacity(desired.len());
    for component in &desired {
        let live = existing.remove(&component.name_any());
        let (component, change) = context
            .applier
            .ensure(&components, component, live.as_ref())
            .await?;
        announce(
            context,
            graph,
            KIND_OF_COMPONENT,
            &component.name_any(),
            change,
        );
        applied.push(component);
    }
    // What is left belonged to services that were removed.
    for stale in existing.into_values() {
        context.applier.delete(&components, &stale).await?;
        let note = format!("Deleted {KIND_OF_COMPONENT} {}", stale.name_any());
        context.normal(graph, &format!("Delete{KIND_OF_COMPONENT}"), note);
    }
    Ok(applied)
}

const KIND_OF_COMPONENT: &str = "DynamoComponentDeployment";

/// The ServiceAccount, Role and RoleBinding component pods run as under Kubernetes discovery.
async fn ensure_discovery_identity(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<(), Error> {
    let (account, role, binding) = discovery_rbac(graph);
    let client = &context.client;
    ensure_named(
        context,
        &Api::<ServiceAccount>::namespaced(client.clone(), namespace),
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

/// A graph that cannot be reconciled: a Warning event and `failed` with the reason.
async fn fail(
    graph: &DynamoGraphDeployment,
    api: &Api<DynamoGraphDeployment>,
    context: &Context,
    message: String,
) -> Result<(), Error> {
    context.warning(graph, "ReconcileFailed", message.clone());
    let status = graph_failed(graph, message);
    context
        .applier
        .write_status(api, &graph.name_any(), graph.status.as_ref(), &status)
        .await?;
    Ok(())
}

/// Creates the `create: true` claims that are missing; the message naming a missing claim the
/// graph does not create, if one is.
async fn ensure_pvcs(
    graph: &DynamoGraphDeployment,
    namespace: &str,
    context: &Context,
) -> Result<Option<String>, Error> {
    let Some(pvcs) = graph.spec.pvcs.as_ref().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(context.client.clone(), namespace);
    let mut existing = Vec::new();
    for pvc in pvcs {
        if claims.get_opt(&pvc.name).await?.is_some() {
            existing.push(pvc.name.clone());
        }
    }
    let plan = match claim_plan(graph, |name| existing.iter().any(|e| e == name)) {
        Ok(plan) => plan,
        Err(e) => return Ok(Some(e.to_string())),
    };
    match plan {
        ClaimPlan::Missing(message) => Ok(Some(message)),
        ClaimPlan::Create(create) => {
            for claim in create {
                context.applier.count_write();
                claims.create(&PostParams::default(), &claim).await?;
                let note = format!("Created PersistentVolumeClaim {}", claim.name_any());
                context.normal(graph, "CreatePersistentVolumeClaim", note);
            }
            Ok(None)
        }
    }
}
