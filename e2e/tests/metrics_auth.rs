//! The operator's authenticated metrics endpoint (what the chart's metrics Service points at):
//! the real API server reviews each caller's token and its right to `get` /metrics.

use std::time::Duration;

use dynamo_e2e::operator::start_operator;
use dynamo_e2e::ports::free_address;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET /metrics` over HTTPS; returns the status code and the body.
async fn get_metrics(address: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let config = dynamo_e2e::tls::trusting_any_certificate();
    let stream = tokio::net::TcpStream::connect(address).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

fn reader_rbac(ns: &str, owner_uid: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {ns}-metrics-reader
  ownerReferences: [{{apiVersion: v1, kind: Namespace, name: {ns}, uid: {owner_uid}}}]
rules:
  - nonResourceURLs: [/metrics]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {ns}-metrics-reader
  ownerReferences: [{{apiVersion: v1, kind: Namespace, name: {ns}, uid: {owner_uid}}}]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-metrics-reader}}
subjects: [{{kind: ServiceAccount, name: scraper, namespace: {ns}}}]
"#
    )
}

#[tokio::test]
async fn metrics_need_a_reviewed_token_with_the_right_to_get_them() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("metrics").await;
    let secure_address = free_address();
    let secure = secure_address.as_str();
    let _operator = start_operator(&ns, &["--metrics-secure-bind-address", secure]);
    wait_until(
        "the secure metrics port",
        Duration::from_secs(30),
        || async { get_metrics(secure, None).await.ok() },
    )
    .await;

    let (status, text) = get_metrics(secure, None).await.unwrap();
    assert_eq!(status, 401, "no token:\n{text}");
    let (status, text) = get_metrics(secure, Some("not-a-token")).await.unwrap();
    assert_eq!(status, 401, "a token the API server does not know:\n{text}");

    let token = ns.service_account_token("scraper").await.unwrap();
    let (status, text) = get_metrics(secure, Some(&token)).await.unwrap();
    assert_eq!(status, 403, "a ServiceAccount without the right:\n{text}");
    assert!(
        text.contains("scraper"),
        "the denial names the caller:\n{text}"
    );

    let uid = ns.uid().await;
    assert_success("grant", &ns.kubectl_apply(&reader_rbac(&ns.name, &uid)));
    // Decisions are cached per token for a minute, so each try after the grant uses a new
    // token (a denial seen before the grant propagated would otherwise stick).
    let ns = &ns;
    let (status, text) = wait_until(
        "the grant to take effect",
        Duration::from_secs(20),
        || async move {
            let token = ns.service_account_token("scraper").await.ok()?;
            let (status, text) = get_metrics(secure, Some(&token)).await.ok()?;
            (status == 200).then_some((status, text))
        },
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("dynamo_operator_"),
        "not the operator's metrics:\n{text}"
    );
}
