//! The decisions the graph controller makes on the Grove pathway: readiness of every service,
//! the scale writes, the graph's status, restart progress, the Services and Ingresses it owns,
//! which graph a Grove object's change concerns, and the KAI queue message.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use super::*;
use crate::desired::graph::graph_components;
use crate::desired::status::{PENDING, READY, SUCCESSFUL};
use crate::desired::testing::graph;
use crate::kinds::{
    PodCliqueReplicas, PodCliqueScalingGroupReplicas, PodCliqueScalingGroupStatus,
    PodCliqueSetStatus, PodCliqueStatus,
};

/// Graph `g` with a frontend `Frontend` (2 replicas), a single-node worker `Decode` (replicas
/// unset) and a multinode vLLM worker `Prefill` (3 replicas of 2 nodes).
fn three_services() -> DynamoGraphDeployment {
    graph(
        "metadata: {name: g, generation: 4}
spec:
  backendFramework: vllm
  services:
    Frontend: {componentType: frontend, replicas: 2}
    Decode:
      componentType: worker
      extraPodSpec: {mainContainer: {image: 'vllm:1', command: [python3, -m, dynamo.vllm]}}
    Prefill:
      componentType: worker
      replicas: 3
      multinode: {nodeCount: 2}
      resources: {limits: {gpu: '8'}}
      extraPodSpec: {mainContainer: {image: 'vllm:1', command: [python3, -m, dynamo.vllm], args: [--tensor-parallel-size, '16']}}
",
    )
}

fn components(dgd: &DynamoGraphDeployment) -> Vec<DynamoComponentDeployment> {
    graph_components(dgd, &OperatorConfig::default()).unwrap()
}

fn live_clique(name: &str, desired: i32, ready: i32) -> PodClique {
    let mut clique = PodClique::new(name, PodCliqueReplicas { replicas: desired });
    clique.metadata.generation = Some(1);
    clique.status = Some(PodCliqueStatus {
        observed_generation: Some(1),
        replicas: desired,
        ready_replicas: ready,
        updated_replicas: desired,
        ..Default::default()
    });
    clique
}

fn live_group(name: &str, desired: i32, available: i32) -> PodCliqueScalingGroup {
    let mut group =
        PodCliqueScalingGroup::new(name, PodCliqueScalingGroupReplicas { replicas: desired });
    group.metadata.generation = Some(1);
    group.status = Some(PodCliqueScalingGroupStatus {
        observed_generation: Some(1),
        replicas: desired,
        available_replicas: available,
        updated_replicas: desired,
        ..Default::default()
    });
    group
}

/// Readiness of `three_services` over the given live objects.
fn readiness(
    cliques: &[PodClique],
    groups: &[PodCliqueScalingGroup],
) -> BTreeMap<String, ServiceReadiness> {
    let dgd = three_services();
    services_readiness(
        "g",
        &components(&dgd),
        |name| {
            cliques
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
        },
        |name| {
            groups
                .iter()
                .find(|g| g.metadata.name.as_deref() == Some(name))
        },
    )
}

#[test]
fn each_service_is_judged_by_the_object_grove_makes_of_it() {
    let cliques = [
        live_clique("g-0-frontend", 2, 2),
        live_clique("g-0-decode", 1, 0),
    ];
    let groups = [live_group("g-0-prefill", 3, 3)];
    let got = readiness(&cliques, &groups);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["Decode", "Frontend", "Prefill"]
    );
    assert!(got["Frontend"].ready);
    assert!(got["Prefill"].ready);
    assert_eq!(
        got["Prefill"].status.component_kind,
        Some(ComponentKind::PodCliqueScalingGroup)
    );
    assert_eq!(
        got["Decode"].reason.as_deref(),
        Some("podclique/g-0-decode: desired=1, ready=0")
    );
    // Nothing made yet: each names its kind and object.
    let got = readiness(&[], &[]);
    assert_eq!(
        got["Prefill"].reason.as_deref(),
        Some("pcsg/g-0-prefill: resource not found")
    );
    assert_eq!(
        got["Frontend"].status.component_kind,
        Some(ComponentKind::PodClique)
    );
}

