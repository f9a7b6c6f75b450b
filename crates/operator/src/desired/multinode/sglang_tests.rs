//! Upstream's `backend_sglang_test.go` cases, with the differences of this port asserted.

use super::super::Deployer;
use super::super::tests::{
    GL, GROVE, LWS, LWS_ENV, container, kubelet_expand, multinode, strings, with_probes,
};
use super::*;
use k8s_openapi::api::core::v1::PodSpec;

/// Upstream's `MockSimpleDeployer`: leader `leader.example.com`, rank `1` without a shell.
const SIMPLE_LEADER: &str = "leader.example.com";
const SIMPLE_RANK: NodeRank = NodeRank {
    value: "1",
    needs_shell: false,
};
/// Upstream's `MockShellDeployer`: leader `$(LEADER_HOST)`, rank `$(WORKER_INDEX)` in a shell.
const SHELL_LEADER: &str = "$(LEADER_HOST)";
const SHELL_RANK: NodeRank = NodeRank {
    value: "$(WORKER_INDEX)",
    needs_shell: true,
};

fn command_and_args(c: &Container) -> (Vec<String>, Vec<String>) {
    (
        c.command.clone().unwrap_or_default(),
        c.args.clone().unwrap_or_default(),
    )
}

#[test]
fn python_command_injection() {
    use Role::{Leader, Worker};
    let simple = (SIMPLE_LEADER, SIMPLE_RANK);
    let shell = (SHELL_LEADER, SHELL_RANK);
    // TestSGLangBackend_PythonCommandInjection: (nodes, role, mock, command, args, expected
    // command, expected args). Case 1 (one node) is `rewrite`'s early return, tested in
    // mod_tests; `launch` runs only for several nodes.
    #[allow(clippy::type_complexity)]
    let cases: [(
        i32,
        Role,
        (&str, NodeRank),
        &[&str],
        &[&str],
        &[&str],
        &[&str],
    ); 10] = [
        (
            2,
            Worker,
            simple,
            &["python3"],
            &["-m", "dynamo.sglang", "--model", "llama"],
            &["python3"],
            &[
                "-m",
                "dynamo.sglang",
                "--model",
                "llama",
                "--dist-init-addr",
                "leader.example.com:29500",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
            ],
        ),
        (
            2,
            Worker,
            shell,
            &["python3"],
            &["-m", "dynamo.sglang", "--model", "llama"],
            &["sh", "-c"],
            &[
                "exec python3 -m dynamo.sglang --model llama --dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank $(WORKER_INDEX)",
            ],
        ),
        // "Leader role should never use shell wrapping".
        (
            3,
            Leader,
            shell,
            &["python"],
            &["-m", "dynamo.sglang"],
            &["python"],
            &[
                "-m",
                "dynamo.sglang",
                "--dist-init-addr",
                "$(LEADER_HOST):29500",
                "--nnodes",
                "3",
                "--node-rank",
                "0",
            ],
        ),
        (
            2,
            Worker,
            simple,
            &["python3.11"],
            &["-m", "dynamo.sglang"],
            &["python3.11"],
            &[
                "-m",
                "dynamo.sglang",
                "--dist-init-addr",
                "leader.example.com:29500",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
            ],
        ),
        (
            2,
            Worker,
            simple,
            &["/usr/bin/python3.8"],
            &["-m", "dynamo.sglang", "--model", "llama"],
            &["/usr/bin/python3.8"],
            &[
                "-m",
                "dynamo.sglang",
                "--model",
                "llama",
                "--dist-init-addr",
                "leader.example.com:29500",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
            ],
        ),
        (
            2,
            Worker,
            shell,
            &["/home/user/.pyenv/shims/python3.9"],
            &["-m", "dynamo.sglang"],
            &["sh", "-c"],
            &[
                "exec /home/user/.pyenv/shims/python3.9 -m dynamo.sglang --dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank $(WORKER_INDEX)",
            ],
        ),
        (
            2,
            Worker,
            simple,
            &["python3", "-m", "dynamo.sglang"],
            &["--model-path", "Qwen/Qwen3-0.6B", "--tp-size", "8"],
            &["python3", "-m", "dynamo.sglang"],
            &[
                "--model-path",
                "Qwen/Qwen3-0.6B",
                "--tp-size",
                "8",
                "--dist-init-addr",
                "leader.example.com:29500",
                "--nnodes",
                "2",
                "--node-rank",
                "1",
            ],
        ),
        (
            2,
            Worker,
            shell,
            &["python3", "-m", "dynamo.sglang"],
            &["--model-path", "Qwen/Qwen3-0.6B"],
            &["sh", "-c"],
            &[
                "exec python3 -m dynamo.sglang --model-path Qwen/Qwen3-0.6B --dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank $(WORKER_INDEX)",
            ],
        ),
        (
            2,
            Worker,
            shell,
            &["python3", "-m", "dynamo.sglang"],
            &[],
            &["sh", "-c"],
            &[
                "exec python3 -m dynamo.sglang --dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank $(WORKER_INDEX)",
            ],
        ),
        // No python found, no changes.
        (
            2,
            Worker,
            shell,
            &["java"],
            &["-jar", "app.jar"],
            &["java"],
            &["-jar", "app.jar"],
        ),
    ];
    for (nodes, role, (leader, rank), command, args, want_command, want_args) in cases {
        let mut c = container(command, args);
        launch(&mut c, nodes, role, leader, rank);
        assert_eq!(
            command_and_args(&c),
            (strings(want_command), strings(want_args)),
            "{command:?} {args:?}"
        );
    }
}

