//! Graph features on the platform as a user installs it with helm (webhook on, operator and
//! webhook run as the real binaries by the node agent): the planner's ServiceAccount in
//! cluster-wide and restricted installs, scaling adapters driven by `kubectl scale` and by a real
//! HorizontalPodAutoscaler, sequential rolling restarts, a Ready condition that says why pods do
//! not schedule, and the discovery identity publishing worker metadata.
//!
//! The cluster-wide tests share one install (`SharedPlatform`); the restricted one waits for
//! the cluster to itself, since the chart refuses a restricted operator beside a cluster-wide one.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::{
    DynamoComponentDeployment, DynamoGraphDeployment, DynamoGraphDeploymentScalingAdapter,
    DynamoWorkerMetadata, RestartPhase,
};
use dynamo_e2e::manifests::graph;
use dynamo_e2e::operator::wait_graph_ready;
use dynamo_e2e::platform::{ClusterToItself, Installed, SharedPlatform, helm_chart};
use dynamo_e2e::webhook::rejects;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, ResourceExt};

const IMAGE: &str = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.7.1";
const PLANNER_ACCOUNT: &str = "planner-serviceaccount";
const PLANNER_BINDING: &str = "planner-serviceaccount-binding";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const RESTART_AT: &str = "nvidia.com/restartAt";

/// Cluster-wide, the operator creates `planner-serviceaccount` and binds it to the chart's
/// planner ClusterRole in the graph's namespace; the planner pods run as it, so the graph
/// becomes Ready. Deleting the graph leaves both: they serve every graph of the namespace.
#[tokio::test]
async fn planner_graph_gets_a_bound_service_account_cluster_wide() {
    let platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("planner").await;
    assert_success("apply planned", &ns.kubectl_apply(&planner_graph()));
    wait_graph_ready(&ns, "planned").await;

    let accounts: Api<ServiceAccount> = ns.api();
    let account = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    assert_eq!(label(&account, MANAGED_BY), Some("dynamo-operator"));
    let bindings: Api<RoleBinding> = ns.api();
    let binding = bindings.get(PLANNER_BINDING).await.unwrap();
    assert_eq!(label(&binding, MANAGED_BY), Some("dynamo-operator"));
    let cluster_role = format!("{}-planner", platform.fullname());
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", cluster_role.as_str())
    );
    assert_binds_planner_account(&binding, &ns.name);
    let cluster_roles: Api<ClusterRole> = Api::all(ns.client.clone());
    assert!(
        cluster_roles
            .get_opt(&cluster_role)
            .await
            .unwrap()
            .is_some(),
        "the binding names ClusterRole {cluster_role}, which the chart did not install"
    );
    assert_planner_runs_as_its_account(&ns, "planned").await;

    delete_graph(&ns, "planned").await;
    let kept = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    assert_eq!(
        kept.uid(),
        account.uid(),
        "the ServiceAccount was re-created"
    );
    assert!(bindings.get_opt(PLANNER_BINDING).await.unwrap().is_some());
}

/// A `planner-serviceaccount` the user made before the graph is theirs: the operator leaves it
/// exactly as it is (no label, annotation or rewrite), still binds it, and the graph runs.
#[tokio::test]
async fn a_users_own_planner_service_account_is_left_alone() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("own-planner").await;
    assert_success(
        "create the user's ServiceAccount",
        &ns.kubectl_apply(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {PLANNER_ACCOUNT}\n  annotations:\n    owner: me\n"
        )),
    );
    let accounts: Api<ServiceAccount> = ns.api();
    let before = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    assert_success("apply planned", &ns.kubectl_apply(&planner_graph()));
    wait_graph_ready(&ns, "planned").await;
    assert_planner_runs_as_its_account(&ns, "planned").await;
    let binding: RoleBinding = ns.api().get(PLANNER_BINDING).await.unwrap();
    assert_binds_planner_account(&binding, &ns.name);
    let after = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "the user's ServiceAccount was written to"
    );
    assert_eq!(label(&after, MANAGED_BY), None);
}

