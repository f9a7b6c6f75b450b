use super::*;
use crate::desired::config::{SecretRef, ServedApis};
use crate::desired::pod::component_pod_template;
use crate::desired::testing::single;
use crate::kinds::LeaderWorkerSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

fn lws_config() -> OperatorConfig {
    OperatorConfig {
        served: ServedApis {
            leader_worker_set: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A multinode vLLM worker `g-svc`: `nodes` per group, `replicas` groups, TP 16 on 8 GPUs
/// (so its leader runs Ray's head and vLLM, its workers join Ray).
fn vllm(nodes: i32, replicas: i32) -> DynamoComponentDeployment {
    single(
        Some("vllm"),
        &format!(
            "{{componentType: worker, replicas: {replicas}, multinode: {{nodeCount: {nodes}}},
              resources: {{limits: {{gpu: '8'}}}},
              extraPodSpec: {{mainContainer: {{image: 'vllm:1', command: [python3, -m, dynamo.vllm],
                args: [--model, m, --tensor-parallel-size, '16']}}}}}}"
        ),
        &lws_config(),
    )
}

fn templates(dcd: &DynamoComponentDeployment) -> (PodTemplateSpec, PodTemplateSpec) {
    let config = lws_config();
    let base = component_pod_template(dcd, &config).unwrap();
    role_templates(dcd, &base, &config).unwrap()
}

fn main_args(template: &PodTemplateSpec) -> Vec<String> {
    let pod = template.spec.as_ref().unwrap();
    let main = pod.containers.iter().find(|c| c.name == "main").unwrap();
    main.args.clone().unwrap_or_default()
}

#[test]
fn each_role_gets_its_launch_and_label() {
    let dcd = vllm(2, 1);
    let (leader, worker) = templates(&dcd);
    let role =
        |t: &PodTemplateSpec| t.metadata.as_ref().unwrap().labels.as_ref().unwrap()["role"].clone();
    assert_eq!(
        (role(&leader), role(&worker)),
        ("leader".into(), "worker".into())
    );
    assert_eq!(
        main_args(&leader),
        [
            "ray start --head --port=6379 && python3 -m dynamo.vllm --model m --tensor-parallel-size 16 --distributed-executor-backend ray"
        ]
    );
    assert_eq!(
        main_args(&worker),
        ["ray start --address=$(LWS_LEADER_ADDRESS):6379 --block"]
    );
    // Both keep the component's selector label (its Service picks the leaders among them).
    for template in [&leader, &worker] {
        let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels["nvidia.com/selector"], "g-svc");
    }
}

#[test]
fn a_multinode_service_without_a_known_backend_fails_by_name() {
    let dcd = single(
        None,
        "{componentType: worker, multinode: {nodeCount: 2}, extraPodSpec: {mainContainer: {image: x, command: [./serve]}}}",
        &lws_config(),
    );
    let config = lws_config();
    let base = component_pod_template(&dcd, &config).unwrap();
    let err = role_templates(&dcd, &base, &config).unwrap_err();
    assert_eq!(err.reason(), "MultinodeBackendUnknown");
    assert_eq!(
        err.to_string(),
        "service Svc has multinode.nodeCount 2, but its backend is unknown: run python3 -m dynamo.vllm, dynamo.sglang or dynamo.trtllm in a worker, or set spec.backendFramework"
    );
}

