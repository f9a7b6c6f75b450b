//! `dynamo-webhook validate` as a user runs it: every input form, updates with `--old` for each
//! rule about what may not change, the JSON output and the exit codes. The assertions name
//! fields and rule ids, not the wording of messages, so they hold whichever checks
//! `dynamo_api::offline::check` runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// A directory of its own for one test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dynamo-validate-{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `relative` (creating directories) and returns its path.
    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout line about `label` (`Kind/name`) that names `path`, if any.
    fn finding(&self, label: &str, path: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find(|line| line.contains(&format!(": {label}: {path}: ")))
    }

    #[track_caller]
    fn assert_finding(&self, label: &str, path: &str) -> &str {
        self.finding(label, path)
            .unwrap_or_else(|| panic!("no finding on {label} at {path}:\n{self:#?}"))
    }

    #[track_caller]
    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "{self:#?}");
    }

    #[track_caller]
    fn assert_summary(&self, checked: usize, refused: usize) {
        let summary = format!("{checked} objects checked, {refused} refused");
        assert!(
            self.stderr.lines().any(|line| line.starts_with(&summary)),
            "expected {summary:?}:\n{self:#?}"
        );
    }

    fn json(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a JSON array ({e}):\n{self:#?}"))
    }
}

fn validate<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    validate_with_stdin(args, "")
}

fn validate_with_stdin<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynamo-webhook"))
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that does not read standard input may close it before this write.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn file_args(flag: &str, paths: &[&Path]) -> Vec<String> {
    std::iter::once(flag.to_owned())
        .chain(paths.iter().map(|p| p.display().to_string()))
        .collect()
}

