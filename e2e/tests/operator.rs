//! The controller-manager against the local control plane: graphs become components,
//! Deployments, Services and Ingresses; kwok makes the pods Ready; status flows back up.

use std::time::Duration;

use dynamo_api::v1alpha1::{DynamoComponentDeployment, DynamoGraphDeployment};
use dynamo_e2e::manifests::example;
use dynamo_e2e::operator::{start_operator, start_operator_as, wait_graph_state};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

/// What the graphs here expect beside the namespace restriction.
const INGRESS_CLASS: [&str; 2] = ["--ingress-controller-class-name", "nginx"];

#[tokio::test]
async fn a_graph_becomes_ready_and_its_children_follow_the_spec() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("operator").await;
    let _operator = start_operator(&ns, &INGRESS_CLASS);
    assert_success(
        "apply vllm-agg",
        &ns.kubectl_apply(&example("vllm-agg.yaml")),
    );

    let graph = wait_graph_state(&ns, "vllm-agg", "successful").await;
    let ready = &graph.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
    assert_eq!(
        (ready.type_.as_str(), ready.status.as_str()),
        ("Ready", "True")
    );
    assert_eq!(ready.reason, "all_resources_are_ready");
    let services = graph.status.unwrap().services.unwrap();
    assert_eq!(services["VllmDecodeWorker"].ready_replicas, Some(1));

    // Creations are recorded as events on the parents, by the operator.
    let events: Api<k8s_openapi::api::events::v1::Event> = ns.api();
    wait_until("creation events", Duration::from_secs(30), || async {
        let events = events.list(&ListParams::default()).await.ok()?.items;
        let on = |kind: &str, reason: &str| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.reporting_controller.as_deref() == Some("dynamo-operator")
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
            })
        };
        (on("DynamoGraphDeployment", "CreateDynamoComponentDeployment")
            && on("DynamoComponentDeployment", "CreateDeployment"))
        .then_some(())
    })
    .await;

    let components: Api<DynamoComponentDeployment> = ns.api();
    let worker = components.get("vllm-agg-vllmdecodeworker").await.unwrap();
    assert_eq!(
        worker.labels()["nvidia.com/dynamo-component"],
        "VllmDecodeWorker"
    );
    assert_eq!(
        worker.labels()["nvidia.com/dynamo-graph-deployment-name"],
        "vllm-agg"
    );
    assert_eq!(
        worker.spec.shared.dynamo_namespace.as_deref(),
        Some(format!("{}-vllm-agg", ns.name).as_str())
    );
    assert!(
        worker
            .finalizers()
            .iter()
            .any(|f| f == "nvidia.com/finalizer")
    );

    let deployments: Api<Deployment> = ns.api();
    let deployment = deployments.get("vllm-agg-vllmdecodeworker").await.unwrap();
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let main = &pod.containers[0];
    assert_eq!(main.name, "main");
    let limits = main.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "1");
    let env: Vec<&str> = main.env.iter().flatten().map(|e| e.name.as_str()).collect();
    for name in [
        "DYN_NAMESPACE",
        "DYN_COMPONENT",
        "DYN_PARENT_DGD_K8S_NAME",
        "POD_NAME",
        "POD_UID",
    ] {
        assert!(env.contains(&name), "{name} missing from {env:?}");
    }
    let services: Api<Service> = ns.api();
    let frontend = services.get("vllm-agg-frontend").await.unwrap();
    assert_eq!(frontend.spec.unwrap().ports.unwrap()[0].port, 8000);

    // Scaling a service: the Deployment follows.
    let patch = serde_json::json!({"spec": {"services": {"VllmDecodeWorker": {"replicas": 3}}}});
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    graphs
        .patch("vllm-agg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_until("3 worker replicas", Duration::from_secs(60), || async {
        let d = deployments.get("vllm-agg-vllmdecodeworker").await.ok()?;
        (d.status?.ready_replicas? == 3).then_some(())
    })
    .await;
    wait_graph_state(&ns, "vllm-agg", "successful").await;

    // A hand-edited Deployment is put back.
    let edit = serde_json::json!({"spec": {"replicas": 1}});
    deployments
        .patch(
            "vllm-agg-vllmdecodeworker",
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    wait_until("edit reverted", Duration::from_secs(60), || async {
        let d = deployments.get("vllm-agg-vllmdecodeworker").await.ok()?;
        (d.spec?.replicas? == 3).then_some(())
    })
    .await;

    // A Service deleted by hand comes back. Its deletion changes no pod and no component:
    // only the deletion itself can bring the component's reconcile.
    let before = services.get("vllm-agg-frontend").await.unwrap().uid();
    services
        .delete("vllm-agg-frontend", &Default::default())
        .await
        .unwrap();
    wait_until(
        "deleted Service recreated",
        Duration::from_secs(30),
        || async {
            let now = services.get_opt("vllm-agg-frontend").await.ok()??;
            (now.uid() != before).then_some(())
        },
    )
    .await;

    // Removing a service removes its component and Deployment (no webhook in this test).
    let remove = serde_json::json!({"spec": {"services": {"VllmDecodeWorker": null}}});
    graphs
        .patch("vllm-agg", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .unwrap();
    wait_until("worker removed", Duration::from_secs(60), || async {
        let gone = components
            .get_opt("vllm-agg-vllmdecodeworker")
            .await
            .ok()?
            .is_none()
            && deployments
                .get_opt("vllm-agg-vllmdecodeworker")
                .await
                .ok()?
                .is_none();
        gone.then_some(())
    })
    .await;

    // Deleting the graph garbage-collects everything it created.
    graphs
        .delete("vllm-agg", &Default::default())
        .await
        .unwrap();
    wait_until(
        "graph and children gone",
        Duration::from_secs(60),
        || async {
            let left = components
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len()
                + deployments
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .len()
                + graphs.list(&ListParams::default()).await.ok()?.items.len();
            (left == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn restart_converges_without_writes_and_unsupported_or_incomplete_graphs_say_why() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("restart").await;
    let mut first = start_operator(&ns, &INGRESS_CLASS);
    for file in [
        "vllm-agg.yaml",
        "sglang-agg.yaml",
        "trtllm-multinode.yaml",
        "vllm-disagg.yaml",
    ] {
        assert_success(file, &ns.kubectl_apply(&example(file)));
    }
    // Killed in the middle of its work, then started again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    first.kill();
    let second = start_operator(&ns, &INGRESS_CLASS);
    second.ready().await;

    wait_graph_state(&ns, "vllm-agg", "successful").await;
    wait_graph_state(&ns, "sglang-agg", "successful").await;
    // A TRT-LLM multinode graph needs mpirun's SSH key, and this operator was given none.
    let multinode = wait_graph_state(&ns, "trtllm-multinode", "failed").await;
    let message = &multinode.status.unwrap().conditions.unwrap()[0].message;
    assert!(message.contains("--mpi-run-ssh-secret-name"), "{message}");
    assert!(message.contains("TrtllmWorker"), "{message}");

    // The disaggregated graph creates its claim; the claim stays Pending (no provisioner),
    // so its workers do too.
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let claim = wait_until("model-cache claim", Duration::from_secs(30), || async {
        claims.get_opt("model-cache").await.ok()?
    })
    .await;
    assert_eq!(claim.owner_references()[0].name, "vllm-disagg");
    wait_graph_state(&ns, "vllm-disagg", "pending").await;

    let ingresses: Api<Ingress> = ns.api();
    let ingress = ingresses.get("sglang-agg-frontend").await.unwrap();
    assert_eq!(
        ingress.spec.unwrap().ingress_class_name.as_deref(),
        Some("nginx")
    );

    // No duplicates after the crash: one component per service.
    let components: Api<DynamoComponentDeployment> = ns.api();
    let names: Vec<String> = components
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique);
    assert_eq!(names.len(), 2 + 2 + 3, "{names:?}");

    // Let the second operator settle, then a fresh operator over the converged namespace must
    // write nothing. Quiet for longer than the operator's longest progress window (10 s, a
    // graph's): a count change may wait that long for its status write.
    second.settle(Duration::from_secs(11)).await;
    drop(second);
    let third = start_operator(&ns, &INGRESS_CLASS);
    third.ready().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes = third.writes().await;
    assert_eq!(
        writes,
        0,
        "a converged namespace got {writes} writes:\n{}",
        third.log_text()
    );
}

/// What a namespace-restricted operator needs, as one Role in its namespace.
fn restricted_role(ns: &str) -> String {
    let all = "[get, list, watch, create, update, patch, delete]";
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: dynamo-operator, namespace: {ns}}}
rules:
  - apiGroups: [nvidia.com]
    resources: [dynamographdeployments, dynamographdeployments/status, dynamographdeployments/finalizers,
                dynamocomponentdeployments, dynamocomponentdeployments/status, dynamocomponentdeployments/finalizers,
                dynamomodels, dynamomodels/status, dynamomodels/finalizers, dynamoworkermetadatas,
                dynamographdeploymentscalingadapters, dynamographdeploymentscalingadapters/status]
    verbs: {all}
  - apiGroups: [apps]
    resources: [deployments]
    verbs: {all}
  - apiGroups: [""]
    resources: [services, persistentvolumeclaims, serviceaccounts]
    verbs: {all}
  - apiGroups: ["", discovery.k8s.io]
    resources: [endpoints, endpointslices, pods]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses]
    verbs: {all}
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles, rolebindings]
    verbs: {all}
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: {all}
  - apiGroups: ["", events.k8s.io]
    resources: [events]
    verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: dynamo-operator, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: dynamo-operator}}