#[test]
fn one_group_per_replica_with_the_fields_lws_would_default_written_out() {
    let dcd = vllm(3, 2);
    let (leader, worker) = templates(&dcd);
    let sets = leader_worker_sets(&dcd, &leader, &worker, false);
    let names: Vec<String> = sets.iter().map(|s| s.name_any()).collect();
    assert_eq!(names, ["g-svc-0", "g-svc-1"]);
    for (index, set) in sets.iter().enumerate() {
        let labels = set.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["instance-id"], index.to_string());
        assert_eq!(labels["nvidia.com/dynamo-graph-deployment-name"], "g");
        let owner = &set.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("DynamoComponentDeployment", Some(true))
        );
        let spec = serde_json::to_value(&set.spec).unwrap();
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["startupPolicy"], "LeaderCreated");
        assert_eq!(
            spec["rolloutStrategy"],
            serde_json::json!({"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(spec["networkConfig"]["subdomainPolicy"], "Shared");
        assert_eq!(spec["leaderWorkerTemplate"]["size"], 3);
        assert_eq!(
            spec["leaderWorkerTemplate"]["restartPolicy"],
            "RecreateGroupOnPodRestart"
        );
        for role in ["leaderTemplate", "workerTemplate"] {
            let template = &spec["leaderWorkerTemplate"][role];
            assert_eq!(
                template["metadata"]["labels"]["instance-id"],
                index.to_string(),
                "{role}"
            );
            // No Volcano: no gang annotation, the default scheduler.
            assert!(
                template["metadata"]["annotations"]
                    .get("scheduling.k8s.io/group-name")
                    .is_none(),
                "{role}"
            );
            assert!(template["spec"].get("schedulerName").is_none(), "{role}");
        }
    }
    assert!(leader_worker_sets(&vllm(2, 0), &leader, &worker, false).is_empty());
}

#[test]
fn under_volcano_each_group_is_a_gang() {
    let dcd = vllm(4, 1);
    let (leader, worker) = templates(&dcd);
    let set = &leader_worker_sets(&dcd, &leader, &worker, true)[0];
    let spec = serde_json::to_value(&set.spec).unwrap();
    for role in ["leaderTemplate", "workerTemplate"] {
        let template = &spec["leaderWorkerTemplate"][role];
        assert_eq!(
            template["metadata"]["annotations"]["scheduling.k8s.io/group-name"],
            "g-svc-0"
        );
        assert_eq!(template["spec"]["schedulerName"], "volcano");
    }
    let gang = pod_group(&dcd, 0);
    assert_eq!(gang.name_any(), "g-svc-0");
    assert_eq!(gang.spec.min_member, Some(4));
    assert_eq!(gang.metadata.labels.as_ref().unwrap()["instance-id"], "0");
    // A scheduler the user chose stays.
    let mut own = leader.clone();
    own.spec.as_mut().unwrap().scheduler_name = Some("kai-scheduler".into());
    let set = &leader_worker_sets(&dcd, &own, &worker, true)[0];
    let template = set
        .spec
        .leader_worker_template
        .leader_template
        .as_ref()
        .unwrap();
    assert_eq!(
        template.spec.as_ref().unwrap().scheduler_name.as_deref(),
        Some("kai-scheduler")
    );
}

#[test]
fn group_names_parse_only_as_written() {
    for (name, expected) in [
        ("g-svc-0", Some(0)),
        ("g-svc-12", Some(12)),
        ("g-svc-01", None),
        ("g-svc-+1", None),
        ("g-svc--1", None),
        ("g-svc-x", None),
        ("g-svc", None),
        ("g-svcx-1", None),
        ("g-svc-prefill-0", None),
    ] {
        assert_eq!(group_index("g-svc", name), expected, "{name}");
    }
    // A service key with a dot (a valid component name) makes a DNS-1035 group name.
    assert_eq!(group_name("g-qwen3-0.6b", 1), "g-qwen3-0-6b-1");
    assert_eq!(group_index("g-qwen3-0.6b", "g-qwen3-0-6b-1"), Some(1));
}

#[test]
fn groups_past_the_replicas_or_of_another_size_are_stale() {
    let dcd = vllm(2, 2);
    let (leader, worker) = templates(&dcd);
    let live = |dcd: &DynamoComponentDeployment, index: i32| {
        leader_worker_sets(
            &vllm(dcd.spec.shared.node_count(), index + 1),
            &leader,
            &worker,
            false,
        )
        .pop()
        .unwrap()
    };
    assert!(!is_stale(&dcd, &live(&dcd, 0)));
    assert!(!is_stale(&dcd, &live(&dcd, 1)));
    assert!(is_stale(&dcd, &live(&dcd, 2)));
    // nodeCount 2 → 3: every group is made anew.
    assert!(is_stale(&vllm(3, 2), &live(&dcd, 0)));
    // Not one of its groups.
    let mut other = live(&dcd, 0);
    other.metadata.name = Some("g-svc-extra".into());
    assert!(!is_stale(&dcd, &other));
}

fn with_status(ready: i32, updated: i32, available: Option<&str>) -> LeaderWorkerSet {
    let dcd = vllm(2, 1);
    let (leader, worker) = templates(&dcd);
    let mut set = leader_worker_sets(&dcd, &leader, &worker, false)
        .pop()
        .unwrap();
    set.status = Some(LeaderWorkerSetStatus {
        replicas: Some(1),
        ready_replicas: (ready > 0).then_some(ready),
        updated_replicas: (updated > 0).then_some(updated),
        conditions: available.map(|status| {
            vec![Condition {
                type_: "Available".into(),
                status: status.into(),
                reason: "AllGroupsReady".into(),
                message: String::new(),
                last_transition_time: Time(Default::default()),
                observed_generation: None,
            }]
        }),
    });
    set
}

#[test]
fn a_group_is_ready_when_ready_updated_and_available() {
    for (ready, updated, available, expected) in [
        (1, 1, Some("True"), true),
        (0, 1, Some("True"), false),
        (1, 0, Some("True"), false),
        (1, 1, Some("False"), false),
        (1, 1, None, false),
    ] {
        let set = with_status(ready, updated, available);
        assert_eq!(
            is_group_ready(&set),
            expected,
            "{ready} {updated} {available:?}"
        );
    }
    let mut fresh = with_status(0, 0, None);
    fresh.status = None;
    assert!(!is_group_ready(&fresh));
    fresh.spec.replicas = Some(0);
    assert!(is_group_ready(&fresh));
}

#[test]
fn the_groups_status_sums_and_names_the_first_that_waits() {
    let mut second = with_status(0, 1, Some("False"));
    second.metadata.name = Some("g-svc-1".into());
    let groups = [with_status(1, 1, Some("True")), second];
    let status = groups_replica_status(&groups).unwrap();
    assert_eq!(status.component_kind, Some(ComponentKind::LeaderWorkerSet));
    assert_eq!(status.component_name.as_deref(), Some("g-svc-0"));
    assert_eq!(
        status.component_names,
        Some(vec!["g-svc-0".into(), "g-svc-1".into()])
    );
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas
        ),
        (2, 2, Some(1))
    );
    assert_eq!(
        groups_not_ready(&groups).as_deref(),
        Some("LeaderWorkerSet g-svc-1 is not ready (0 of 1 groups ready, 1 updated)")
    );
    assert_eq!(groups_not_ready(&groups[..1]), None);
    assert_eq!(groups_replica_status(&[]), None);
}

