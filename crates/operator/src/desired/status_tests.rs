use super::*;
use dynamo_api::v1alpha1::DynamoModelSpec;
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};

fn ready_condition(status: &Condition) -> (&str, &str, &str) {
    (&status.status, &status.reason, &status.message)
}

/// A component `g-<service>` at generation 2 whose status says `available` (with `reason`)
/// as observed at `observed`; `None` for a component without status.
fn component(
    service: &str,
    available: Option<(bool, &str)>,
    observed: i64,
) -> DynamoComponentDeployment {
    let mut c = DynamoComponentDeployment::new(&format!("g-{service}"), Default::default());
    c.metadata.generation = Some(2);
    c.spec.shared.service_name = Some(service.into());
    c.status = available.map(|(holds, reason)| DynamoComponentDeploymentStatus {
        observed_generation: Some(observed),
        conditions: Some(vec![condition(
            None,
            AVAILABLE,
            Verdict::new(holds, reason, ""),
            Some(observed),
        )]),
        ..Default::default()
    });
    c
}

fn graph() -> DynamoGraphDeployment {
    let mut g = DynamoGraphDeployment::new("g", Default::default());
    g.metadata.generation = Some(7);
    g
}

#[test]
fn graph_status_is_successful_only_when_every_component_is_current_and_available() {
    struct Case {
        name: &'static str,
        components: Vec<DynamoComponentDeployment>,
        state: &'static str,
        message: &'static str,
    }
    let cases = [
        Case {
            name: "all available",
            components: vec![
                component("a", Some((true, "DeploymentReady")), 2),
                component("b", Some((true, "DeploymentReady")), 2),
            ],
            state: SUCCESSFUL,
            message: "All resources are ready",
        },
        Case {
            name: "one not available",
            components: vec![
                component("a", Some((true, "DeploymentReady")), 2),
                component("b", Some((false, "DeploymentNotReady")), 2),
            ],
            state: PENDING,
            message: "g-b: DeploymentNotReady",
        },
        Case {
            name: "available at an older generation",
            components: vec![component("a", Some((true, "DeploymentReady")), 1)],
            state: PENDING,
            message: "g-a: DeploymentReady",
        },
        Case {
            name: "no status yet, and a build failure",
            components: vec![
                component("a", None, 0),
                component("b", Some((false, "BuildFailed")), 2),
            ],
            state: PENDING,
            message: "g-a: Reconciling; g-b: BuildFailed",
        },
    ];
    for case in cases {
        let status = graph_status(&graph(), &case.components);
        assert_eq!(status.state.as_deref(), Some(case.state), "{}", case.name);
        assert_eq!(status.observed_generation, Some(7), "{}", case.name);
        let conditions = status.conditions.unwrap();
        assert_eq!(conditions.len(), 1, "{}", case.name);
        assert_eq!(conditions[0].type_, READY, "{}", case.name);
        let holds = if case.state == SUCCESSFUL {
            "True"
        } else {
            "False"
        };
        assert_eq!(conditions[0].status, holds, "{}", case.name);
        assert_eq!(conditions[0].message, case.message, "{}", case.name);
        let services = status.services.unwrap();
        assert_eq!(services.len(), case.components.len(), "{}", case.name);
    }
}

#[test]
fn graph_status_lists_services_by_name_with_their_replica_status() {
    let mut a = component("a", Some((true, "DeploymentReady")), 2);
    a.status.as_mut().unwrap().service = Some(ServiceReplicaStatus {
        component_name: Some("g-a".into()),
        replicas: 3,
        ..Default::default()
    });
    let b = component("b", None, 0);
    let services = graph_status(&graph(), &[a, b]).services.unwrap();
    assert_eq!(services["a"].replicas, 3);
    // Without a status yet, the service is listed with its component's name only.
    assert_eq!(services["b"].component_name.as_deref(), Some("g-b"));
    assert_eq!(services["b"].replicas, 0);
}

#[test]
fn a_failed_graph_keeps_its_other_status_fields() {
    let mut g = graph();
    g.status = Some(DynamoGraphDeploymentStatus {
        services: Some(BTreeMap::from([(
            "a".into(),
            ServiceReplicaStatus::default(),
        )])),
        ..Default::default()
    });
    let status = graph_failed(&g, "spec.pvcs[0]: not found".into());
    assert_eq!(status.state.as_deref(), Some(FAILED));
    let ready = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        ready_condition(ready),
        (
            "False",
            "failed_to_reconcile_the_resources",
            "spec.pvcs[0]: not found"
        )
    );
    assert!(status.services.unwrap().contains_key("a"));
}

