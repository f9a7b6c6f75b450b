//! Everything the cluster would check on one of our objects, without a cluster: the CRD schema
//! (with defaults applied first, as the API server does), the CRDs' CEL rules, and the admission
//! rules, for a create or for an update from an old version.
//!
//! The object goes through what the API server does before validating it: fields the schema does
//! not declare are dropped (a warning each, not an error), `null`s of non-nullable fields are
//! dropped, defaults are filled in, and `status` is ignored (it has its own subresource). Then,
//! like the API server, the CEL rules run only when the schema found no error that makes them
//! meaningless (a wrong type, a missing required field, an unsupported enum value, too many
//! items), and on an update a field left unchanged keeps its errors only as warnings
//! (validation ratcheting).

mod cel_rules;
mod field_error;
mod formats;
mod list_type;
mod metadata;
mod openapi;
mod path;
mod prepare;
mod structural;

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use serde_json::Value;

use crate::parse;
use crate::validation::{self, KindVisitor, Outcome, UpdateContext, Validate};
use field_error::FieldError;

/// Which check found a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The CRD's OpenAPI schema (types, enums, required, bounds, ...).
    Schema,
    /// A CEL rule of the CRD (`x-kubernetes-validations`).
    Cel,
    /// The admission webhook's rules.
    Webhook,
}

/// One problem with an object, or a warning.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Field path as the API server writes it, e.g. `spec.services.Frontend.replicas` (schema) or
    /// `spec.services[Frontend].checkpoint` (CEL rules, which bracket map keys).
    pub path: String,
    pub message: String,
    /// The rule: a schema keyword (`minimum`), the CEL rule's text, or the webhook rule id.
    pub rule: String,
    pub source: Source,
    /// A warning, not a refusal.
    pub warning: bool,
}

/// The findings on `object` (JSON of one manifest document), a create when `old` is `None`, else
/// an update from `old`: schema findings first, then CEL rules, then the webhook's rules. `None`
/// when the kind is not one of ours.
pub fn check(object: &Value, old: Option<&Value>) -> Option<Vec<Finding>> {
    let kind = object.get("kind")?.as_str()?;
    let definition = definition_of(kind)?;
    let mut findings = Vec::new();
    let version = version_for(definition, object, &mut findings);
    let schema = version
        .schema
        .as_ref()
        .and_then(|validation| validation.open_api_v3_schema.as_ref())
        .expect("every version of our CRDs has a schema");

    let (mut object, unknown_fields) = prepare::as_decoded(object, schema);
    let old = old.map(|old| prepare::as_decoded(old, schema).0);
    let has_status_subresource = version
        .subresources
        .as_ref()
        .is_some_and(|subresources| subresources.status.is_some());
    if has_status_subresource {
        keep_status_of(&mut object, old.as_ref());
    }

    findings.extend(unknown_fields.into_iter().map(|path| Finding {
        message: format!("unknown field {}", field_error::go_quote(&path)),
        path,
        rule: "unknownField".into(),
        source: Source::Schema,
        warning: true,
    }));
    let schema_errors = schema_errors(&object, old.as_ref(), schema);
    let refused_by_schema = schema_errors.iter().any(|error| !error.warning);
    let blocks_cel = schema_errors
        .iter()
        .any(|error| !error.warning && error.kind.blocks_cel());
    findings.extend(as_findings(schema_errors, Source::Schema));

    if blocks_cel {
        findings.push(Finding {
            path: String::new(),
            message: "some validation rules were not checked because the object was invalid; \
                      correct the existing errors to complete validation"
                .into(),
            rule: "x-kubernetes-validations".into(),
            source: Source::Cel,
            warning: true,
        });
    } else {
        let cel_errors = cel_rules::validate(&object, old.as_ref(), schema);
        findings.extend(as_findings(cel_errors, Source::Cel));
    }

    findings.extend(with_webhook_rules(kind, object, old, refused_by_schema).unwrap_or_default());
    Some(findings)
}

/// The CRD of `kind`, if it is one of ours.
fn definition_of(kind: &str) -> Option<&'static CustomResourceDefinition> {
    static DEFINITIONS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    DEFINITIONS
        .get_or_init(crate::crd::all)
        .iter()
        .find(|definition| definition.spec.names.kind == kind)
}