#[test]
fn the_graph_status_says_which_grove_objects_are_not_ready() {
    let dgd = three_services();
    let ready = readiness(
        &[
            live_clique("g-0-frontend", 2, 2),
            live_clique("g-0-decode", 1, 1),
        ],
        &[live_group("g-0-prefill", 3, 3)],
    );
    let status = grove_graph_status(&dgd, &ready);
    assert_eq!(status.state.as_deref(), Some(SUCCESSFUL));
    let condition = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        (READY, "True")
    );
    assert_eq!(condition.reason, "all_resources_are_ready");
    assert_eq!(condition.message, "All resources are ready");
    assert_eq!(condition.observed_generation, Some(4));
    assert_eq!(status.services.as_ref().unwrap().len(), 3);
    assert_eq!(
        status.services.as_ref().unwrap()["Prefill"].available_replicas,
        Some(3)
    );

    let cases = [
        (
            vec![
                live_clique("g-0-frontend", 2, 1),
                live_clique("g-0-decode", 1, 1),
            ],
            vec![live_group("g-0-prefill", 3, 3)],
            "Resources not ready: g: podclique/g-0-frontend: desired=2, ready=1",
        ),
        (
            vec![
                live_clique("g-0-frontend", 2, 2),
                live_clique("g-0-decode", 1, 1),
            ],
            vec![live_group("g-0-prefill", 3, 2)],
            "Resources not ready: g: pcsg/g-0-prefill: desired=3, available=2",
        ),
        (
            // In service order: Decode, Frontend, Prefill.
            vec![live_clique("g-0-frontend", 2, 0)],
            vec![],
            "Resources not ready: g: podclique/g-0-decode: resource not found; podclique/g-0-frontend: desired=2, ready=0; pcsg/g-0-prefill: resource not found",
        ),
    ];
    for (cliques, groups, message) in cases {
        let status = grove_graph_status(&dgd, &readiness(&cliques, &groups));
        assert_eq!(status.state.as_deref(), Some(PENDING), "{message}");
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason, "some_resources_are_not_ready");
        assert_eq!(condition.message, message);
    }
}

#[test]
fn scaling_writes_only_what_differs_on_objects_grove_made() {
    let dgd = three_services();
    let components = components(&dgd);
    type Live = &'static [(GroveKind, &'static str, i32)];
    let step = |service: &str, kind, name: &str, from, replicas| ScaleStep {
        service: service.into(),
        kind,
        name: name.into(),
        from,
        replicas,
    };
    let cases: [(Live, Vec<ScaleStep>); 4] = [
        // Nothing made yet: nothing to scale.
        (&[], vec![]),
        // At the services' replicas already.
        (
            &[
                (GroveKind::PodClique, "g-0-frontend", 2),
                (GroveKind::ScalingGroup, "g-0-prefill", 3),
            ],
            vec![],
        ),
        (
            &[
                (GroveKind::PodClique, "g-0-frontend", 1),
                (GroveKind::ScalingGroup, "g-0-prefill", 5),
                // Decode has no replicas: never scaled.
                (GroveKind::PodClique, "g-0-decode", 4),
            ],
            vec![
                step("Frontend", GroveKind::PodClique, "g-0-frontend", 1, 2),
                step("Prefill", GroveKind::ScalingGroup, "g-0-prefill", 5, 3),
            ],
        ),
        // A multinode service is scaled through its scaling group, not a clique of that name.
        (&[(GroveKind::PodClique, "g-0-prefill", 1)], vec![]),
    ];
    for (live, expected) in cases {
        let got = scale_steps("g", &components, |kind, name| {
            live.iter()
                .find(|(k, n, _)| *k == kind && *n == name)
                .map(|(_, _, r)| *r)
        });
        assert_eq!(got, expected, "{live:?}");
    }
}

#[test]
fn a_service_scaled_now_is_not_ready() {
    let mut ready = readiness(
        &[
            live_clique("g-0-frontend", 1, 1),
            live_clique("g-0-decode", 1, 1),
        ],
        &[live_group("g-0-prefill", 3, 3)],
    );
    assert!(ready.values().all(|r| r.ready));
    let steps = [ScaleStep {
        service: "Frontend".into(),
        kind: GroveKind::PodClique,
        name: "g-0-frontend".into(),
        from: 1,
        replicas: 2,
    }];
    mark_scaling(&mut ready, &steps);
    assert!(!ready["Frontend"].ready);
    assert_eq!(
        ready["Frontend"].reason.as_deref(),
        Some("podclique/g-0-frontend: scaling: desired=2, was=1")
    );
    assert!(ready["Prefill"].ready);
    assert_eq!(
        grove_graph_status(&three_services(), &ready)
            .conditions
            .unwrap()[0]
            .message,
        "Resources not ready: g: podclique/g-0-frontend: scaling: desired=2, was=1"
    );
}

