//! The DynamoModel controller against the real API server: a graph whose worker serves a base
//! model gets its headless Service, whose EndpointSlices name the (kwok) worker pods; a small
//! fake model server listens at each pod's IP (the cluster network namespace routes the whole
//! pod range to local listeners) and records the LoRA requests the operator sends.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamo_api::v1alpha1::DynamoModel;
use dynamo_e2e::manifests::graph;
use dynamo_e2e::operator::start_operator;
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BASE: &str = "meta-llama/Llama-3.1-8B-Instruct";

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    body: String,
}

/// A model server at one pod IP: records each request and answers with the next status of
/// `answers` (200 once they run out).
#[derive(Clone, Default)]
struct FakeServer {
    requests: Arc<Mutex<Vec<Request>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

impl FakeServer {
    async fn start(ip: Ipv4Addr, failures_first: usize) -> FakeServer {
        let server = FakeServer::default();
        *server.answers.lock().unwrap() = vec![500; failures_first];
        let listener = tokio::net::TcpListener::bind((ip, 9090))
            .await
            .unwrap_or_else(|e| panic!("listening on {ip}:9090: {e}"));
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let (head, body_start) = loop {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buffer[..n]);
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&data[..end]).into_owned(), end + 4);
                        }
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while data.len() < body_start + length {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        data.extend_from_slice(&buffer[..n]);
                    }
                    let mut first = head.lines().next().unwrap_or("").split_whitespace();
                    let request = Request {
                        method: first.next().unwrap_or("").to_owned(),
                        path: first.next().unwrap_or("").to_owned(),
                        body: String::from_utf8_lossy(&data[body_start..]).into_owned(),
                    };
                    state.requests.lock().unwrap().push(request);
                    let code = {
                        let mut answers = state.answers.lock().unwrap();
                        if answers.is_empty() {
                            200
                        } else {
                            answers.remove(0)
                        }
                    };
                    let response = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    fn count(&self, method: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    fn last(&self, method: &str) -> Option<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.method == method)
            .cloned()
    }
}

/// A graph whose `replicas` workers serve the base model.
fn lora_graph(replicas: u32) -> String {
    graph("lora")
        .backend("vllm")
        .service(
            "Worker",
            &format!(
                r#"
                componentType: worker
                replicas: {replicas}
                modelRef:
                  name: "{BASE}"
                extraPodSpec:
                  mainContainer:
                    image: registry.invalid/vllm-runtime:1
                "#
            ),
        )
        .yaml()
}

const MODEL: &str = r#"apiVersion: nvidia.com/v1alpha1
kind: DynamoModel
metadata:
  name: sql
spec:
  modelName: sql-lora
  baseModelName: meta-llama/Llama-3.1-8B-Instruct
  modelType: lora
  source:
    uri: "hf://acme/sql-lora@main"
"#;

/// The ready pod IPs behind the base model's Service, from its EndpointSlices.
async fn pod_ips(ns: &TestNamespace, count: usize) -> Vec<Ipv4Addr> {
    let slices: Api<EndpointSlice> = ns.api();
    wait_until(
        &format!("{count} ready endpoints of the model Service"),
        Duration::from_secs(60),
        || async {
            let list = slices
                .list(&ListParams::default().labels("nvidia.com/dynamo-base-model-hash"))
                .await
                .ok()?;
            let mut ips: Vec<Ipv4Addr> = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                .filter_map(|e| e.addresses.first()?.parse().ok())
                .collect();
            ips.sort();
            ips.dedup();
            (ips.len() == count).then_some(ips)
        },
    )
    .await
}

async fn wait_model(ns: &TestNamespace, ready: i32, total: i32) -> DynamoModel {
    let models: Api<DynamoModel> = ns.api();
    wait_until(
        &format!("{ready}/{total} endpoints ready"),
        Duration::from_secs(60),
        || async {
            let model = models.get("sql").await.ok()?;
            let status = model.status.as_ref()?;
            (status.ready_endpoints == Some(ready) && status.total_endpoints == Some(total))
                .then_some(model)
        },
    )
    .await
}

fn condition<'a>(model: &'a DynamoModel, kind: &str) -> (&'a str, &'a str) {
    let c = model
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == kind))
        .unwrap_or_else(|| panic!("no {kind} condition"));
    (c.status.as_str(), c.reason.as_str())
}

