//! The admission webhook behind a real kube-apiserver (see `dynamo_e2e::webhook`): registered
//! through an ordinary Service, with a certificate from dynamo-certgen, answering
//! `kubectl apply`.

use std::time::Duration;

use dynamo_api::labels::NAMESPACE_SCOPE_LEASE;
use dynamo_e2e::manifests::{Graph, graph};
use dynamo_e2e::webhook::{WebhookScope, accepts, rejects, start_webhook};
use dynamo_e2e::{Cluster, TestNamespace, wait_until};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

fn graphs(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("nvidia.com", "v1alpha1", "DynamoGraphDeployment");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

/// A frontend and a worker on `backend`.
fn aggregated(backend: &str) -> String {
    graph("agg")
        .backend(backend)
        .service("Frontend", "componentType: frontend")
        .service("Worker", "componentType: worker")
        .yaml()
}

/// An ingress without a host: a rule the schema cannot express, only the webhook.
fn ingress_without_host(name: &str) -> Graph {
    graph(name).service(
        "Frontend",
        "
        ingress:
          enabled: true
        ",
    )
}

#[tokio::test]
async fn kubectl_apply_is_admitted_or_rejected_by_the_live_webhook() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("webhook").await;
    let _webhook = start_webhook(&ns, WebhookScope::Restricted).await;

    accepts(&ns, &aggregated("vllm"));

    // Rejected by a rule the schema cannot express, with the field named.
    let refusal = rejects(
        &ns,
        &ingress_without_host("bad").yaml(),
        "spec.services.Frontend.ingress.host",
    );
    assert!(refusal.contains("denied the request"), "{refusal}");
    assert!(graphs(&ns).get_opt("bad").await.unwrap().is_none());

    // An update that changes the backend is rejected; the stored object is unchanged.
    let before = graphs(&ns).get("agg").await.unwrap();
    rejects(&ns, &aggregated("sglang"), "spec.backendFramework");
    let after = graphs(&ns).get("agg").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data["spec"]["backendFramework"], "vllm");

    // An object being deleted stays updatable so its finalizer can be removed, even by an
    // update the rules would otherwise refuse.
    let patch = serde_json::json!({"metadata": {"finalizers": ["e2e.dynamo/hold"]}});
    graphs(&ns)
        .patch("agg", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    graphs(&ns)
        .delete("agg", &Default::default())
        .await
        .unwrap();
    let release = serde_json::json!({"metadata": {"finalizers": null}, "spec": {"backendFramework": "trtllm"}});
    graphs(&ns)
        .patch("agg", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    wait_until("graph deleted", Duration::from_secs(20), || async {
        graphs(&ns)
            .get_opt("agg")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_cluster_wide_webhook_leaves_a_namespace_with_a_live_scope_marker_alone() {
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("webhook-scope").await;
    let _webhook = start_webhook(&ns, WebhookScope::ClusterWide).await;
    let invalid = |name: &str| ingress_without_host(name).yaml();
    rejects(
        &ns,
        &invalid("before"),
        "spec.services.Frontend.ingress.host",
    );

    // A namespace-restricted operator's marker: this namespace is its webhook's business.
    let leases: Api<Lease> = ns.api();
    let marker = Lease {
        metadata: ObjectMeta {
            name: Some(NAMESPACE_SCOPE_LEASE.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("namespace-restricted-operator-test".into()),
            lease_duration_seconds: Some(30),
            acquire_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    leases.create(&Default::default(), &marker).await.unwrap();
    let started = std::time::Instant::now();
    wait_until("marker honoured", Duration::from_secs(10), || async {
        ns.kubectl_apply(&invalid("during"))
            .status
            .success()
            .then_some(())
    })
    .await;
    println!("marker honoured after {:?}", started.elapsed());

    // Marker deleted: validation resumes.
    leases
        .delete(NAMESPACE_SCOPE_LEASE, &Default::default())
        .await
        .unwrap();
    wait_until("validation resumed", Duration::from_secs(10), || async {
        (!ns.kubectl_apply(&invalid("after")).status.success()).then_some(())
    })
    .await;
}
