//! `dynamo-webhook validate` agrees with the cluster: every manifest in
//! `e2e/fixtures/invalid/` is refused by the real API server (schema, CEL rules, our webhook)
//! and by the offline check, both naming the field its header names (`# Refused at: PATH`);
//! the repository's examples and the upstream fixtures are accepted by both.
//!
//! Each test reports every manifest before it fails, so one run shows all disagreements.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use dynamo_e2e::webhook::{WebhookScope, start_webhook};
use dynamo_e2e::{Cluster, TestNamespace};
use serde_json::Value;

/// The header line of an invalid fixture naming the field both must refuse.
const REFUSED_AT: &str = "# Refused at: ";

/// How the API server words a refusal: the schema's (and CEL's), or a webhook's.
const SCHEMA_REFUSAL: &str = "is invalid";
const WEBHOOK_REFUSAL: &str = "denied the request";

#[tokio::test]
async fn invalid_manifests_are_refused_by_the_cluster_and_offline_at_the_same_field() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("offline-invalid").await;
    let _webhook = start_webhook(&ns, WebhookScope::Restricted).await;

    let mut report = String::from("invalid manifests (cluster | offline):\n");
    let mut disagreements = 0;
    let fixtures = manifests_in(&cluster.repo.join("e2e/fixtures/invalid"));
    for path in &fixtures {
        let text = read(path);
        let field = expected_field(&text)
            .unwrap_or_else(|| panic!("{}: no `{REFUSED_AT}PATH` header", path.display()));
        let cluster_verdict = cluster_refusal(&ns, &text, &field);
        let offline_verdict = offline_refusal(path, &field);
        if cluster_verdict.is_err() || offline_verdict.is_err() {
            disagreements += 1;
        }
        writeln!(
            report,
            "  {:<34} {field}\n      cluster: {}\n      offline: {}",
            file_name(path),
            verdict(&cluster_verdict),
            verdict(&offline_verdict)
        )
        .unwrap();
    }
    writeln!(
        report,
        "{} of {} refused by both at the named field",
        fixtures.len() - disagreements,
        fixtures.len()
    )
    .unwrap();
    eprintln!("{report}");
    assert_eq!(disagreements, 0, "{report}");
}

#[tokio::test]
async fn valid_manifests_are_accepted_by_the_cluster_and_offline() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("offline-valid").await;
    let _webhook = start_webhook(&ns, WebhookScope::Restricted).await;

    let mut files = manifests_in(&cluster.repo.join("examples"));
    files.extend(manifests_in(&cluster.repo.join("e2e/fixtures/upstream")));
    let mut report = String::from("valid manifests (cluster | offline):\n");
    let mut disagreements = 0;
    for path in &files {
        let cluster_verdict = cluster_acceptance(&ns, &read(path));
        let offline_verdict = offline_acceptance(path);
        if cluster_verdict.is_err() || offline_verdict.is_err() {
            disagreements += 1;
        }
        writeln!(
            report,
            "  {}\n      cluster: {}\n      offline: {}",
            path.strip_prefix(&cluster.repo).unwrap_or(path).display(),
            verdict(&cluster_verdict),
            verdict(&offline_verdict)
        )
        .unwrap();
    }
    writeln!(
        report,
        "{} of {} accepted by both",
        files.len() - disagreements,
        files.len()
    )
    .unwrap();
    eprintln!("{report}");
    assert_eq!(disagreements, 0, "{report}");
}

/// `kubectl apply` is refused, by the schema or a webhook, and the refusal names `field`.
fn cluster_refusal(ns: &TestNamespace, yaml: &str, field: &str) -> Result<String, String> {
    let output = ns.kubectl_apply(yaml);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        return Err("ADMITTED".into());
    }
    let by = if stderr.contains(WEBHOOK_REFUSAL) {
        "webhook"
    } else if stderr.contains(SCHEMA_REFUSAL) {
        "schema/CEL"
    } else {
        return Err(format!(
            "FAILED, but not by a refusal: {}",
            one_line(&stderr)
        ));
    };
    if !dotted(&stderr).contains(field) {
        return Err(format!(
            "refused by the {by} WITHOUT NAMING {field}: {}",
            one_line(&stderr)
        ));
    }
    Ok(format!("refused by the {by}: {}", one_line(&stderr)))
}

/// Every admission step of a create, server-side, without storing anything: the files share
/// object names (two upstream graphs are `vllm-disagg`), so applying them for real would make
/// later ones updates.
fn cluster_acceptance(ns: &TestNamespace, yaml: &str) -> Result<String, String> {
    let output = ns.kubectl_stdin(
        &[
            "create",
            "--dry-run=server",
            "--namespace",
            &ns.name,
            "-f",
            "-",
        ],
        yaml,
    );
    if output.status.success() {
        Ok("admitted".into())
    } else {
        Err(format!(
            "REFUSED: {}",
            one_line(&String::from_utf8_lossy(&output.stderr))
        ))
    }
}

