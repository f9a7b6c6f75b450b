//! Rules of the DynamoModel.

use super::{Outcome, Rule, UpdateContext, check_immutable};
use crate::v1alpha1::{DynamoModel, ModelType};

/// Schemes the LoRA loader on the workers understands.
const LORA_URI_SCHEMES: [&str; 2] = ["s3://", "hf://"];

fn model_type_name(model_type: ModelType) -> &'static str {
    match model_type {
        ModelType::Base => "base",
        ModelType::Lora => "lora",
        ModelType::Adapter => "adapter",
    }
}

/// CREATE of a DynamoModel (and the stateless half of UPDATE).
pub fn validate_model_create(model: &DynamoModel) -> Outcome {
    let mut out = Outcome::default();
    let spec = &model.spec;
    if spec.model_name.is_empty() {
        out.error("spec.modelName", Rule::ModelNameRequired, "is required");
    }
    if spec.base_model_name.is_empty() {
        out.error(
            "spec.baseModelName",
            Rule::BaseModelNameRequired,
            "is required",
        );
    }
    if spec.model_type == Some(ModelType::Lora) {
        match spec.source.as_ref().map(|s| s.uri.as_str()) {
            None => out.error(
                "spec.source",
                Rule::LoraSourceRequired,
                "is required when modelType is lora",
            ),
            Some("") => out.error(
                "spec.source.uri",
                Rule::LoraSourceRequired,
                "must be specified when modelType is lora",
            ),
            Some(uri) if !LORA_URI_SCHEMES.iter().any(|s| uri.starts_with(s)) => out.error(
                "spec.source.uri",
                Rule::LoraSourceUriInvalid,
                format!("must start with 's3://' or 'hf://' (got {uri:?})"),
            ),
            Some(_) => {}
        }
    }
    out
}

/// UPDATE of a DynamoModel: the create rules on `new`; `modelType` and `baseModelName` stay as
/// they were. An object being deleted is always allowed, so its finalizers can be removed.
pub fn validate_model_update(
    old: &DynamoModel,
    new: &DynamoModel,
    _context: &UpdateContext<'_>,
) -> Outcome {
    if new.metadata.deletion_timestamp.is_some() {
        return Outcome::default();
    }
    let mut out = validate_model_create(new);
    // Compared with the default applied: `base` written out is what the API server stores anyway.
    let effective =
        |model: &DynamoModel| model_type_name(model.spec.model_type.unwrap_or_default());
    check_immutable(
        &mut out,
        "spec.modelType",
        Some(effective(old)),
        Some(effective(new)),
        "Changing spec.modelType may cause unexpected behavior",
    );
    check_immutable(
        &mut out,
        "spec.baseModelName",
        Some(&old.spec.base_model_name),
        Some(&new.spec.base_model_name),
        "Changing spec.baseModelName will break endpoint discovery",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{failures, model, single};

    const BASE: &str = "  modelName: llama\n  baseModelName: meta-llama/Llama-3.1-8B\n";

    fn lora(source: &str) -> Outcome {
        validate_model_create(&model(&format!("{BASE}  modelType: lora\n{source}")))
    }

    #[test]
    fn names_are_required() {
        assert!(validate_model_create(&model(BASE)).is_allowed());
        let outcome = validate_model_create(&model("  modelName: \"\"\n  baseModelName: \"\"\n"));
        assert_eq!(
            failures(&outcome),
            vec![
                ("spec.modelName".to_owned(), Rule::ModelNameRequired),
                ("spec.baseModelName".to_owned(), Rule::BaseModelNameRequired),
            ]
        );
        assert_eq!(
            outcome.message(),
            "spec.modelName: is required; spec.baseModelName: is required"
        );
    }

    #[test]
    fn lora_needs_an_s3_or_hf_source() {
        assert!(lora("  source:\n    uri: s3://bucket/adapters/a\n").is_allowed());
        assert!(lora("  source:\n    uri: hf://org/adapter@main\n").is_allowed());
        single(&lora(""), "spec.source", Rule::LoraSourceRequired);
        single(
            &lora("  source:\n    uri: \"\"\n"),
            "spec.source.uri",
            Rule::LoraSourceRequired,
        );
        let message = single(
            &lora("  source:\n    uri: https://example.com/a\n"),
            "spec.source.uri",
            Rule::LoraSourceUriInvalid,
        );
        assert_eq!(
            message,
            "must start with 's3://' or 'hf://' (got \"https://example.com/a\")"
        );
        // Other types need no source, and their source is not judged.
        let adapter = model(&format!(
            "{BASE}  modelType: adapter\n  source:\n    uri: file:///x\n"
        ));
        assert!(validate_model_create(&adapter).is_allowed());
    }

    #[test]
    fn model_type_and_base_model_are_immutable() {
        let context = UpdateContext::default();
        let old = model(BASE);
        let explicit_base = model(&format!("{BASE}  modelType: base\n"));
        assert!(validate_model_update(&old, &explicit_base, &context).is_allowed());
        let renamed = model("  modelName: llama-2\n  baseModelName: meta-llama/Llama-3.1-8B\n");
        assert!(validate_model_update(&old, &renamed, &context).is_allowed());

        let new = model(
            "  modelName: llama\n  baseModelName: other\n  modelType: lora\n  source:\n    uri: s3://b/a\n",
        );
        let outcome = validate_model_update(&old, &new, &context);
        assert_eq!(
            failures(&outcome),
            vec![
                ("spec.modelType".to_owned(), Rule::ImmutableField),
                ("spec.baseModelName".to_owned(), Rule::ImmutableField),
            ]
        );
        assert_eq!(
            outcome.errors[0].message,
            "is immutable and cannot be changed after creation (was \"base\", now \"lora\")"
        );
        assert_eq!(
            outcome.warnings,
            [
                "Changing spec.modelType may cause unexpected behavior",
                "Changing spec.baseModelName will break endpoint discovery"
            ]
        );
    }

    #[test]
    fn an_object_being_deleted_may_always_be_updated() {
        let old = model(BASE);
        let mut new = model("  modelName: \"\"\n  baseModelName: other\n");
        new.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            validate_model_update(&old, &new, &UpdateContext::default()),
            Outcome::default()
        );
    }
}
