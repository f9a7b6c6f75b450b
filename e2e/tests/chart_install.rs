//! The platform chart against the real API server: its rendered objects are accepted, and
//! `helm install --dry-run=server` hits every row of the operator conflict table.
//!
//! The installs here are cluster-wide in effect (they create ClusterRoles that other installs
//! detect), so the conflict table runs as one sequential test.

use std::process::Output;

use dynamo_e2e::chart;
use dynamo_e2e::{Cluster, TestNamespace, assert_success};

fn helm(args: &[&str]) -> Output {
    Cluster::get().run_helm(args)
}

/// `helm install|upgrade RELEASE` of the offline chart into `namespace`.
fn install(verb: &str, release: &str, namespace: &str, extra: &[&str]) -> Output {
    // Nothing in these tests needs the webhook or the hook Jobs: the conflict checks read the
    // manager RBAC only.
    let mut args = vec![
        "--set",
        "dynamo-operator.webhook.enabled=false",
        "--set",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false",
    ];
    args.extend(extra);
    Cluster::get().helm_platform(verb, release, namespace, &args)
}

fn dry_run(release: &str, namespace: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--dry-run=server"];
    args.extend(extra);
    install("install", release, namespace, &args)
}

fn restricted(target: &str) -> Vec<String> {
    vec![
        "--set".into(),
        "dynamo-operator.namespaceRestriction.enabled=true".into(),
        "--set".into(),
        format!("dynamo-operator.namespaceRestriction.targetNamespace={target}"),
    ]
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn assert_blocked(what: &str, output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} was allowed:\n{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{what}: {needle:?} missing from:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn rendered_objects_are_accepted_by_the_api_server() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("chart-accept").await;
    let restricted_values = restricted(&ns.name);
    // The API server checks that caBundle is base64; the chart checks it holds a PEM.
    let external_ca =
        chart::base64_encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let external = [
        "--set".to_owned(),
        "dynamo-operator.webhook.certificateSecret.external=true".to_owned(),
        "--set".to_owned(),
        format!("dynamo-operator.webhook.caBundle={external_ca}"),
    ];
    for (what, values) in [
        ("cluster-wide defaults", vec![]),
        ("namespace-restricted", as_strs(&restricted_values)),
        ("external certificates", as_strs(&external)),
    ] {
        let rendered = chart::template(&format!("acc{}", what.len()), &ns.name, &values)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let yaml: String = rendered
            .objects
            .iter()
            .map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap()))
            .collect();
        let output = ns.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &yaml);
        assert_success(&format!("kubectl apply --dry-run=server ({what})"), &output);
        let applied = String::from_utf8_lossy(&output.stdout);
        assert!(
            applied.lines().count() >= 15,
            "{what}: only {applied} was applied"
        );
    }
}

#[tokio::test]
async fn install_time_checks_follow_the_conflict_table() {
    Cluster::get().install_crds().await;
    let first = TestNamespace::new("chart-a").await;
    let second = TestNamespace::new("chart-b").await;
    let third = TestNamespace::new("chart-c").await;

    // None → cluster-wide, None → restricted: allowed.
    assert_success("first cluster-wide", &dry_run("cw-new", &first.name, &[]));
    assert_success(
        "first restricted",
        &dry_run("ns-new", &first.name, &as_strs(&restricted(&first.name))),
    );

    // An installed cluster-wide operator blocks a second one; a restricted one beside it
    // (hybrid mode) is allowed.
    assert_success(
        "install cluster-wide",
        &install("install", "cw-a", &first.name, &[]),
    );
    assert_blocked(
        "cluster-wide after cluster-wide",
        &dry_run("cw-b", &second.name, &[]),
        &[
            "cluster-wide Dynamo operator is already installed",
            "\"cw-a\"",
            &first.name,
        ],
    );
    assert_success(
        "restricted after cluster-wide",
        &dry_run("ns-b", &second.name, &as_strs(&restricted(&second.name))),
    );
    // Upgrading the installed release is not a conflict with itself.
    assert_success(
        "upgrade of the installed release",
        &install("upgrade", "cw-a", &first.name, &["--dry-run=server"]),
    );
    assert_success(
        "uninstall cluster-wide",
        &helm(&["uninstall", "cw-a", "--namespace", &first.name, "--wait"]),
    );

    // An installed restricted operator blocks a second one on the same namespace; another
    // namespace is fine, and so is a cluster-wide one (hybrid mode).
    assert_success(
        "install restricted",
        &install(
            "install",
            "ns-a",
            &first.name,
            &as_strs(&restricted(&first.name)),
        ),
    );
    assert_success(
        "cluster-wide after restricted",
        &dry_run("cw-c", &second.name, &[]),
    );
    assert_success(
        "restricted in another namespace",
        &dry_run("ns-b", &second.name, &as_strs(&restricted(&second.name))),
    );
    assert_blocked(
        "restricted on the same namespace",
        &dry_run("ns-c", &third.name, &as_strs(&restricted(&first.name))),
        &["is already managed", "\"ns-a\""],
    );
    assert_success(
        "uninstall restricted",
        &helm(&["uninstall", "ns-a", "--namespace", &first.name, "--wait"]),
    );
    // With the conflicting release gone, the same namespace may be restricted again.
    assert_success(
        "restricted on the namespace after uninstall",
        &dry_run("ns-d", &third.name, &as_strs(&restricted(&first.name))),
    );
}
