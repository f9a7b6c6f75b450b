//! Answering AdmissionReviews: decode, dispatch by path, scope, the rules, the response.

use std::time::{Instant, SystemTime};

use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment, DynamoModel};
use dynamo_api::validation::{self, Outcome, UpdateContext};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::scope::Scope;

/// The kinds this webhook validates, by their upstream paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GraphDeployment,
    ComponentDeployment,
    Model,
}

impl Kind {
    pub const ALL: [Kind; 3] = [
        Kind::GraphDeployment,
        Kind::ComponentDeployment,
        Kind::Model,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Kind::GraphDeployment => "/validate-nvidia-com-v1alpha1-dynamographdeployment",
            Kind::ComponentDeployment => "/validate-nvidia-com-v1alpha1-dynamocomponentdeployment",
            Kind::Model => "/validate-nvidia-com-v1alpha1-dynamomodel",
        }
    }

    pub fn from_path(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.path() == path)
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::GraphDeployment => "DynamoGraphDeployment",
            Kind::ComponentDeployment => "DynamoComponentDeployment",
            Kind::Model => "DynamoModel",
        }
    }
}

/// What the handler needs besides the review.
#[derive(Clone, Debug)]
pub struct Policy {
    pub scope: Scope,
    /// Usernames allowed to change replicas owned by a scaling adapter.
    pub replica_managers: Vec<String>,
}

/// Answers one review body; never fails: a body it cannot read gets an `invalid` response.
pub fn review(
    kind: Kind,
    body: &[u8],
    policy: &Policy,
    metrics: &Metrics,
) -> AdmissionReview<DynamicObject> {
    let started = Instant::now();
    let (response, operation, denial) = match kind {
        Kind::GraphDeployment => decide::<DynamoGraphDeployment>(kind, body, policy),
        Kind::ComponentDeployment => decide::<DynamoComponentDeployment>(kind, body, policy),
        Kind::Model => decide::<DynamoModel>(kind, body, policy),
    };
    if let Some(operation) = operation {
        metrics.observe(
            kind.name(),
            operation,
            started.elapsed().as_secs_f64(),
            denial,
        );
    }
    response.into_review()
}

/// The rules of one kind.
trait Validated: Resource + DeserializeOwned + Clone {
    fn on_create(&self) -> Outcome;
    fn on_update(old: &Self, new: &Self, context: &UpdateContext) -> Outcome;
}

impl Validated for DynamoGraphDeployment {
    fn on_create(&self) -> Outcome {
        validation::validate_graph_create(self)
    }
    fn on_update(old: &Self, new: &Self, context: &UpdateContext) -> Outcome {
        validation::validate_graph_update(old, new, context)
    }
}

impl Validated for DynamoComponentDeployment {
    fn on_create(&self) -> Outcome {
        validation::validate_component_create(self)
    }
    fn on_update(old: &Self, new: &Self, context: &UpdateContext) -> Outcome {
        validation::validate_component_update(old, new, context)
    }
}

impl Validated for DynamoModel {
    fn on_create(&self) -> Outcome {
        validation::validate_model_create(self)
    }
    fn on_update(old: &Self, new: &Self, context: &UpdateContext) -> Outcome {
        validation::validate_model_update(old, new, context)
    }
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The response, the operation (when the review could be read) and the denial reason.
fn decide<K: Validated>(
    kind: Kind,
    body: &[u8],
    policy: &Policy,
) -> (
    AdmissionResponse,
    Option<&'static str>,
    Option<&'static str>,
) {
    let request: AdmissionRequest<K> = match parse_request(body) {
        Ok(request) => request,
        Err(Unreadable::Invalid(message)) => {
            return (AdmissionResponse::invalid(message), None, None);
        }
        Err(Unreadable::Object { uid, message }) => {
            // The envelope is fine but the object does not fit the kind: tell the user where.
            let mut response = AdmissionResponse::invalid(&message);
            response.uid = uid;
            return (response, None, Some("malformed_object"));
        }
    };
    let operation = operation_name(&request.operation);
    let response = AdmissionResponse::from(&request);
    if request.kind.kind != kind.name() {
        let message = format!(
            "this endpoint validates {}, not {}",
            kind.name(),
            request.kind.kind
        );
        return (response.deny(message), Some(operation), Some("wrong_kind"));
    }
    if !policy
        .scope
        .validates(request.namespace.as_deref(), SystemTime::now())
    {
        return (response, Some(operation), None);
    }
    let outcome = match (&request.operation, &request.object, &request.old_object) {
        (Operation::Create, Some(object), _) => object.on_create(),
        // An object being deleted must stay updatable so its finalizers can be removed.
        (Operation::Update, Some(object), _) if object.meta().deletion_timestamp.is_some() => {
            Outcome::default()
        }
        (Operation::Update, Some(object), Some(old)) => {
            let context = UpdateContext {
                username: request.user_info.username.as_deref().unwrap_or_default(),
                privileged_service_accounts: &policy.replica_managers,
            };
            K::on_update(old, object, &context)
        }
        (Operation::Create | Operation::Update, _, _) => {
            let message = "the review carries no object (or no oldObject on UPDATE)";
            return (
                AdmissionResponse::invalid(message),
                Some(operation),
                Some("malformed_review"),
            );
        }
        (Operation::Delete | Operation::Connect, _, _) => Outcome::default(),
    };
    let mut response = response;
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings.clone());
    }
    match outcome.denial_reason() {
        None => (response, Some(operation), None),
        Some(reason) => (
            response.deny(outcome.message()),
            Some(operation),
            Some(reason),
        ),
    }
}

enum Unreadable {
    /// Not an AdmissionReview at all.
    Invalid(String),
    /// A review whose object does not fit the kind.
    Object { uid: String, message: String },
}

fn parse_request<K: Validated>(body: &[u8]) -> Result<AdmissionRequest<K>, Unreadable> {
    // The fast path parses plainly; only a failure is parsed again to find the field at fault.
    match serde_json::from_slice::<AdmissionReview<K>>(body) {
        Ok(review) => review
            .try_into()
            .map_err(|_| Unreadable::Invalid("the AdmissionReview has no request".into())),
        Err(plain) => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let message = match serde_path_to_error::deserialize::<_, AdmissionReview<K>>(
                &mut deserializer,
            ) {
                Err(error) => format!("{}: {}", error.path(), error.inner()),
                Ok(_) => plain.to_string(),
            };
            match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
                Ok(AdmissionReview {
                    request: Some(request),
                    ..
                }) => Err(Unreadable::Object {
                    uid: request.uid,
                    message,
                }),
                _ => Err(Unreadable::Invalid(format!(
                    "not an AdmissionReview: {message}"
                ))),
            }
        }
    }
}
