//! Answering AdmissionReviews: decode, dispatch by path, scope, the rules, the response.

use std::time::{Instant, SystemTime};

use dynamo_api::validation::{self, KindVisitor, Outcome, UpdateContext, Validate};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::metrics::Metrics;
use dynamo_common::scope::Scope;

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
    let decision = validation::with_kind(kind.name(), Decide { kind, body, policy })
        // Every `Kind` has rules (tested); should one lose them, deny rather than admit unchecked.
        .unwrap_or_else(|| {
            Decision::unread(AdmissionResponse::invalid(format!(
                "no admission rules for {}",
                kind.name()
            )))
        });
    if let Some(operation) = decision.operation {
        metrics.observe(
            kind.name(),
            operation,
            started.elapsed().as_secs_f64(),
            decision.denial,
        );
    }
    decision.response.into_review()
}

/// What one review came to: the answer and what the metrics record of it.
struct Decision {
    response: AdmissionResponse,
    /// `CREATE`, `UPDATE`, ...; `None` when the review could not be read (then it is not counted).
    operation: Option<&'static str>,
    /// The `reason` label of a denial; `None` when allowed.
    denial: Option<&'static str>,
}

impl Decision {
    /// A review that could not be read far enough to count it.
    fn unread(response: AdmissionResponse) -> Self {
        Decision {
            response,
            operation: None,
            denial: None,
        }
    }

    fn counted(
        response: AdmissionResponse,
        operation: &'static str,
        denial: Option<&'static str>,
    ) -> Self {
        Decision {
            response,
            operation: Some(operation),
            denial,
        }
    }
}

/// [`decide`] for the type the review's kind names.
struct Decide<'a> {
    kind: Kind,
    body: &'a [u8],
    policy: &'a Policy,
}

impl KindVisitor for Decide<'_> {
    type Output = Decision;
    fn visit<K: Validate>(self) -> Decision {
        decide::<K>(self.kind, self.body, self.policy)
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

fn decide<K: Validate>(kind: Kind, body: &[u8], policy: &Policy) -> Decision {
    let request: AdmissionRequest<K> = match parse_request(body) {
        Ok(request) => request,
        Err(Unreadable::Invalid(message)) => {
            return Decision::unread(AdmissionResponse::invalid(message));
        }
        Err(Unreadable::Object { uid, message }) => {
            // The envelope is fine but the object does not fit the kind: tell the user where.
            let mut response = AdmissionResponse::invalid(&message);
            response.uid = uid;
            return Decision::unread(response);
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
        return Decision::counted(response.deny(message), operation, Some("wrong_kind"));
    }
    if !policy
        .scope
        .validates(request.namespace.as_deref(), SystemTime::now())
    {
        return Decision::counted(response, operation, None);
    }
    let outcome = match (&request.operation, &request.object, &request.old_object) {
        (Operation::Create, Some(object), _) => object.validate_create(),
        // An object being deleted must stay updatable so its finalizers can be removed.
        (Operation::Update, Some(object), _) if object.meta().deletion_timestamp.is_some() => {
            Outcome::default()
        }
        (Operation::Update, Some(object), Some(old)) => {
            let context = UpdateContext {
                username: request.user_info.username.as_deref().unwrap_or_default(),
                privileged_service_accounts: &policy.replica_managers,
            };
            object.validate_update(old, &context)
        }
        (Operation::Create | Operation::Update, _, _) => {
            let message = "the review carries no object (or no oldObject on UPDATE)";
            return Decision::counted(
                AdmissionResponse::invalid(message),
                operation,
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
        None => Decision::counted(response, operation, None),
        Some(reason) => {
            Decision::counted(response.deny(outcome.message()), operation, Some(reason))
        }
    }
}

enum Unreadable {
    /// Not an AdmissionReview at all.
    Invalid(String),
    /// A review whose object does not fit the kind.
    Object { uid: String, message: String },
}

fn parse_request<K: Validate>(body: &[u8]) -> Result<AdmissionRequest<K>, Unreadable> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind name of the type `with_kind` picked.
    struct KindName;

    impl KindVisitor for KindName {
        type Output = String;
        fn visit<K: Validate>(self) -> String {
            K::kind(&()).into_owned()
        }
    }

    #[test]
    fn every_path_reaches_the_rules_of_its_own_kind() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_path(kind.path()), Some(kind));
            assert_eq!(
                validation::with_kind(kind.name(), KindName).as_deref(),
                Some(kind.name())
            );
        }
    }
}
