//! The Grove pathway against Grove's real CRDs ([`dynamo_e2e::grove`]): each test installs
//! them, starts its own namespace-restricted operator (the only operator that detects Grove:
//! detection happens at start), applies one of upstream's multinode disaggregated examples
//! (vLLM, SGLang, TRT-LLM) and plays Grove's part (no Grove operator runs): it makes the
//! PodCliques and PodCliqueScalingGroups Grove would make of the PodCliqueSet, with the names,
//! labels, owners and status Grove gives them. Checked for each: the operator's PodCliqueSet is
//! accepted by the real CRDs, its leader and worker cliques carry the backend's launch rewritten
//! for Grove (SGLang's dist-init flags, vLLM's Ray head and agents, TRT-LLM's mpirun over SSH
//! and sshd, the leader clique starting after its workers), and the graph waits for Grove's
//! objects and then becomes Ready. For vLLM also: the converged graph writes nothing, its
//! Services are its own, and a replicas change reaches the scaling group through its scale
//! subresource. The CRDs are deleted again after the last test (unless the cluster was started
//! with them, `DYNAMO_E2E_GROVE=1`), so later test binaries do not see Grove.

use std::time::Duration;

use dynamo_e2e::graphs::{Outcome, documents, graph_api, wait_ready};
use dynamo_e2e::grove::{
    GroveCrds, clique, grove_api, launch, main_container, multinode_fixture, names, play_grove,
    set_status, wait_graph_message, wait_pod_clique_set,
};
use dynamo_e2e::operator::{Operator, start_operator};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Api;
use kube::api::{DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const READY_WITHIN: Duration = Duration::from_secs(90);
/// The Secret with mpirun's SSH key pair (as the chart names it).
const MPI_SECRET: &str = "mpi-run-ssh-secret";
/// The multinode services of every fixture here.
const MULTINODE_SERVICES: [&str; 2] = ["decode", "prefill"];

/// One of upstream's multinode examples and what its multinode cliques must launch.
struct Case {
    fixture: &'static str,
    graph: &'static str,
    /// Texts the leader's and the worker's main launch contain, for service `service`.
    leader: fn(&str) -> Vec<String>,
    worker: fn(&str) -> Vec<String>,
}

/// How a node of service `service`'s group names the pod `<suffix>-<index>` of its own group:
/// from the variables Grove injects, its pod's name in the headless Service.
fn grove_host(service: &str, suffix: &str, index: u32) -> String {
    format!(
        "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-{service}-{suffix}-{index}.$(GROVE_HEADLESS_SERVICE)"
    )
}

const VLLM: Case = Case {
    fixture: "vllm-disagg-multinode",
    graph: "vllm-disagg",
    // One node has fewer GPUs than TP: a Ray cluster.
    leader: |_| {
        vec![
            "/bin/sh -c ray start --head --port=6379 && python3 -m dynamo.vllm".to_owned(),
            "--distributed-executor-backend ray".to_owned(),
        ]
    },
    worker: |service| {
        vec![format!(
            "/bin/sh -c ray start --address={}:6379 --block",
            grove_host(service, "ldr", 0)
        )]
    },
};

const SGLANG: Case = Case {
    fixture: "sglang-disagg-multinode",
    graph: "sglang-disagg-multinode",
    leader: |service| {
        vec![
            format!(
                "python3 -m dynamo.sglang --model-path Qwen/Qwen3-0.6B --served-model-name Qwen/Qwen3-0.6B --tp-size 8 --trust-remote-code --skip-tokenizer-init --disaggregation-mode {service} "
            ),
            format!(
                " --dist-init-addr {}:29500 --nnodes 2 --node-rank 0",
                grove_host(service, "ldr", 0)
            ),
        ]
    },
    // The worker's rank is shell arithmetic on the clique's pod index.
    worker: |service| {
        vec![
            "sh -c exec python3 -m dynamo.sglang --model-path Qwen/Qwen3-0.6B ".to_owned(),
            format!(
                " --dist-init-addr {}:29500 --nnodes 2 --node-rank $((GROVE_PCLQ_POD_INDEX + 1))",
                grove_host(service, "ldr", 0)
            ),
        ]
    },
};

const TRTLLM: Case = Case {
    fixture: "trtllm-disagg-multinode",
    graph: "trtllm-disagg-tp8",
    leader: |service| {
        vec![
            "/bin/sh -c mkdir -p ~/.ssh && ls -la /ssh-pk/ && cp /ssh-pk/private.key ~/.ssh/id_rsa"
                .to_owned(),
            // 2 nodes × 4 GPUs, no DNS wait (Grove starts the leader after the workers).
            format!(
                "&& mpirun --allow-run-as-root --oversubscribe -n 8 -H {},{} --mca pml ob1 ",
                grove_host(service, "ldr", 0),
                grove_host(service, "wkr", 0)
            ),
            format!(
                " bash -c 'trtllm-llmapi-launch python3 -m dynamo.trtllm --model-path Qwen/Qwen3-0.6B --served-model-name Qwen/Qwen3-0.6B --extra-engine-args /workspace/{service}.yaml --disaggregation-mode {service}'"
            ),
        ]
    },
    worker: |_| {
        vec![
            "/bin/sh -c mkdir -p ~/.ssh ~/.ssh/host_keys ~/.ssh/run && ".to_owned(),
            "&& /usr/sbin/sshd -D -f ~/.ssh/sshd_config".to_owned(),
        ]
    },
};

/// A graph running on Grove (the stand-in's objects ready), with what it runs in; dropped in
/// this order.
struct OnGrove {
    operator: Operator,
    namespace: TestNamespace,
    secrets: TestNamespace,
    _crds: GroveCrds,
}

/// The SSH key Secret of mpirun in `namespace` (dummy keys: nothing runs them).
async fn mpi_secret(namespace: &TestNamespace) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(MPI_SECRET.to_owned()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("private.key".to_owned(), "dummy private key".to_owned()),
                ("private.key.pub".to_owned(), "dummy public key".to_owned()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    namespace
        .api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Applies `case`'s fixture on Grove, checks the PodCliqueSet the real CRDs stored and the
/// graph's way to Ready while the stand-in plays Grove.
async fn runs_on_grove(case: &Case) -> OnGrove {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let crds = GroveCrds::install(cluster).await;
    // mpirun's key pair in a namespace of its own, as the chart keeps it in the operator's.
    let secrets = TestNamespace::new("grove-keys").await;
    mpi_secret(&secrets).await;
    let namespace = TestNamespace::new("grove").await;
    let secret_namespace = format!("--mpi-run-ssh-secret-namespace={}", secrets.name);
    let operator = start_operator(
        &namespace,
        &[
            "--grove-termination-delay=1h",
            "--mpi-run-ssh-secret-name",
            MPI_SECRET,
            &secret_namespace,
        ],
    );
    operator.ready().await;
    assert!(
        operator.log_text().contains("grove=true"),
        "the operator did not detect Grove:\n{}",
        operator.log_text()
    );

    let yaml = multinode_fixture(case.fixture);
    assert_eq!(
        documents(&yaml)
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "DynamoGraphDeployment")
            .count(),
        1
    );
    assert_success("kubectl apply", &namespace.kubectl_apply(&yaml));
    let graph = case.graph;

    // The PodCliqueSet, as the real CRD stored it.
    let set = wait_pod_clique_set(&namespace, graph).await;
    let template = &set.data["spec"]["template"];
    assert_eq!(
        names(&template["cliques"]),
        [
            "decode-ldr",
            "decode-wkr",
            "frontend",
            "prefill-ldr",
            "prefill-wkr"
        ],
        "{graph}"
    );
    assert_eq!(
        names(&template["podCliqueScalingGroups"]),
        ["decode", "prefill"],
        "{graph}"
    );
    assert_eq!(template["terminationDelay"], "1h0m0s");
    let owner = &set.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("DynamoGraphDeployment", graph)
    );
    check_launches(case, &set);
    // No components on this pathway.
    let components = Api::<DynamicObject>::namespaced_with(
        namespace.client.clone(),
        &namespace.name,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "nvidia.com",
            "v1alpha1",
            "DynamoComponentDeployment",
        )),
    );
    assert!(
        components
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Grove has made nothing yet: the graph waits, naming what it waits for.
    let within = Duration::from_secs(60);
    let missing = format!("pcsg/{graph}-0-decode: resource not found");
    wait_graph_message(&namespace, graph, "pending", &missing, within).await;

    // Grove's objects, not ready yet, then ready.
    play_grove(&namespace, &set, false).await;
    let unready = format!("podclique/{graph}-0-frontend: desired=1, ready=0");
    wait_graph_message(&namespace, graph, "pending", &unready, within).await;
    play_grove(&namespace, &set, true).await;
    match wait_ready(&namespace, &[graph.to_owned()], READY_WITHIN).await {
        Outcome::Ready(after) => eprintln!("{}: Ready after {after:.1?}", case.fixture),
        other => panic!("{other:?}\noperator log:\n{}", operator.log_text()),
    }
    OnGrove {
        operator,
        namespace,
        secrets,
        _crds: crds,
    }
}

