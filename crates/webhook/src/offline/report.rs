//! What `validate` prints: a line per finding (or a JSON record for tools), notes about what it
//! did not check, and the summary.

use dynamo_api::offline::{Finding, Source};
use serde::Serialize;

use super::identity::Identity;

/// Where a document is: its file as shown and its position in the file (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub document: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.document)
    }
}

/// One finding on one object, as `-o json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    pub file: String,
    pub document: usize,
    pub kind: String,
    /// `null` for an object without a name.
    pub name: Option<String>,
    /// The object's namespace, or the one it would be applied to.
    pub namespace: String,
    /// Empty when the finding is about the whole object.
    pub path: String,
    pub message: String,
    pub rule: String,
    pub source: Source,
    pub warning: bool,
}

impl Record {
    pub fn new(location: &Location, identity: &Identity, finding: Finding) -> Record {
        Record {
            file: location.file.clone(),
            document: location.document,
            kind: identity.kind.clone(),
            name: identity.name.clone(),
            namespace: identity.namespace.clone(),
            path: finding.path,
            message: finding.message,
            rule: finding.rule,
            source: finding.source,
            warning: finding.warning,
        }
    }

    /// `file:document: Kind/name: [warning: ]path: message (rule)`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}:{}: {}/{}: ",
            self.file,
            self.document,
            self.kind,
            self.name.as_deref().unwrap_or("<unnamed>")
        );
        if self.warning {
            line.push_str("warning: ");
        }
        if !self.path.is_empty() {
            line.push_str(&self.path);
            line.push_str(": ");
        }
        line.push_str(&self.message);
        if !self.rule.is_empty() {
            line.push_str(&format!(" ({})", self.rule));
        }
        line
    }
}

/// `file:document: Kind/name: note: text`, for what was skipped or checked differently.
pub fn note(location: &Location, identity: &Identity, text: &str) -> String {
    format!("{location}: {}: note: {text}", identity.label())
}

/// The closing line: `N objects checked, M refused`, and the inputs that could not be read.
pub fn summary(checked: usize, refused: usize, unreadable: usize) -> String {
    let mut line = format!("{checked} objects checked, {refused} refused");
    if unreadable > 0 {
        line.push_str(&format!(", {unreadable} unreadable"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, rule: &str, warning: bool) -> Record {
        Record {
            file: "graphs/agg.yaml".into(),
            document: 2,
            kind: "DynamoGraphDeployment".into(),
            name: Some("agg".into()),
            namespace: "default".into(),
            path: path.into(),
            message: "must be at least 2".into(),
            rule: rule.into(),
            source: Source::Schema,
            warning,
        }
    }

    #[test]
    fn lines() {
        let cases = [
            (
                record("spec.services.W.multinode.nodeCount", "minimum", false),
                "graphs/agg.yaml:2: DynamoGraphDeployment/agg: spec.services.W.multinode.nodeCount: must be at least 2 (minimum)",
            ),
            (
                record("", "decode", false),
                "graphs/agg.yaml:2: DynamoGraphDeployment/agg: must be at least 2 (decode)",
            ),
            (
                record("spec.x", "", true),
                "graphs/agg.yaml:2: DynamoGraphDeployment/agg: warning: spec.x: must be at least 2",
            ),
            (
                Record {
                    name: None,
                    ..record("", "warning", true)
                },
                "graphs/agg.yaml:2: DynamoGraphDeployment/<unnamed>: warning: must be at least 2 (warning)",
            ),
        ];
        for (record, line) in cases {
            assert_eq!(record.line(), line);
        }
    }

    #[test]
    fn json_record_fields() {
        let value = serde_json::to_value(record("spec.x", "minimum", false)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "file": "graphs/agg.yaml",
                "document": 2,
                "kind": "DynamoGraphDeployment",
                "name": "agg",
                "namespace": "default",
                "path": "spec.x",
                "message": "must be at least 2",
                "rule": "minimum",
                "source": "schema",
                "warning": false,
            })
        );
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(0, 0, 0), "0 objects checked, 0 refused");
        assert_eq!(summary(1, 1, 0), "1 objects checked, 1 refused");
        assert_eq!(
            summary(5, 2, 1),
            "5 objects checked, 2 refused, 1 unreadable"
        );
    }
}
