//! dynamo-certgen against the local control plane, as a ServiceAccount with only the RBAC
//! its documentation lists.

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_e2e::{Cluster, TestNamespace, assert_success};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

const SERVICE: &str = "dynamo-webhook";
const SECRET: &str = "webhook-server-cert";

/// Role and ClusterRole exactly as `dynamo-certgen --help` documents them.
fn rbac(ns: &str, configuration: &str, owner_uid: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: certgen, namespace: {ns}}}
rules:
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [{SECRET}]
    verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: certgen, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: certgen}}
subjects: [{{kind: ServiceAccount, name: certgen, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {configuration}
  ownerReferences: [{{apiVersion: v1, kind: Namespace, name: {ns}, uid: {owner_uid}}}]
rules:
  - apiGroups: [admissionregistration.k8s.io]
    resources: [validatingwebhookconfigurations]
    resourceNames: [{configuration}]
    verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {configuration}
  ownerReferences: [{{apiVersion: v1, kind: Namespace, name: {ns}, uid: {owner_uid}}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {configuration}}}
subjects: [{{kind: ServiceAccount, name: certgen, namespace: {ns}}}]
"#
    )
}

/// A configuration with `count` webhooks that never match anything, owned by the test
/// namespace so it goes away with it.
fn configuration(ns: &str, name: &str, owner_uid: &str, count: usize) -> String {
    let webhooks: String = (0..count)
        .map(|i| {
            format!(
                r#"
  - name: hook{i}.nvidia.com
    clientConfig:
      service: {{name: {SERVICE}, namespace: {ns}, path: /validate, port: 443}}
    rules: [{{apiGroups: [nvidia.com], apiVersions: [v1alpha1], operations: [CREATE], resources: [dynamomodels]}}]
    objectSelector: {{matchLabels: {{never: match}}}}
    failurePolicy: Ignore
    sideEffects: None
    admissionReviewVersions: [v1]"#
            )
        })
        .collect();
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
  ownerReferences: [{{apiVersion: v1, kind: Namespace, name: {ns}, uid: {owner_uid}}}]
webhooks:{webhooks}
"#
    )
}

struct Setup {
    ns: TestNamespace,
    configuration: String,
    kubeconfig: std::path::PathBuf,
}

async fn setup(prefix: &str, webhooks: usize) -> Setup {
    let ns = TestNamespace::new(prefix).await;
    let uid = ns.uid().await;
    let configuration = format!("{}-hooks", ns.name);
    let kubeconfig = ns.service_account_kubeconfig("certgen").await.unwrap();
    assert_success(
        "apply RBAC",
        &ns.kubectl_apply(&rbac(&ns.name, &configuration, &uid)),
    );
    assert_success(
        "apply configuration",
        &ns.kubectl_apply(&configuration_yaml(&ns, &configuration, webhooks, &uid)),
    );
    Setup {
        ns,
        configuration,
        kubeconfig,
    }
}

fn configuration_yaml(ns: &TestNamespace, name: &str, count: usize, uid: &str) -> String {
    configuration(&ns.name, name, uid, count)
}

impl Setup {
    /// Runs dynamo-certgen as the certgen ServiceAccount; returns its output and wall time.
    fn certgen(&self, extra: &[&str]) -> (Output, Duration) {
        self.certgen_for(SERVICE, extra)
    }