/// A graph `name` with `spec` (indented by two spaces).
fn graph(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

const AGG: &str = "  backendFramework: vllm\n  services:\n    Frontend:\n      componentType: frontend\n    Worker:\n      componentType: worker\n";

/// Two services, one with a bad replica count: a rule every set of checks has.
fn bad_graph(name: &str) -> String {
    graph(
        name,
        "  backendFramework: vllm\n  services:\n    Frontend:\n      componentType: frontend\n    Worker:\n      replicas: -1\n",
    )
}

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";

// ----- input forms -----

#[test]
fn multi_document_yaml_is_reported_by_file_and_document_position() {
    let scratch = Scratch::new("yaml");
    let text = format!(
        "{}\n---\n---\n{}---\n{CONFIG_MAP}",
        graph("good", AGG),
        bad_graph("bad")
    );
    let file = scratch.write("graphs.yaml", &text);
    let run = validate(&file_args("-f", &[&file]));
    run.assert_code(1);
    let line = run.assert_finding("DynamoGraphDeployment/bad", "spec.services.Worker.replicas");
    // The empty document between them counts, so 3 points at the right section.
    assert!(
        line.starts_with(&format!("{}:3: ", file.display())),
        "{line}"
    );
    assert!(
        !run.stdout.contains("DynamoGraphDeployment/good"),
        "{run:#?}"
    );
    // Other kinds are skipped with a note on stderr, not counted.
    assert!(
        run.stderr.contains(&format!(
            "{}:4: ConfigMap/settings: note: skipped",
            file.display()
        )),
        "{run:#?}"
    );
    run.assert_summary(2, 1);
}

#[test]
fn json_objects_and_json_streams() {
    let scratch = Scratch::new("json");
    let as_json =
        |yaml: &str| serde_json::to_string(&serde_yaml::from_str::<Value>(yaml).unwrap()).unwrap();
    let single = scratch.write("one.json", &as_json(&bad_graph("alone")));
    let stream = scratch.write(
        "stream.json",
        &format!(
            "{}\n{}\n{}",
            as_json(&graph("first", AGG)),
            as_json(CONFIG_MAP),
            as_json(&bad_graph("third"))
        ),
    );
    let run = validate(&file_args("-f", &[&single, &stream]));
    run.assert_code(1);
    let line = run.assert_finding(
        "DynamoGraphDeployment/alone",
        "spec.services.Worker.replicas",
    );
    assert!(
        line.starts_with(&format!("{}:1: ", single.display())),
        "{line}"
    );
    let line = run.assert_finding(
        "DynamoGraphDeployment/third",
        "spec.services.Worker.replicas",
    );
    assert!(
        line.starts_with(&format!("{}:3: ", stream.display())),
        "{line}"
    );
    run.assert_summary(3, 2);
}

#[test]
fn directories_are_searched_recursively_for_manifests() {
    let scratch = Scratch::new("dir");
    scratch.write("a.yaml", &graph("a", AGG));
    scratch.write("nested/deeper/b.yml", &bad_graph("b"));
    scratch.write(
        "nested/c.json",
        &serde_json::to_string(&serde_yaml::from_str::<Value>(&bad_graph("c")).unwrap()).unwrap(),
    );
    // Neither is a manifest by its name: not read, so their contents do not matter.
    scratch.write("nested/README.md", "# not yaml: [");
    scratch.write("nested/values.yaml.orig", "{{ broken");
    let run = validate(&file_args("-f", &[&scratch.0]));
    run.assert_code(1);
    run.assert_finding("DynamoGraphDeployment/b", "spec.services.Worker.replicas");
    run.assert_finding("DynamoGraphDeployment/c", "spec.services.Worker.replicas");
    let shown_b = scratch.path("nested/deeper/b.yml").display().to_string();
    assert!(run.stdout.contains(&format!("{shown_b}:1: ")), "{run:#?}");
    run.assert_summary(3, 2);
}

#[test]
fn standard_input_is_read_for_a_dash() {
    let scratch = Scratch::new("stdin");
    let file = scratch.write("good.yaml", &graph("from-file", AGG));
    let mut args = file_args("-f", &[&file]);
    args.push("-".into());
    let run = validate_with_stdin(
        &args,
        &format!("{}---\n{}", graph("ok", AGG), bad_graph("piped")),
    );
    run.assert_code(1);
    let line = run.assert_finding(
        "DynamoGraphDeployment/piped",
        "spec.services.Worker.replicas",
    );
    assert!(line.starts_with("<stdin>:2: "), "{line}");
    run.assert_summary(3, 1);
}

#[test]
fn list_objects_are_opened_into_their_items() {
    let scratch = Scratch::new("list");
    let kubectl_list = r#"apiVersion: v1
kind: List
items:
  - apiVersion: nvidia.com/v1alpha1
    kind: DynamoGraphDeployment
    metadata: {name: listed}
    spec:
      services:
        Worker: {replicas: -1}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: listed-settings}
"#;
    // As the API server lists them: items without kind and apiVersion.
    let typed_list = r#"{"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoModelList", "metadata": {},
 "items": [
  {"metadata": {"name": "lora", "namespace": "team"}, "spec": {"modelName": "a", "baseModelName": "b", "modelType": "lora"}},
  {"metadata": {"name": "base"}, "spec": {"modelName": "a", "baseModelName": "b"}}
 ]}"#;
    let first = scratch.write("list.yaml", kubectl_list);
    let second = scratch.write("models.json", typed_list);
    let run = validate(&file_args("-f", &[&first, &second]));
    run.assert_code(1);
    run.assert_finding(
        "DynamoGraphDeployment/listed",
        "spec.services.Worker.replicas",
    );
    run.assert_finding("DynamoModel/lora", "spec.source");
    assert!(!run.stdout.contains("DynamoModel/base"), "{run:#?}");
    assert!(
        run.stderr
            .contains("ConfigMap/listed-settings: note: skipped"),
        "{run:#?}"
    );
    run.assert_summary(3, 2);
}

#[test]
fn empty_files_and_documents_are_ignored() {
    let scratch = Scratch::new("empty");
    let empty = scratch.write("empty.yaml", "");
    let only_separators = scratch.write("separators.yaml", "---\n# nothing here\n---\n");
    let run = validate(&file_args("-f", &[&empty, &only_separators]));
    run.assert_code(0);
    run.assert_summary(0, 0);
    assert_eq!(run.stdout, "", "{run:#?}");
}

