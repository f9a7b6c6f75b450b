//! Manifest text into objects, as kubectl reads it: a YAML document stream, a JSON object or a
//! stream of them, and list objects (`kind: List`, `DynamoGraphDeploymentList`, ...) opened
//! into their items.

use serde::Deserialize;
use serde_json::Value;

/// One object of a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Position of its document in the stream, counting from 1 (empty documents count too, so
    /// the number points at the right `---` section). Items of a list share the list's.
    pub index: usize,
    pub object: Value,
}

/// Why a file could not be read to the end: the document at `index` is malformed; `reason`
/// reads after "the document" (`is invalid YAML: ...`, `has no kind`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub index: usize,
    pub reason: String,
}

/// The objects of `text` in order, with list objects opened; stops at the first malformed
/// document and says why.
pub fn decode(text: &str) -> (Vec<Document>, Option<Unreadable>) {
    // Editors on Windows start files with a byte order mark; kubectl ignores it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (documents, mut problem) = if looks_like_json(text) {
        match json_documents(text) {
            Ok(documents) => (documents, None),
            // A YAML flow mapping (`{a: b}`) starts like JSON too.
            Err(json_error) => match yaml_documents(text) {
                (documents, None) => (documents, None),
                (_, Some(_)) => (Vec::new(), Some(json_error)),
            },
        }
    } else {
        yaml_documents(text)
    };
    let mut objects = Vec::new();
    'documents: for (index, value) in documents {
        if value.is_null() {
            continue;
        }
        if let Err(reason) = kubernetes_object(&value) {
            problem = Some(Unreadable { index, reason });
            break;
        }
        for object in list_items(value) {
            if let Err(reason) = kubernetes_object(&object) {
                let reason = format!("has a list item that {reason}");
                problem = Some(Unreadable { index, reason });
                break 'documents;
            }
            objects.push(Document { index, object });
        }
    }
    (objects, problem)
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

/// A stream of JSON values, whitespace-separated.
fn json_documents(text: &str) -> Result<Vec<(usize, Value)>, Unreadable> {
    let mut documents = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value.map_err(|e| Unreadable {
            index: i + 1,
            reason: format!("is invalid JSON: {e}"),
        })?;
        documents.push((i + 1, value));
    }
    Ok(documents)
}

/// The documents of a YAML stream, up to the first malformed one.
fn yaml_documents(text: &str) -> (Vec<(usize, Value)>, Option<Unreadable>) {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|e| format!("is invalid YAML: {e}"))
            .and_then(|mut value| {
                value
                    .apply_merge()
                    .map_err(|e| format!("has an invalid YAML merge key: {e}"))?;
                yaml_to_json(value)
            });
        match value {
            Ok(value) => documents.push((index, value)),
            Err(reason) => return (documents, Some(Unreadable { index, reason })),
        }
    }
    (documents, None)
}