#[test]
fn shell_command_injection() {
    use Role::{Leader, Worker};
    let flags = |nodes: i32, rank: &str| {
        format!("--dist-init-addr {GL}:29500 --nnodes {nodes} --node-rank {rank}")
    };
    // TestSGLangBackend_ShellCommandInjection (command `sh -c`): (nodes, role, deployer, args,
    // expected args). The LWS leader address is a kubelet reference (difference 1).
    #[allow(clippy::type_complexity)]
    let cases: [(i32, Role, Deployer, &[&str], Vec<String>); 9] = [
        (
            1,
            Leader,
            GROVE,
            &["python -m dynamo.sglang"],
            strings(&["python -m dynamo.sglang"]),
        ),
        (
            2,
            Leader,
            GROVE,
            &["python -m dynamo.sglang"],
            vec![format!("python -m dynamo.sglang {}", flags(2, "0"))],
        ),
        (
            2,
            Leader,
            GROVE,
            &["echo blah | wc -l && python -m dynamo.sglang && ls -al"],
            vec![format!(
                "echo blah | wc -l && python -m dynamo.sglang {} && ls -al",
                flags(2, "0")
            )],
        ),
        (
            3,
            Worker,
            GROVE,
            &["python -m dynamo.sglang"],
            vec![format!(
                "python -m dynamo.sglang {}",
                flags(3, "$((GROVE_PCLQ_POD_INDEX + 1))")
            )],
        ),
        (
            2,
            Leader,
            LWS,
            &["python -m dynamo.sglang"],
            strings(&[
                "python -m dynamo.sglang --dist-init-addr $(LWS_LEADER_ADDRESS):29500 --nnodes 2 --node-rank 0",
            ]),
        ),
        (
            2,
            Leader,
            GROVE,
            &["python -m dynamo.sglang | tee /tmp/log"],
            vec![format!(
                "python -m dynamo.sglang {} | tee /tmp/log",
                flags(2, "0")
            )],
        ),
        (
            2,
            Leader,
            GROVE,
            &["echo start", "python -m dynamo.sglang", "echo done"],
            vec![
                "echo start".to_owned(),
                format!("python -m dynamo.sglang {}", flags(2, "0")),
                "echo done".to_owned(),
            ],
        ),
        (
            2,
            Leader,
            GROVE,
            &["echo hello", "python -m some.other.module"],
            strings(&["echo hello", "python -m some.other.module"]),
        ),
        (
            2,
            Leader,
            GROVE,
            &[
                "python -m dynamo.sglang",
                "python -m dynamo.sglang --other-flags",
            ],
            vec![
                format!("python -m dynamo.sglang {}", flags(2, "0")),
                "python -m dynamo.sglang --other-flags".to_owned(),
            ],
        ),
    ];
    for (nodes, role, deployer, args, expected) in cases {
        let mut pod = PodSpec {
            containers: vec![container(&["sh", "-c"], args)],
            ..Default::default()
        };
        super::super::rewrite(
            &mut pod,
            dynamo_api::v1alpha1::BackendFramework::Sglang,
            None,
            &multinode(nodes, role, deployer),
        )
        .unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            command_and_args(c),
            (strings(&["sh", "-c"]), expected),
            "{args:?}"
        );
    }
}