#[test]
fn the_documented_form_still_works_for_the_examples() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let run = validate(&file_args("-f", &refs));
    run.assert_code(0);
    run.assert_summary(files.len(), 0);
    // And the directory form finds the same objects.
    let run = validate(&file_args("-f", &[&examples]));
    run.assert_code(0);
    run.assert_summary(files.len(), 0);
}

// ----- updates -----

const MODEL: &str = "apiVersion: nvidia.com/v1alpha1\nkind: DynamoModel\nmetadata:\n  name: m\nspec:\n  modelName: llama\n  baseModelName: meta-llama/Llama-3.1-8B\n";

fn model(extra: &str) -> String {
    format!("{MODEL}{extra}")
}

fn component(backend: &str) -> String {
    format!(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoComponentDeployment\nmetadata:\n  name: w\nspec:\n  backendFramework: {backend}\n  componentType: worker\n"
    )
}

/// Runs `validate --old OLD -f NEW` on two files.
fn update(scratch: &Scratch, old: &str, new: &str) -> Run {
    let old = scratch.write("old.yaml", old);
    let new = scratch.write("new.yaml", new);
    let mut args = file_args("--old", &[&old]);
    args.extend(file_args("-f", &[&new]));
    validate(&args)
}

#[test]
fn each_rule_about_what_may_not_change_refuses_an_update() {
    let worker = |extra: &str| {
        graph(
            "g",
            &format!(
                "  backendFramework: vllm\n  services:\n    Frontend:\n      componentType: frontend\n    Worker:\n      componentType: worker\n{extra}"
            ),
        )
    };
    let multinode = worker("      multinode:\n        nodeCount: 2\n");
    let with_service = |name: &str| {
        graph(
            "g",
            &format!(
                "  backendFramework: vllm\n  services:\n    Frontend:\n      componentType: frontend\n    Worker:\n      componentType: worker\n    {name}:\n      componentType: worker\n"
            ),
        )
    };
    let cases: [(&str, String, String, &str, &str); 9] = [
        (
            "graph backendFramework",
            graph("g", AGG),
            graph("g", &AGG.replace("vllm", "sglang")),
            "DynamoGraphDeployment/g",
            "spec.backendFramework",
        ),
        (
            "service added",
            graph("g", AGG),
            with_service("Prefill"),
            "DynamoGraphDeployment/g",
            "spec.services",
        ),
        (
            "service removed",
            with_service("Prefill"),
            graph("g", AGG),
            "DynamoGraphDeployment/g",
            "spec.services",
        ),
        (
            "single-node to multinode",
            worker(""),
            multinode.clone(),
            "DynamoGraphDeployment/g",
            "spec.services.Worker.multinode",
        ),
        (
            "multinode to single-node",
            multinode,
            worker(""),
            "DynamoGraphDeployment/g",
            "spec.services.Worker.multinode",
        ),
        (
            "replicas owned by a scaling adapter",
            worker("      replicas: 1\n      scalingAdapter:\n        enabled: true\n"),
            worker("      replicas: 3\n      scalingAdapter:\n        enabled: true\n"),
            "DynamoGraphDeployment/g",
            "spec.services.Worker.replicas",
        ),
        (
            "model modelType",
            model("  modelType: base\n"),
            model("  modelType: lora\n  source:\n    uri: hf://acme/lora@main\n"),
            "DynamoModel/m",
            "spec.modelType",
        ),
        (
            "model baseModelName",
            model(""),
            MODEL.replace("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"),
            "DynamoModel/m",
            "spec.baseModelName",
        ),
        (
            "component backendFramework",
            component("vllm"),
            component("trtllm"),
            "DynamoComponentDeployment/w",
            "spec.backendFramework",
        ),
    ];
    for (what, old, new, label, path) in cases {
        let scratch = Scratch::new("update");
        // As a create, the new version is fine: only the change is refused.
        let alone = validate(&file_args("-f", &[&scratch.write("alone.yaml", &new)]));
        assert_eq!(alone.code, Some(0), "{what}: {alone:#?}");
        let run = update(&scratch, &old, &new);
        assert_eq!(run.code, Some(1), "{what}: {run:#?}");
        assert!(run.finding(label, path).is_some(), "{what}: {run:#?}");
        run.assert_summary(1, 1);
        // The same object unchanged is a valid update.
        let unchanged = update(&scratch, &old, &old);
        assert_eq!(unchanged.code, Some(0), "{what}: {unchanged:#?}");
    }
}