/// The discovery ServiceAccount, Role and RoleBinding deleted by hand come back within
/// seconds: the operator watches the identity objects it made and reconciles their graph.
#[tokio::test]
async fn a_deleted_discovery_identity_comes_back() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("identity-back").await;
    let manifest = graph("back")
        .backend("vllm")
        .service(
            "Frontend",
            &format!(
                "componentType: frontend\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml();
    assert_success("apply back", &ns.kubectl_apply(&manifest));
    wait_graph_ready(&ns, "back").await;
    let account = "back-k8s-service-discovery";
    let objects = [
        ("serviceaccount", account.to_owned()),
        ("role", format!("{account}-role")),
        ("rolebinding", format!("{account}-binding")),
    ];
    for (kind, name) in &objects {
        let uid = |output: Output| String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let get_uid = || {
            uid(kubectl(&[
                "get",
                kind,
                name,
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.metadata.uid}",
            ]))
        };
        let old = get_uid();
        assert!(!old.is_empty(), "{kind} {name} exists");
        let deleted = Instant::now();
        assert_success(
            &format!("delete {kind} {name}"),
            &kubectl(&["delete", kind, name, "-n", &ns.name]),
        );
        wait_until(
            &format!("{kind} {name} re-created"),
            Duration::from_secs(20),
            || async {
                let new = get_uid();
                (!new.is_empty() && new != old).then_some(())
            },
        )
        .await;
        eprintln!(
            "{kind} {name} re-created {:.1?} after its deletion",
            deleted.elapsed()
        );
    }
}

/// Restricted, the operator may not bind ClusterRoles: the chart creates the planner's
/// ServiceAccount, Role and RoleBinding in the target namespace, and the graph uses them.
#[tokio::test]
async fn planner_graph_uses_the_charts_service_account_when_restricted() {
    const RELEASE: &str = "restricted";
    let _turn = ClusterToItself::wait().await;
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("restricted").await;
    let values = [
        "--set",
        "dynamo-operator.namespaceRestriction.enabled=true",
        "--set",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false",
    ];
    let _installed = Installed {
        release: RELEASE,
        namespace: ns.name.clone(),
    };
    assert_success(
        "restricted helm install",
        &helm_chart("install", RELEASE, &ns.name, &values),
    );
    let accounts: Api<ServiceAccount> = ns.api();
    let account = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    // Helm labels what it installs `managed-by: Helm`, whatever the template says.
    assert_eq!(
        label(&account, "app.kubernetes.io/instance"),
        Some(RELEASE),
        "not the chart's ServiceAccount"
    );

    assert_success("apply planned", &ns.kubectl_apply(&planner_graph()));
    wait_graph_ready(&ns, "planned").await;
    let binding: RoleBinding = ns.api().get(PLANNER_BINDING).await.unwrap();
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "planner-serviceaccount-role")
    );
    assert_binds_planner_account(&binding, &ns.name);
    assert_planner_runs_as_its_account(&ns, "planned").await;

    delete_graph(&ns, "planned").await;
    let kept = accounts.get(PLANNER_ACCOUNT).await.unwrap();
    assert_eq!(kept.uid(), account.uid());
}