/// `dynamo-webhook validate -o json -f FILE`.
struct OfflineRun {
    code: Option<i32>,
    records: Vec<Value>,
    stderr: String,
}

fn run_offline(path: &Path) -> OfflineRun {
    let output = Command::new(Cluster::get().our_binary("dynamo-webhook"))
        .args(["validate", "-o", "json", "-f"])
        .arg(path)
        .output()
        .expect("running dynamo-webhook validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    OfflineRun {
        code: output.status.code(),
        records: serde_json::from_str(&stdout).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Refused (exit 1) with a finding at `field` or inside it.
fn offline_refusal(path: &Path, field: &str) -> Result<String, String> {
    let run = run_offline(path);
    let refusals: Vec<&Value> = run
        .records
        .iter()
        .filter(|record| record["warning"] == false)
        .collect();
    let shown: Vec<String> = refusals.iter().map(|r| describe(r)).collect();
    if run.code != Some(1) {
        return Err(format!(
            "exit {:?}, NOT REFUSED {shown:?} {}",
            run.code,
            one_line(&run.stderr)
        ));
    }
    let at_field = refusals
        .iter()
        .any(|record| within(&dotted(record["path"].as_str().unwrap_or_default()), field));
    if at_field {
        Ok(format!("refused: {}", shown.join("; ")))
    } else {
        Err(format!("refused, but NOT AT {field}: {}", shown.join("; ")))
    }
}

/// Exit 0 and nothing refused.
fn offline_acceptance(path: &Path) -> Result<String, String> {
    let run = run_offline(path);
    let refusals: Vec<String> = run
        .records
        .iter()
        .filter(|record| record["warning"] == false)
        .map(describe)
        .collect();
    match (run.code, refusals.is_empty()) {
        (Some(0), true) => Ok("accepted".into()),
        _ => Err(format!(
            "exit {:?}, REFUSED {refusals:?} {}",
            run.code,
            one_line(&run.stderr)
        )),
    }
}

/// `path` is `field` or a field inside it (`spec.pvcs[0].size` is inside `spec.pvcs[0]`).
fn within(path: &str, field: &str) -> bool {
    path.strip_prefix(field)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Paths with map keys after a dot: the API server writes a map key in brackets in a CEL
/// rule's path (`spec.services[Worker].checkpoint`) but after a dot in a schema error's
/// (`spec.services.Worker.replicas`). List indices stay (`spec.pvcs[0]`).
fn dotted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let key = after.find(']').map(|close| &after[..close]);
        match key {
            Some(key) if is_map_key(key) => {
                out.push('.');
                out.push_str(key);
                rest = &after[key.len() + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_map_key(text: &str) -> bool {
    !text.is_empty()
        && !text.chars().all(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `path: message (source rule)` of a finding.
fn describe(record: &Value) -> String {
    let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
    format!(
        "{}: {} ({} {})",
        text("path"),
        text("message"),
        text("source"),
        text("rule")
    )
}

fn verdict(result: &Result<String, String>) -> &str {
    match result {
        Ok(text) | Err(text) => text,
    }
}

fn expected_field(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(REFUSED_AT))
        .map(|field| field.trim().to_owned())
}

/// The `*.yaml` files of `dir`, sorted.
fn manifests_in(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no manifests in {}", dir.display());
    paths
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Long kubectl errors on one line, cut to a readable length.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

#[test]
fn map_keys_in_brackets_are_compared_after_a_dot() {
    for (text, expected) in [
        (
            "spec.services[Worker].checkpoint: Invalid value",
            "spec.services.Worker.checkpoint: Invalid value",
        ),
        ("spec.pvcs[0]: Invalid value", "spec.pvcs[0]: Invalid value"),
        (
            "spec.services[VllmDecodeWorker].pvcs[2].name",
            "spec.services.VllmDecodeWorker.pvcs[2].name",
        ),
        ("[] and [a b] and [", "[] and [a b] and ["),
    ] {
        assert_eq!(dotted(text), expected, "{text}");
    }
}

#[test]
fn a_finding_inside_the_named_field_counts() {
    for (path, field, inside) in [
        ("spec.pvcs[0]", "spec.pvcs[0]", true),
        ("spec.pvcs[0].size", "spec.pvcs[0]", true),
        ("spec.pvcs[0]", "spec.pvcs", true),
        ("spec.pvcs", "spec.pvcs[0]", false),
        ("spec.services.Worker2", "spec.services.Worker", false),
        ("", "spec.services", false),
    ] {
        assert_eq!(within(path, field), inside, "{path} in {field}");
    }
}