#[test]
fn objects_pair_by_kind_namespace_and_name_across_directories_and_streams() {
    let scratch = Scratch::new("pairs");
    // Old: as `kubectl get -o yaml` writes it, a List with namespaces, split over a directory.
    scratch.write(
        "old/graphs.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}\n",
            serde_json::to_string(&serde_yaml::from_str::<Value>(&graph("g", AGG)).unwrap())
                .unwrap()
                .replace(r#""name":"g""#, r#""name":"g","namespace":"team""#)
        ),
    );
    scratch.write(
        "old/models/m.yaml",
        &model("").replace("  name: m\n", "  name: m\n  namespace: team\n"),
    );
    // New: one stream, without namespaces; a graph that is new, a model of another name.
    scratch.write(
        "new/all.yaml",
        &format!(
            "{}---\n{}---\n{}",
            graph("g", &AGG.replace("vllm", "sglang")),
            graph("fresh", AGG),
            MODEL.replace("meta-llama/Llama-3.1-8B", "other/base")
        ),
    );
    let with_namespace = |namespace: Option<&str>| {
        let mut args = file_args("--old", &[&scratch.path("old")]);
        args.extend(file_args("-f", &[&scratch.path("new")]));
        if let Some(namespace) = namespace {
            args.extend(["-n".to_owned(), namespace.to_owned()]);
        }
        validate(&args)
    };

    let run = with_namespace(Some("team"));
    run.assert_code(1);
    run.assert_finding("DynamoGraphDeployment/g", "spec.backendFramework");
    run.assert_finding("DynamoModel/m", "spec.baseModelName");
    assert!(
        run.stderr.contains(
            "DynamoGraphDeployment/fresh: note: no old version of it in --old; checked as a create"
        ),
        "{run:#?}"
    );
    run.assert_summary(3, 2);

    // In the default namespace nothing pairs: all three are creates, all valid.
    let run = with_namespace(None);
    run.assert_code(0);
    assert_eq!(
        run.stderr.matches("checked as a create").count(),
        3,
        "{run:#?}"
    );
    run.assert_summary(3, 0);
}

#[test]
fn old_and_new_can_both_come_from_standard_input_only_once() {
    let scratch = Scratch::new("stdin-update");
    let new = scratch.write("new.yaml", &component("sglang"));
    let mut args = vec!["--old".to_owned(), "-".to_owned()];
    args.extend(file_args("-f", &[&new]));
    let run = validate_with_stdin(&args, &component("vllm"));
    run.assert_code(1);
    run.assert_finding("DynamoComponentDeployment/w", "spec.backendFramework");

    let run = validate(&["--old", "-", "-f", "-"]);
    run.assert_code(2);
    assert!(run.stderr.contains("standard input"), "{run:#?}");
}

// ----- output and exit codes -----