#[test]
fn mpirun_runs_in_trtllm_multinode_components_only() {
    let config = lws_config();
    let case = |backend: Option<&str>, yaml: &str| runs_mpi(&single(backend, yaml, &config));
    assert!(case(
        Some("trtllm"),
        "{componentType: worker, multinode: {nodeCount: 2}}"
    ));
    assert!(case(
        None,
        "{componentType: worker, multinode: {nodeCount: 2}, extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.trtllm]}}}"
    ));
    assert!(!case(Some("trtllm"), "{componentType: worker}"));
    assert!(!case(
        Some("vllm"),
        "{componentType: worker, multinode: {nodeCount: 2}}"
    ));
    assert!(!case(
        Some("trtllm"),
        "{componentType: frontend, multinode: {nodeCount: 2}}"
    ));
    // The configured Secret's name is what the pods mount.
    let named = OperatorConfig {
        mpi_ssh_secret: Some(SecretRef {
            namespace: "dynamo-system".into(),
            name: "my-ssh".into(),
        }),
        ..lws_config()
    };
    let dcd = single(
        Some("trtllm"),
        "{componentType: worker, multinode: {nodeCount: 2}, resources: {limits: {gpu: '4'}}, extraPodSpec: {mainContainer: {image: t}}}",
        &named,
    );
    let base = component_pod_template(&dcd, &named).unwrap();
    let (leader, _) = role_templates(&dcd, &base, &named).unwrap();
    let volumes = leader
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .clone()
        .unwrap_or_default();
    let secret = volumes
        .iter()
        .find(|v| v.secret.is_some())
        .expect("the SSH key volume");
    assert_eq!(
        secret.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("my-ssh")
    );
}

#[test]
fn a_changed_group_waits_until_its_controller_writes_again() {
    let changed = ChangedGroups::default();
    assert!(!changed.awaits_controller("ns/g-svc-0", "5"));
    changed.changed("ns/g-svc-0".into(), "7".into());
    // The write's own version (the cache, or the patch response): the old spec's status.
    assert!(changed.awaits_controller("ns/g-svc-0", "7"));
    assert!(changed.awaits_controller("ns/g-svc-0", "7"));
    assert!(!changed.awaits_controller("ns/g-svc-1", "7"));
    // LWS wrote its status for the new spec: from now on the status counts.
    assert!(!changed.awaits_controller("ns/g-svc-0", "8"));
    assert!(!changed.awaits_controller("ns/g-svc-0", "7"));
}