/// `kubectl scale` on a service's scaling adapter reaches the graph and the Deployment; a real
/// HorizontalPodAutoscaler reads the adapter's scale subresource (replicas and selector) and
/// scales through it; replicas owned by an adapter cannot be edited in the graph; disabling the
/// adapter deletes it and gives the replicas back to the user.
#[tokio::test]
async fn scaling_adapter_scales_its_service_and_drives_an_hpa() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("adapter").await;
    assert_success("apply scaled", &ns.kubectl_apply(&scaled_graph(1, true)));
    wait_graph_ready(&ns, "scaled").await;

    let adapters: Api<DynamoGraphDeploymentScalingAdapter> = ns.api();
    let selector =
        "nvidia.com/dynamo-graph-deployment-name=scaled,nvidia.com/dynamo-component=Worker";
    let adapter = wait_until(
        "adapter scaled-worker with its status",
        Duration::from_secs(30),
        || async {
            let adapter = adapters.get_opt("scaled-worker").await.ok()??;
            let status = adapter.status.as_ref()?;
            (status.replicas == Some(1) && status.selector.is_some()).then_some(adapter)
        },
    )
    .await;
    assert_eq!(adapter.spec.replicas, 1, "not seeded from the service");
    assert_eq!(adapter.spec.dgd_ref.service_name, "Worker");
    assert_eq!(
        adapter.status.unwrap().selector.as_deref(),
        Some(selector),
        "status.selector"
    );

    assert_success(
        "kubectl scale",
        &kubectl(&[
            "scale",
            "dgdsa/scaled-worker",
            "--replicas=3",
            "-n",
            &ns.name,
        ]),
    );
    wait_service_replicas(&ns, 3, "after kubectl scale").await;

    let refusal = rejects(&ns, &scaled_graph(5, true), "spec.services.Worker.replicas");
    assert!(
        refusal.contains("scaled-worker"),
        "the refusal does not name the adapter: {refusal}"
    );

    // With no metrics server the HPA cannot compute a recommendation, but it reads the scale
    // subresource: 3 replicas are above its maximum, so it scales the adapter down to 2.
    assert_success("apply the HPA", &ns.kubectl_apply(HPA));
    wait_service_replicas(&ns, 2, "after the HPA enforced maxReplicas").await;
    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    let (current, conditions) = wait_until(
        "the HPA to report the adapter's replicas and its missing metrics",
        Duration::from_secs(90),
        || async {
            let status = hpas.get("scaled-worker").await.ok()?.status?;
            let conditions: BTreeMap<String, (String, String, String)> = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let detail = (
                        c.status,
                        c.reason.unwrap_or_default(),
                        c.message.unwrap_or_default(),
                    );
                    (c.type_, detail)
                })
                .collect();
            let metrics_missing = conditions
                .get("ScalingActive")
                .is_some_and(|(_, reason, _)| reason == "FailedGetResourceMetric");
            metrics_missing.then_some((status.current_replicas, conditions))
        },
    )
    .await;
    eprintln!("HPA status: currentReplicas {current:?}, conditions {conditions:#?}");
    assert_eq!(current, Some(2), "HPA status.currentReplicas");
    assert_eq!(
        conditions
            .get("AbleToScale")
            .map(|(status, ..)| status.as_str()),
        Some("True"),
        "the HPA could not read or write the adapter's scale: {conditions:?}"
    );
    let (_, _, message) = &conditions["ScalingActive"];
    assert!(message.contains("metrics"), "{message}");

    assert_success(
        "delete the HPA",
        &kubectl(&["delete", "hpa", "scaled-worker", "-n", &ns.name]),
    );
    assert_success(
        "disable the adapter",
        &ns.kubectl_apply(&scaled_graph(2, false)),
    );
    wait_until("adapter deleted", Duration::from_secs(30), || async {
        adapters
            .get_opt("scaled-worker")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert_success(
        "replicas edited without an adapter",
        &ns.kubectl_apply(&scaled_graph(1, false)),
    );
    wait_service_replicas(&ns, 1, "after the user's own edit").await;
}

/// A new `restart.id` restarts the services one at a time in the given order (not the default
/// alphabetical one): each Deployment's pod template gets `nvidia.com/restartAt` once, the
/// next only after the previous rolled out; `status.restart` ends Completed. Twice, with two
/// orders.
#[tokio::test]
async fn sequential_restart_follows_the_order_and_restarts_each_service_once() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("restart").await;
    assert_success("apply rolling", &ns.kubectl_apply(&rolling_graph(None)));
    wait_graph_ready(&ns, "rolling").await;

    for (id, order) in [
        ("r1", ["Gamma", "Alpha", "Beta"]),
        ("r2", ["Beta", "Gamma", "Alpha"]),
    ] {
        let before = templates(&ns).await;
        assert_success(
            &format!("restart {id}"),
            &ns.kubectl_apply(&rolling_graph(Some((id, &order)))),
        );
        let trace = trace_restart(&ns, id).await;
        eprintln!("restart {id}: {trace:?}");
        let stamped: Vec<&str> = trace.stamped.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(stamped, order, "services restarted out of order");
        for pair in trace.stamped.windows(2) {
            assert!(
                pair[1].1 > pair[0].1,
                "{} and {} restarted together",
                pair[0].0,
                pair[1].0
            );
        }
        let steps: Vec<&str> = trace.steps.iter().map(String::as_str).collect();
        assert!(
            is_in_order(&steps, &order),
            "status.restart.inProgress went {steps:?}, order {order:?}"
        );
        assert_eq!(trace.phases.last(), Some(&RestartPhase::Completed));
        assert!(
            trace.phases.contains(&RestartPhase::Restarting),
            "{:?}",
            trace.phases
        );

        // Settled: each Deployment rolled exactly once for this restart.
        wait_graph_ready(&ns, "rolling").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = templates(&ns).await;
        for service in order {
            let (was, now) = (&before[service], &after[service]);
            assert_eq!(now.restart_at.as_deref(), Some(id), "{service}");
            assert_eq!(
                now.generation,
                was.generation + 1,
                "{service}: the Deployment's spec changed {} times",
                now.generation - was.generation
            );
            assert!(
                trace.generations[service].len() <= 2,
                "{service} went through generations {:?}",
                trace.generations[service]
            );
        }
    }
}