/// YAML as JSON, the way kubectl converts it: scalar keys become strings, tags are dropped.
fn yaml_to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Yaml;
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("has a number without a JSON form: {n}"))?
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(mapping) => {
            let mut object = serde_json::Map::new();
            for (key, value) in mapping {
                object.insert(key_text(key)?, yaml_to_json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

fn key_text(key: serde_yaml::Value) -> Result<String, String> {
    use serde_yaml::Value as Yaml;
    match key {
        Yaml::String(s) => Ok(s),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Tagged(tagged) => key_text(tagged.value),
        other => Err(format!(
            "has a mapping key that is not a string: {}",
            serde_json::to_string(&yaml_to_json(other)?).unwrap_or_default()
        )),
    }
}

/// kubectl refuses a document that is not an object with a kind. The reason reads after
/// "the document".
fn kubernetes_object(value: &Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(format!("is not an object but {}", type_name(value)));
    };
    match object.get("kind") {
        Some(Value::String(kind)) if !kind.is_empty() => Ok(()),
        Some(Value::String(_)) | None => Err("has no kind".into()),
        Some(other) => Err(format!(
            "has a kind that is {}, not a string",
            type_name(other)
        )),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The objects of a list (`kind` ending in `List` with an `items` array), lists inside it
/// opened too; any other object alone. Items of a typed list (`FooList`, as the API server
/// returns them) may leave out their kind and apiVersion: they get `Foo` and the list's.
fn list_items(object: Value) -> Vec<Value> {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let Some(element_kind) = kind.strip_suffix("List") else {
        return vec![object];
    };
    if !object["items"].is_array() {
        return vec![object];
    }
    let api_version = object["apiVersion"].clone();
    let Value::Object(mut list) = object else {
        unreachable!("a value with a kind is an object")
    };
    let Some(Value::Array(items)) = list.remove("items") else {
        unreachable!("items was checked to be an array")
    };
    items
        .into_iter()
        .map(|mut item| {
            if let Value::Object(fields) = &mut item {
                if !element_kind.is_empty() {
                    fields
                        .entry("kind")
                        .or_insert_with(|| Value::String(element_kind.to_owned()));
                }
                if !api_version.is_null() {
                    fields
                        .entry("apiVersion")
                        .or_insert_with(|| api_version.clone());
                }
            }
            item
        })
        .flat_map(|item| match kubernetes_object(&item) {
            Ok(()) => list_items(item),
            // Refused by the caller, which names the list.
            Err(_) => vec![item],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(text: &str) -> Vec<(usize, Value)> {
        let (documents, problem) = decode(text);
        assert_eq!(problem, None, "{text}");
        documents.into_iter().map(|d| (d.index, d.object)).collect()
    }

    fn problem(text: &str) -> Unreadable {
        decode(text).1.unwrap_or_else(|| panic!("{text} was read"))
    }

    #[test]
    fn yaml_streams_count_every_document_and_skip_empty_ones() {
        let text = "kind: A\n---\n---\n# only a comment\n---\nkind: B\nmetadata: {name: b}\n";
        assert_eq!(
            objects(text),
            [
                (1, json!({"kind": "A"})),
                (4, json!({"kind": "B", "metadata": {"name": "b"}}))
            ]
        );
        assert_eq!(objects(""), []);
        assert_eq!(objects("---\n"), []);
    }

    #[test]
    fn json_objects_and_streams() {
        assert_eq!(objects("{\"kind\": \"A\"}"), [(1, json!({"kind": "A"}))]);
        assert_eq!(
            objects("{\"kind\": \"A\"}\n{\"kind\": \"B\"}{\"kind\": \"C\"}\n"),
            [
                (1, json!({"kind": "A"})),
                (2, json!({"kind": "B"})),
                (3, json!({"kind": "C"}))
            ]
        );
        assert_eq!(
            objects("\u{feff}{\"kind\": \"A\"}\n{\"kind\": \"B\"}"),
            [(1, json!({"kind": "A"})), (2, json!({"kind": "B"}))]
        );
        assert_eq!(objects("\u{feff}kind: A\r\n"), [(1, json!({"kind": "A"}))]);
        // YAML flow style is not JSON but still YAML.
        assert_eq!(
            objects("{kind: A, spec: {replicas: 1}}\n---\nkind: B\n"),
            [
                (1, json!({"kind": "A", "spec": {"replicas": 1}})),
                (2, json!({"kind": "B"}))
            ]
        );
    }

    #[test]
    fn yaml_becomes_json_as_kubectl_converts_it() {
        let text = "kind: A\nbase: &base {x: 1}\nderived:\n  <<: *base\n  y: 2\nlabels: {1: one, true: yes}\nratio: 0.5\ntagged: !custom value\n";
        assert_eq!(
            objects(text),
            [(
                1,
                json!({
                    "kind": "A",
                    "base": {"x": 1},
                    "derived": {"x": 1, "y": 2},
                    "labels": {"1": "one", "true": "yes"},
                    "ratio": 0.5,
                    "tagged": "value",
                })
            )]
        );
    }

    #[test]
    fn lists_are_opened_into_their_items() {
        let text = r#"
apiVersion: v1
kind: List
items:
  - {apiVersion: nvidia.com/v1alpha1, kind: DynamoModel, metadata: {name: a}}
  - apiVersion: nvidia.com/v1alpha1
    kind: DynamoGraphDeploymentList
    items:
      - metadata: {name: b}
"#;
        assert_eq!(
            objects(text),
            [
                (
                    1,
                    json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoModel", "metadata": {"name": "a"}})
                ),
                (
                    1,
                    json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "b"}})
                ),
            ]
        );
        // A kind ending in List without items is an object of its own.
        assert_eq!(
            objects("kind: WatchList\nspec: {}\n"),
            [(1, json!({"kind": "WatchList", "spec": {}}))]
        );
        assert_eq!(objects("kind: List\nitems: []\n"), []);
    }

    #[test]
    fn malformed_documents_stop_the_file_with_their_position() {
        let cases = [
            ("kind: A\n---\nkind: [\n", 2, "is invalid YAML"),
            ("kind: A\n---\n- a\n- b\n", 2, "is not an object but a list"),
            ("kind: A\n---\n42\n", 2, "is not an object but a number"),
            ("metadata: {name: x}\n", 1, "has no kind"),
            ("kind: \"\"\n", 1, "has no kind"),
            ("kind: 3\n", 1, "has a kind that is a number, not a string"),
            ("{\"kind\": \"A\"}\n{\"kind\": ", 2, "invalid JSON"),
            ("{\"kind\": \"A\"", 1, "invalid JSON"),
            (
                "kind: A\n? [a, b]\n: c\n",
                1,
                "has a mapping key that is not a string",
            ),
            (
                "kind: List\nitems: [{kind: A}, 7]\n",
                1,
                "has a list item that is not an object but a number",
            ),
        ];
        for (text, index, reason) in cases {
            let found = problem(text);
            assert_eq!(found.index, index, "{text}: {found:?}");
            assert!(found.reason.contains(reason), "{text}: {found:?}");
        }
        // What came before the malformed document is kept.
        let (documents, _) = decode("kind: A\n---\nkind: [\n");
        assert_eq!(documents.len(), 1);
    }
}
