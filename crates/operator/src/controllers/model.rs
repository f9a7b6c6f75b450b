//! DynamoModel: finds the pods serving its base model (EndpointSlices of the model's headless
//! Service), loads LoRA adapters onto them over HTTP, reports the endpoints, and unloads on
//! deletion.

use std::sync::Arc;
use std::time::Duration;

use dynamo_api::labels::label;
use dynamo_api::v1alpha1::{DynamoModel, DynamoModelStatus, EndpointInfo};
use dynamo_api::validation::validate_model_create;
use futures::StreamExt as _;
use hyper::Method;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::condition;
use super::{Context, Error, reconcile_with_cleanup};
use crate::build::model::{self, Candidate};
use crate::lora;

const KIND: &str = "DynamoModel";
/// Load requests in flight at once, per model.
const CONCURRENCY: usize = 10;
/// How often unloading one endpoint is tried before deletion goes ahead without it.
const UNLOAD_ATTEMPTS: u32 = 3;
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(model: Arc<DynamoModel>, context: Arc<Context>) -> Result<Action, Error> {
    let (apply_context, cleanup_context) = (context.clone(), context.clone());
    reconcile_with_cleanup(
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
                && s.labels().get(label::BASE_MODEL_HASH) == Some(&hash)
        })
        .filter_map(|s| super::decoded(&s))
        .collect()
}

/// Loads the adapter onto `targets`, at most [`CONCURRENCY`] at once; returns the addresses
/// that have it now (2xx, or 409: already loaded) and one line per failure.
async fn load(model: &DynamoModel, targets: Vec<Candidate>) -> (Vec<String>, Vec<String>) {
    let body = serde_json::to_vec(&model::load_request(model)).unwrap_or_default();
    let results: Vec<(String, Result<u16, String>)> = futures::stream::iter(targets)
        .map(|target| {
            let body = body.clone();
            async move {
                let result = lora::call(
                    Method::POST,
                    &target.address,
                    "/v1/loras",
                    Some(body),
                    lora::REQUEST_TIMEOUT,
                )
                .await;
                (target.address, result)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for (address, result) in results {
        match result {
            Ok(code) if (200..300).contains(&code) || code == 409 => loaded.push(address),
            Ok(code) => failures.push(format!("{address}: HTTP {code}")),
            Err(e) => failures.push(e),
        }
    }
    (loaded, failures)
}

async fn apply(model: &DynamoModel, namespace: &str, context: &Context) -> Result<Action, Error> {
    let api: Api<DynamoModel> = Api::namespaced(context.client.clone(), namespace);
    let name = model.name_any();
    let generation = model.metadata.generation;
    let previous = model.status.as_ref().and_then(|s| s.conditions.as_deref());

    // Invalid specs (possible with the webhook off) are reported, and nothing is called.
    let outcome = validate_model_create(model);
    if !outcome.is_allowed() {
        let message = outcome.message();
        let status = DynamoModelStatus {
            conditions: Some(vec![condition(
                previous,
                "Valid",
                false,
                "ValidationFailed",
                message.clone(),
                generation,
            )]),
            ..Default::default()
        };
        if context
            .applier
            .write_status(&api, &name, model.status.as_ref(), &status)
            .await?
        {
            context.event(model, true, "ValidationFailed", message);
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
    let (all_ready, reason, message) = model::endpoints_ready(&endpoints, lora);
    let ready_count = endpoints.iter().filter(|e| e.ready).count() as i32;
    let services_found = !slices.is_empty();
    let status = DynamoModelStatus {
        ready_endpoints: Some(ready_count),
        total_endpoints: Some(endpoints.len() as i32),
        endpoints: Some(endpoints),
        conditions: Some(vec![
            condition(
                previous,
                "ServicesFound",
                services_found,
                if services_found {
                    "ServicesFound"
                } else {
                    "NoServicesFound"
                },
                if services_found {
                    format!(
                        "found the Service of base model {}",
                        model.spec.base_model_name
                    )
                } else {
                    format!(
                        "no Service serves base model {}",
                        model.spec.base_model_name
                    )
                },
                generation,
            ),
            condition(
                previous,
                "EndpointsReady",
                all_ready,
                reason,
                message.clone(),
                generation,
            ),
        ]),
    };
    let was_ready = previous
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "EndpointsReady" && c.status == "True");
    context
        .applier
        .write_status(&api, &name, model.status.as_ref(), &status)
        .await?;

    let failures_so_far =
        context.model_failures(&model.uid().unwrap_or_default(), !failures.is_empty());
    if !failures.is_empty() {
        let note = format!(
            "loading failed on {} endpoints: {}",
            failures.len(),
            failures.join("; ")
        );
        tracing::warn!(model = %name, %namespace, "{note}");
        context.event(model, true, "PartialEndpointFailure", note);
        return Ok(Action::requeue(model::retry_delay(
            failures_so_far.saturating_sub(1),
        )));
    }
    if all_ready && !was_ready {
        let event = if lora {
            "EndpointsReady"
        } else {
            "EndpointsDiscovered"
        };
        context.event(model, false, event, message);
    } else if reason == "NoEndpoints" && status != model.status.clone().unwrap_or_default() {
        context.event(model, false, "NoEndpointsFound", message);
    }
    Ok(if all_ready {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(Duration::from_secs(30))
    })
}

/// Unloads the adapter from every endpoint it was loaded on, a few tries each; what still
/// fails is reported and deletion goes on, so a dead pod never keeps a DynamoModel forever.
async fn cleanup(model: &DynamoModel, context: &Context) -> Result<Action, Error> {
    if !model::loads_over_http(model) {
        return Ok(Action::await_change());
    }
    let path = format!("/v1/loras/{}", model.spec.model_name);
    let endpoints: Vec<EndpointInfo> = model
        .status
        .as_ref()
        .and_then(|s| s.endpoints.clone())
        .unwrap_or_default();
    let results: Vec<(String, Result<u16, String>)> =
        futures::stream::iter(endpoints.into_iter().filter(|e| e.ready))
            .map(|endpoint| {
                let path = path.clone();
                async move {
                    let mut last = Err(String::new());
                    for attempt in 0..UNLOAD_ATTEMPTS {
                        if attempt > 0 {
                            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                        }
                        last = lora::call(
                            Method::DELETE,
                            &endpoint.address,
                            &path,
                            None,
                            lora::REQUEST_TIMEOUT,
                        )
                        .await;
                        if matches!(last, Ok(code) if (200..300).contains(&code) || code == 404) {
                            break;
                        }
                    }
                    (endpoint.address, last)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let (mut unloaded, mut failed) = (0, Vec::new());
    for (address, result) in results {
        match result {
            Ok(code) if (200..300).contains(&code) || code == 404 => unloaded += 1,
            Ok(code) => failed.push(format!("{address}: HTTP {code}")),
            Err(e) => failed.push(e),
        }
    }
    if unloaded > 0 {
        context.event(
            model,
            false,
            "LoRAUnloaded",
            format!(
                "unloaded {} from {unloaded} endpoints",
                model.spec.model_name
            ),
        );
    }
    if !failed.is_empty() {
        let note = format!(
            "could not unload {} after {UNLOAD_ATTEMPTS} tries: {}",
            model.spec.model_name,
            failed.join("; ")
        );
        tracing::warn!(model = %model.name_any(), "{note}");
        context.event(model, true, "LoRAUnloadFailed", note);
    }
    Ok(Action::await_change())
}
