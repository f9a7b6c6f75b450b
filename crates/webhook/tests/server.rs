//! The admission server over real TLS: routing, limits, reviews, concurrency and certificate
//! rotation under load.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dynamo_certgen::mint::{self, KeyAlgorithm, Pem};
use dynamo_common::scope::Scope;
use dynamo_webhook::admission::Policy;
use dynamo_webhook::metrics::Metrics;
use dynamo_webhook::server::{self, App};
use dynamo_webhook::tls::{self, ReloadingCert};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "dynamo-webhook.dynamo-system.svc";

fn mint_pair(now: time::OffsetDateTime) -> (Pem, Pem) {
    let ca = mint::mint_ca(KeyAlgorithm::EcdsaP256, now, 30).unwrap();
    let leaf = mint::mint_leaf(&ca, &[HOST.to_owned()], KeyAlgorithm::EcdsaP256, now, 10).unwrap();
    (ca, leaf)
}

/// Writes the pair the way a Secret volume update lands: new files, then a rename.
fn install(dir: &Path, leaf: &Pem) {
    for (name, text) in [("tls.crt", &leaf.cert), ("tls.key", &leaf.key)] {
        let staging = dir.join(format!(".{name}.tmp"));
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, dir.join(name)).unwrap();
    }
}

struct Server {
    address: std::net::SocketAddr,
    health: std::net::SocketAddr,
    dir: tempdir::Dir,
    client: Arc<rustls::ClientConfig>,
    metrics_app: Arc<App>,
    stop: tokio::sync::watch::Sender<bool>,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("dynamo-webhook-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn client_config(cas: &[&Pem]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from_pem_slice(ca.cert.as_bytes()).unwrap())
            .unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn start(scope: Scope) -> (Server, Pem) {
    let dir = tempdir::Dir::new();
    let (ca, leaf) = mint_pair(time::OffsetDateTime::now_utc());
    install(&dir.0, &leaf);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(ReloadingCert::new(&dir.0, provider.clone()));
    let tls = tls::server_config(cert.clone(), provider).unwrap();
    let app = Arc::new(App {
        policy: Policy {
            scope,
            replica_managers: vec!["system:serviceaccount:dynamo-system:dynamo-operator".into()],
        },
        metrics: Metrics::default(),
        cert,
    });
    let listener = dynamo_common::bind("127.0.0.1:0").await.unwrap();
    let health_listener = dynamo_common::bind("127.0.0.1:0").await.unwrap();
    let (address, health) = (
        listener.local_addr().unwrap(),
        health_listener.local_addr().unwrap(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(server::serve_admission(
        listener,
        app.clone(),
        tls,
        stopped.clone(),
    ));
    tokio::spawn(dynamo_common::admin::serve(
        health_listener,
        app.clone(),
        stopped,
    ));
    let client = client_config(&[&ca]);
    (
        Server {
            address,
            health,
            dir,
            client,
            metrics_app: app,
            stop,
        },
        ca,
    )
}

/// One HTTP/1.1 request on a new TLS connection; returns (status, body).
async fn request(
    server: &Server,
    client: &Arc<rustls::ClientConfig>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let stream = tokio::net::TcpStream::connect(server.address)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(client.clone());
    let mut tls = connector
        .connect(ServerName::try_from(HOST).unwrap(), stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(body).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

fn review(operation: &str, object: Value, old: Option<Value>, namespace: &str) -> Vec<u8> {
    let kind = object["kind"].as_str().unwrap().to_owned();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "nvidia.com", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "nvidia.com", "version": "v1alpha1", "resource": "x"},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    }))
    .unwrap()
}

fn graph(backend: &str, services: Value) -> Value {
    json!({
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": "g", "namespace": "team-a"},
        "spec": {"backendFramework": backend, "services": services}
    })
}

fn response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap();
    review["response"].clone()
}

const GRAPH: &str = "/validate-nvidia-com-v1alpha1-dynamographdeployment";

#[tokio::test]
async fn routes_content_types_and_limits() {
    let (server, _) = start(Scope::cluster_wide()).await;
    let client = server.client.clone();
    let body = review(
        "CREATE",
        graph("vllm", json!({"Frontend": {}})),
        None,
        "team-a",
    );
    assert_eq!(
        request(&server, &client, "/nope", "application/json", &body)
            .await
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        request(&server, &client, GRAPH, "text/plain", &body)
            .await
            .unwrap()
            .0,
        415
    );
    let huge = vec![b' '; server::MAX_BODY_BYTES + 1];
    assert_eq!(
        request(&server, &client, GRAPH, "application/json", &huge)
            .await
            .unwrap()
            .0,
        413
    );

    // A review of another kind on the graph path is refused, not validated as a graph.
    let model = json!({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoModel",
        "metadata": {"name": "m", "namespace": "team-a"}, "spec": {"modelName": "a", "baseModelName": "b"}});
    let body = review("CREATE", model, None, "team-a");
    let (_, answer) = request(&server, &client, GRAPH, "application/json", &body)
        .await
        .unwrap();
    let answer = response(&answer);
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("validates DynamoGraphDeployment, not DynamoModel"),
        "{message}"
    );

