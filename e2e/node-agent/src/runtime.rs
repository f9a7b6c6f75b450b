//! Pods that run upstream Dynamo's runtime: a main container whose command line runs
//! `python3 -m dynamo.frontend` or `python3 -m dynamo.mocker` (modules that need no GPU) is
//! run for real from the runtime `hack/dynamo-runtime.sh` installs, when the pod's namespace
//! opts in (its name contains [`NAMESPACE_MARK`]). Everything else of that kind stays
//! simulated by kwok, so suites that apply hundreds of graphs do not start hundreds of Python
//! processes. `hack/cluster.sh` gives kwok the same rule ([`KWOK_SKIP_EXPRESSION`]).
//!
//! The runtime stands in for the image: its venv's `bin` leads `PATH` (so `python3` is the
//! runtime's), `/workspace` is the image's checkout (upstream's graphs point
//! `--planner-profile-data` into it), and a Hugging Face cache per pod, offline, maps every
//! repository id on the command line to the tiny model.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// Namespaces whose name contains this run Dynamo runtime pods for real.
pub const NAMESPACE_MARK: &str = "serving";

/// The Dynamo modules the runtime runs without a GPU.
pub const MODULES: [&str; 2] = ["dynamo.frontend", "dynamo.mocker"];

/// The kwok stage selector expression (gojq) that is true for exactly the pods
/// [`runs_for_real`] accepts; kwok leaves those to the agent.
pub const KWOK_SKIP_EXPRESSION: &str = r#"(.metadata.namespace | contains("serving")) and (.spec.containers.[0] | [(.command // [])[], (.args // [])[]] | join(" ") | test("(^|[ /])python[0-9.]* +-m +dynamo[.](frontend|mocker)( |$)"))"#;

/// The command line a container runs: `command` then `args` (an image's entrypoint runs
/// `args` when `command` is unset; Dynamo images' entrypoint executes them).
pub fn argv(container: &Container) -> Vec<String> {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect()
}

/// The Dynamo module `argv` runs, found as `python… -m <module>` among its words (so
/// `sh -c "exec python3 -m dynamo.frontend …"` counts too).
pub fn dynamo_module(argv: &[String]) -> Option<&'static str> {
    let words: Vec<&str> = argv.iter().flat_map(|a| a.split_whitespace()).collect();
    words.windows(3).find_map(|w| {
        let program = w[0].rsplit('/').next().unwrap_or(w[0]);
        let is_python = program
            .strip_prefix("python")
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !is_python || w[1] != "-m" {
            return None;
        }
        MODULES.iter().copied().find(|m| *m == w[2])
    })
}

/// Whether the agent runs `pod` with the Dynamo runtime.
pub fn runs_for_real(pod: &Pod) -> bool {
    let in_serving_namespace = pod
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|ns| ns.contains(NAMESPACE_MARK));
    let main = pod.spec.as_ref().and_then(|s| s.containers.first());
    in_serving_namespace && main.is_some_and(|c| dynamo_module(&argv(c)).is_some())
}

/// Words of `argv` that name a Hugging Face repository (`org/name`): the values the runtime
/// would download, which the offline cache serves with the tiny model.
pub fn repository_ids(argv: &[String]) -> Vec<String> {
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '-'])
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let mut ids: Vec<String> = argv
        .iter()
        .flat_map(|a| a.split_whitespace())
        .filter(|word| match word.split_once('/') {
            Some((org, name)) => valid(org) && valid(name),
            None => false,
        })
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A revision id for the cache's `refs/main`: any 40 hex digits will do offline.
const REVISION: &str = "0000000000000000000000000000000000000000";

/// The installed runtime (the directory `hack/dynamo-runtime.sh` prints).
#[derive(Clone, Debug)]
pub struct Runtime {
    pub root: PathBuf,
}

impl Runtime {
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The image's `/workspace`.
    pub fn workspace(&self) -> PathBuf {
        self.root.join("image").join("workspace")
    }