#[test]
fn multinode_flags_and_their_shell() {
    use Role::{Leader, Worker};
    // TestSGLangBackend_GetMultinodeFlags, plus the two real deployers' workers.
    let cases = [
        (
            Leader,
            2,
            SHELL_LEADER,
            SHELL_RANK,
            "--dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank 0",
            false,
        ),
        (
            Worker,
            3,
            SIMPLE_LEADER,
            SIMPLE_RANK,
            "--dist-init-addr leader.example.com:29500 --nnodes 3 --node-rank 1",
            false,
        ),
        (
            Worker,
            2,
            SHELL_LEADER,
            SHELL_RANK,
            "--dist-init-addr $(LEADER_HOST):29500 --nnodes 2 --node-rank $(WORKER_INDEX)",
            true,
        ),
        (
            Worker,
            2,
            "$(LWS_LEADER_ADDRESS)",
            LWS.node_rank(),
            "--dist-init-addr $(LWS_LEADER_ADDRESS):29500 --nnodes 2 --node-rank $(LWS_WORKER_INDEX)",
            false,
        ),
        (
            Worker,
            2,
            GL,
            GROVE.node_rank(),
            &format!(
                "--dist-init-addr {GL}:29500 --nnodes 2 --node-rank $((GROVE_PCLQ_POD_INDEX + 1))"
            ),
            true,
        ),
    ];
    for (role, nodes, leader, rank, flags, needs_shell) in cases {
        let (got, shell) = multinode_flags(nodes, role, leader, rank, &[]);
        assert_eq!((got.join(" "), shell), (flags.to_owned(), needs_shell));
    }
}

#[test]
fn workers_lose_their_probes_leaders_keep_them() {
    // TestSGLangBackend_ProbeRemoval (one node and `main` are `rewrite`'s early return).
    for (role, kept) in [(Role::Leader, true), (Role::Worker, false)] {
        let mut pod = PodSpec {
            containers: vec![with_probes(container(
                &["sh", "-c"],
                &["python -m dynamo.sglang"],
            ))],
            ..Default::default()
        };
        super::super::rewrite(
            &mut pod,
            dynamo_api::v1alpha1::BackendFramework::Sglang,
            None,
            &multinode(2, role, GROVE),
        )
        .unwrap();
        let c = &pod.containers[0];
        for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe] {
            assert_eq!(probe.is_some(), kept, "{role:?}");
        }
    }
}

#[test]
fn grove_golden_cliques() {
    // graph_test.go TestGenerateGrovePodCliqueSet: service `worker`, three nodes.
    let grove = Deployer::Grove { service: "worker" };
    let leader = "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE)";
    for (role, rank) in [
        (Role::Leader, "0"),
        (Role::Worker, "$((GROVE_PCLQ_POD_INDEX + 1))"),
    ] {
        let mut c = container(
            &["/bin/sh", "-c"],
            &["python3 -m dynamo.sglang --custom-flag custom-value"],
        );
        rewrite(&mut c, &multinode(3, role, grove));
        assert_eq!(
            c.args.unwrap(),
            [format!(
                "python3 -m dynamo.sglang --dist-init-addr {leader}:29500 --nnodes 3 --node-rank {rank} --custom-flag custom-value"
            )]
        );
        assert_eq!(c.command.unwrap(), ["/bin/sh", "-c"]);
    }
}

#[test]
fn lws_exec_form_needs_no_shell() {
    // Difference 1: upstream's derived cases gave the leader the literal `$LWS_LEADER_ADDRESS`
    // as argv, and wrapped the worker in `sh -c`. Kubelet references work in both.
    let args = ["-m", "dynamo.sglang", "--tp", "2"];
    for (role, rank) in [(Role::Leader, "0"), (Role::Worker, "$(LWS_WORKER_INDEX)")] {
        let mut c = container(&["python3"], &args);
        rewrite(&mut c, &multinode(2, role, LWS));
        let mut expected = strings(&args);
        expected.extend(strings(&[
            "--dist-init-addr",
            "$(LWS_LEADER_ADDRESS):29500",
            "--nnodes",
            "2",
            "--node-rank",
            rank,
        ]));
        assert_eq!(
            command_and_args(&c),
            (strings(&["python3"]), expected.clone())
        );
        let expanded: Vec<String> = expected
            .iter()
            .map(|a| kubelet_expand(a, &LWS_ENV))
            .collect();
        assert!(expanded.contains(&"g-0.g.ns:29500".to_owned()));
        assert!(expanded.iter().all(|a| !a.contains('$')), "{expanded:?}");
    }
    // The `sh -c` worker of upstream's derived case, with the kubelet reference.
    let mut c = container(&["/bin/sh", "-c"], &["python -m dynamo.sglang"]);
    rewrite(&mut c, &multinode(2, Role::Worker, LWS));
    assert_eq!(
        c.args.unwrap(),
        [
            "python -m dynamo.sglang --dist-init-addr $(LWS_LEADER_ADDRESS):29500 --nnodes 2 --node-rank $(LWS_WORKER_INDEX)"
        ]
    );
}

