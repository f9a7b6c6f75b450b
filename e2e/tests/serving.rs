//! Upstream Dynamo's runtime in the loop: upstream's mocker graphs (`e2e/fixtures/upstream/
//! mocker-*.yaml`), applied with kubectl as users write them on the platform installed with
//! helm, serve chat completions through the objects the operator created. The frontend and the
//! mock workers are the real `ai-dynamo` 1.6.1 processes (hack/dynamo-runtime.sh), run by the
//! node agent in their pods' network namespaces with the pods' environment, ServiceAccount
//! token and probes; they find each other through the `kubernetes` discovery backend:
//! EndpointSlices the real endpointslice controller publishes from the operator's Services,
//! and the DynamoWorkerMetadata objects the workers write, collected by the real garbage
//! collector when their pods go.
//!
//! The figures the issue asks for (time from apply to the first completion, RSS of the
//! processes, latency of 200 sequential completions) are printed, not asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dynamo_api::v1alpha1::{DynamoGraphDeployment, DynamoWorkerMetadata};
use dynamo_e2e::http::HttpClient;
use dynamo_e2e::operator::wait_graph_ready;
use dynamo_e2e::platform::{ClusterToItself, Installed, helm_chart};
use dynamo_e2e::{Cluster, TestNamespace, assert_success, wait_until};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The model upstream's mocker graphs serve (the tiny offline model stands in for it).
const MODEL: &str = "nvidia/Llama-3.1-8B-Instruct-FP8";
/// Real processes start, pass their probes and find each other within this.
const SERVING_WITHIN: Duration = Duration::from_secs(180);

#[tokio::test]
async fn upstream_mocker_graphs_serve_chat_completions() {
    let runtime = std::env::var("DYNAMO_E2E_RUNTIME").unwrap_or_default();
    assert!(
        !runtime.is_empty(),
        "DYNAMO_E2E_RUNTIME is not set: run the e2e tests through hack/e2e.sh, which installs \
         upstream's runtime (hack/dynamo-runtime.sh) and gives it to the node agent"
    );
    let _cluster = ClusterToItself::wait().await;
    Cluster::get().install_crds().await;
    let platform = TestNamespace::new("platform-for-serving").await;
    // Upstream's newer chart makes NATS optional: without it, no NATS address reaches pods.
    let installed = Installed {
        release: "serving",
        namespace: platform.name.clone(),
    };
    assert_success(
        "helm install (no NATS, no etcd)",
        &helm_chart(
            "install",
            installed.release,
            &platform.name,
            &[
                "--set",
                "global.nats.install=false",
                "--set",
                "global.etcd.install=false",
            ],
        ),
    );

    aggregated_graph_serves_scales_and_heals().await;
    disaggregated_graph_serves().await;
    drop(installed);
}

