//! Table tests of the shared multinode pieces (deployers, command line handling, dispatch), and
//! helpers for the per-backend tests.

use super::*;
use dynamo_api::v1alpha1::ResourceItem;
use k8s_openapi::api::core::v1::{HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Upstream's backend tests name the service `test-service`.
pub(super) const GROVE: Deployer<'static> = Deployer::Grove {
    service: "test-service",
};
pub(super) const LWS: Deployer<'static> = Deployer::LeaderWorkerSet;
/// `$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-ldr-0.$(GROVE_HEADLESS_SERVICE)`.
pub(super) const GL: &str =
    "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-test-service-ldr-0.$(GROVE_HEADLESS_SERVICE)";
/// The variables LeaderWorkerSet injects, for [`kubelet_expand`].
pub(super) const LWS_ENV: [(&str, &str); 3] = [
    ("LWS_LEADER_ADDRESS", "g-0.g.ns"),
    ("LWS_WORKER_INDEX", "1"),
    ("LWS_GROUP_SIZE", "2"),
];

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A `main` container; an empty `command` or `args` is unset.
pub(super) fn container(command: &[&str], args: &[&str]) -> Container {
    Container {
        name: MAIN_CONTAINER.to_owned(),
        command: Some(strings(command)).filter(|c| !c.is_empty()),
        args: Some(strings(args)).filter(|a| !a.is_empty()),
        ..Default::default()
    }
}