subjects: [{{kind: ServiceAccount, name: dynamo-operator, namespace: {ns}}}]
"#
    )
}

#[tokio::test]
async fn a_restricted_operator_works_with_only_a_role_in_its_namespace() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("rbac").await;
    let kubeconfig = ns
        .service_account_kubeconfig("dynamo-operator")
        .await
        .unwrap();
    assert_success("role", &ns.kubectl_apply(&restricted_role(&ns.name)));
    let operator = start_operator_as(&ns, &kubeconfig, &["--leader-elect"]);
    assert_success("apply", &ns.kubectl_apply(&example("vllm-agg.yaml")));
    wait_graph_state(&ns, "vllm-agg", "successful").await;
    let log = operator.log_text();
    assert!(
        !log.contains("forbidden"),
        "the operator needed more than its Role:\n{log}"
    );
    // The cluster runs LeaderWorkerSet, which this Role (an older chart's) does not cover: the
    // operator goes without it, says so, and runs every other graph.
    assert!(
        log.contains("may not list leaderworkersets"),
        "no warning about the LeaderWorkerSet API it may not use:\n{log}"
    );
}

/// With no webhook in front of it, the operator applies the webhook's rules itself: a graph that
/// breaks one is `failed` with reason `ValidationFailed` naming the field, and gets no children.
#[tokio::test]
async fn without_the_webhook_an_invalid_graph_fails_with_the_rule_and_gets_no_children() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("novalid").await;
    let _operator = start_operator(&ns, &INGRESS_CLASS);
    let manifest = dynamo_e2e::manifests::graph("parallel-order")
        .backend("vllm")
        .service("Frontend", "componentType: frontend\n")
        .service("Worker", "componentType: worker\n")
        .spec(
            "restart:\n  id: r1\n  strategy:\n    type: Parallel\n    order: [Worker, Frontend]\n",
        )
        .yaml();
    assert_success("apply parallel-order", &ns.kubectl_apply(&manifest));

    let graph = wait_graph_state(&ns, "parallel-order", "failed").await;
    let ready = &graph.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ValidationFailed")
    );
    assert!(
        ready.message.contains("spec.restart.strategy.order"),
        "{}",
        ready.message
    );
    let components: Api<DynamoComponentDeployment> = ns.api();
    assert!(
        components
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "an invalid graph gets no components"
    );
}