fn deployment(replicas: i32, ready: i32, available: bool) -> Deployment {
    Deployment {
        metadata: kube::api::ObjectMeta {
            name: Some("g-a".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            conditions: Some(vec![DeploymentCondition {
                type_: "Available".into(),
                status: if available { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[test]
fn component_status_follows_the_deployment_unless_the_build_failed() {
    struct Case {
        name: &'static str,
        deployment: Option<Deployment>,
        failure: Option<Verdict>,
        expected: (&'static str, &'static str),
        replicas: Option<i32>,
    }
    let cases = [
        Case {
            name: "no Deployment yet",
            deployment: None,
            failure: None,
            expected: ("False", "DeploymentNotReady"),
            replicas: None,
        },
        Case {
            name: "rolled out",
            deployment: Some(deployment(2, 2, true)),
            failure: None,
            expected: ("True", "DeploymentReady"),
            replicas: Some(2),
        },
        Case {
            name: "one of two ready",
            deployment: Some(deployment(2, 1, false)),
            failure: None,
            expected: ("False", "DeploymentNotReady"),
            replicas: Some(2),
        },
        Case {
            name: "build failed",
            deployment: Some(deployment(1, 1, true)),
            failure: Some(Verdict::new(true, "MultinodeUnsupported", "needs Grove")),
            expected: ("False", "MultinodeUnsupported"),
            replicas: Some(1),
        },
    ];
    for case in cases {
        let dcd = component("a", None, 0);
        let status = component_status(&dcd, case.deployment.as_ref(), case.failure, None);
        let available = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(available.type_, AVAILABLE, "{}", case.name);
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            case.expected,
            "{}",
            case.name
        );
        assert_eq!(status.observed_generation, Some(2), "{}", case.name);
        assert_eq!(
            status.service.as_ref().map(|s| s.replicas),
            case.replicas,
            "{}",
            case.name
        );
        assert_eq!(
            status.pod_selector.unwrap()[label::SELECTOR],
            "g-a",
            "{}",
            case.name
        );
    }
}

#[test]
fn component_status_keeps_the_last_replica_status_without_a_deployment() {
    let mut dcd = component("a", Some((false, "BuildFailed")), 2);
    dcd.status.as_mut().unwrap().service = Some(ServiceReplicaStatus {
        replicas: 4,
        ..Default::default()
    });
    let status = component_status(
        &dcd,
        None,
        Some(Verdict::new(false, "BuildFailed", "x")),
        None,
    );
    assert_eq!(status.service.unwrap().replicas, 4);
}

#[test]
fn transition_time_is_kept_while_the_status_holds() {
    let first = condition(None, READY, Verdict::new(false, "x", ""), Some(1));
    let previous = Some(std::slice::from_ref(&first));
    let same = condition(previous, READY, Verdict::new(false, "y", "m"), Some(2));
    assert_eq!(same.last_transition_time, first.last_transition_time);
    assert_eq!((same.reason.as_str(), same.message.as_str()), ("y", "m"));
    let flipped = condition(previous, READY, Verdict::new(true, "z", ""), Some(2));
    assert_eq!(flipped.status, "True");
    assert!(flipped.last_transition_time.0 >= first.last_transition_time.0);
    assert!(holds(Some(&[flipped]), READY));
    assert!(!holds(Some(&[first]), READY));
}

fn model(lora: bool) -> DynamoModel {
    let mut m = DynamoModel::new(
        "m",
        DynamoModelSpec {
            model_name: "sql-lora".into(),
            base_model_name: "Qwen/Qwen3-0.6B".into(),
            ..Default::default()
        },
    );
    if lora {
        m.spec.model_type = Some(dynamo_api::v1alpha1::ModelType::Lora);
    }
    m.metadata.generation = Some(3);
    m
}

fn endpoint(address: &str, ready: bool) -> EndpointInfo {
    EndpointInfo {
        address: address.into(),
        pod_name: Some(format!("pod-{address}")),
        ready,
    }
}

#[test]
fn model_status_counts_endpoints_and_says_why_it_is_not_ready() {
    struct Case {
        name: &'static str,
        lora: bool,
        services_found: bool,
        endpoints: Vec<EndpointInfo>,
        services: (&'static str, &'static str),
        ready: (&'static str, &'static str),
        counts: (i32, i32),
    }
    let cases = [
        Case {
            name: "no Service",
            lora: true,
            services_found: false,
            endpoints: vec![],
            services: ("False", "NoServicesFound"),
            ready: ("False", "NoEndpoints"),
            counts: (0, 0),
        },
        Case {
            name: "base model discovered",
            lora: false,
            services_found: true,
            endpoints: vec![endpoint("10.0.0.1", false), endpoint("10.0.0.2", false)],
            services: ("True", "ServicesFound"),
            ready: ("True", "EndpointsDiscovered"),
            counts: (0, 2),
        },
        Case {
            name: "adapter loaded on one of two",
            lora: true,
            services_found: true,
            endpoints: vec![endpoint("10.0.0.1", true), endpoint("10.0.0.2", false)],
            services: ("True", "ServicesFound"),
            ready: ("False", "NotReady"),
            counts: (1, 2),
        },
        Case {
            name: "adapter loaded everywhere",
            lora: true,
            services_found: true,
            endpoints: vec![endpoint("10.0.0.1", true)],
            services: ("True", "ServicesFound"),
            ready: ("True", "AllEndpointsReady"),
            counts: (1, 1),
        },
    ];
    for case in cases {
        let status = model_status(
            &model(case.lora),
            case.services_found,
            case.endpoints,
            case.lora,
        );
        let conditions = status.conditions.unwrap();
        let by_type = |t: &str| {
            let c = conditions.iter().find(|c| c.type_ == t).unwrap();
            (c.status.clone(), c.reason.clone())
        };
        let owned = |(s, r): (&str, &str)| (s.to_owned(), r.to_owned());
        assert_eq!(
            by_type(SERVICES_FOUND),
            owned(case.services),
            "{}",
            case.name
        );
        assert_eq!(by_type(ENDPOINTS_READY), owned(case.ready), "{}", case.name);
        assert_eq!(
            (
                status.ready_endpoints.unwrap(),
                status.total_endpoints.unwrap()
            ),
            case.counts,
            "{}",
            case.name
        );
        assert!(conditions.iter().all(|c| c.observed_generation == Some(3)));
    }
}

#[test]
fn an_invalid_model_is_not_valid_and_says_why() {
    let status = model_invalid(&model(true), "spec.modelName: required".into());
    let valid = &status.conditions.unwrap()[0];
    assert_eq!(
        (
            valid.type_.as_str(),
            valid.status.as_str(),
            valid.reason.as_str()
        ),
        (VALID, "False", "ValidationFailed")
    );
    assert_eq!(valid.message, "spec.modelName: required");
    assert_eq!(status.endpoints, None);
}

#[test]
fn a_not_ready_component_carries_the_cause_to_the_graph_message() {
    let dcd = component("worker", None, 0);
    let cause =
        "pod g-worker-1 unschedulable: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu.";
    let mut stalled = deployment(1, 0, false);
    stalled
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
        .push(DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some(ROLLOUT_STALLED.into()),
            ..Default::default()
        });
    let cases = [
        (deployment(1, 0, false), Some(cause), NOT_READY, cause),
        (deployment(1, 0, false), None, NOT_READY, NOT_READY_MESSAGE),
        (stalled, Some(cause), ROLLOUT_STALLED, cause),
    ];
    for (deployment, cause, reason, message) in cases {
        let mut with_status = dcd.clone();
        with_status.status = Some(component_status(
            &dcd,
            Some(&deployment),
            None,
            cause.map(str::to_owned),
        ));
        let available = &with_status
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (
                available.status.as_str(),
                available.reason.as_str(),
                available.message.as_str()
            ),
            ("False", reason, message)
        );
        let graph = graph_status(&graph(), &[with_status]);
        let ready = &graph.conditions.unwrap()[0];
        let expected = match cause {
            Some(cause) => format!("g-worker: {cause}"),
            None => format!("g-worker: {reason}"),
        };
        assert_eq!(ready.message, expected);
    }
}
