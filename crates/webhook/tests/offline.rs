//! `dynamo-webhook validate -f FILE...` on manifests.

use std::path::Path;
use std::process::Command;

fn validate(files: &[&Path]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo-webhook"))
        .arg("validate")
        .arg("-f")
        .args(files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn every_example_passes() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (code, text) = validate(&refs);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("{} objects checked, 0 refused", files.len())),
        "{text}"
    );
}

#[test]
fn a_bad_manifest_is_reported_with_file_and_field() {
    let dir = std::env::temp_dir().join(format!("dynamo-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: bad}\nspec:\n  services:\n    Frontend:\n      ingress: {enabled: true}\n---\napiVersion: nvidia.com/v1alpha1\nkind: DynamoModel\nmetadata: {name: m}\nspec: {modelName: x, baseModelName: y, modelType: lora, source: {uri: 'ftp://nope'}}\n---\napiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: typo}\nspec: {backendFramework: tensorflow}\n",
    )
    .unwrap();
    let (code, text) = validate(&[&file]);
    assert_eq!(code, Some(1), "{text}");
    let shown = file.display().to_string();
    assert!(
        text.contains(&format!(
            "{shown}:1: DynamoGraphDeployment/bad: spec.services.Frontend.ingress.host"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{shown}:2: DynamoModel/m: spec.source.uri")),
        "{text}"
    );
    assert!(
        text.contains("DynamoGraphDeployment/typo: spec.backendFramework: "),
        "{text}"
    );
    assert!(text.contains("3 objects checked, 3 refused"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn documents_of_other_kinds_are_skipped() {
    let dir = std::env::temp_dir().join(format!("dynamo-validate-other-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n---\napiVersion: nvidia.com/v1alpha1\nkind: DynamoComponentDeployment\nmetadata: {name: w}\nspec: {replicas: -1}\n",
    )
    .unwrap();
    let (code, text) = validate(&[&file]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("DynamoComponentDeployment/w: spec.replicas"),
        "{text}"
    );
    assert!(text.contains("ConfigMap/settings: note: skipped"), "{text}");
    assert!(text.contains("1 objects checked, 1 refused"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}
