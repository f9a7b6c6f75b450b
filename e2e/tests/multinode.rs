//! Upstream's multinode graphs (`e2e/fixtures/upstream-multinode/`) on the platform as a user
//! installs it: each multinode service runs as LeaderWorkerSets that the real LeaderWorkerSet
//! controller (started by `hack/cluster.sh`) turns into leader and worker pods, which kwok makes
//! Ready. Checked: every graph becomes Ready; the pods the LWS controller made carry the
//! backend's rewritten launch (SGLang's dist-init flags, vLLM's Ray head and workers, TRT-LLM's
//! mpirun and sshd); the component Service selects the leaders; a TRT-LLM graph's namespace gets
//! the MPI SSH Secret; scaling adds and removes whole groups; deleting the graph removes them.

use std::fmt::Write as _;
use std::time::Duration;

use dynamo_e2e::graphs::{Outcome, documents, wait_ready};
use dynamo_e2e::platform::SharedPlatform;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::core::v1::{Container, Pod, Secret, Service};
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// How long a multinode graph may take to become Ready (two controllers, then kwok).
const READY_WITHIN: Duration = Duration::from_secs(180);

fn lws_api(namespace: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet");
    Api::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&gvk),
    )
}

fn fixture(name: &str) -> String {
    let path = Cluster::get()
        .repo
        .join(format!("e2e/fixtures/upstream-multinode/{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Graph names and multinode service keys of a fixture.
fn multinode_services(yaml: &str) -> (Vec<String>, Vec<(String, String, u64)>) {
    let documents = documents(yaml).unwrap();
    let graphs: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "DynamoGraphDeployment")
        .collect();
    let mut services = Vec::new();
    for graph in &graphs {
        let name = graph["metadata"]["name"].as_str().unwrap().to_owned();
        for (service, spec) in graph["spec"]["services"].as_object().unwrap() {
            if let Some(nodes) = spec["multinode"]["nodeCount"].as_u64() {
                services.push((name.clone(), service.clone(), nodes));
            }
        }
    }
    let names = graphs
        .iter()
        .map(|g| g["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    (names, services)
}

/// The main container's launch as one line: command, then args.
fn launch(container: &Container) -> String {
    container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The leader and worker pods of group `set` (made by the LWS controller).
async fn group_pods(namespace: &TestNamespace, set: &str) -> (Pod, Pod) {
    let pods: Api<Pod> = namespace.api();
    let list = pods
        .list(&ListParams::default().labels(&format!("leaderworkerset.sigs.k8s.io/name={set}")))
        .await
        .unwrap()
        .items;
    let role = |role: &str| {
        list.iter()
            .find(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .unwrap()
                    .get("role")
                    .map(String::as_str)
                    == Some(role)
            })
            .unwrap_or_else(|| panic!("group {set} has no {role} pod"))
            .clone()
    };
    (role("leader"), role("worker"))
}

fn main_container(pod: &Pod) -> &Container {
    pod.spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .find(|c| c.name == "main")
        .expect("a main container")
}

/// What each backend's leader and worker launches must contain (kubelet expands `$(VAR)`).
fn expected_launch(fixture: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    if fixture.starts_with("sglang") {
        (
            vec!["--dist-init-addr $(LWS_LEADER_ADDRESS):29500 --nnodes 2 --node-rank 0"],
            vec![
                "--dist-init-addr $(LWS_LEADER_ADDRESS):29500 --nnodes 2 --node-rank $(LWS_WORKER_INDEX)",
            ],
        )
    } else if fixture.starts_with("vllm-dsr1") {
        // Data parallelism over the nodes (DP 16 on 8-GPU nodes); the recipe's own
        // `--data-parallel-hybrid-lb` and `--data-parallel-size` are not added again.
        (
            vec![
                "--data-parallel-size-local 8 --data-parallel-start-rank 0 --data-parallel-address $(LWS_LEADER_ADDRESS) --data-parallel-rpc-port 13445",
            ],
            vec!["--data-parallel-start-rank $(( 8 * $LWS_WORKER_INDEX ))"],
        )
    } else if fixture.starts_with("vllm") {
        (
            vec![
                "/bin/sh -c ray start --head --port=6379 && python3 -m dynamo.vllm",
                "--distributed-executor-backend ray",
            ],
            vec!["/bin/sh -c ray start --address=$(LWS_LEADER_ADDRESS):6379 --block"],
        )
    } else {
        (
            vec![
                "cp /ssh-pk/private.key ~/.ssh/id_rsa",
                "mpirun --allow-run-as-root --oversubscribe -n 8 -H $(LWS_LEADER_ADDRESS),$(echo \"$LWS_LEADER_ADDRESS\" | sed 's/\\./-1\\./')",
                "bash -c 'trtllm-llmapi-launch python3 -m dynamo.trtllm",
            ],
            vec!["/usr/sbin/sshd -D -f ~/.ssh/sshd_config"],
        )
    }
}

#[tokio::test]
async fn upstream_multinode_graphs_run_as_leader_worker_sets() {
    let platform = SharedPlatform::join().await;
    let mut report = String::from("upstream multinode graphs:\n");
    let mut failures = Vec::new();
    for name in [
        "sglang-disagg-multinode",
        "vllm-disagg-multinode",
        "trtllm-disagg-multinode",
        "sglang-dsr1-16gpu-multinode",
        "sglang-wideep-tep16p-dep16d",
        "vllm-dsr1-hopper-16gpu",
    ] {
        let yaml = fixture(name);
        let (graphs, services) = multinode_services(&yaml);
        // One at a time: the recipes take every GPU of the local cluster.
        let namespace = TestNamespace::new("mn").await;
        assert_success(
            &format!("kubectl apply {name}"),
            &namespace.kubectl_apply(&yaml),
        );
        match wait_ready(&namespace, &graphs, READY_WITHIN).await {
            Outcome::Ready(after) => writeln!(report, "  {name}: Ready after {after:.1?}").unwrap(),
            Outcome::NotReady(why) | Outcome::Refused(why) => {
                writeln!(report, "  {name}: NOT READY\n{why}").unwrap();
                failures.push(name);
                continue;
            }
        }
        let (leader_wants, worker_wants) = expected_launch(name);
        for (graph, service, nodes) in &services {
            let component = format!("{graph}-{}", service.to_lowercase());
            let set_name = format!("{component}-0");
            let set = lws_api(&namespace).get(&set_name).await.unwrap();
            assert_eq!(
                set.data["spec"]["leaderWorkerTemplate"]["size"],
                json!(nodes),
                "{set_name}"
            );
            let (leader, worker) = group_pods(&namespace, &set_name).await;
            let (leader_main, worker_main) = (main_container(&leader), main_container(&worker));
            // The LWS controller's webhook gave the pods the group's address: the real
            // controller made them.
            for main in [leader_main, worker_main] {
                assert!(
                    main.env
                        .iter()
                        .flatten()
                        .any(|e| e.name == "LWS_LEADER_ADDRESS"),
                    "{set_name}: no LWS_LEADER_ADDRESS"
                );
            }
            let (leader_line, worker_line) = (launch(leader_main), launch(worker_main));
            writeln!(report, "    {component} leader: {leader_line}").unwrap();
            writeln!(report, "    {component} worker: {worker_line}").unwrap();
            for want in &leader_wants {
                if !leader_line.contains(want) {
                    failures.push(name);
                    writeln!(report, "      leader lacks: {want}").unwrap();
                }
            }
            for want in &worker_wants {
                if !worker_line.contains(want) {
                    failures.push(name);
                    writeln!(report, "      worker lacks: {want}").unwrap();
                }
            }
            // A flag the recipe passes itself is not added again.
            for flag in ["--data-parallel-hybrid-lb", "--dist-init-addr"] {
                for (role, line) in [("leader", &leader_line), ("worker", &worker_line)] {
                    if line.matches(flag).count() > 1 {
                        failures.push(name);
                        writeln!(report, "      {role} has {flag} twice").unwrap();
                    }
                }
            }
            // Only leaders serve: the component Service selects them.
            let services: Api<Service> = namespace.api();
            let selector = services
                .get(&component)
                .await
                .unwrap()
                .spec
                .unwrap()
                .selector
                .unwrap();
            assert_eq!(
                selector.get("role").map(String::as_str),
                Some("leader"),
                "{component}"
            );
        }
        if name.starts_with("trtllm") {
            // The chart's key pair, copied into the graph's namespace.
            let copy: Api<Secret> = namespace.api();
            let copy = copy.get("mpi-run-ssh-secret").await.unwrap();
            let source: Api<Secret> =
                Api::namespaced(namespace.client.clone(), &platform.namespace);
            let source = source.get("mpi-run-ssh-secret").await.unwrap();
            assert_eq!(copy.data, source.data, "the copied MPI SSH Secret");
        }
    }
    eprintln!("{report}");
    assert!(failures.is_empty(), "{failures:?}\n{report}");
    // After the others (one test, so the recipes find every GPU free).
    scaling_adds_and_removes_whole_groups().await;
}

/// Scaling a multinode service adds and removes whole groups; deleting the graph removes all.
async fn scaling_adds_and_removes_whole_groups() {
    let yaml = fixture("vllm-disagg-multinode");
    let namespace = TestNamespace::new("mn-scale").await;
    assert_success("kubectl apply", &namespace.kubectl_apply(&yaml));
    let graphs = vec!["vllm-disagg".to_owned()];
    let ready = wait_ready(&namespace, &graphs, READY_WITHIN).await;
    assert!(matches!(ready, Outcome::Ready(_)), "{ready:?}");

    let graph_api = dynamo_e2e::graphs::graph_api(&namespace);
    let scale = |replicas: i64| {
        let api = graph_api.clone();
        async move {
            api.patch(
                "vllm-disagg",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"services": {"decode": {"replicas": replicas}}}})),
            )
            .await
            .unwrap();
        }
    };
    let sets = lws_api(&namespace);
    let names = |sets: Api<DynamicObject>| async move {
        let mut names: Vec<String> = sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(sets.clone()).await,
        ["vllm-disagg-decode-0", "vllm-disagg-prefill-0"]
    );

    scale(2).await;
    wait_until("a second decode group", Duration::from_secs(60), || {
        let sets = sets.clone();
        async move {
            names(sets)
                .await
                .contains(&"vllm-disagg-decode-1".to_owned())
                .then_some(())
        }
    })
    .await;
    let ready = wait_ready(&namespace, &graphs, READY_WITHIN).await;
    assert!(
        matches!(ready, Outcome::Ready(_)),
        "after scaling to 2: {ready:?}"
    );
    let (leader, worker) = group_pods(&namespace, "vllm-disagg-decode-1").await;
    assert_eq!(leader.metadata.labels.as_ref().unwrap()["instance-id"], "1");
    assert_eq!(worker.metadata.labels.as_ref().unwrap()["instance-id"], "1");

    scale(1).await;
    wait_until(
        "the second decode group gone",
        Duration::from_secs(60),
        || {
            let sets = sets.clone();
            async move {
                (!names(sets)
                    .await
                    .contains(&"vllm-disagg-decode-1".to_owned()))
                .then_some(())
            }
        },
    )
    .await;

    // A spec change rolls the groups: the graph is Ready again only once every pod of the
    // changed service runs the new spec (LWS reports no observedGeneration, so its status
    // right after the change is the old spec's).
    graph_api
        .patch(
            "vllm-disagg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"decode": {"envs": [{"name": "ROLLOUT_MARK", "value": "2"}]}}}})),
        )
        .await
        .unwrap();
    let ready = wait_ready(&namespace, &graphs, READY_WITHIN).await;
    assert!(
        matches!(ready, Outcome::Ready(_)),
        "after the change: {ready:?}"
    );
    let (leader, worker) = group_pods(&namespace, "vllm-disagg-decode-0").await;
    for pod in [&leader, &worker] {
        let marked = main_container(pod)
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "ROLLOUT_MARK" && e.value.as_deref() == Some("2"));
        assert!(
            marked,
            "graph Ready while pod {:?} runs the old spec",
            pod.metadata.name
        );
    }

    graph_api
        .delete("vllm-disagg", &Default::default())
        .await
        .unwrap();
    wait_until(
        "every group gone with the graph",
        Duration::from_secs(90),
        || {
            let sets = sets.clone();
            async move { names(sets).await.is_empty().then_some(()) }
        },
    )
    .await;
}

#[test]
fn every_fixture_names_its_upstream_source_and_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream-multinode");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let yaml = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            yaml.starts_with("# Upstream: ai-dynamo/dynamo "),
            "{name}: no upstream header"
        );
        assert!(
            readme.contains(&format!("`{name}.yaml`")),
            "{name}: not in README.md"
        );
        let (graphs, services) = multinode_services(&yaml);
        assert!(
            !graphs.is_empty() && !services.is_empty(),
            "{name}: no multinode service"
        );
        seen += 1;
    }
    assert!(seen >= 3, "only {seen} fixtures");
}