/// A live PodCliqueSet whose `Frontend` clique carries `restartAt: r1`, at `generation`,
/// processed by Grove up to `observed`.
fn live_set(generation: i64, observed: Option<i64>) -> PodCliqueSet {
    let dgd = three_services();
    let mut components = components(&dgd);
    for component in &mut components {
        if component.spec.shared.service_name.as_deref() == Some("Frontend") {
            component
                .spec
                .shared
                .annotations
                .get_or_insert_default()
                .insert(operator_annotation::RESTART_AT.into(), "r1".into());
        }
    }
    let mut set = pod_clique_set(
        &dgd,
        &components,
        &OperatorConfig::default(),
        &GroveSettings::default(),
    )
    .unwrap();
    set.metadata.generation = Some(generation);
    set.status = Some(PodCliqueSetStatus {
        observed_generation: observed,
        ..Default::default()
    });
    set
}

#[test]
fn a_restart_step_is_done_when_grove_processed_the_set_and_the_service_is_ready() {
    let all_ready = readiness(
        &[
            live_clique("g-0-frontend", 2, 2),
            live_clique("g-0-decode", 1, 1),
        ],
        &[live_group("g-0-prefill", 3, 3)],
    );
    let frontend_not_ready = readiness(
        &[
            live_clique("g-0-frontend", 2, 1),
            live_clique("g-0-decode", 1, 1),
        ],
        &[live_group("g-0-prefill", 3, 3)],
    );
    let cases = [
        // (live set, readiness, Frontend rolled out, Decode rolled out)
        (Some(live_set(2, Some(2))), &all_ready, true, true),
        (Some(live_set(2, Some(1))), &all_ready, false, false),
        (Some(live_set(2, None)), &all_ready, false, false),
        (Some(live_set(2, Some(2))), &frontend_not_ready, false, true),
        (None, &all_ready, false, false),
    ];
    for (live, ready, frontend, decode) in cases {
        let got = grove_rollouts(live.as_ref(), ready);
        let context = format!("{:?}", live.as_ref().map(|l| &l.status));
        assert_eq!(got["Frontend"].rolled_out, frontend, "{context}");
        assert_eq!(got["Decode"].rolled_out, decode, "{context}");
        assert!(got.values().all(|r| !r.stalled));
        let restart_at = live.as_ref().map(|_| "r1".to_owned());
        assert_eq!(got["Frontend"].restart_at, restart_at, "{context}");
        assert_eq!(got["Decode"].restart_at, None);
    }
}