    let (status, body) = request(&server, &client, GRAPH, "application/json", b"{not json")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let answer = response(&body);
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["status"]["reason"], "InvalidRequest", "{answer}");
}

#[tokio::test]
async fn valid_create_is_allowed_and_invalid_update_is_denied_naming_fields() {
    let (server, _) = start(Scope::cluster_wide()).await;
    let client = server.client.clone();
    let old = graph("vllm", json!({"Frontend": {"componentType": "frontend"}}));
    let (status, body) = request(
        &server,
        &client,
        GRAPH,
        "application/json",
        &review("CREATE", old.clone(), None, "team-a"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let answer = response(&body);
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");

    let new = graph(
        "sglang",
        json!({"Frontend": {"componentType": "frontend"}, "Worker": {}}),
    );
    let (_, body) = request(
        &server,
        &client,
        GRAPH,
        "application/json",
        &review("UPDATE", new, Some(old), "team-a"),
    )
    .await
    .unwrap();
    let answer = response(&body);
    assert_eq!(answer["allowed"], false, "{answer}");
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.backendFramework"), "{message}");
    assert!(message.contains("spec.services"), "{message}");

    let (_, metrics) = plain_get(server.health, "/metrics").await;
    assert!(
        metrics.contains("dynamo_operator_webhook_denials_total"),
        "{metrics}"
    );
    let _ = server.metrics_app.metrics.encode();
}

#[tokio::test]
async fn objects_in_a_namespace_outside_a_restricted_scope_are_allowed_unchecked() {
    let (server, _) = start(Scope::Restricted("mine".into())).await;
    let bad = graph("vllm", json!({}));
    let client = server.client.clone();
    let (_, body) = request(
        &server,
        &client,
        GRAPH,
        "application/json",
        &review("CREATE", bad.clone(), None, "other"),
    )
    .await
    .unwrap();
    assert_eq!(response(&body)["allowed"], true);
    let (_, body) = request(
        &server,
        &client,
        GRAPH,
        "application/json",
        &review("CREATE", bad, None, "mine"),
    )
    .await
    .unwrap();
    assert_eq!(response(&body)["allowed"], false);
}

async fn plain_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn ready_only_with_a_certificate() {
    let (server, _) = start(Scope::cluster_wide()).await;
    assert_eq!(plain_get(server.health, "/readyz").await.0, 200);
    assert_eq!(plain_get(server.health, "/healthz").await.0, 200);

    let empty = tempdir::Dir::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = ReloadingCert::new(&empty.0, provider);
    assert!(!cert.is_ready());
    let _ = server.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reviews_are_all_answered() {
    let (server, _) = start(Scope::cluster_wide()).await;
    let server = Arc::new(server);
    let body = Arc::new(review(
        "CREATE",
        graph("vllm", json!({"Frontend": {}})),
        None,
        "team-a",
    ));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let server = server.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let client = server.client.clone();
                request(&server, &client, GRAPH, "application/json", &body).await
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert_eq!(response(&body)["allowed"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_no_handshake() {
    let (server, old_ca) = start(Scope::cluster_wide()).await;
    let (new_ca, new_leaf) = mint_pair(time::OffsetDateTime::now_utc());
    // The API server's bundle holds both CAs during a rotation.
    let both = client_config(&[&old_ca, &new_ca]);
    let only_new = client_config(&[&new_ca]);
    let server = Arc::new(server);
    let body = Arc::new(review(
        "CREATE",
        graph("vllm", json!({"Frontend": {}})),
        None,
        "team-a",
    ));
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (server, body, running, both) =
                (server.clone(), body.clone(), running.clone(), both.clone());
            let (ok, failed) = (ok.clone(), failed.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    match request(&server, &both, GRAPH, "application/json", &body).await {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A half-written pair first: it must be ignored, the old pair stays in use.
    std::fs::write(server.dir.0.join("tls.crt"), &new_leaf.cert[..40]).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    install(&server.dir.0, &new_leaf);
    let rotated_at = Instant::now();
    let picked_up = loop {
        if request(&server, &only_new, GRAPH, "application/json", &body)
            .await
            .is_ok()
        {
            break rotated_at.elapsed();
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(5),
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    println!(
        "rotation: {} reviews answered, {} failed, new certificate served after {picked_up:?}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 20);
    assert!(picked_up <= Duration::from_secs(2), "took {picked_up:?}");
}