/// The version `object`'s `apiVersion` names; the storage version, with a finding, when it names
/// none the CRD serves.
fn version_for<'a>(
    definition: &'a CustomResourceDefinition,
    object: &Value,
    findings: &mut Vec<Finding>,
) -> &'a CustomResourceDefinitionVersion {
    let versions = &definition.spec.versions;
    let storage = versions
        .iter()
        .find(|version| version.storage)
        .unwrap_or(&versions[0]);
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let named = api_version.and_then(|api_version| {
        let (group, version) = api_version.split_once('/')?;
        (group == definition.spec.group)
            .then(|| versions.iter().find(|v| v.served && v.name == version))
            .flatten()
    });
    if let Some(version) = named {
        return version;
    }
    let message = match api_version {
        None => "apiVersion not set".to_owned(),
        Some(api_version) => format!(
            "no matches for kind \"{}\" in version \"{api_version}\"",
            definition.spec.names.kind
        ),
    };
    findings.push(Finding {
        path: "apiVersion".into(),
        message,
        rule: "apiVersion".into(),
        source: Source::Schema,
        warning: false,
    });
    storage
}

/// What the API server does with `status` when the status subresource is on: a create cannot set
/// it, and an update keeps the old one.
fn keep_status_of(object: &mut Value, old: Option<&Value>) {
    let Value::Object(fields) = object else {
        return;
    };
    match old.and_then(|old| old.get("status")) {
        Some(status) => {
            fields.insert("status".into(), status.clone());
        }
        None => {
            fields.remove("status");
        }
    }
}

/// Metadata, OpenAPI keywords and list types, in the API server's order.
fn schema_errors(object: &Value, old: Option<&Value>, schema: &JSONSchemaProps) -> Vec<FieldError> {
    let mut errors = metadata::validate(object);
    errors.extend(openapi::validate(object, old, schema));
    errors.extend(list_type::validate(object, schema));
    errors
}

fn as_findings(errors: Vec<FieldError>, source: Source) -> impl Iterator<Item = Finding> {
    errors.into_iter().map(move |error| Finding {
        message: error.message(),
        path: error.path,
        rule: error.rule,
        source,
        warning: error.warning,
    })
}

/// The webhook's rules, on the object as the webhook would receive it. An object that does not
/// decode into our types gets a finding only when the schema found nothing wrong (the schema's
/// findings already say why).
fn with_webhook_rules(
    kind: &str,
    object: Value,
    old: Option<Value>,
    refused_by_schema: bool,
) -> Option<Vec<Finding>> {
    let outcome = validation::with_kind(kind, WebhookRules { object, old })?;
    Some(match outcome {
        Ok(outcome) => findings(outcome),
        Err(_) if refused_by_schema => Vec::new(),
        Err(message) => vec![Finding {
            path: String::new(),
            message,
            rule: "decode".into(),
            source: Source::Schema,
            warning: false,
        }],
    })
}

struct WebhookRules {
    object: Value,
    old: Option<Value>,
}

impl KindVisitor for WebhookRules {
    type Output = Result<Outcome, String>;
    fn visit<K: Validate>(self) -> Self::Output {
        let object = parse::from_value::<K>(self.object).map_err(|e| e.to_string())?;
        match self.old {
            None => Ok(object.validate_create()),
            Some(old) => {
                let old = parse::from_value::<K>(old).map_err(|e| format!("old object: {e}"))?;
                Ok(object.validate_update(&old, &UpdateContext::default()))
            }
        }
    }
}

fn findings(outcome: Outcome) -> Vec<Finding> {
    let errors = outcome.errors.into_iter().map(|e| Finding {
        path: e.path,
        message: e.message,
        rule: e.rule.id().to_owned(),
        source: Source::Webhook,
        warning: false,
    });
    let warnings = outcome.warnings.into_iter().map(|message| Finding {
        path: String::new(),
        message,
        rule: "warning".into(),
        source: Source::Webhook,
        warning: true,
    });
    errors.chain(warnings).collect()
}
