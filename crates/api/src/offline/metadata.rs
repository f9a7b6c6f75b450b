//! The object metadata rules the API server applies to every custom resource: a name (or
//! `generateName`) that is a DNS subdomain, a DNS-label namespace, and well-formed label and
//! annotation keys and label values.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::field_error::{ErrorType, FieldError, go_quote, go_value};

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Most bytes all annotations of one object may hold together.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

pub(crate) fn validate(object: &Value) -> Vec<FieldError> {
    let metadata = &object["metadata"];
    let mut errors = Vec::new();
    let text = |field: &str| metadata[field].as_str().unwrap_or_default().to_owned();
    let (name, generate_name, namespace) = (text("name"), text("generateName"), text("namespace"));
    let invalid = |field: &str, value: &str, detail: String| {
        FieldError::new(
            format!("metadata.{field}"),
            ErrorType::Invalid,
            Some(go_quote(value)),
            detail,
            "metadata",
        )
    };
    if !generate_name.is_empty() {
        // A prefix: the random suffix makes a trailing dash fine.
        let prefix = generate_name.strip_suffix('-').unwrap_or(&generate_name);
        for detail in dns1123_subdomain(prefix) {
            errors.push(invalid("generateName", &generate_name, detail));
        }
    }
    if name.is_empty() && generate_name.is_empty() {
        errors.push(FieldError::new(
            "metadata.name",
            ErrorType::Required,
            None,
            "name or generateName is required",
            "metadata",
        ));
    } else if !name.is_empty() {
        for detail in dns1123_subdomain(&name) {
            errors.push(invalid("name", &name, detail));
        }
    }
    if !namespace.is_empty() {
        for detail in dns1123_label(&namespace) {
            errors.push(invalid("namespace", &namespace, detail));
        }
    }
    if let Some(labels) = metadata["labels"].as_object() {
        for (key, value) in labels {
            for detail in qualified_name(key) {
                errors.push(invalid("labels", key, detail));
            }
            match value.as_str() {
                Some(value) => {
                    for detail in label_value(value) {
                        errors.push(invalid("labels", value, detail));
                    }
                }
                None => errors.push(FieldError::new(
                    format!("metadata.labels.{key}"),
                    ErrorType::Invalid,
                    Some(go_value(value)),
                    "must be a string",
                    "metadata",
                )),
            }
        }
    }
    if let Some(annotations) = metadata["annotations"].as_object() {
        for key in annotations.keys() {
            for detail in qualified_name(&key.to_lowercase()) {
                errors.push(invalid("annotations", key, detail));
            }
        }
        let size: usize = annotations
            .iter()
            .map(|(key, value)| key.len() + value.as_str().map_or(0, str::len))
            .sum();
        if size > ANNOTATIONS_LIMIT {
            errors.push(FieldError::new(
                "metadata.annotations",
                ErrorType::TooLong,
                None,
                format!("may not be more than {ANNOTATIONS_LIMIT} bytes"),
                "metadata",
            ));
        }
    }
    errors
}

fn matches(pattern: &'static str, cache: &'static OnceLock<Regex>, text: &str) -> bool {
    cache
        .get_or_init(|| Regex::new(&format!("^{pattern}$")).expect("a valid pattern"))
        .is_match(text)
}

/// The API server's wording for a value that does not match a pattern.
fn regex_error(message: &str, pattern: &str, examples: &[&str]) -> String {
    let mut text = format!("{message} (e.g. ");
    for (index, example) in examples.iter().enumerate() {
        if index > 0 {
            text.push_str(" or ");
        }
        text.push_str(&format!("'{example}', "));
    }
    text.push_str(&format!("regex used for validation is '{pattern}')"));
    text
}

fn too_long(limit: usize) -> String {
    format!("must be no more than {limit} characters")
}

fn dns1123_subdomain(text: &str) -> Vec<String> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    let mut errors = Vec::new();
    if text.len() > 253 {
        errors.push(too_long(253));
    }
    if !matches(DNS1123_SUBDOMAIN, &PATTERN, text) {
        errors.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN,
            &["example.com"],
        ));
    }
    errors
}

fn dns1123_label(text: &str) -> Vec<String> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    let mut errors = Vec::new();
    if text.len() > 63 {
        errors.push(too_long(63));
    }
    if !matches(DNS1123_LABEL, &PATTERN, text) {
        errors.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL,
            &["my-name", "123-abc"],
        ));
    }
    errors
}

/// A label or annotation key: `name` or `dns.subdomain/name`.
fn qualified_name(text: &str) -> Vec<String> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    let examples = ["MyName", "my.name", "123-abc"];
    let parts: Vec<&str> = text.split('/').collect();
    let mut errors = Vec::new();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                errors.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME, &examples)
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errors.push(format!("name part {}", too_long(63)));
    }
    if !matches(QUALIFIED_NAME, &PATTERN, name) {
        errors.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MESSAGE, QUALIFIED_NAME, &examples)
        ));
    }
    errors
}

fn label_value(text: &str) -> Vec<String> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    let mut errors = Vec::new();
    if text.len() > 63 {
        errors.push(too_long(63));
    }
    if !matches(LABEL_VALUE, &PATTERN, text) {
        errors.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors_of(metadata: Value) -> Vec<(String, String)> {
        validate(&json!({"metadata": metadata}))
            .into_iter()
            .map(|e| (e.path.clone(), e.message()))
            .collect()
    }

    #[test]
    fn names_namespaces_labels_and_annotations() {
        let subdomain = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        let cases = [
            (json!({"name": "graph-1", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "x", "tier": ""}, "annotations": {"Example.com/Note": "x"}}), vec![]),
            (json!({"generateName": "graph-"}), vec![]),
            (json!({}), vec![("metadata.name".to_owned(), "Required value: name or generateName is required".to_owned())]),
            (json!({"name": "My_Graph"}), vec![("metadata.name".to_owned(), format!("Invalid value: \"My_Graph\": {subdomain}"))]),
            (
                json!({"name": "g", "namespace": "Team"}),
                vec![("metadata.namespace".to_owned(), "Invalid value: \"Team\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_owned())],
            ),
            (
                json!({"name": "g", "labels": {"bad key": "v"}}),
                vec![("metadata.labels".to_owned(), "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned())],
            ),
            (
                json!({"name": "g", "labels": {"k": "-v"}}),
                vec![("metadata.labels".to_owned(), "Invalid value: \"-v\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_owned())],
            ),
            (
                json!({"name": "g", "labels": {"/k": "v"}}),
                vec![("metadata.labels".to_owned(), "Invalid value: \"/k\": prefix part must be non-empty".to_owned())],
            ),
        ];
        for (metadata, expected) in cases {
            assert_eq!(errors_of(metadata.clone()), expected, "{metadata}");
        }
    }
}
