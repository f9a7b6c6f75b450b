//! Parsing manifests into the typed structs with errors that name the offending field.

use serde::de::DeserializeOwned;

/// A manifest that does not fit its type, with the path of the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ParseError {
    /// Dotted path of the field, for example `spec.services.Frontend.replicas`
    /// (`.` when the document itself is malformed).
    pub path: String,
    pub message: String,
}

/// Parses one YAML document.
pub fn from_yaml<T: DeserializeOwned>(yaml: &str) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(yaml)).map_err(into_error)
}

/// Parses every document of a multi-document YAML stream, in order.
pub fn from_yaml_documents<T: DeserializeOwned>(yaml: &str) -> Result<Vec<T>, ParseError> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| serde_path_to_error::deserialize(document).map_err(into_error))
        .collect()
}

/// Converts a JSON value, as received from the API server or in an AdmissionReview.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(into_error)
}

fn into_error<E: std::fmt::Display>(error: serde_path_to_error::Error<E>) -> ParseError {
    ParseError {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1alpha1::{DynamoGraphDeployment, DynamoModel};

    fn graph_with(services: &str) -> String {
        format!(
            "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: g\nspec:\n{services}"
        )
    }

    #[test]
    fn unknown_enum_value_names_the_field() {
        let err =
            from_yaml::<DynamoGraphDeployment>(&graph_with("  backendFramework: tensorflow\n"))
                .unwrap_err();
        assert_eq!(err.path, "spec.backendFramework");
        assert!(
            err.message.contains("unknown variant `tensorflow`"),
            "{err}"
        );
        assert!(err.message.contains("vllm"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_nested_field() {
        let err = from_yaml::<DynamoGraphDeployment>(&graph_with(
            "  services:\n    Frontend:\n      replicas: two\n",
        ))
        .unwrap_err();
        assert_eq!(err.path, "spec.services.Frontend.replicas");
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn missing_required_field_names_its_parent() {
        let yaml = "apiVersion: nvidia.com/v1alpha1\nkind: DynamoModel\nmetadata:\n  name: m\nspec:\n  modelName: lora-a\n";
        let err = from_yaml::<DynamoModel>(yaml).unwrap_err();
        assert_eq!(err.path, "spec");
        assert!(
            err.message.contains("missing field `baseModelName`"),
            "{err}"
        );
    }

    #[test]
    fn error_inside_main_container_names_the_full_path() {
        let err = from_yaml::<DynamoGraphDeployment>(&graph_with(
            "  services:\n    W:\n      extraPodSpec:\n        mainContainer:\n          ports:\n            - containerPort: http\n",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("spec.services.W.extraPodSpec"), "{text}");
        assert!(
            text.contains("mainContainer.ports[0].containerPort"),
            "{text}"
        );
    }
}