async fn aggregated_graph_serves_scales_and_heals() {
    let ns = TestNamespace::new("serving").await;
    let applied = Instant::now();
    assert_success(
        "apply mocker-agg",
        &ns.kubectl_apply(&fixture("mocker-agg.yaml")),
    );
    wait_graph_ready(&ns, "mocker-agg").await;
    let ready_after = applied.elapsed();
    let frontend = pods(&ns, "mocker-agg", "frontend").await;
    assert_eq!(frontend.len(), 1, "one frontend pod");
    let frontend_address = address(&frontend[0], 8000);
    let mut http = HttpClient::new(frontend_address);
    wait_for_model(frontend_address).await;
    let (text, _) = chat(&mut http, "Hello, what is Kubernetes?").await;
    let first_completion_after = applied.elapsed();
    assert!(!text.trim().is_empty(), "a completion with text");
    let streamed = stream_chat(&mut http).await;
    assert!(
        !streamed.trim().is_empty(),
        "a streamed completion with text"
    );

    // Figures: 200 sequential completions, the processes' memory.
    let mut latencies = Vec::with_capacity(200);
    for i in 0..200 {
        let started = Instant::now();
        chat(&mut http, &format!("request {i}")).await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let workers = pods(&ns, "mocker-agg", "worker").await;
    eprintln!(
        "serving (mocker-agg): Ready {ready_after:.1?} and first completion {first_completion_after:.1?} \
         after kubectl apply; 200 sequential completions (16 tokens): p50 {:.1?}, p99 {:.1?}; \
         RSS frontend {} MiB, worker {} MiB",
        latencies[99],
        latencies[197],
        rss_mib(&frontend[0]),
        rss_mib(&workers[0]),
    );

    // Scaling the worker 1 → 2: both register and both serve.
    let graphs: Api<DynamoGraphDeployment> = ns.api();
    graphs
        .patch(
            "mocker-agg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"decode": {"replicas": 2}}}})),
        )
        .await
        .unwrap();
    let workers = wait_registered(&ns, frontend_address, 2).await;
    let served = serving_workers(&mut http, 30).await;
    assert_eq!(
        served, 2,
        "the frontend routes to both workers ({workers:?})"
    );

    // A worker pod deleted: the frontend keeps answering through the other, and the
    // replacement registers.
    let gone = workers[0].clone();
    Api::<Pod>::namespaced(ns.client.clone(), &ns.name)
        .delete(&gone, &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    let (mut answered, mut unavailable) = (0, 0);
    while deleted.elapsed() < Duration::from_secs(5) {
        // Until the frontend sees the worker go, a request routed to it is answered 503
        // (upstream's router); a client's retry then reaches the other worker.
        let text = loop {
            match try_chat(&mut http, "still there?").await {
                Ok(text) => break text,
                Err(503) if unavailable < 3 => unavailable += 1,
                Err(status) => panic!("chat completion while a worker went: HTTP {status}"),
            }
        };
        assert!(!text.is_empty());
        answered += 1;
    }
    let workers = wait_registered(&ns, frontend_address, 2).await;
    assert!(
        !workers.contains(&gone),
        "the deleted pod's metadata is gone: {workers:?}"
    );
    eprintln!(
        "serving (mocker-agg): {answered} completions answered while worker {gone} went \
         ({unavailable} retried after a 503); replacement registered {:.1?} after the delete",
        deleted.elapsed()
    );

    // Deleting the graph: the metadata objects go with their pods (owner references).
    graphs
        .delete("mocker-agg", &DeleteParams::default())
        .await
        .unwrap();
    let metadata: Api<DynamoWorkerMetadata> = ns.api();
    wait_until(
        "no DynamoWorkerMetadata left",
        Duration::from_secs(90),
        || async {
            let left = metadata.list(&ListParams::default()).await.ok()?;
            left.items.is_empty().then_some(())
        },
    )
    .await;
}

async fn disaggregated_graph_serves() {
    let ns = TestNamespace::new("serving").await;
    let applied = Instant::now();
    assert_success(
        "apply mocker-disagg",
        &ns.kubectl_apply(&fixture("mocker-disagg.yaml")),
    );
    wait_graph_ready(&ns, "mocker-disagg").await;
    let frontend = pods(&ns, "mocker-disagg", "frontend").await;
    let frontend_address = address(&frontend[0], 8000);
    let mut http = HttpClient::new(frontend_address);
    wait_for_model(frontend_address).await;
    // Both workers registered: the prefill component and the decode one.
    let components = wait_until(
        "prefill and decode workers registered",
        SERVING_WITHIN,
        || async {
            let health = http_json(&mut HttpClient::new(frontend_address), "/health").await?;
            let mut components: Vec<String> = generate_instances(&health)
                .iter()
                .map(|i| i["component"].as_str().unwrap_or("").to_owned())
                .collect();
            components.sort();
            (components.len() == 2).then_some(components)
        },
    )
    .await;
    assert_eq!(components, ["backend", "prefill"], "registered components");
    let (text, usage) = chat(&mut http, "Hello from a disaggregated graph").await;
    assert!(!text.trim().is_empty());
    assert!(usage["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{usage}");
    eprintln!(
        "serving (mocker-disagg): first completion {:.1?} after kubectl apply",
        applied.elapsed()
    );
}

fn fixture(name: &str) -> String {
    let path = Cluster::get().repo.join("e2e/fixtures/upstream").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The graph's running pods of one component type (`frontend`, `worker`).
async fn pods(ns: &TestNamespace, graph: &str, component_type: &str) -> Vec<Pod> {
    let api: Api<Pod> = ns.api();
    let selector = format!(
        "nvidia.com/dynamo-graph-deployment-name={graph},nvidia.com/dynamo-component-type={component_type}"
    );
    api.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn address(pod: &Pod, port: u16) -> SocketAddr {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .expect("a running pod has an IP");
    SocketAddr::new(ip.parse().unwrap(), port)
}

async fn http_json(http: &mut HttpClient, path: &str) -> Option<Value> {
    let response = http.get(path).await.ok()?;
    (response.status == 200)
        .then(|| response.json().ok())
        .flatten()
}

/// Waits until `GET /v1/models` lists the model.
async fn wait_for_model(frontend: SocketAddr) {
    wait_until(
        &format!("/v1/models lists {MODEL}"),
        SERVING_WITHIN,
        || async {
            let models = http_json(&mut HttpClient::new(frontend), "/v1/models").await?;
            models["data"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == MODEL)
                .then_some(())
        },
    )
    .await;
}

/// A chat completion's text, or the HTTP status that was not 200.
async fn try_chat(http: &mut HttpClient, prompt: &str) -> Result<String, u16> {
    let request = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
    });
    let response = http
        .post_json("/v1/chat/completions", &request)
        .await
        .unwrap_or_else(|e| panic!("chat completion: {e:#}"));
    if response.status != 200 {
        return Err(response.status);
    }
    let body = response.json().unwrap();
    Ok(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {body}"))
        .to_owned())
}

/// A chat completion; its text and usage.
async fn chat(http: &mut HttpClient, prompt: &str) -> (String, Value) {
    let request = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
    });
    let response = http
        .post_json("/v1/chat/completions", &request)
        .await
        .unwrap_or_else(|e| panic!("chat completion: {e:#}"));
    assert_eq!(response.status, 200, "chat completion: {}", response.body);
    let body = response.json().unwrap();
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {body}"))
        .to_owned();
    (text, body["usage"].clone())
}

/// A streamed chat completion: the text of its deltas; it must end with `[DONE]`.
async fn stream_chat(http: &mut HttpClient) -> String {
    let request = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Stream me a few words"}],
        "max_tokens": 8,
        "stream": true,
    });
    let response = http
        .post_json("/v1/chat/completions", &request)
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let events: Vec<&str> = response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{}", response.body);
    let mut text = String::new();
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        text.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert!(events.len() >= 3, "several chunks: {}", response.body);
    text
}