/// A service whose own `livenessProbe` names no handler passes the webhook (the probe is a core
/// type) but yields a Deployment the API server refuses: the graph's Ready condition carries the
/// API server's message with the field path, instead of staying silent while the operator retries.
#[tokio::test]
async fn a_child_the_api_server_refuses_is_named_in_the_graph_status() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("refused").await;
    let manifest = graph("refused")
        .backend("vllm")
        .service(
            "Worker",
            &format!(
                "componentType: worker\nreplicas: 1\nlivenessProbe:\n  periodSeconds: 7\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml();
    assert_success("apply refused", &ns.kubectl_apply(&manifest));

    let graphs: Api<DynamoGraphDeployment> = ns.api();
    let ready = wait_not_ready_saying(&graphs, "refused", "livenessProbe").await;
    eprintln!(
        "Ready: {} ({}): {}",
        ready.status, ready.reason, ready.message
    );
    assert!(
        ready.message.contains("must specify a handler type"),
        "the API server's own reason: {}",
        ready.message
    );
    let components: Api<DynamoComponentDeployment> = ns.api();
    let component = components.get("refused-worker").await.unwrap();
    let available = component
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Available"))
        .expect("an Available condition");
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", "ChildRefused")
    );
    assert!(
        available
            .message
            .contains("spec.template.spec.containers[0].livenessProbe"),
        "{}",
        available.message
    );
}