#[test]
fn services_and_ingresses_are_the_graphs_and_select_every_pod_of_the_service() {
    let mut dgd = three_services();
    dgd.metadata.annotations = None;
    let config = OperatorConfig {
        ingress_controller_class_name: Some("nginx".into()),
        ..Default::default()
    };
    let owner = dgd.controller_owner_ref(&()).unwrap();
    let components = graph_components(&dgd, &config).unwrap();
    let exposure: BTreeMap<String, _> = components
        .iter()
        .map(|c| (service_of(c), grove_exposure(c, &owner, &config)))
        .collect();
    for (service, (svc, ingress)) in &exposure {
        let svc = svc.as_ref().expect("kubernetes discovery: every service");
        assert_eq!(
            svc.metadata.owner_references.as_deref(),
            Some(std::slice::from_ref(&owner)),
            "{service}"
        );
        let name = format!("g-{}", service.to_lowercase());
        assert_eq!(svc.metadata.name.as_deref(), Some(name.as_str()));
        assert_eq!(
            svc.spec.as_ref().unwrap().selector,
            Some(BTreeMap::from([(label::SELECTOR.to_owned(), name.clone())])),
            "{service}: no role label (Grove pods carry none)"
        );
        assert_eq!(
            svc.metadata.labels.as_ref().unwrap()[label::GRAPH_DEPLOYMENT_NAME],
            "g",
            "the graph's children are watched by this label"
        );
        match ingress {
            Some(ingress) => {
                assert_eq!(service, "Frontend");
                assert_eq!(
                    ingress.metadata.owner_references.as_deref(),
                    Some(std::slice::from_ref(&owner))
                );
            }
            None => assert_ne!(service, "Frontend"),
        }
    }
    // An Istio gateway gives the frontend a VirtualService of the graph's.
    let istio = OperatorConfig {
        istio_virtual_service_gateway: Some("istio-system/gw".into()),
        ..Default::default()
    };
    let components = graph_components(&dgd, &istio).unwrap();
    let routed: Vec<(String, Vec<OwnerReference>)> = components
        .iter()
        .filter_map(|c| {
            let object = grove_virtual_service(c, &owner, &istio)?;
            Some((object.metadata.name?, object.metadata.owner_references?))
        })
        .collect();
    assert_eq!(routed, [("g-frontend".to_owned(), vec![owner.clone()])]);
    assert!(
        components
            .iter()
            .all(|c| grove_virtual_service(c, &owner, &OperatorConfig::default()).is_none()),
        "no gateway, no VirtualService"
    );
    // Under etcd discovery only the frontend has a Service.
    let etcd = OperatorConfig {
        discovery_backend: crate::desired::config::DiscoveryBackend::Etcd,
        ..Default::default()
    };
    let with_service: Vec<String> = graph_components(&dgd, &etcd)
        .unwrap()
        .iter()
        .filter(|c| grove_exposure(c, &owner, &etcd).0.is_some())
        .map(service_of)
        .collect();
    assert_eq!(with_service, ["Frontend"]);
}

fn owner(kind: &str, api_version: &str, name: &str, uid: &str, controller: bool) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(controller),
        block_owner_deletion: None,
    }
}

#[test]
fn a_live_object_is_taken_over_only_from_the_graphs_old_component() {
    let graph = owner(
        "DynamoGraphDeployment",
        "nvidia.com/v1alpha1",
        "g",
        "uid-g",
        true,
    );
    let component = owner(
        "DynamoComponentDeployment",
        "nvidia.com/v1alpha1",
        "g-frontend",
        "uid-c",
        true,
    );
    let other = owner("Deployment", "apps/v1", "x", "uid-x", true);
    let not_controller = owner("Deployment", "apps/v1", "x", "uid-x", false);
    let cases = [
        (vec![], Takeover::Apply),
        (vec![graph.clone()], Takeover::Apply),
        (vec![not_controller], Takeover::Apply),
        (vec![component], Takeover::Replace),
        (vec![other], Takeover::Foreign),
    ];
    for (owners, expected) in cases {
        assert_eq!(takeover(&owners, "uid-g"), expected, "{owners:?}");
    }
}

#[test]
fn grove_objects_lead_to_their_graph() {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cases = [
        (labels(&[(label::GRAPH_DEPLOYMENT_NAME, "g")]), Some("g")),
        (labels(&[(label::GRAPH_DEPLOYMENT_NAME, "")]), None),
        (labels(&[("app.kubernetes.io/part-of", "g")]), None),
    ];
    for (labels, expected) in cases {
        assert_eq!(graph_of_clique(&labels), expected, "{labels:?}");
    }
    let set = owner("PodCliqueSet", "grove.io/v1alpha1", "g", "uid-s", true);
    let cases = [
        (vec![set.clone()], Some("g")),
        (
            vec![owner(
                "PodCliqueSet",
                "grove.io/v1alpha1",
                "g",
                "uid-s",
                false,
            )],
            None,
        ),
        (
            vec![owner("PodCliqueSet", "example.com/v1", "g", "uid-s", true)],
            None,
        ),
        (
            vec![owner("Deployment", "apps/v1", "g", "uid-d", true)],
            None,
        ),
        (vec![], None),
    ];
    for (owners, expected) in cases {
        assert_eq!(graph_of_scaling_group(&owners), expected, "{owners:?}");
    }
}

#[test]
fn a_missing_kai_queue_reads_as_upstream_says_it() {
    assert_eq!(
        missing_queue("dynamo"),
        "failed to determine kai-scheduler queue: kai-scheduler queue validation failed: queue 'dynamo' not found in cluster. Ensure the queue exists before using kai-scheduler"
    );
}
