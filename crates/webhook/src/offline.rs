//! `dynamo-webhook validate -f FILE...`: the server's create rules on manifest files.

use std::path::PathBuf;
use std::process::ExitCode;

use dynamo_api::parse::{self, ParseError};
use dynamo_api::validation::{self, KindVisitor, Outcome, Validate};

/// The create rules on a document of the kind its `kind` names.
struct CreateRules(serde_json::Value);

impl KindVisitor for CreateRules {
    type Output = Result<Outcome, ParseError>;
    fn visit<K: Validate>(self) -> Self::Output {
        parse::from_value::<K>(self.0).map(|object| object.validate_create())
    }
}

/// The verdict on one document.
fn check(document: serde_yaml::Value) -> Result<Option<(String, Outcome)>, String> {
    let kind = document["kind"].as_str().unwrap_or_default().to_owned();
    let name = document["metadata"]["name"]
        .as_str()
        .unwrap_or("<unnamed>")
        .to_owned();
    let label = format!("{kind}/{name}");
    let json = serde_json::to_value(&document).map_err(|e| format!("{label}: {e}"))?;
    let Some(outcome) = validation::with_kind(&kind, CreateRules(json)) else {
        return Ok(None);
    };
    outcome
        .map(|outcome| Some((label.clone(), outcome)))
        .map_err(|e| format!("{label}: {e}"))
}

/// Prints every problem as `FILE: Kind/name: path: message`; 1 if any document is rejected.
pub fn run(files: &[PathBuf]) -> ExitCode {
    let mut rejected = 0;
    let mut checked = 0;
    for file in files {
        let shown = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{shown}: {e}");
                rejected += 1;
                continue;
            }
        };
        let documents: Vec<serde_yaml::Value> = match parse::from_yaml_documents(&text) {
            Ok(documents) => documents,
            Err(e) => {
                eprintln!("{shown}: {e}");
                rejected += 1;
                continue;
            }
        };
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            match check(document) {
                Ok(None) => {}
                Ok(Some((label, outcome))) => {
                    checked += 1;
                    for warning in &outcome.warnings {
                        println!("{shown}: {label}: warning: {warning}");
                    }
                    for error in &outcome.errors {
                        println!("{shown}: {label}: {error}");
                    }
                    if !outcome.errors.is_empty() {
                        rejected += 1;
                    }
                }
                Err(message) => {
                    checked += 1;
                    rejected += 1;
                    println!("{shown}: {message}");
                }
            }
        }
    }
    println!("{checked} checked, {rejected} rejected");
    if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
