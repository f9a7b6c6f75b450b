//! DynamoModel: finds the pods serving its base model (EndpointSlices of the model's headless
//! Service), loads LoRA adapters onto them over HTTP, reports the endpoints, and unloads on
//! deletion.

use std::sync::Arc;
use std::time::Duration;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{DynamoModel, EndpointInfo};
use dynamo_api::validation::validate_model_create;
use hyper::Method;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::reconcile::{Error, reconcile as reconcile_object};
use crate::apply::{Pace, StatusWrite};
use crate::caches::decoded;
use crate::context::Context;
use crate::desired::model::{self, Candidate};
use crate::desired::status::{ENDPOINTS_READY, holds, model_invalid, model_status};
use crate::lora::FanOut;

const KIND: &str = "DynamoModel";
/// How often unloading one endpoint is tried before deletion goes ahead without it.
const UNLOAD_ATTEMPTS: u32 = 3;
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(model: Arc<DynamoModel>, context: Arc<Context>) -> Result<Action, Error> {
    let (apply_context, cleanup_context) = (context.clone(), context.clone());
    reconcile_object(
        model,
        &context,
        KIND,
        |model, namespace| async move { apply(&model, &namespace, &apply_context).await },
        |model, _| async move { cleanup(&model, &cleanup_context).await },
    )
    .await
}

/// The EndpointSlices of the model's base model, from the watch cache.
fn slices(context: &Context, namespace: &str, model: &DynamoModel) -> Vec<EndpointSlice> {
    let hash = model::model_hash(model);
    context
        .caches
        .model_endpoints
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(namespace)
                && s.routing_label(label::BASE_MODEL_HASH) == Some(hash.as_str())
        })
        .filter_map(|s| decoded(&s))
        .collect()
}

/// Loads the adapter onto `targets`; the addresses that have it now (2xx, or 409: already
/// loaded) and one line per failure.
async fn load(model: &DynamoModel, targets: Vec<Candidate>) -> (Vec<String>, Vec<String>) {
    let body = serde_json::to_vec(&model::load_request(model)).unwrap_or_default();
    FanOut {
        method: Method::POST,
        path: "/v1/loras",
        body: Some(body),
        attempts: 1,
        done: |code| (200..300).contains(&code) || code == 409,
    }
    .send(targets.into_iter().map(|t| t.address).collect())
    .await
}

async fn apply(model: &DynamoModel, namespace: &str, context: &Context) -> Result<Action, Error> {
    let api: Api<DynamoModel> = Api::namespaced(context.client.clone(), namespace);
    let previous = model.status.as_ref().and_then(|s| s.conditions.as_deref());

    // Invalid specs (possible with the webhook off) are reported, and nothing is called.
    let outcome = validate_model_create(model);
    if !outcome.is_allowed() {
        let message = outcome.message();
        let status = model_invalid(model, message.clone());
        if context
            .applier
            .write_status(&api, model, model.status.as_ref(), &status, Pace::Now)
            .await?
            == StatusWrite::Written
        {
            context.warning(model, "ValidationFailed", message);
        }
        return Ok(Action::await_change());
    }

    let slices = slices(context, namespace, model);
    let candidates = model::candidates(&slices);
    let lora = model::loads_over_http(model);
    // Addresses recorded as loaded that still hold the same pod keep their adapter.
    let mut loaded: Vec<String> = model
        .status
        .as_ref()
        .and_then(|s| s.endpoints.as_ref())
        .into_iter()
        .flatten()
        .filter(|e| {
            e.ready
                && candidates
                    .iter()
                    .any(|c| c.address == e.address && c.pod_name == e.pod_name && c.ready)
        })
        .map(|e| e.address.clone())
        .collect();
    let mut failures = Vec::new();
    if lora {
        let targets: Vec<Candidate> = model::to_load(&candidates, model.status.as_ref())
            .into_iter()
            .cloned()
            .collect();
        if !targets.is_empty() {
            let (newly, failed) = load(model, targets).await;
            loaded.extend(newly);
            failures = failed;
        }
    }
    let endpoints: Vec<EndpointInfo> = model::endpoints(&candidates, &loaded, lora);
    let status = model_status(model, !slices.is_empty(), endpoints, lora);
    let was_ready = holds(previous, ENDPOINTS_READY);
    context
        .applier
        .write_status(&api, model, model.status.as_ref(), &status, Pace::Now)
        .await?;

    if !failures.is_empty() {
        let note = format!(
            "loading failed on {} endpoints: {}",
            failures.len(),
            failures.join("; ")
        );
        context.warning(model, "PartialEndpointFailure", note.clone());
        // Retried with the per-object backoff.
        return Err(Error::Endpoints(note));
    }
    let (all_ready, reason, message) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ENDPOINTS_READY)
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
        .unwrap_or_default();
    if all_ready && !was_ready {
        let event = if lora {
            "EndpointsReady"
        } else {
            "EndpointsDiscovered"
        };
        context.normal(model, event, message);
    } else if reason == "NoEndpoints" && status != model.status.clone().unwrap_or_default() {
        context.normal(model, "NoEndpointsFound", message);
    }
    Ok(Action::requeue(if all_ready {
        RESYNC
    } else {
        Duration::from_secs(30)
    }))
}

/// Unloads the adapter from every endpoint it was loaded on, a few tries each; what still
/// fails is reported and deletion goes on, so a dead pod never keeps a DynamoModel forever.
async fn cleanup(model: &DynamoModel, context: &Context) -> Result<Action, Error> {
    if !model::loads_over_http(model) {
        return Ok(Action::await_change());
    }
    let path = format!("/v1/loras/{}", model.spec.model_name);
    let addresses: Vec<String> = model
        .status
        .as_ref()
        .and_then(|s| s.endpoints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.ready)
        .map(|e| e.address)
        .collect();
    let (unloaded, failed) = FanOut {
        method: Method::DELETE,
        path: &path,
        body: None,
        attempts: UNLOAD_ATTEMPTS,
        done: |code| (200..300).contains(&code) || code == 404,
    }
    .send(addresses)
    .await;
    let model_name = &model.spec.model_name;
    if !unloaded.is_empty() {
        let note = format!("unloaded {model_name} from {} endpoints", unloaded.len());
        context.normal(model, "LoRAUnloaded", note);
    }
    if !failed.is_empty() {
        let note = format!(
            "could not unload {model_name} after {UNLOAD_ATTEMPTS} tries: {}",
            failed.join("; ")
        );
        tracing::warn!(model = %model.name_any(), "{note}");
        context.warning(model, "LoRAUnloadFailed", note);
    }
    Ok(Action::await_change())
}
