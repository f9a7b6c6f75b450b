//! Which object a document is: the kind, namespace and name that pair an updated object with
//! its old version.

use serde_json::Value;

/// An object's identity. The namespace of an object that names none is the one it would be
/// applied to (`--namespace`, as for kubectl), the same on both sides of an update.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    pub kind: String,
    pub namespace: String,
    /// `None` for an object without `metadata.name` (say, with `generateName`): it is always
    /// new, so it has no old version.
    pub name: Option<String>,
}

impl Identity {
    pub fn of(object: &Value, default_namespace: &str) -> Identity {
        let text = |value: &Value| value.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Identity {
            kind: object["kind"].as_str().unwrap_or_default().to_owned(),
            namespace: text(&object["metadata"]["namespace"])
                .unwrap_or_else(|| default_namespace.to_owned()),
            name: text(&object["metadata"]["name"]),
        }
    }

    /// `Kind/name`, as kubectl names objects.
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            self.kind,
            self.name.as_deref().unwrap_or("<unnamed>")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_of_an_object() {
        let cases = [
            (
                json!({"kind": "DynamoModel", "metadata": {"name": "m", "namespace": "team"}}),
                ("DynamoModel", "team", Some("m"), "DynamoModel/m"),
            ),
            (
                json!({"kind": "DynamoModel", "metadata": {"name": "m"}}),
                ("DynamoModel", "default", Some("m"), "DynamoModel/m"),
            ),
            (
                json!({"kind": "DynamoModel", "metadata": {"name": "m", "namespace": ""}}),
                ("DynamoModel", "default", Some("m"), "DynamoModel/m"),
            ),
            (
                json!({"kind": "DynamoModel", "metadata": {"generateName": "m-"}}),
                ("DynamoModel", "default", None, "DynamoModel/<unnamed>"),
            ),
            (
                json!({"kind": "DynamoModel"}),
                ("DynamoModel", "default", None, "DynamoModel/<unnamed>"),
            ),
        ];
        for (object, (kind, namespace, name, label)) in cases {
            let identity = Identity::of(&object, "default");
            assert_eq!(identity.kind, kind, "{object}");
            assert_eq!(identity.namespace, namespace, "{object}");
            assert_eq!(identity.name.as_deref(), name, "{object}");
            assert_eq!(identity.label(), label, "{object}");
        }
    }

    #[test]
    fn the_default_namespace_pairs_an_object_without_one_with_its_stored_version() {
        let applied = json!({"kind": "DynamoModel", "metadata": {"name": "m"}});
        let stored = json!({"kind": "DynamoModel", "metadata": {"name": "m", "namespace": "team"}});
        assert_eq!(
            Identity::of(&applied, "team"),
            Identity::of(&stored, "default")
        );
        assert_ne!(
            Identity::of(&applied, "default"),
            Identity::of(&stored, "default")
        );
    }
}
