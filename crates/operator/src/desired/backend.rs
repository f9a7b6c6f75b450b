//! Which inference backend a worker runs, as upstream decides it: the `dynamo.<backend>` module
//! its command line starts with `python… -m`, else the graph's `backendFramework`. Only workers
//! (`worker`, `prefill`, `decode`) have one; the backend picks the compilation cache defaults.

use dynamo_api::v1alpha1::{BackendFramework, ComponentType};

use super::BuildError;
use super::defaults::is_worker;

const BACKENDS: [BackendFramework; 3] = [
    BackendFramework::Vllm,
    BackendFramework::Sglang,
    BackendFramework::Trtllm,
];

/// The backend of a component: `None` for non-workers; for workers the backend the command line
/// runs (an error if it contradicts `configured`), else `configured`.
///
/// A command line that runs several backends counts as none when `configured` is set and is an
/// error otherwise, as upstream has it.
pub fn component_backend(
    component_type: Option<&ComponentType>,
    command: &[String],
    args: &[String],
    configured: Option<BackendFramework>,
) -> Result<Option<BackendFramework>, BuildError> {
    if !component_type.is_some_and(is_worker) {
        return Ok(None);
    }
    let command_line = command
        .iter()
        .chain(args)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    match (detect(&command_line).as_slice(), configured) {
        ([detected], Some(configured)) if *detected != configured => {
            Err(BuildError::BackendMismatch {
                detected: detected.to_string(),
                configured: configured.to_string(),
            })
        }
        ([detected], _) => Ok(Some(*detected)),
        ([], configured) | ([_, _, ..], configured @ Some(_)) => Ok(configured),
        (several, None) => Err(BuildError::AmbiguousBackend {
            detected: several.iter().map(|b| b.to_string()).collect(),
        }),
    }
}

/// The backends a command line starts: a `dynamo.<backend>` module after `-m` of a `python`
/// (`python3`, `python3.12`, ...) in one shell command (commands end at `|`, `&` or `;`).
pub fn detect(command_line: &str) -> Vec<BackendFramework> {
    let commands: Vec<&str> = command_line.split(['|', '&', ';']).collect();
    BACKENDS
        .into_iter()
        .filter(|backend| {
            let module = format!("dynamo.{}", backend.as_str());
            commands.iter().any(|command| runs_module(command, &module))
        })
        .collect()
}

/// Whether `command` has `python[0-9.]*`, whitespace, later `-m` and whitespace, and later
/// `module`.
fn runs_module(command: &str, module: &str) -> bool {
    command.match_indices("python").any(|(start, _)| {
        let rest = &command[start + "python".len()..];
        let version = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let rest = &rest[version..];
        if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
            return false;
        }
        let rest = &rest[1..];
        rest.match_indices("-m").any(|(at, _)| {
            let after = &rest[at + 2..];
            after.starts_with(|c: char| c.is_ascii_whitespace()) && after[1..].contains(module)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_follows_upstreams_pattern() {
        use BackendFramework::{Sglang, Trtllm, Vllm};
        let cases: [(&str, &[BackendFramework]); 12] = [
            ("python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B", &[Vllm]),
            ("python -m dynamo.sglang --model-path /m", &[Sglang]),
            ("python3.12 -m dynamo.trtllm", &[Trtllm]),
            ("/usr/bin/python3 -u -m dynamo.vllm", &[Vllm]),
            (
                "/bin/sh -c export A=1\n/sbin/ldconfig\npython3 -m dynamo.vllm --model m",
                &[Vllm],
            ),
            ("python3 -m dynamo.frontend", &[]),
            ("python3 -m planner_sla --backend=vllm", &[]),
            // Not the module of the python command: another shell command runs it.
            ("python3 -m pip list; echo dynamo.vllm", &[]),
            ("python3x -m dynamo.vllm", &[]),
            ("python3 --model dynamo.vllm", &[]),
            ("dynamo.vllm", &[]),
            (
                "python3 -m dynamo.vllm && python3 -m dynamo.sglang",
                &[Vllm, Sglang],
            ),
        ];
        for (command_line, expected) in cases {
            assert_eq!(detect(command_line), expected, "{command_line}");
        }
    }

    #[test]
    fn workers_take_the_detected_backend_else_the_configured_one() {
        use BackendFramework::{Sglang, Vllm};
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let vllm = strings(&["python3", "-m", "dynamo.vllm"]);
        let both = strings(&["python3 -m dynamo.vllm; python3 -m dynamo.sglang"]);
        let none: Vec<String> = Vec::new();
        let worker = Some(ComponentType::Worker);
        let frontend = Some(ComponentType::Frontend);
        // (component type, command, args, configured, expected backend or error reason)
        let cases = [
            (&worker, &vllm, &none, None, Ok(Some(Vllm))),
            (&worker, &none, &vllm, Some(Vllm), Ok(Some(Vllm))),
            (&worker, &none, &none, Some(Sglang), Ok(Some(Sglang))),
            (&worker, &none, &none, None, Ok(None)),
            (&worker, &both, &none, Some(Sglang), Ok(Some(Sglang))),
            (
                &worker,
                &both,
                &none,
                None,
                Err("AmbiguousBackendFramework"),
            ),
            (
                &worker,
                &vllm,
                &none,
                Some(Sglang),
                Err("BackendFrameworkMismatch"),
            ),
            (&frontend, &vllm, &none, Some(Sglang), Ok(None)),
            (&None, &vllm, &none, None, Ok(None)),
        ];
        for (kind, command, args, configured, expected) in cases {
            let got = component_backend(kind.as_ref(), command, args, configured);
            assert_eq!(
                got.map_err(|e| e.reason()),
                expected,
                "{kind:?} {command:?} {args:?} {configured:?}"
            );
        }
        let err = component_backend(worker.as_ref(), &vllm, &none, Some(Sglang)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.backendFramework is sglang but the main container runs dynamo.vllm"
        );
        let err = component_backend(worker.as_ref(), &both, &none, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the main container runs several backends (vllm, sglang); set spec.backendFramework"
        );
    }
}
