//! `helm upgrade` of a release the upstream chart made: its controller-manager Deployment has
//! upstream's selector (immutable) and upstream's pod labels, and upgrading the release to this
//! chart must patch it in place.

use std::time::Duration;

use dynamo_e2e::platform::{ClusterToItself, Installed, helm_chart, operator_fullname};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};

const RELEASE: &str = "dp";

/// The selector upstream's chart gives the manager Deployment of release `dp`.
fn upstream_selector() -> LabelSelector {
    let path = Cluster::get()
        .repo
        .join("e2e/fixtures/upstream-manager-selector.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn a_release_of_the_upstream_chart_upgrades_to_this_one() {
    let _turn = ClusterToItself::wait().await;
    Cluster::get().install_crds().await;
    let ns = TestNamespace::new("upgrade").await;
    let _installed = Installed {
        release: RELEASE,
        namespace: ns.name.clone(),
    };
    assert_success(
        "helm install",
        &helm_chart("install", RELEASE, &ns.name, &[]),
    );

    // Turn the release's manager Deployment into the one upstream's chart made: upstream's
    // selector, and only upstream's labels on the pods.
    let deployments: Api<Deployment> = ns.api();
    let name = format!("{}-controller-manager", operator_fullname(RELEASE));
    let ours = deployments.get(&name).await.unwrap();
    let selector = upstream_selector();
    let mut upstream = Deployment {
        metadata: ObjectMeta {
            name: ours.metadata.name.clone(),
            labels: ours.metadata.labels.clone(),
            annotations: ours.metadata.annotations.clone(),
            ..Default::default()
        },
        spec: ours.spec.clone(),
        status: None,
    };
    let spec = upstream.spec.as_mut().unwrap();
    spec.selector = selector.clone();
    spec.template.metadata.as_mut().unwrap().labels = selector.match_labels.clone();
    deployments
        .delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    wait_until(
        "the old Deployment gone",
        Duration::from_secs(60),
        || async {
            deployments
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    deployments
        .create(&PostParams::default(), &upstream)
        .await
        .unwrap();

    assert_success(
        "helm upgrade from the upstream-shaped release",
        &helm_chart("upgrade", RELEASE, &ns.name, &[]),
    );
    let upgraded = deployments.get(&name).await.unwrap();
    let spec = upgraded.spec.unwrap();
    assert_eq!(spec.selector, selector, "the selector stays upstream's");
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert_eq!(
        labels
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some("manager"),
        "the pods carry this chart's labels after the upgrade: {labels:?}"
    );
    let status = upgraded.status.unwrap_or_default();
    assert_eq!(status.ready_replicas, Some(1), "upgraded manager is ready");
}