/// `container` with the default worker probes.
pub(super) fn with_probes(mut container: Container) -> Container {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("system".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    container.liveness_probe = Some(probe("/live"));
    container.readiness_probe = Some(probe("/health"));
    container.startup_probe = Some(probe("/live"));
    container
}

/// Resources with these GPU limits and requests.
pub(super) fn gpus(limits: Option<&str>, requests: Option<&str>) -> Resources {
    let side = |gpu: Option<&str>| {
        gpu.map(|gpu| ResourceItem {
            gpu: Some(gpu.to_owned()),
            ..Default::default()
        })
    };
    Resources {
        limits: side(limits),
        requests: side(requests),
        ..Default::default()
    }
}

pub(super) fn multinode(nodes: i32, role: Role, deployer: Deployer<'_>) -> Multinode<'_> {
    Multinode {
        nodes,
        role,
        deployer,
        mpi_ssh_secret: "mpi-run-ssh-secret",
    }
}

/// What the kubelet makes of a `command`/`args` string: `$(VAR)` of a defined variable is
/// replaced, `$$` is `$`, anything else stays. Note that it reads a reference up to the first
/// `)`, so `$(( … $(VAR) ))` is one unknown name and stays whole.
pub(super) fn kubelet_expand(input: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < input.len() {
        if input.as_bytes()[cursor] == b'$' && cursor + 1 < input.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let (read, advance) = match rest.chars().next().unwrap() {
                '$' => ("$".to_owned(), 1),
                '(' => match rest[1..].find(')') {
                    Some(at) => {
                        let name = &rest[1..1 + at];
                        let value = vars.iter().find(|(var, _)| *var == name);
                        let read = value.map_or_else(|| format!("$({name})"), |v| v.1.to_owned());
                        (read, at + 2)
                    }
                    None => ("$(".to_owned(), 1),
                },
                other => (format!("${other}"), other.len_utf8()),
            };
            out.push_str(&read);
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint..]);
    out
}

#[test]
fn python_commands_are_recognised_as_upstream() {
    let python = [
        "python",
        "python3",
        "python2",
        "python3.12.1",
        "/usr/bin/python3.8",
        "./python3",
        "bin/python3.10",
        "/home/user/.pyenv/shims/python3.9",
    ];
    let not_python = [
        "python-config",
        "python ",
        "pythonx",
        "/usr/bin/",
        "python/",
        "python3.",
        "java",
        "sh",
        "",
        "a\nb/python3",
    ];
    for cmd in python {
        assert!(is_python_command(cmd), "{cmd:?}");
    }
    for cmd in not_python {
        assert!(!is_python_command(cmd), "{cmd:?}");
    }
}

#[test]
fn deployers_name_the_leader_the_ranks_and_the_hosts() {
    let grove = |service| Deployer::Grove { service };
    let wkr = |service: &str, i| {
        format!(
            "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-{service}-wkr-{i}.$(GROVE_HEADLESS_SERVICE)"
        )
    };
    let ldr = |service: &str| {
        format!("$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-{service}-ldr-0.$(GROVE_HEADLESS_SERVICE)")
    };
    let sed = |i| format!(r#"$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-{i}\./')"#);
    // Upstream's TestTRTLLMBackend_hostNamesList, the LWS leader as a kubelet reference
    // (difference 1).
    let cases = [
        (
            GROVE,
            3,
            vec![
                GL.to_owned(),
                wkr("test-service", 0),
                wkr("test-service", 1),
            ],
        ),
        (LWS, 2, vec!["$(LWS_LEADER_ADDRESS)".to_owned(), sed(1)]),
        (
            grove("worker"),
            5,
            vec![
                ldr("worker"),
                wkr("worker", 0),
                wkr("worker", 1),
                wkr("worker", 2),
                wkr("worker", 3),
            ],
        ),
        (
            LWS,
            4,
            vec!["$(LWS_LEADER_ADDRESS)".to_owned(), sed(1), sed(2), sed(3)],
        ),
        // The graph's service key is lowercased, as Grove names the cliques.
        (
            grove("VllmWorker"),
            2,
            vec![ldr("vllmworker"), wkr("vllmworker", 0)],
        ),
        (LWS, 1, vec!["$(LWS_LEADER_ADDRESS)".to_owned()]),
    ];
    for (deployer, nodes, hosts) in cases {
        assert_eq!(deployer.host_names(nodes), hosts, "{deployer:?} {nodes}");
        assert_eq!(deployer.leader_host(), hosts[0]);
    }

    let grove_rank = NodeRank {
        value: "$((GROVE_PCLQ_POD_INDEX + 1))",
        needs_shell: true,
    };
    assert_eq!(GROVE.node_rank(), grove_rank);
    assert_eq!(GROVE.shell_node_rank(), "$((GROVE_PCLQ_POD_INDEX + 1))");
    assert!(!GROVE.needs_dns_wait());
    // Difference 1: a kubelet reference, no shell (upstream's baseline said `true`).
    let lws_rank = NodeRank {
        value: "$(LWS_WORKER_INDEX)",
        needs_shell: false,
    };
    assert_eq!(LWS.node_rank(), lws_rank);
    assert_eq!(LWS.shell_node_rank(), "$LWS_WORKER_INDEX");
    assert!(LWS.needs_dns_wait());
}

#[test]
fn the_kubelet_expands_lws_references_but_not_inside_arithmetic() {
    // Why difference 1 works in exec-form argv and scripts alike.
    assert_eq!(
        kubelet_expand("--dist-init-addr $(LWS_LEADER_ADDRESS):29500", &LWS_ENV),
        "--dist-init-addr g-0.g.ns:29500"
    );
    assert_eq!(
        kubelet_expand("--node-rank $(LWS_WORKER_INDEX)", &LWS_ENV),
        "--node-rank 1"
    );
    // The sed host names and shell arithmetic reach the shell untouched.
    for shell in [
        r#"$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-1\./')"#,
        "$((GROVE_PCLQ_POD_INDEX + 1))",
        "$(( 8 * $((GROVE_PCLQ_POD_INDEX + 1)) ))",
        "$(( 8 * $LWS_WORKER_INDEX ))",
        "$((CURRENT_TIME - START_TIME))",
    ] {
        assert_eq!(kubelet_expand(shell, &LWS_ENV), shell);
    }
    // Why difference 5: nested in `$(( ))` a kubelet reference is not expanded, and the shell
    // would run `LWS_WORKER_INDEX` as a command.
    assert_eq!(
        kubelet_expand("$(( 8 * $(LWS_WORKER_INDEX) ))", &LWS_ENV),
        "$(( 8 * $(LWS_WORKER_INDEX) ))"
    );
    // A quoted user token keeps its kubelet reference working (difference 2).
    assert_eq!(
        kubelet_expand("exec python3 '--model=$(MODEL)'", &[("MODEL", "m")]),
        "exec python3 '--model=m'"
    );
    assert_eq!(kubelet_expand("a$$b $(UNSET) $x", &[]), "a$b $(UNSET) $x");
}

#[test]
fn user_tokens_are_quoted_only_when_a_shell_would_change_them() {
    let cases = [
        ("python3", "python3"),
        ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B"),
        ("--model=a,b:c@d%e+f", "--model=a,b:c@d%e+f"),
        ("_x.y-z", "_x.y-z"),
        ("", "''"),
        ("two words", "'two words'"),
        (r#"{"a": 1}"#, r#"'{"a": 1}'"#),
        ("it's", r"'it'\''s'"),
        ("$(MODEL)", "'$(MODEL)'"),
        ("a;b", "'a;b'"),
        ("*", "'*'"),
        ("~/x", "'~/x'"),
    ];
    for (token, word) in cases {
        assert_eq!(shell_word(token), word, "{token:?}");
    }
}

#[test]
fn the_original_command_line_is_read_one_way() {
    // (command, args, command line): difference 3.
    let cases: [(&[&str], &[&str], &str); 10] = [
        (&[], &["python3", "--model", "test"], "python3 --model test"),
        (
            &["sh", "-c"],
            &["launch", "--config", "test.yaml"],
            "launch --config test.yaml",
        ),
        (
            &["/bin/sh", "-c"],
            &["python3 -m dynamo.vllm | tee /log"],
            "python3 -m dynamo.vllm | tee /log",
        ),
        (&["bash", "-c"], &["a && b"], "a && b"),
        (
            &["/bin/bash", "-c", "python3 -m dynamo.vllm"],
            &[],
            "python3 -m dynamo.vllm",
        ),
        // Exec-form args under the default `/bin/sh -c` are script words (upstream prepends
        // `/bin/sh -c` for vLLM, which then runs `python3` alone).
        (
            &["/bin/sh", "-c"],
            &["python3", "-m", "dynamo.vllm"],
            "python3 -m dynamo.vllm",
        ),
        (&["python", "-m", "worker"], &[], "python -m worker"),
        (
            &["/usr/bin/python3.8"],
            &["-m", "dynamo.trtllm"],
            "/usr/bin/python3.8 -m dynamo.trtllm",
        ),
        // Any exec form keeps its program (upstream's TRT-LLM drops a non-python one).
        (
            &["trtllm-serve"],
            &["--model", "m"],
            "trtllm-serve --model m",
        ),
        (
            &["python3", "-m", "dynamo.vllm"],
            &["--json", r#"{"a": 1}"#, "--name", "it's"],
            r#"python3 -m dynamo.vllm --json '{"a": 1}' --name 'it'\''s'"#,
        ),
    ];
    for (command, args, expected) in cases {
        assert_eq!(
            command_line_text(&strings(command), &strings(args)),
            expected,
            "{command:?} {args:?}"
        );
    }
    assert!(!is_shell_script(&strings(&["sh"])));
    assert!(!is_shell_script(&strings(&["sh", "-x"])));
    assert!(!is_shell_script(&strings(&["fish", "-c"])));
    assert!(is_shell_script(&strings(&["/usr/bin/bash", "-c"])));
}

#[test]
fn flags_the_user_passes_are_not_added_again() {
    let words = [
        "python3",
        "--nnodes=2",
        "--node-rank",
        "1",
        "\"--dist-init-addr=x\"",
        "--data-parallel-size-local",
        "4",
    ];
    for (flag, passed) in [
        ("--nnodes", true),
        ("--node-rank", true),
        ("--dist-init-addr", true),
        ("--data-parallel-size-local", true),
        ("--data-parallel-size", false),
        ("--nnode", false),
        ("--tensor-parallel-size", false),
    ] {
        assert_eq!(passes_flag(&words, flag), passed, "{flag}");
    }
    let flags = flags_to_add(
        [
            ("--switch", None),
            ("--nnodes", Some("3".to_owned())),
            ("--data-parallel-size", Some("8".to_owned())),
        ],
        &words,
    );
    assert_eq!(flags, ["--switch", "--data-parallel-size", "8"]);
}

#[test]
fn flags_go_after_the_last_framework_word_of_each_python_command() {
    let flags = "--a 1";
    // (script, framework, expected); None when nothing matches.
    let cases: [(&str, &str, Option<&str>); 17] = [
        (
            "python -m dynamo.sglang",
            "sglang",
            Some("python -m dynamo.sglang --a 1"),
        ),
        (
            "python3 -m dynamo.sglang --custom-flag v",
            "sglang",
            Some("python3 -m dynamo.sglang --a 1 --custom-flag v"),
        ),
        (
            "echo blah | wc -l && python -m dynamo.sglang && ls -al",
            "sglang",
            Some("echo blah | wc -l && python -m dynamo.sglang --a 1 && ls -al"),
        ),
        (
            "python -m dynamo.sglang | tee /tmp/log",
            "sglang",
            Some("python -m dynamo.sglang --a 1 | tee /tmp/log"),
        ),
        (
            "python -m dynamo.sglang;echo done",
            "sglang",
            Some("python -m dynamo.sglang --a 1;echo done"),
        ),
        // The greedy class: after the last `sglang` word before a separator.
        (
            "python3 -m dynamo.sglang --model-path /m/sglang-x --tp 2",
            "sglang",
            Some("python3 -m dynamo.sglang --model-path /m/sglang-x --a 1 --tp 2"),
        ),
        // Every python command of the script.
        (
            "python -m dynamo.sglang && python -m dynamo.sglang",
            "sglang",
            Some("python -m dynamo.sglang --a 1 && python -m dynamo.sglang --a 1"),
        ),
        // A `python` word that runs no framework does not stop the search.
        (
            "cd /opt/python && python3.11 -m dynamo.vllm --tp 2",
            "vllm",
            Some("cd /opt/python && python3.11 -m dynamo.vllm --a 1 --tp 2"),
        ),
        (
            "export A=1\n/sbin/ldconfig\npython3 -m dynamo.vllm\t--tp 2",
            "vllm",
            Some("export A=1\n/sbin/ldconfig\npython3 -m dynamo.vllm --a 1\t--tp 2"),
        ),
        (
            "/usr/bin/python3 -m dynamo.vllm",
            "vllm",
            Some("/usr/bin/python3 -m dynamo.vllm --a 1"),
        ),
        // Only whitespace after the version; the framework within the same command.
        ("python3x -m dynamo.sglang", "sglang", None),
        ("python3.x -m dynamo.sglang", "sglang", None),
        ("python -m other | grep sglang", "sglang", None),
        ("echo sglang", "sglang", None),
        ("python -m some.other.module", "sglang", None),
        ("python", "sglang", None),
        // Not a word boundary, as upstream's regex.
        (
            "mypython -m dynamo.sglangx y",
            "sglang",
            Some("mypython -m dynamo.sglangx --a 1 y"),
        ),
    ];
    for (script, framework, expected) in cases {
        assert_eq!(
            insert_after_framework(script, framework, flags).as_deref(),
            expected,
            "{script:?}"
        );
    }
}

#[test]
fn single_node_and_pods_without_main_are_left_alone() {
    let main = with_probes(container(&["python3", "-m", "dynamo.sglang"], &[]));
    let pod = PodSpec {
        containers: vec![main.clone()],
        ..Default::default()
    };
    let resources = gpus(Some("1"), None);
    for backend in [
        BackendFramework::Sglang,
        BackendFramework::Vllm,
        BackendFramework::Trtllm,
    ] {
        for (nodes, role) in [(1, Role::Worker), (0, Role::Leader), (1, Role::Leader)] {
            let mut rewritten = pod.clone();
            rewrite(
                &mut rewritten,
                backend,
                Some(&resources),
                &multinode(nodes, role, GROVE),
            )
            .unwrap();
            assert_eq!(rewritten, pod, "{backend} {nodes} {role:?}");
        }
        let mut sidecar_only = PodSpec {
            containers: vec![Container {
                name: "sidecar".to_owned(),
                ..main.clone()
            }],
            ..Default::default()
        };
        let before = sidecar_only.clone();
        rewrite(
            &mut sidecar_only,
            backend,
            None,
            &multinode(2, Role::Worker, LWS),
        )
        .unwrap();
        assert_eq!(sidecar_only, before);
    }
}

#[test]
fn rewrite_changes_only_the_main_container() {
    let sidecar = container(&["python3", "-m", "dynamo.sglang"], &[]);
    let sidecar = Container {
        name: "sidecar".to_owned(),
        ..sidecar
    };
    let mut pod = PodSpec {
        containers: vec![
            sidecar.clone(),
            container(&["python3", "-m", "dynamo.sglang"], &[]),
        ],
        ..Default::default()
    };
    rewrite(
        &mut pod,
        BackendFramework::Sglang,
        None,
        &multinode(2, Role::Leader, LWS),
    )
    .unwrap();
    assert_eq!(pod.containers[0], sidecar);
    assert_eq!(
        pod.containers[1].args.as_deref().unwrap(),
        [
            "--dist-init-addr",
            "$(LWS_LEADER_ADDRESS):29500",
            "--nnodes",
            "2",
            "--node-rank",
            "0"
        ]
    );
}

#[test]
fn trtllm_multinode_needs_the_ssh_secret() {
    let mut pod = PodSpec {
        containers: vec![container(&[], &["python3 -m dynamo.trtllm"])],
        ..Default::default()
    };
    let before = pod.clone();
    let unnamed = Multinode {
        mpi_ssh_secret: "",
        ..multinode(2, Role::Leader, GROVE)
    };
    let err = rewrite(&mut pod, BackendFramework::Trtllm, None, &unnamed).unwrap_err();
    assert_eq!(err.reason(), "MpiSshSecretUnset");
    assert_eq!(
        err.to_string(),
        "TRT-LLM multinode needs the SSH key Secret of mpirun; set --mpi-run-ssh-secret-name"
    );
    assert_eq!(pod, before);
    // The other backends do not use it.
    rewrite(&mut pod, BackendFramework::Sglang, None, &unnamed).unwrap();
}