/// The leader and worker cliques of each multinode service launch as `case` says; TRT-LLM's
/// leader starts after its workers and both mount the SSH key Secret.
fn check_launches(case: &Case, set: &DynamicObject) {
    let mut report = String::new();
    for service in MULTINODE_SERVICES {
        for (role, wants) in [
            ("ldr", (case.leader)(service)),
            ("wkr", (case.worker)(service)),
        ] {
            let line = launch(main_container(clique(set, &format!("{service}-{role}"))));
            eprintln!("{} {service}-{role}: {line}", case.graph);
            for want in wants {
                if !line.contains(&want) {
                    report.push_str(&format!("\n{service}-{role} lacks {want:?} in {line:?}"));
                }
            }
            if line.matches("--dist-init-addr").count() > 1 {
                report.push_str(&format!("\n{service}-{role} has --dist-init-addr twice"));
            }
        }
    }
    assert!(report.is_empty(), "{}:{report}", case.graph);

    let template = &set.data["spec"]["template"];
    let trtllm = case.fixture.starts_with("trtllm");
    let startup = if trtllm {
        "CliqueStartupTypeExplicit"
    } else {
        "CliqueStartupTypeAnyOrder"
    };
    assert_eq!(template["cliqueStartupType"], startup, "{}", case.graph);
    for service in MULTINODE_SERVICES {
        let leader = clique(set, &format!("{service}-ldr"));
        let worker = clique(set, &format!("{service}-wkr"));
        assert_eq!(leader["spec"]["replicas"], 1);
        assert_eq!(worker["spec"]["replicas"], 1, "nodeCount 2: one worker");
        let after = if trtllm {
            json!([format!("{service}-wkr")])
        } else {
            Value::Null
        };
        assert_eq!(leader["spec"]["startsAfter"], after, "{service}-ldr");
        for pod in [leader, worker] {
            let mounts_key = pod["spec"]["podSpec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["secret"]["secretName"] == MPI_SECRET);
            assert_eq!(mounts_key, trtllm, "{}: SSH key volume", pod["name"]);
        }
    }
}

#[tokio::test]
async fn a_multinode_vllm_graph_runs_on_grove() {
    let on_grove = runs_on_grove(&VLLM).await;
    let (operator, namespace) = (&on_grove.operator, &on_grove.namespace);
    let graph = VLLM.graph;

    // Converged: a change of Grove's objects wakes the graph, which then writes nothing (the
    // PodCliqueSet as stored holds everything the operator applies).
    operator.settle(Duration::from_secs(3)).await;
    let writes = operator.writes().await;
    let cliques = grove_api(namespace, "PodClique");
    cliques
        .patch_status(
            "vllm-disagg-0-frontend",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "currentPodTemplateHash": "touched" } })),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        operator.writes().await,
        writes,
        "writes after a converged graph's reconcile:\n{}",
        operator.log_text()
    );
    let live = graph_api(namespace).get(graph).await.unwrap();
    let services = &live.data["status"]["services"];
    assert_eq!(services["decode"]["componentKind"], "PodCliqueScalingGroup");
    assert_eq!(services["decode"]["componentName"], "vllm-disagg-0-decode");
    assert_eq!(services["Frontend"]["componentKind"], "PodClique");

    // Each service's Service belongs to the graph and selects its pods.
    let service_api: Api<Service> = namespace.api();
    for (name, selector) in [
        ("vllm-disagg-frontend", "vllm-disagg-frontend"),
        ("vllm-disagg-decode", "vllm-disagg-decode"),
    ] {
        let service = wait_until(name, Duration::from_secs(30), || async {
            service_api.get_opt(name).await.ok().flatten()
        })
        .await;
        let owner = &service.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "DynamoGraphDeployment", "{name}");
        assert_eq!(
            service.spec.unwrap().selector.unwrap()["nvidia.com/selector"],
            selector
        );
    }

    // Two decode groups: the scaling group is scaled through its scale subresource.
    let patch = json!({ "spec": { "services": { "decode": { "replicas": 2 } } } });
    graph_api(namespace)
        .patch(graph, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let groups = grove_api(namespace, "PodCliqueScalingGroup");
    wait_until(
        "decode scaling group at 2",
        Duration::from_secs(60),
        || async {
            let group = groups.get("vllm-disagg-0-decode").await.ok()?;
            (group.data["spec"]["replicas"] == 2).then_some(())
        },
    )
    .await;
    wait_graph_message(
        namespace,
        graph,
        "pending",
        "pcsg/vllm-disagg-0-decode",
        Duration::from_secs(60),
    )
    .await;
    set_status(&groups, "vllm-disagg-0-decode", true).await;
    match wait_ready(namespace, &[graph.to_owned()], READY_WITHIN).await {
        Outcome::Ready(_) => {}
        other => panic!("{other:?}\noperator log:\n{}", operator.log_text()),
    }
    let set = grove_api(namespace, "PodCliqueSet")
        .get(graph)
        .await
        .unwrap();
    let decode = set.data["spec"]["template"]["podCliqueScalingGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "decode")
        .cloned()
        .unwrap();
    assert_eq!(decode["replicas"], 2, "the template follows too");
}

#[tokio::test]
async fn a_multinode_sglang_graph_runs_on_grove() {
    runs_on_grove(&SGLANG).await;
}

#[tokio::test]
async fn a_multinode_trtllm_graph_runs_on_grove() {
    let on_grove = runs_on_grove(&TRTLLM).await;
    // The key pair, copied into the graph's namespace for the cliques' volumes.
    let copy = on_grove.namespace.api::<Secret>().get(MPI_SECRET).await;
    let source = on_grove.secrets.api::<Secret>().get(MPI_SECRET).await;
    assert_eq!(
        copy.unwrap().data,
        source.unwrap().data,
        "the copied MPI SSH Secret"
    );
}