#[test]
fn the_shell_wrap_quotes_user_tokens() {
    // Difference 2: upstream joins the argv bare, so the JSON is re-split by the shell.
    let mut c = container(
        &["python3", "-m", "dynamo.sglang"],
        &[
            "--json-model-override-args",
            r#"{"rope": 2}"#,
            "--model=$(MODEL)",
            "it's",
        ],
    );
    rewrite(&mut c, &multinode(2, Role::Worker, GROVE));
    assert_eq!(
        command_and_args(&c),
        (
            strings(&["sh", "-c"]),
            vec![format!(
                r#"exec python3 -m dynamo.sglang --json-model-override-args '{{"rope": 2}}' '--model=$(MODEL)' 'it'\''s' --dist-init-addr {GL}:29500 --nnodes 2 --node-rank $((GROVE_PCLQ_POD_INDEX + 1))"#
            )]
        )
    );
}

#[test]
fn flags_the_user_passes_are_kept() {
    // Difference 4: upstream appends the three flags again.
    let cases: [(&[&str], &[&str], &[&str]); 4] = [
        // Exec form, `--flag value` and `--flag=value`.
        (
            &["python3", "-m", "dynamo.sglang"],
            &["--nnodes", "2", "--dist-init-addr=h:1"],
            &["--nnodes", "2", "--dist-init-addr=h:1", "--node-rank", "0"],
        ),
        // All passed: nothing to add.
        (
            &["python3", "-m", "dynamo.sglang"],
            &["--nnodes=2", "--node-rank=0", "--dist-init-addr", "h:1"],
            &["--nnodes=2", "--node-rank=0", "--dist-init-addr", "h:1"],
        ),
        // Flags in the exec command count too.
        (
            &["python3", "-m", "dynamo.sglang", "--nnodes", "2"],
            &[],
            &[
                "--dist-init-addr",
                "$(LWS_LEADER_ADDRESS):29500",
                "--node-rank",
                "0",
            ],
        ),
        // Script text.
        (
            &["sh", "-c"],
            &["python3 -m dynamo.sglang --node-rank 0 --nnodes=2"],
            &[
                "python3 -m dynamo.sglang --dist-init-addr $(LWS_LEADER_ADDRESS):29500 --node-rank 0 --nnodes=2",
            ],
        ),
    ];
    for (command, args, expected) in cases {
        let mut c = container(command, args);
        rewrite(&mut c, &multinode(2, Role::Leader, LWS));
        assert_eq!(c.args.unwrap_or_default(), strings(expected), "{args:?}");
    }
    // A worker that passes its own rank needs no shell for it.
    let mut c = container(&["python3", "-m", "dynamo.sglang"], &["--node-rank", "1"]);
    rewrite(&mut c, &multinode(2, Role::Worker, GROVE));
    assert_eq!(c.command.unwrap(), ["python3", "-m", "dynamo.sglang"]);
    assert_eq!(
        c.args.unwrap(),
        strings(&[
            "--node-rank",
            "1",
            "--dist-init-addr",
            &format!("{GL}:29500"),
            "--nnodes",
            "2"
        ])
    );
}

#[test]
fn a_shell_command_with_the_script_in_command_is_left_alone() {
    // Upstream rewrites `args` only; a script inside `command` is never touched.
    let mut c = container(&["sh", "-c", "python3 -m dynamo.sglang"], &[]);
    let before = c.clone();
    rewrite(&mut c, &multinode(2, Role::Leader, GROVE));
    assert_eq!(c, before);
}