#[tokio::test]
async fn lora_adapters_follow_the_serving_pods() {
    let cluster = Cluster::get();
    cluster.install_crds().await;
    let ns = TestNamespace::new("model").await;
    let _operator = start_operator(&ns, &[]);
    assert_success("graph", &ns.kubectl_apply(&lora_graph(2)));
    let ips = pod_ips(&ns, 2).await;
    // The second pod's server fails twice before it accepts the adapter.
    let mut servers: BTreeMap<Ipv4Addr, FakeServer> = BTreeMap::new();
    servers.insert(ips[0], FakeServer::start(ips[0], 0).await);
    servers.insert(ips[1], FakeServer::start(ips[1], 2).await);

    assert_success("model", &ns.kubectl_apply(MODEL));
    let model = wait_model(&ns, 2, 2).await;
    assert_eq!(
        condition(&model, "EndpointsReady"),
        ("True", "AllEndpointsReady")
    );
    assert_eq!(
        condition(&model, "ServicesFound"),
        ("True", "ServicesFound")
    );
    let first = &servers[&ips[0]];
    let flaky = &servers[&ips[1]];
    assert_eq!(
        first.count("POST"),
        1,
        "the healthy endpoint was called again"
    );
    assert_eq!(
        flaky.count("POST"),
        3,
        "two failures, then the retry that worked"
    );
    let load = first.last("POST").unwrap();
    assert_eq!(load.path, "/v1/loras");
    let body: serde_json::Value = serde_json::from_str(&load.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"lora_name": "sql-lora", "source": {"uri": "hf://acme/sql-lora@main"}})
    );
    let endpoints = model.status.as_ref().unwrap().endpoints.clone().unwrap();
    assert!(
        endpoints
            .iter()
            .all(|e| e.ready && e.pod_name.is_some() && e.address.ends_with(":9090")),
        "{endpoints:?}"
    );

    // A third worker gets the adapter; the loaded two are not called again.
    assert_success("scale", &ns.kubectl_apply(&lora_graph(3)));
    let now = pod_ips(&ns, 3).await;
    let new_ip = *now.iter().find(|ip| !servers.contains_key(ip)).unwrap();
    servers.insert(new_ip, FakeServer::start(new_ip, 0).await);
    wait_model(&ns, 3, 3).await;
    assert!(servers[&new_ip].count("POST") >= 1);
    assert_eq!(servers[&ips[0]].count("POST"), 1);
    assert_eq!(servers[&ips[1]].count("POST"), 3);

    // A pod that goes away leaves the status.
    assert_success("scale down", &ns.kubectl_apply(&lora_graph(2)));
    let model = wait_model(&ns, 2, 2).await;
    let listed: Vec<String> = model
        .status
        .unwrap()
        .endpoints
        .unwrap()
        .into_iter()
        .map(|e| e.address)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");

    // Deleting the model unloads it everywhere, then it is gone.
    let models: Api<DynamoModel> = ns.api();
    models
        .delete("sql", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the model deleted", Duration::from_secs(30), || async {
        models.get_opt("sql").await.ok()?.is_none().then_some(())
    })
    .await;
    let unloaded: Vec<&Ipv4Addr> = servers
        .iter()
        .filter(|(_, server)| {
            server
                .last("DELETE")
                .is_some_and(|r| r.path == "/v1/loras/sql-lora")
        })
        .map(|(ip, _)| ip)
        .collect();
    assert_eq!(
        unloaded.len(),
        2,
        "unload requests to the two remaining endpoints: {unloaded:?}"
    );

    // A malformed source (the webhook is off here) is reported, and nothing is called.
    let calls: usize = servers
        .values()
        .map(|s| s.requests.lock().unwrap().len())
        .sum();
    assert_success(
        "bad model",
        &ns.kubectl_apply(&MODEL.replace("hf://acme/sql-lora@main", "ftp://elsewhere/x")),
    );
    let model = wait_until(
        "the invalid model reported",
        Duration::from_secs(30),
        || async {
            let model = models.get("sql").await.ok()?;
            model
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Valid")
                .then_some(model)
        },
    )
    .await;
    assert_eq!(condition(&model, "Valid"), ("False", "ValidationFailed"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: usize = servers
        .values()
        .map(|s| s.requests.lock().unwrap().len())
        .sum();
    assert_eq!(after, calls, "an invalid model caused requests");
}
