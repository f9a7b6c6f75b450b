//! The admission rules accept every shipped example, and an unchanged re-apply of each.

use std::path::{Path, PathBuf};

use dynamo_api::parse;
use dynamo_api::validation::{self, KindVisitor, Outcome, UpdateContext, Validate};

fn manifests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths: Vec<PathBuf> = ["examples", "crates/api/tests/fixtures"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("manifest directory"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
}

/// The create rules and an unchanged re-apply, on the manifest at `path`.
struct CreateAndReapply<'a> {
    path: &'a Path,
    yaml: &'a str,
}

impl KindVisitor for CreateAndReapply<'_> {
    type Output = (Outcome, Outcome);
    fn visit<K: Validate>(self) -> Self::Output {
        let object: K =
            parse::from_yaml(self.yaml).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        let context = UpdateContext {
            username: "alice",
            privileged_service_accounts: &[],
        };
        (
            object.validate_create(),
            object.validate_update(&object, &context),
        )
    }
}

/// (create, unchanged update) outcomes of the manifest at `path`; `None` for other kinds.
fn outcomes(path: &Path) -> Option<(Outcome, Outcome)> {
    let yaml = std::fs::read_to_string(path).unwrap();
    let document: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let kind = document["kind"].as_str()?;
    validation::with_kind(kind, CreateAndReapply { path, yaml: &yaml })
}

#[test]
fn every_example_is_admitted_on_create_and_unchanged_update() {
    let mut checked = 0;
    for path in manifests() {
        let Some((create, update)) = outcomes(&path) else {
            continue;
        };
        checked += 1;
        assert!(create.is_allowed(), "{}: {create}", path.display());
        assert!(update.is_allowed(), "{}: {update}", path.display());
        assert_eq!(create.warnings, update.warnings, "{}", path.display());
    }
    assert!(checked >= 7, "only {checked} manifests checked");
}

#[test]
fn legacy_fields_are_admitted_with_deprecation_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-fields.yaml");
    let (create, _) = outcomes(&path).unwrap();
    assert!(create.is_allowed(), "{create}");
    assert_eq!(
        create.warnings.len(),
        2,
        "dynamoNamespace and autoscaling: {:?}",
        create.warnings
    );
    assert!(
        create.warnings[0].starts_with("spec.services.Frontend.dynamoNamespace is deprecated"),
        "{:?}",
        create.warnings
    );
    // globalDynamoNamespace: true, so the computed namespace is the global one.
    assert!(
        create.warnings[0].contains("will be replaced with 'dynamo'"),
        "{:?}",
        create.warnings
    );
    assert!(create.warnings[1].starts_with("spec.services.Frontend.autoscaling is deprecated"));
}
