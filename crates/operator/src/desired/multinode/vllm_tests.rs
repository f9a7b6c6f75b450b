//! Upstream's `backend_vllm_test.go` cases and the vLLM golden strings of its Grove and LWS
//! tests, with the differences of this port asserted.

use super::super::tests::{
    GL, GROVE, LWS, LWS_ENV, container, gpus, kubelet_expand, multinode, strings, with_probes,
};
use super::super::{Deployer, Role};
use super::*;

/// The container after the rewrite of `role` in a group of `nodes` with `limits.gpu`.
fn rewritten(
    command: &[&str],
    args: &[&str],
    gpu: Option<&str>,
    nodes: i32,
    role: Role,
    deployer: Deployer<'_>,
) -> Container {
    let mut c = with_probes(container(command, args));
    let resources = gpus(gpu, None);
    rewrite(&mut c, Some(&resources), &multinode(nodes, role, deployer));
    c
}

fn command_and_args(c: &Container) -> (Vec<String>, Vec<String>) {
    (
        c.command.clone().unwrap_or_default(),
        c.args.clone().unwrap_or_default(),
    )
}

fn has_probes(c: &Container) -> bool {
    [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .iter()
        .all(|p| p.is_some())
}

fn has_no_probes(c: &Container) -> bool {
    [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .iter()
        .all(|p| p.is_none())
}

const SH_C: [&str; 2] = ["/bin/sh", "-c"];

#[test]
fn update_container() {
    use Role::{Leader, Worker};
    // TestVLLMBackend_UpdateContainer (the single-node case is `rewrite`'s early return, the
    // `main` frontend case a leader without GPUs): (nodes, role, deployer, command, args, gpu,
    // expected command and args; None = unchanged).
    #[allow(clippy::type_complexity)]
    let cases: [(i32, Role, Deployer, &[&str], &[&str], Option<&str>, Option<(&[&str], String)>); 5] = [
        (
            3,
            Leader,
            GROVE,
            &["python3", "-m", "dynamo.vllm"],
            &["--model", "test", "--tensor-parallel-size", "8"],
            Some("4"),
            Some((&SH_C, "ray start --head --port=6379 && python3 -m dynamo.vllm --model test --tensor-parallel-size 8 --distributed-executor-backend ray".to_owned())),
        ),
        (
            3,
            Worker,
            GROVE,
            &["python3"],
            &["-m", "dynamo.vllm", "--model", "test", "--tensor-parallel-size", "8"],
            Some("4"),
            Some((&SH_C, format!("ray start --address={GL}:6379 --block"))),
        ),
        // The LWS leader address is a kubelet reference (difference 1).
        (
            2,
            Worker,
            LWS,
            &[],
            &["python3", "-m", "dynamo.vllm", "--tensor-parallel-size", "8"],
            Some("4"),
            Some((&SH_C, "ray start --address=$(LWS_LEADER_ADDRESS):6379 --block".to_owned())),
        ),
        (2, Leader, GROVE, &["python3"], &[], Some("0"), None),
        (3, Leader, GROVE, &["python3", "-m", "dynamo.frontend"], &[], None, None),
    ];
    for (nodes, role, deployer, command, args, gpu, expected) in cases {
        let c = rewritten(command, args, gpu, nodes, role, deployer);
        let expected = match expected {
            Some((command, arg)) => (strings(command), vec![arg]),
            None => (strings(command), strings(args)),
        };
        assert_eq!(command_and_args(&c), expected, "{command:?} {args:?}");
        match role {
            Leader => assert!(has_probes(&c)),
            Worker => assert!(has_no_probes(&c)),
        }
    }
}

#[test]
fn shell_command_injection() {
    let dp = |address: &str| {
        format!(
            "--data-parallel-hybrid-lb --data-parallel-size-local 4 --data-parallel-start-rank 0 --data-parallel-address {address} --data-parallel-rpc-port 13445"
        )
    };
    // TestVLLMBackend_ShellCommandInjection (command `sh -c`, leaders, limits.gpu 4).
    let cases: [(i32, Deployer, &str, String); 5] = [
        (
            1,
            GROVE,
            "python3 -m dynamo.vllm",
            "python3 -m dynamo.vllm".to_owned(),
        ),
        (
            2,
            GROVE,
            "python3 -m dynamo.vllm --data-parallel-size 8",
            format!("python3 -m dynamo.vllm {} --data-parallel-size 8", dp(GL)),
        ),
        (
            2,
            GROVE,
            "echo blah | wc -l && python3 -m dynamo.vllm --data-parallel-size 8 && ls -al",
            format!(
                "echo blah | wc -l && python3 -m dynamo.vllm {} --data-parallel-size 8 && ls -al",
                dp(GL)
            ),
        ),
        // The LWS leader address is a kubelet reference (difference 1).
        (
            2,
            LWS,
            "python3 -m dynamo.vllm --data-parallel-size 8",
            format!(
                "python3 -m dynamo.vllm {} --data-parallel-size 8",
                dp("$(LWS_LEADER_ADDRESS)")
            ),
        ),
        (
            2,
            GROVE,
            "python3 -m dynamo.vllm --data-parallel-size 8 | tee /tmp/log",
            format!(
                "python3 -m dynamo.vllm {} --data-parallel-size 8 | tee /tmp/log",
                dp(GL)
            ),
        ),
    ];
    for (nodes, deployer, script, expected) in cases {
        let mut pod = k8s_openapi::api::core::v1::PodSpec {
            containers: vec![container(&["sh", "-c"], &[script])],
            ..Default::default()
        };
        let resources = gpus(Some("4"), None);
        super::super::rewrite(
            &mut pod,
            dynamo_api::v1alpha1::BackendFramework::Vllm,
            Some(&resources),
            &multinode(nodes, Role::Leader, deployer),
        )
        .unwrap();
        assert_eq!(
            command_and_args(&pod.containers[0]),
            (strings(&["sh", "-c"]), vec![expected]),
            "{script}"
        );
    }
}

#[test]
fn update_vllm_multinode_args() {
    use Role::{Leader, Worker};
    let grove_dp_worker = |local: i64, user: &str| {
        format!(
            "exec python3 -m dynamo.vllm {user} --data-parallel-hybrid-lb --data-parallel-size-local {local} --data-parallel-start-rank $(( {local} * $((GROVE_PCLQ_POD_INDEX + 1)) )) --data-parallel-address {GL} --data-parallel-rpc-port 13445"
        )
    };
    let ray_worker = format!("ray start --address={GL}:6379 --block");
    // TestUpdateVLLMMultinodeArgs (two nodes; the frontend case is a leader without GPUs):
    // (role, deployer, command, args, gpu, expected command, expected args).
    #[allow(clippy::type_complexity)]
    let cases: [(
        Role,
        Deployer,
        &[&str],
        &[&str],
        Option<&str>,
        Vec<String>,
        Vec<String>,
    ); 8] = [
        (
            Leader,
            GROVE,
            &["python3"],
            &["-m", "dynamo.vllm", "--tensor-parallel-size", "16"],
            Some("8"),
            strings(&SH_C),
            strings(&[
                "ray start --head --port=6379 && python3 -m dynamo.vllm --tensor-parallel-size 16 --distributed-executor-backend ray",
            ]),
        ),
        (
            Leader,
            GROVE,
            &["python3"],
            &["-m", "dynamo.vllm", "--data-parallel-size", "16"],
            Some("8"),
            strings(&["python3"]),
            strings(&[
                "-m",
                "dynamo.vllm",
                "--data-parallel-size",
                "16",
                "--data-parallel-hybrid-lb",
                "--data-parallel-size-local",
                "8",
                "--data-parallel-start-rank",
                "0",
                "--data-parallel-address",
                GL,
                "--data-parallel-rpc-port",
                "13445",
            ]),
        ),
        (
            Leader,
            GROVE,
            &["python3"],
            &[],
            Some("0"),
            strings(&["python3"]),
            vec![],
        ),
        (
            Worker,
            GROVE,
            &[],
            &[
                "python3",
                "-m",
                "dynamo.vllm",
                "--tensor-parallel-size",
                "16",
            ],
            Some("8"),
            strings(&SH_C),
            vec![ray_worker.clone()],
        ),
        (
            Worker,
            GROVE,
            &["python3"],
            &["-m", "dynamo.vllm", "--data-parallel-size", "16"],
            Some("8"),
            strings(&["sh", "-c"]),
            vec![grove_dp_worker(8, "--data-parallel-size 16")],
        ),
        (
            Worker,
            GROVE,
            &["python3"],
            &[
                "-m",
                "dynamo.vllm",
                "--data-parallel-size",
                "8",
                "--tensor-parallel-size",
                "2",
            ],
            Some("8"),
            strings(&["sh", "-c"]),
            vec![grove_dp_worker(
                4,
                "--data-parallel-size 8 --tensor-parallel-size 2",
            )],
        ),
        // The LWS leader address is a kubelet reference (difference 1).
        (
            Worker,
            LWS,
            &[],
            &[
                "python3",
                "-m",
                "dynamo.vllm",
                "--tensor-parallel-size",
                "16",
            ],
            Some("8"),
            strings(&SH_C),
            strings(&["ray start --address=$(LWS_LEADER_ADDRESS):6379 --block"]),
        ),
        (
            Leader,
            GROVE,
            &["python3", "-m", "dynamo.frontend"],
            &[],
            None,
            strings(&["python3", "-m", "dynamo.frontend"]),
            vec![],
        ),
    ];
    for (role, deployer, command, args, gpu, want_command, want_args) in cases {
        let c = rewritten(command, args, gpu, 2, role, deployer);
        assert_eq!(
            command_and_args(&c),
            (want_command, want_args),
            "{role:?} {command:?} {args:?}"
        );
    }
}

#[test]
fn lws_data_parallel_worker_computes_its_start_rank_in_the_shell() {
    // Upstream's derived case had `$(( 8 * $(LWS_WORKER_INDEX) ))` and `$LWS_LEADER_ADDRESS`;
    // the kubelet leaves the nested reference alone and the shell would run `LWS_WORKER_INDEX`
    // as a command (difference 5). The address is a kubelet reference (difference 1).
    let c = rewritten(
        &["python3"],
        &["-m", "dynamo.vllm", "--data-parallel-size", "16"],
        Some("8"),
        2,
        Role::Worker,
        LWS,
    );
    let script = "exec python3 -m dynamo.vllm --data-parallel-size 16 --data-parallel-hybrid-lb --data-parallel-size-local 8 --data-parallel-start-rank $(( 8 * $LWS_WORKER_INDEX )) --data-parallel-address $(LWS_LEADER_ADDRESS) --data-parallel-rpc-port 13445";
    assert_eq!(
        command_and_args(&c),
        (strings(&["sh", "-c"]), strings(&[script]))
    );
    assert_eq!(
        kubelet_expand(script, &LWS_ENV),
        "exec python3 -m dynamo.vllm --data-parallel-size 16 --data-parallel-hybrid-lb --data-parallel-size-local 8 --data-parallel-start-rank $(( 8 * $LWS_WORKER_INDEX )) --data-parallel-address g-0.g.ns --data-parallel-rpc-port 13445"
    );
    // The leader needs no shell: its address reaches python as argv.
    let c = rewritten(
        &["python3"],
        &["-m", "dynamo.vllm", "--data-parallel-size", "16"],
        Some("8"),
        2,
        Role::Leader,
        LWS,
    );
    assert_eq!(c.command.unwrap(), ["python3"]);
    assert!(
        c.args
            .unwrap()
            .contains(&"$(LWS_LEADER_ADDRESS)".to_owned())
    );
}

#[test]
fn golden_ray_groups() {
    // graph_test.go TestGenerateGrovePodCliqueSet (service `worker`, three nodes, limits.gpu 2)
    // and the DCD controller's LWS template (two nodes, limits.gpu 1).
    let grove = Deployer::Grove { service: "worker" };
    let args = [
        "--custom-flag",
        "custom-value",
        "--tensor-parallel-size",
        "4",
        "--pipeline-parallel-size",
        "1",
    ];
    let cases = [
        (
            grove,
            3,
            &["python3", "-m", "dynamo.vllm"][..],
            &args[..],
            "2",
            "ray start --head --port=6379 && python3 -m dynamo.vllm --custom-flag custom-value --tensor-parallel-size 4 --pipeline-parallel-size 1 --distributed-executor-backend ray",
            "ray start --address=$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE):6379 --block",
        ),
        (
            LWS,
            2,
            &["some", "dynamo", "command"][..],
            &args[2..],
            "1",
            "ray start --head --port=6379 && some dynamo command --tensor-parallel-size 4 --pipeline-parallel-size 1 --distributed-executor-backend ray",
            "ray start --address=$(LWS_LEADER_ADDRESS):6379 --block",
        ),
    ];
    for (deployer, nodes, command, args, gpu, leader, worker) in cases {
        let c = rewritten(command, args, Some(gpu), nodes, Role::Leader, deployer);
        assert_eq!(command_and_args(&c), (strings(&SH_C), strings(&[leader])));
        assert!(has_probes(&c));
        let c = rewritten(command, args, Some(gpu), nodes, Role::Worker, deployer);
        assert_eq!(command_and_args(&c), (strings(&SH_C), strings(&[worker])));
        assert!(has_no_probes(&c));
    }
}

#[test]
fn the_ray_leader_reads_the_command_line_one_way() {
    // Difference 3 (and 2 for the quoting). Upstream gives `… && /bin/sh -c python3 …` for the
    // first two and a double space for the third.
    let tp4 = " --distributed-executor-backend ray";
    let cases: [(&[&str], &[&str], String); 5] = [
        (
            &SH_C,
            &[
                "python3",
                "-m",
                "dynamo.vllm",
                "--tensor-parallel-size",
                "4",
            ],
            format!("python3 -m dynamo.vllm --tensor-parallel-size 4{tp4}"),
        ),
        (
            &SH_C,
            &["python3 -m dynamo.vllm --tensor-parallel-size 4"],
            format!("python3 -m dynamo.vllm --tensor-parallel-size 4{tp4}"),
        ),
        (
            &[],
            &[
                "python3",
                "-m",
                "dynamo.vllm",
                "--tensor-parallel-size",
                "4",
            ],
            format!("python3 -m dynamo.vllm --tensor-parallel-size 4{tp4}"),
        ),
        (
            &["python3", "-m", "dynamo.vllm"],
            &[
                "--tensor-parallel-size",
                "4",
                "--override",
                r#"{"a": "b c"}"#,
            ],
            format!(
                r#"python3 -m dynamo.vllm --tensor-parallel-size 4 --override '{{"a": "b c"}}'{tp4}"#
            ),
        ),
        // Difference 4: the user's own executor backend is kept.
        (
            &["python3", "-m", "dynamo.vllm"],
            &[
                "--tensor-parallel-size",
                "4",
                "--distributed-executor-backend=ray",
            ],
            "python3 -m dynamo.vllm --tensor-parallel-size 4 --distributed-executor-backend=ray"
                .to_owned(),
        ),
    ];
    for (command, args, command_line) in cases {
        let c = rewritten(command, args, Some("2"), 2, Role::Leader, GROVE);
        assert_eq!(
            command_and_args(&c),
            (
                strings(&SH_C),
                vec![format!("ray start --head --port=6379 && {command_line}")]
            ),
            "{command:?} {args:?}"
        );
    }
}

#[test]
fn data_parallel_flags_the_user_passes_are_kept() {
    // Difference 4: upstream only skips `--data-parallel-size`.
    let c = rewritten(
        &["python3", "-m", "dynamo.vllm"],
        &[
            "--data-parallel-size=16",
            "--data-parallel-address",
            "x",
            "--data-parallel-rpc-port=1",
        ],
        Some("8"),
        2,
        Role::Leader,
        GROVE,
    );
    assert_eq!(
        c.args.unwrap(),
        strings(&[
            "--data-parallel-size=16",
            "--data-parallel-address",
            "x",
            "--data-parallel-rpc-port=1",
            "--data-parallel-hybrid-lb",
            "--data-parallel-size-local",
            "8",
            "--data-parallel-start-rank",
            "0",
        ])
    );
    // A worker with its own start rank needs no shell.
    let c = rewritten(
        &["python3", "-m", "dynamo.vllm"],
        &[
            "--data-parallel-size",
            "16",
            "--data-parallel-start-rank",
            "8",
        ],
        Some("8"),
        2,
        Role::Worker,
        GROVE,
    );
    assert_eq!(c.command.unwrap(), ["python3", "-m", "dynamo.vllm"]);
    assert_eq!(
        c.args.unwrap(),
        strings(&[
            "--data-parallel-size",
            "16",
            "--data-parallel-start-rank",
            "8",
            "--data-parallel-hybrid-lb",
            "--data-parallel-size-local",
            "8",
            "--data-parallel-address",
            GL,
            "--data-parallel-rpc-port",
            "13445",
        ])
    );
}

#[test]
fn the_launch_follows_the_gpus_of_one_node() {
    // (args, limits.gpu, nodes, launch)
    let cases: [(&[&str], i64, i32, Launch); 9] = [
        (&["--tensor-parallel-size", "8"], 0, 2, Launch::Unchanged),
        (&["--tensor-parallel-size", "8"], 4, 2, Launch::Ray),
        (
            &[
                "--tensor-parallel-size",
                "4",
                "--pipeline-parallel-size",
                "2",
            ],
            4,
            2,
            Launch::Ray,
        ),
        (&["--tensor-parallel-size", "4"], 4, 2, Launch::Unchanged),
        (
            &["--tensor-parallel-size", "2", "--data-parallel-size", "8"],
            8,
            2,
            Launch::DataParallel { local: 4, size: 8 },
        ),
        (&["--data-parallel-size", "4"], 8, 2, Launch::Unchanged),
        // `--flag=value` is read too (difference 4).
        (&["--tensor-parallel-size=16"], 8, 2, Launch::Ray),
        (
            &["--data-parallel-size=16"],
            8,
            2,
            Launch::DataParallel { local: 8, size: 16 },
        ),
        (&[], 1, 2, Launch::Unchanged),
    ];
    for (args, gpus, nodes, launch) in cases {
        assert_eq!(launch_mode(args, gpus, nodes), launch, "{args:?} {gpus}");
    }
}

#[test]
fn flag_values_as_upstream_reads_them() {
    let flag = "--tensor-parallel-size";
    let cases: [(&[&str], i64); 7] = [
        (&[], 1),
        (&["--tensor-parallel-size", "4"], 4),
        (&["--tensor-parallel-size=4"], 4),
        // A value that does not parse: the search goes on.
        (
            &["--tensor-parallel-size", "x", "--tensor-parallel-size", "2"],
            2,
        ),
        (&["--tensor-parallel-size"], 1),
        (&["--tensor-parallel-size-x", "4"], 1),
        (&["-tp", "4"], 1),
    ];
    for (words, value) in cases {
        assert_eq!(flag_value(words, flag), value, "{words:?}");
    }
}

#[test]
fn only_the_gpu_limit_counts() {
    let cases = [
        (gpus(Some("8"), None), 8),
        (gpus(None, Some("8")), 0),
        (gpus(Some("2"), Some("8")), 2),
        (gpus(Some("x"), None), 0),
        (gpus(Some(""), None), 0),
    ];
    for (resources, count) in cases {
        assert_eq!(limits_gpus(Some(&resources)), count, "{resources:?}");
    }
    assert_eq!(limits_gpus(None), 0);
}

#[test]
fn workers_lose_their_probes_even_when_unchanged() {
    let c = rewritten(
        &["python3", "-m", "dynamo.vllm"],
        &[],
        Some("8"),
        2,
        Role::Worker,
        GROVE,
    );
    assert_eq!(
        c.command.as_deref().unwrap(),
        ["python3", "-m", "dynamo.vllm"]
    );
    assert!(c.args.is_none());
    assert!(has_no_probes(&c));
}
