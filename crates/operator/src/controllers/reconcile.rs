//! What every reconcile shares: wait for the caches, stay in scope, keep the
//! `nvidia.com/finalizer`, record the reconcile metrics, and retry failures with per-object
//! backoff.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::metrics;

/// How often an object in a namespace held by a restricted operator is looked at again.
const EXCLUDED_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("{0} has no namespace")]
    NoNamespace(String),
    /// Calls to serving endpoints failed (the status already says which).
    #[error("{0}")]
    Endpoints(String),
}

impl Error {
    /// The API server's answer when it refused an object for what it is (bad request,
    /// forbidden, invalid), not for a passing failure.
    pub fn refusal(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Kube(kube::Error::Api(status)) if matches!(status.code, 400 | 403 | 422) => {
                Some(status)
            }
            _ => None,
        }
    }

    /// Label of the `dynamo_operator_reconcile_errors_total` metric.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Kube(e) => metrics::error_type(e),
            Error::Finalizer(e) => match e.as_ref() {
                finalizer::Error::ApplyFailed(inner) | finalizer::Error::CleanupFailed(inner) => {
                    inner.error_type()
                }
                finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                    metrics::error_type(e)
                }
                _ => "internal",
            },
            Error::NoNamespace(_) => "internal",
            Error::Endpoints(_) => "endpoints",
        }
    }
}

/// The controller contexts: each controller's own state around the shared [`Context`].
impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}

/// The work of one kind: `apply` with the object and its namespace, and `cleanup` before the
/// finalizer comes off (deletion of children needs nothing: they carry owner references).
pub(crate) async fn reconcile<K, F, Fut, C, CFut>(
    object: Arc<K>,
    context: &Context,
    kind: &'static str,
    apply: F,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
    F: FnOnce(Arc<K>, String) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>, String) -> CFut,
    CFut: Future<Output = Result<Action, Error>>,
{
    if let Some(later) = context.not_synced() {
        return Ok(later);
    }
    let started = Instant::now();
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::NoNamespace(object.name_any()))?;
    if !context.scope.validates(Some(&namespace), SystemTime::now()) {
        // A namespace-restricted operator owns this namespace for now. Looking again soon
        // resumes it within a few seconds of its marker expiring or being deleted.
        return Ok(Action::requeue(EXCLUDED_RECHECK));
    }
    let key = backoff_key(kind, &namespace, &object.name_any());
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let result = match with_finalizer(&api, object, context).await {
        Ok(object) => finalizer(&api, dynamo_api::labels::FINALIZER, object, |event| async {
            match event {
                finalizer::Event::Apply(object) => apply(object, namespace.clone()).await,
                finalizer::Event::Cleanup(object) => cleanup(object, namespace.clone()).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e))),
        Err(e) => Err(Error::Kube(e)),
    };
    let error_type = result.as_ref().err().map(Error::error_type);
    context
        .metrics
        .record(kind, &namespace, started, error_type);
    if result.is_ok() {
        context.backoff.succeeded(&key);
    }
    result
}

/// No work before the finalizer comes off.
pub(crate) async fn no_cleanup<K>(_: Arc<K>, _: String) -> Result<Action, Error> {
    Ok(Action::await_change())
}

/// The object with our finalizer: added here with the resourceVersion as precondition, so the
/// reconcile goes on with the work at once (kube's helper would add it and wait for the
/// resulting watch event, one more round through the queue for every new object).
async fn with_finalizer<K>(api: &Api<K>, object: Arc<K>, context: &Context) -> kube::Result<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizer = dynamo_api::labels::FINALIZER;
    if object.meta().deletion_timestamp.is_some()
        || object.finalizers().iter().any(|f| f == finalizer)
    {
        return Ok(object);
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(finalizer.to_owned());
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": object.resource_version(),
        "finalizers": finalizers,
    }});
    context.applier.count_write();
    let patched = api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(Arc::new(patched))
}

/// A failed object is retried after a delay that grows with its consecutive failures (see
/// [`crate::backoff`]); a success resets it.
pub(crate) fn error_policy<K, C>(object: Arc<K>, error: &Error, context: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    C: AsRef<Context>,
{
    let namespace = object.namespace().unwrap_or_default();
    let key = backoff_key(&K::kind(&()), &namespace, &object.name_any());
    let context: &Context = (*context).as_ref();
    let delay = context.backoff.failed(&key);
    tracing::warn!(
        object = %object.name_any(),
        %namespace,
        retry_in = ?delay,
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

fn backoff_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}