/// A worker asking for more GPUs than any node has stays unschedulable, and the graph's Ready
/// condition carries the scheduler's reason, as `kubectl get dgd -o yaml` shows it.
#[tokio::test]
async fn a_worker_asking_for_more_gpus_than_any_node_says_why_it_is_not_ready() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("toobig").await;
    let nodes: Api<Node> = Api::all(ns.client.clone());
    let most = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|n| {
            n.status
                .as_ref()?
                .allocatable
                .as_ref()?
                .get("nvidia.com/gpu")
        })
        .filter_map(|q| q.0.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    let gpus = (most + 1).max(64);
    let manifest = graph("toobig")
        .backend("vllm")
        .service(
            "Worker",
            &format!(
                "componentType: worker\nreplicas: 1\nresources:\n  limits:\n    gpu: \"{gpus}\"\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml();
    assert_success("apply toobig", &ns.kubectl_apply(&manifest));

    let graphs: Api<DynamoGraphDeployment> = ns.api();
    let started = Instant::now();
    let ready = wait_not_ready_saying(&graphs, "toobig", "Insufficient nvidia.com/gpu").await;
    eprintln!(
        "Ready after {:?}: {} ({}): {}",
        started.elapsed(),
        ready.status,
        ready.reason,
        ready.message
    );
    let shown = kubectl(&["get", "dgd", "toobig", "-n", &ns.name, "-o", "yaml"]);
    assert_success("kubectl get dgd", &shown);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Insufficient nvidia.com/gpu"));
    let state = graphs.get("toobig").await.unwrap().status.unwrap().state;
    assert_ne!(state.as_deref(), Some("successful"));
}

/// Under Kubernetes discovery a graph's pods run as `<graph>-k8s-service-discovery`, whose Role
/// lets them publish DynamoWorkerMetadata in their namespace, and nothing more.
#[tokio::test]
async fn the_discovery_service_account_may_publish_worker_metadata() {
    let _platform = SharedPlatform::join().await;
    let ns = TestNamespace::new("discovery").await;
    let manifest = graph("disco")
        .backend("vllm")
        .service(
            "Frontend",
            &format!(
                "componentType: frontend\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml();
    assert_success("apply disco", &ns.kubectl_apply(&manifest));
    wait_graph_ready(&ns, "disco").await;

    let account = "disco-k8s-service-discovery";
    let user = format!("system:serviceaccount:{}:{account}", ns.name);
    let published = ns.kubectl_stdin(
        &["--as", &user, "create", "-n", &ns.name, "-f", "-"],
        WORKER_METADATA,
    );
    assert_success(
        &format!("create DynamoWorkerMetadata as {user}"),
        &published,
    );
    let metadata: Api<DynamoWorkerMetadata> = ns.api();
    let stored = metadata.get("disco-worker-0").await.unwrap();
    assert_eq!(
        stored.spec.data["endpoints"]["generate"],
        "tcp://10.0.0.1:9000"
    );

    let may = |verb: &str, resource: &str, namespace: &str| {
        let output = kubectl(&[
            "auth", "can-i", verb, resource, "--as", &user, "-n", namespace,
        ]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(
        may("delete", "dynamoworkermetadatas.nvidia.com", &ns.name),
        "yes"
    );
    assert_eq!(
        may("create", "dynamographdeployments.nvidia.com", &ns.name),
        "no",
        "the discovery account may create graphs"
    );
    assert_eq!(
        may("create", "dynamoworkermetadatas.nvidia.com", "default"),
        "no",
        "the discovery account reaches beyond its namespace"
    );
}

const WORKER_METADATA: &str = "
apiVersion: nvidia.com/v1alpha1
kind: DynamoWorkerMetadata
metadata:
  name: disco-worker-0
spec:
  data:
    endpoints:
      generate: tcp://10.0.0.1:9000
";

/// HPA on the adapter `scaled-worker`; CPU utilisation, which no metrics server answers here.
const HPA: &str = "
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: scaled-worker
spec:
  scaleTargetRef:
    apiVersion: nvidia.com/v1alpha1
    kind: DynamoGraphDeploymentScalingAdapter
    name: scaled-worker
  minReplicas: 1
  maxReplicas: 2
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 50
";

/// Graph `planned`: a frontend and a planner.
fn planner_graph() -> String {
    graph("planned")
        .backend("vllm")
        .service(
            "Frontend",
            &format!(
                "componentType: frontend\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .service(
            "Planner",
            &format!(
                "componentType: planner\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml()
}

/// Graph `scaled`: a frontend and a worker with `replicas` and its adapter on or off.
fn scaled_graph(replicas: i32, adapter: bool) -> String {
    graph("scaled")
        .backend("vllm")
        .service(
            "Frontend",
            &format!(
                "componentType: frontend\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .service(
            "Worker",
            &format!(
                "componentType: worker\nreplicas: {replicas}\nscalingAdapter:\n  enabled: {adapter}\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        )
        .yaml()
}

/// Graph `rolling`: workers Alpha, Beta and Gamma, with a sequential restart when given.
fn rolling_graph(restart: Option<(&str, &[&str])>) -> String {
    let mut manifest = graph("rolling").backend("vllm");
    if let Some((id, order)) = restart {
        manifest = manifest.spec(&format!(
            "restart:\n  id: {id}\n  strategy:\n    type: Sequential\n    order: [{}]\n",
            order.join(", ")
        ));
    }
    for service in ["Alpha", "Beta", "Gamma"] {
        manifest = manifest.service(
            service,
            &format!(
                "componentType: worker\nreplicas: 1\nextraPodSpec:\n  mainContainer:\n    image: {IMAGE}\n"
            ),
        );
    }
    manifest.yaml()
}

/// What a Deployment of `rolling` stands at.
#[derive(Clone, Debug, PartialEq)]
struct Template {
    generation: i64,
    restart_at: Option<String>,
}

/// The Deployments of `rolling`, by service.
async fn templates(ns: &TestNamespace) -> BTreeMap<&'static str, Template> {
    let deployments: Api<Deployment> = ns.api();
    let mut out = BTreeMap::new();
    for service in ["Alpha", "Beta", "Gamma"] {
        let name = format!("rolling-{}", service.to_lowercase());
        let deployment = deployments.get(&name).await.unwrap();
        let restart_at = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(RESTART_AT).cloned());
        let generation = deployment.metadata.generation.unwrap_or_default();
        out.insert(
            service,
            Template {
                generation,
                restart_at,
            },
        );
    }
    out
}

/// What polling `rolling` every 100 ms saw of restart `id`.
#[derive(Debug, Default)]
struct RestartTrace {
    /// Services in the order their Deployment first carried `restartAt: id`, with the poll
    /// that saw it.
    stamped: Vec<(String, usize)>,
    /// Distinct Deployment generations seen, per service.
    generations: BTreeMap<String, Vec<i64>>,
    /// `status.restart.inProgress` of this restart, one service each, consecutive repeats
    /// dropped.
    steps: Vec<String>,
    /// `status.restart.phase` of this restart, consecutive repeats dropped.
    phases: Vec<RestartPhase>,
}

/// Polls until `status.restart` of `rolling` reports restart `id` Completed (two minutes).
async fn trace_restart(ns: &TestNamespace, id: &str) -> RestartTrace {
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    let mut trace = RestartTrace::default();
    let started = Instant::now();
    for poll in 0.. {
        for (service, template) in templates(ns).await {
            let seen = trace.generations.entry(service.to_owned()).or_default();
            if seen.last() != Some(&template.generation) {
                seen.push(template.generation);
            }
            let stamped = template.restart_at.as_deref() == Some(id);
            if stamped && !trace.stamped.iter().any(|(s, _)| s == service) {
                trace.stamped.push((service.to_owned(), poll));
            }
        }
        let restart = graphs
            .get("rolling")
            .await
            .unwrap()
            .status
            .and_then(|s| s.restart)
            .filter(|r| r.observed_id.as_deref() == Some(id));
        if let Some(restart) = restart {
            let in_progress = restart.in_progress.unwrap_or_default();
            assert!(
                in_progress.len() <= 1,
                "a sequential restart has {in_progress:?} in progress at once"
            );
            if let Some(step) = in_progress.first()
                && trace.steps.last() != Some(step)
            {
                trace.steps.push(step.clone());
            }
            if let Some(phase) = restart.phase
                && trace.phases.last() != Some(&phase)
            {
                trace.phases.push(phase);
            }
            assert_ne!(restart.phase, Some(RestartPhase::Failed), "{trace:#?}");
            if restart.phase == Some(RestartPhase::Completed) {
                return trace;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "restart {id} not Completed after 120 s: {trace:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

/// `seen` lists services in `order`'s order, without going back.
fn is_in_order(seen: &[&str], order: &[&str]) -> bool {
    let positions: Option<Vec<usize>> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s))
        .collect();
    positions.is_some_and(|p| p.windows(2).all(|w| w[0] < w[1]))
}

/// Waits until both the graph's `Worker` service and its Deployment have `replicas`.
async fn wait_service_replicas(ns: &TestNamespace, replicas: i32, when: &str) {
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let started = Instant::now();
    loop {
        let in_graph = graphs
            .get("scaled")
            .await
            .ok()
            .and_then(|g| g.spec.services?.get("Worker")?.replicas);
        let in_deployment = deployments
            .get("scaled-worker")
            .await
            .ok()
            .and_then(|d| d.spec?.replicas);
        if (in_graph, in_deployment) == (Some(replicas), Some(replicas)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{when}: wanted {replicas} replicas; graph spec.services.Worker.replicas {:?}, Deployment scaled-worker spec.replicas {:?}",
            in_graph,
            in_deployment
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The binding's one subject is `planner-serviceaccount` of `namespace`.
fn assert_binds_planner_account(binding: &RoleBinding, namespace: &str) {
    let subjects: Vec<(&str, &str, Option<&str>)> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
        .collect();
    assert_eq!(
        subjects,
        [("ServiceAccount", PLANNER_ACCOUNT, Some(namespace))]
    );
}

/// The planner's Deployment runs its pods as `planner-serviceaccount`.
async fn assert_planner_runs_as_its_account(ns: &TestNamespace, graph: &str) {
    let deployment: Deployment = ns.api().get(&format!("{graph}-planner")).await.unwrap();
    let account = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.service_account_name);
    assert_eq!(account.as_deref(), Some(PLANNER_ACCOUNT));
}

/// `kubectl delete dgd`, then waits until the graph is gone (its finalizer removed).
async fn delete_graph(ns: &TestNamespace, name: &str) {
    assert_success(
        &format!("delete {name}"),
        &kubectl(&["delete", "dgd", name, "-n", &ns.name, "--wait=false"]),
    );
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    wait_until(
        &format!("{name} deleted"),
        Duration::from_secs(60),
        || async { graphs.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

/// Waits (60 s) until graph `name`'s Ready condition is False with a message containing
/// `needle`; that condition.
async fn wait_not_ready_saying(
    graphs: &Api<DynamoGraphDeployment>,
    name: &str,
    needle: &str,
) -> Condition {
    let started = Instant::now();
    loop {
        let ready = ready_condition(&graphs.get(name).await.unwrap());
        if let Some(ready) = &ready
            && ready.status == "False"
            && ready.message.contains(needle)
        {
            return ready.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after 60 s the Ready condition of {name} does not say {needle:?}: {ready:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ready_condition(graph: &DynamoGraphDeployment) -> Option<Condition> {
    graph
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
}

fn label<'a, K: ResourceExt>(object: &'a K, key: &str) -> Option<&'a str> {
    object.labels().get(key).map(String::as_str)
}

fn kubectl(args: &[&str]) -> Output {
    Cluster::get()
        .kubectl()
        .args(args)
        .output()
        .expect("running kubectl")
}

#[test]
fn order_checks_accept_subsequences_and_refuse_going_back() {
    let order = ["Gamma", "Alpha", "Beta"];
    assert!(is_in_order(&[], &order));
    assert!(is_in_order(&["Gamma", "Beta"], &order));
    assert!(is_in_order(&order, &order));
    assert!(!is_in_order(&["Alpha", "Gamma"], &order));
    assert!(!is_in_order(&["Gamma", "Gamma"], &order));
    assert!(!is_in_order(&["Delta"], &order));
}