    fn certgen_for(&self, service: &str, extra: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let output = std::process::Command::new(Cluster::get().our_binary("dynamo-certgen"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .args(["--namespace", &self.ns.name, "--service-name", service])
            .args(["--validating-configuration", &self.configuration])
            .args(extra)
            .output()
            .expect("running dynamo-certgen");
        (output, started.elapsed())
    }

    async fn secret(&self) -> Secret {
        self.ns.api::<Secret>().get(SECRET).await.unwrap()
    }

    async fn configuration(&self) -> ValidatingWebhookConfiguration {
        Api::<ValidatingWebhookConfiguration>::all(self.ns.client.clone())
            .get(&self.configuration)
            .await
            .unwrap()
    }

    async fn bundles(&self) -> Vec<Option<Vec<u8>>> {
        self.configuration()
            .await
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.client_config.ca_bundle.map(|b| b.0))
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

fn data(secret: &Secret, key: &str) -> Vec<u8> {
    secret.data.as_ref().unwrap()[key].0.clone()
}

#[tokio::test]
async fn first_run_writes_everything_and_second_run_writes_nothing() {
    let setup = setup("certgen", 4).await;
    // A dry run says what it would do and does nothing.
    let (dry, _) = setup.certgen(&["--dry-run"]);
    assert_success("dry run", &dry);
    let log = stderr(&dry);
    assert!(log.contains("would write Secret"), "{log}");
    assert!(log.contains("would patch caBundle in 4 webhooks"), "{log}");
    assert!(
        setup
            .ns
            .api::<Secret>()
            .get_opt(SECRET)
            .await
            .unwrap()
            .is_none()
    );
    assert!(setup.bundles().await.iter().all(Option::is_none));

    let (first, first_time) = setup.certgen(&[]);
    assert_success("first certgen run", &first);
    let log = stderr(&first);
    assert!(log.contains("renewed CA and leaf: ca.crt missing"), "{log}");
    assert!(log.contains("patched caBundle in 4 webhooks"), "{log}");

    let secret = setup.secret().await;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let ca = data(&secret, "ca.crt");
    assert!(
        setup
            .bundles()
            .await
            .iter()
            .all(|b| b.as_deref() == Some(&ca[..]))
    );

    let secret_version = secret.metadata.resource_version.clone();
    let configuration_version = setup.configuration().await.metadata.resource_version;
    let (second, second_time) = setup.certgen(&[]);
    assert_success("second certgen run", &second);
    let log = stderr(&second);
    assert!(log.contains("kept: valid until"), "{log}");
    assert!(log.contains("writes=0"), "{log}");
    assert_eq!(
        setup.secret().await.metadata.resource_version,
        secret_version
    );
    assert_eq!(
        setup.configuration().await.metadata.resource_version,
        configuration_version
    );
    println!("certgen first run {first_time:?}, no-op run {second_time:?}");

    // A fifth webhook added later gets the bundle on the next run, by name.
    let uid = setup.ns.uid().await;
    let five = configuration_yaml(&setup.ns, &setup.configuration, 5, &uid);
    assert_success("add a fifth webhook", &setup.ns.kubectl_apply(&five));
    let (third, _) = setup.certgen(&[]);
    assert_success("third certgen run", &third);
    assert!(
        stderr(&third).contains("patched caBundle in 1 webhooks"),
        "{}",
        stderr(&third)
    );
    let bundles = setup.bundles().await;
    assert_eq!(bundles.len(), 5);
    assert!(bundles.iter().all(|b| b.as_deref() == Some(&ca[..])));
    assert_eq!(
        setup.secret().await.metadata.resource_version,
        secret_version
    );
}

#[tokio::test]
async fn a_client_trusting_the_patched_bundle_accepts_the_served_certificate() {
    let setup = setup("certgen-tls", 1).await;
    assert_success("certgen", &setup.certgen(&[]).0);
    let secret = setup.secret().await;
    let bundle = setup.bundles().await.remove(0).unwrap();
    let server_name = format!("{SERVICE}.{}.svc", setup.ns.name);
    handshake(
        &data(&secret, "tls.crt"),
        &data(&secret, "tls.key"),
        &bundle,
        &server_name,
    )
    .await
    .expect("TLS handshake with the patched caBundle");
    // And a client that expects another name refuses it.
    let wrong = handshake(
        &data(&secret, "tls.crt"),
        &data(&secret, "tls.key"),
        &bundle,
        "other.svc",
    )
    .await;
    assert!(
        wrong.is_err(),
        "a certificate for another name was accepted"
    );
}

/// Serves `cert`/`key` on loopback and connects with `bundle` as the only trust root.
async fn handshake(
    cert: &[u8],
    key: &[u8],
    bundle: &[u8],
    server_name: &str,
) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(cert)
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(bundle) {
        roots.add(ca.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let serve = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(stream).await;
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let result = connector
        .connect(name, stream)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    serve.abort();
    result
}

#[tokio::test]
async fn wrong_sans_expiring_and_garbage_secrets_are_renewed_with_the_reason() {
    let setup = setup("certgen-renew", 2).await;
    // A short-lived certificate is inside the default 30-day window on the next run.
    assert_success(
        "short-lived",
        &setup
            .certgen(&["--validity-days", "10", "--renew-before-days", "5"])
            .0,
    );
    let short = setup.secret().await;
    let (renewed, _) = setup.certgen(&[]);
    assert_success("renewal", &renewed);
    assert!(
        stderr(&renewed).contains("renewed leaf: tls.crt expires at"),
        "{}",
        stderr(&renewed)
    );
    let secret = setup.secret().await;
    assert_ne!(data(&secret, "tls.crt"), data(&short, "tls.crt"));
    assert_eq!(
        data(&secret, "ca.crt"),
        data(&short, "ca.crt"),
        "the CA stays"
    );

    // Another Service name: the SANs no longer fit.
    let (output, _) = setup.certgen_for("renamed-webhook", &[]);
    assert_success("SAN change", &output);
    assert!(
        stderr(&output).contains("renewed leaf: SAN missing: renamed-webhook"),
        "{}",
        stderr(&output)
    );

    // Garbage in the Secret is replaced, and the log says why.
    let patch = serde_json::json!({"data": {"tls.crt": "bm90IGEgY2VydGlmaWNhdGU="}});
    setup
        .ns
        .api::<Secret>()
        .patch(
            SECRET,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let (output, _) = setup.certgen(&[]);
    assert_success("garbage", &output);
    assert!(
        stderr(&output).contains("renewed leaf: tls.crt: "),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn missing_configuration_and_rbac_denial_fail_clearly() {
    let setup = setup("certgen-fail", 1).await;
    // The ServiceAccount may read the configuration, but it is not there (yet).
    Api::<ValidatingWebhookConfiguration>::all(setup.ns.client.clone())
        .delete(&setup.configuration, &Default::default())
        .await
        .unwrap();
    let started = Instant::now();
    let (output, _) = setup.certgen(&["--wait-for-configurations", "2s"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let expected = format!(
        "ValidatingWebhookConfiguration {} did not appear within 2s",
        setup.configuration
    );
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));

    // A ServiceAccount without any RBAC: the message names the verb and the resource.
    let nobody = setup.ns.service_account_kubeconfig("nobody").await.unwrap();
    let output = std::process::Command::new(Cluster::get().our_binary("dynamo-certgen"))
        .env("KUBECONFIG", &nobody)
        .args(["--namespace", &setup.ns.name, "--service-name", SERVICE])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(log.contains("get Secret webhook-server-cert"), "{log}");
    assert!(log.contains("cannot get resource \"secrets\""), "{log}");
}

/// The chart's flow: before install the configuration does not exist (skipped); the chart
/// creates it without webhooks; the post-install run adds every webhook with the CA in one
/// write; a further run writes nothing.
#[tokio::test]
async fn webhooks_from_the_chart_are_created_with_the_bundle_and_kept_current() {
    let setup = setup("certgen-tpl", 0).await;
    let deleted = setup.ns.kubectl_stdin(
        &[
            "delete",
            "validatingwebhookconfiguration",
            &setup.configuration,
        ],
        "",
    );
    assert_success("delete configuration", &deleted);
    let template = serde_json::json!([
        {"name": "one.nvidia.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "failurePolicy": "Ignore", "timeoutSeconds": 5,
         "clientConfig": {"service": {"name": SERVICE, "namespace": setup.ns.name, "path": "/one", "port": 443}},
         "rules": [{"apiGroups": ["nvidia.com"], "apiVersions": ["v1alpha1"], "operations": ["CREATE"], "resources": ["dynamomodels"]}],
         "objectSelector": {"matchLabels": {"never": "match"}}},
        {"name": "two.nvidia.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
         "failurePolicy": "Ignore",
         "clientConfig": {"service": {"name": SERVICE, "namespace": setup.ns.name, "path": "/two", "port": 443}},
         "rules": [{"apiGroups": ["nvidia.com"], "apiVersions": ["v1alpha1"], "operations": ["UPDATE"], "resources": ["dynamomodels"]}],
         "objectSelector": {"matchLabels": {"never": "match"}}}
    ])
    .to_string();

    // pre-install: no configuration yet, the Secret is written all the same.
    let (pre, _) = setup.certgen(&[
        "--skip-missing-configurations",
        "--validating-webhooks",
        &template,
    ]);
    assert_success("pre-install run", &pre);
    assert!(
        stderr(&pre).contains("does not exist yet; skipped"),
        "{}",
        stderr(&pre)
    );
    let ca = data(&setup.secret().await, "ca.crt");

    // Helm creates the configuration with no webhooks; the post-install run fills it.
    let uid = setup.ns.uid().await;
    assert_success(
        "create empty configuration",
        &setup.ns.kubectl_apply(&configuration(
            &setup.ns.name,
            &setup.configuration,
            &uid,
            0,
        )),
    );
    let (post, _) = setup.certgen(&[
        "--wait-for-configurations",
        "10s",
        "--validating-webhooks",
        &template,
    ]);
    assert_success("post-install run", &post);
    let stored = setup.configuration().await;
    let webhooks = stored.webhooks.clone().unwrap_or_default();
    let names: Vec<&str> = webhooks.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["one.nvidia.com", "two.nvidia.com"]);
    for webhook in &webhooks {
        assert_eq!(
            webhook.client_config.ca_bundle.as_ref().map(|b| &b.0),
            Some(&ca)
        );
        assert_eq!(webhook.failure_policy.as_deref(), Some("Ignore"));
    }
    assert_eq!(webhooks[0].timeout_seconds, Some(5));

    // Converged: nothing written, not the Secret and not the configuration.
    let before = (
        stored.metadata.resource_version.clone(),
        setup.secret().await.metadata.resource_version,
    );
    let (again, _) = setup.certgen(&["--validating-webhooks", &template]);
    assert_success("third run", &again);
    let after = (
        setup.configuration().await.metadata.resource_version,
        setup.secret().await.metadata.resource_version,
    );
    assert_eq!(before, after, "a converged run wrote:\n{}", stderr(&again));

    // A webhook changed by hand is put back.
    let patched = setup.ns.kubectl_stdin(
        &[
            "patch",
            "validatingwebhookconfiguration",
            &setup.configuration,
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/webhooks/1/failurePolicy", "value": "Fail"}]"#,
        ],
        "",
    );
    assert_success("hand edit", &patched);
    let (repair, _) = setup.certgen(&["--validating-webhooks", &template]);
    assert_success("repair run", &repair);
    let webhooks = setup.configuration().await.webhooks.unwrap();
    assert_eq!(webhooks[1].failure_policy.as_deref(), Some("Ignore"));
}