    /// The pod's home and Hugging Face cache, made for this pod: every repository id on its
    /// command line resolves to the tiny model.
    pub fn prepare(&self, pod_dir: &Path, argv: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(pod_dir.join("home"))?;
        let hub = pod_dir.join("hf").join("hub");
        for id in repository_ids(argv) {
            let repo = hub.join(format!("models--{}", id.replace('/', "--")));
            let snapshot = repo.join("snapshots").join(REVISION);
            std::fs::create_dir_all(&snapshot)?;
            std::fs::create_dir_all(repo.join("refs"))?;
            std::fs::write(repo.join("refs").join("main"), REVISION)?;
            for entry in std::fs::read_dir(self.model())? {
                let entry = entry?;
                let link = snapshot.join(entry.file_name());
                if !link.exists() {
                    std::os::unix::fs::symlink(entry.path(), link)?;
                }
            }
        }
        Ok(())
    }

    /// What the image's environment would hold, before the container's own variables.
    pub fn image_env(&self, pod_dir: &Path) -> Vec<(String, String)> {
        let bin = self.root.join("venv").join("bin");
        vec![
            (
                "PATH".into(),
                format!(
                    "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    bin.display()
                ),
            ),
            ("HOME".into(), pod_dir.join("home").display().to_string()),
            (
                "PYTHONPATH".into(),
                self.root.join("image").join("site").display().to_string(),
            ),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ]
    }

    /// Set after the container's variables: the model cache is where the agent made it, and
    /// nothing is downloaded.
    pub fn forced_env(&self, pod_dir: &Path) -> Vec<(String, String)> {
        vec![
            ("HF_HOME".into(), pod_dir.join("hf").display().to_string()),
            ("HF_HUB_OFFLINE".into(), "1".into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn finds_the_dynamo_module_of_a_command_line() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (
                &["python3", "-m", "dynamo.frontend"],
                Some("dynamo.frontend"),
            ),
            (
                &["python3", "-m", "dynamo.mocker", "--model-path", "a/b"],
                Some("dynamo.mocker"),
            ),
            (
                &["/usr/bin/python3.12", "-m", "dynamo.mocker"],
                Some("dynamo.mocker"),
            ),
            (
                &["python", "-m", "dynamo.frontend"],
                Some("dynamo.frontend"),
            ),
            (
                &[
                    "/bin/sh",
                    "-c",
                    "exec python3 -m dynamo.frontend --router-mode kv",
                ],
                Some("dynamo.frontend"),
            ),
            // Engines need a GPU: simulated.
            (
                &["python3", "-m", "dynamo.vllm", "--model", "Qwen/Qwen3-0.6B"],
                None,
            ),
            (&["python3", "-m", "dynamo.frontend_extra"], None),
            (&["mypython3", "-m", "dynamo.frontend"], None),
            (&["python3", "dynamo.frontend"], None),
            (&[], None),
        ];
        for (argv, expected) in cases {
            assert_eq!(dynamo_module(&words(argv)), *expected, "{argv:?}");
        }
    }

    #[test]
    fn repository_ids_are_org_slash_name_words() {
        let argv = words(&[
            "python3",
            "-m",
            "dynamo.mocker",
            "--model-path",
            "nvidia/Llama-3.1-8B-Instruct-FP8",
            "--model-name",
            "nvidia/Llama-3.1-8B-Instruct-FP8",
            "--planner-profile-data",
            "/workspace/tests/planner/profiling_results/H200_TP1P_TP1D",
            "--served",
            "Qwen/Qwen3-0.6B extra ./local/dir",
        ]);
        assert_eq!(
            repository_ids(&argv),
            vec!["Qwen/Qwen3-0.6B", "nvidia/Llama-3.1-8B-Instruct-FP8"]
        );
    }

    #[test]
    fn only_pods_of_serving_namespaces_run_for_real() {
        let pod = |ns: &str, command: &[&str]| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "namespace": ns},
                "spec": {"containers": [{"name": "main", "command": command}]},
            }))
            .unwrap()
        };
        let frontend = ["python3", "-m", "dynamo.frontend"];
        assert!(runs_for_real(&pod("e2e-serving-1-0", &frontend)));
        assert!(!runs_for_real(&pod("e2e-graphs-1-0", &frontend)));
        assert!(!runs_for_real(&pod(
            "e2e-serving-1-0",
            &["python3", "-m", "dynamo.vllm"]
        )));
    }
}

#[cfg(test)]
mod kwok_rule {
    #[test]
    fn the_cluster_script_gives_kwok_the_same_rule() {
        let script = include_str!("../../../hack/cluster.sh");
        assert!(
            script.contains(super::KWOK_SKIP_EXPRESSION),
            "hack/cluster.sh must skip exactly the pods runtime.rs runs (KWOK_SKIP_EXPRESSION)"
        );
    }
}