#[test]
fn json_output_has_one_record_per_finding() {
    let scratch = Scratch::new("json-output");
    let file = scratch.write(
        "mixed.yaml",
        &format!(
            "{}---\n{}",
            bad_graph("bad").replace("  name: bad\n", "  name: bad\n  namespace: team\n"),
            graph(
                "warned",
                "  services:\n    Worker:\n      dynamoNamespace: ignored\n"
            )
        ),
    );
    let mut args = file_args("-f", &[&file]);
    args.extend(["-o".to_owned(), "json".to_owned()]);
    let run = validate(&args);
    run.assert_code(1);
    let records = run.json();
    let fields = [
        "file",
        "document",
        "kind",
        "name",
        "namespace",
        "path",
        "message",
        "rule",
        "source",
        "warning",
    ];
    for record in &records {
        let keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = fields.to_vec();
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected, "{record}");
    }
    let refusal = records
        .iter()
        .find(|r| r["path"] == "spec.services.Worker.replicas")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(refusal["file"], file.display().to_string());
    assert_eq!(refusal["document"], 1);
    assert_eq!(refusal["kind"], "DynamoGraphDeployment");
    assert_eq!(refusal["name"], "bad");
    assert_eq!(refusal["namespace"], "team");
    assert_eq!(refusal["warning"], false);
    assert!(refusal["rule"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(
        ["schema", "cel", "webhook"].contains(&refusal["source"].as_str().unwrap()),
        "{refusal}"
    );
    // A warning is a record too, and does not refuse its object.
    let warning = records
        .iter()
        .find(|r| r["name"] == "warned")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(warning["warning"], true, "{warning}");
    assert_eq!(warning["document"], 2);
    assert_eq!(warning["namespace"], "default");
    run.assert_summary(2, 1);

    // Nothing to report: an empty array.
    let good = scratch.write("good.yaml", &graph("g", AGG));
    let run = validate(&["-o", "json", "-f", good.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(run.json(), Vec::<Value>::new());
}

#[test]
fn warnings_are_printed_but_do_not_refuse() {
    let scratch = Scratch::new("warning");
    let file = scratch.write(
        "warned.yaml",
        &graph(
            "warned",
            "  services:\n    Worker:\n      dynamoNamespace: ignored\n",
        ),
    );
    let run = validate(&file_args("-f", &[&file]));
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!(
            "{}:1: DynamoGraphDeployment/warned: warning: ",
            file.display()
        )),
        "{run:#?}"
    );
    run.assert_summary(1, 0);
}

#[test]
fn exit_codes() {
    let scratch = Scratch::new("exit");
    let good = scratch.write("good.yaml", &graph("g", AGG));
    let bad = scratch.write("bad.yaml", &bad_graph("b"));
    let malformed = scratch.write(
        "malformed.yaml",
        &format!("{}---\nspec: [\n", graph("g2", AGG)),
    );
    let kindless = scratch.write("kindless.yaml", "metadata: {name: x}\n");
    let missing = scratch.path("missing.yaml");

    let cases: [(&str, Vec<String>, i32); 8] = [
        ("valid", file_args("-f", &[&good]), 0),
        ("refused", file_args("-f", &[&good, &bad]), 1),
        ("malformed YAML", file_args("-f", &[&malformed]), 2),
        ("no kind", file_args("-f", &[&kindless]), 2),
        ("missing file", file_args("-f", &[&missing]), 2),
        // An unreadable input wins over a refusal: the check is incomplete.
        ("refused and missing", file_args("-f", &[&bad, &missing]), 2),
        ("no files", vec!["-f".into()], 2),
        (
            "unknown output",
            vec![
                "-o".into(),
                "yaml".into(),
                "-f".into(),
                good.display().to_string(),
            ],
            2,
        ),
    ];
    for (what, args, code) in cases {
        let run = validate(&args);
        assert_eq!(run.code, Some(code), "{what}: {run:#?}");
    }

    // Unreadable input is named with its position, and what could be read is still checked.
    let run = validate(&file_args("-f", &[&malformed, &bad]));
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "{}:2: unreadable: the document is invalid YAML",
            malformed.display()
        )),
        "{run:#?}"
    );
    run.assert_finding("DynamoGraphDeployment/b", "spec.services.Worker.replicas");
    assert!(
        run.stderr
            .contains("2 objects checked, 1 refused, 1 unreadable"),
        "{run:#?}"
    );
}