/// The `generate` endpoint instances the frontend sees (its `/health`).
fn generate_instances(health: &Value) -> Vec<Value> {
    health["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["endpoint"] == "generate")
        .cloned()
        .collect()
}

/// Waits until `count` worker pods have registered: as many DynamoWorkerMetadata objects,
/// named after live pods, and as many instances in the frontend's view. Returns the names.
async fn wait_registered(ns: &TestNamespace, frontend: SocketAddr, count: usize) -> Vec<String> {
    let metadata: Api<DynamoWorkerMetadata> = ns.api();
    let pods: Api<Pod> = ns.api();
    wait_until(
        &format!("{count} workers registered"),
        SERVING_WITHIN,
        || async {
            let mut names: Vec<String> = metadata
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|m| m.metadata.name)
                .collect();
            names.sort();
            let live = pods.list(&ListParams::default()).await.ok()?.items;
            let all_live = names.iter().all(|n| {
                live.iter().any(|p| {
                    p.metadata.name.as_ref() == Some(n) && p.metadata.deletion_timestamp.is_none()
                })
            });
            let health = http_json(&mut HttpClient::new(frontend), "/health").await?;
            (names.len() == count && all_live && generate_instances(&health).len() == count)
                .then_some(names)
        },
    )
    .await
}

/// How many distinct workers served `requests` completions (the frontend's per-worker
/// metrics).
async fn serving_workers(http: &mut HttpClient, requests: usize) -> usize {
    for i in 0..requests {
        chat(http, &format!("spread {i}")).await;
    }
    let metrics = http.get("/metrics").await.unwrap().body;
    let mut workers: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("dynamo_frontend_worker_last_input_sequence_tokens{"))
        .filter_map(|l| l.split("worker_id=\"").nth(1)?.split('"').next())
        .collect();
    workers.sort();
    workers.dedup();
    workers.len()
}

/// The resident memory of a pod's process (the agent reports `process://<pid>`).
fn rss_mib(pod: &Pod) -> String {
    let pid = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref()?.first()?.container_id.clone())
        .and_then(|id| id.strip_prefix("process://").map(str::to_owned));
    let status = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok());
    status
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0}", kib as f64 / 1024.0))
        })
        .unwrap_or_else(|| "?".into())
}
