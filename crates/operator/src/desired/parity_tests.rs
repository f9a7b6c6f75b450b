//! The children of upstream's example graphs, checked against upstream's rules for the
//! component pathway (what its operator makes of each service: Deployment, pod template,
//! Service, discovery identity).
//!
//! The graphs are upstream's, from `e2e/fixtures/upstream/` (each file names its upstream path
//! and commit) and, for TRT-LLM, below. Where we differ from upstream on purpose the check
//! says so next to it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use kube::ResourceExt;
use serde_json::{Value, json};

use dynamo_api::labels::{label, operator_annotation};
use dynamo_api::v1alpha1::DynamoGraphDeployment;

use super::naming::base_model_hash;
use super::testing::{component, graph_manifest, upstream_fixture};
use super::{OperatorConfig, component_pod_template, rbac, workload};

/// Upstream `examples/backends/trtllm/deploy/agg.yaml` (commit 0044eb90), unchanged.
const UPSTREAM_TRTLLM_AGG: &str = r#"
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: trtllm-agg
spec:
  services:
    Frontend:
      componentType: frontend
      replicas: 1
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.0
    TRTLLMWorker:
      envFromSecret: hf-token-secret
      componentType: worker
      replicas: 1
      resources:
        limits:
          gpu: "1"
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.0
          workingDir: /workspace/
          command:
          - python3
          - -m
          - dynamo.trtllm
          args:
            - --model-path
            - Qwen/Qwen3-0.6B
            - --served-model-name
            - Qwen/Qwen3-0.6B
            - --extra-engine-args
            - ./examples/backends/trtllm/engine_configs/qwen3/agg.yaml
"#;

/// The role of a service, as upstream's defaults see it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Frontend,
    Worker,
    Planner,
}

/// What one service of an example must become.
struct Expected<'a> {
    service: &'a str,
    kind: Kind,
    /// `componentType` as written (label value and `DYN_COMPONENT`).
    component_type: &'a str,
    sub_type: Option<&'a str>,
    replicas: i32,
    image: &'a str,
    command: &'a [&'a str],
    args: &'a [&'a str],
    env_from_secret: Option<&'a str>,
    gpus: Option<&'a str>,
    /// Pod volumes before the generated shared-memory one (the user's, then claims).
    volumes: &'a [&'a str],
    shared_memory: &'a str,
}

const FRONTEND_COMMAND: &[&str] = &["python3"];
const FRONTEND_ARGS: &[&str] = &["-m", "dynamo.frontend"];

fn frontend_service(image: &str) -> Expected<'_> {
    Expected {
        service: "Frontend",
        kind: Kind::Frontend,
        component_type: "frontend",
        sub_type: None,
        replicas: 1,
        image,
        command: FRONTEND_COMMAND,
        args: FRONTEND_ARGS,
        env_from_secret: None,
        gpus: None,
        volumes: &[],
        shared_memory: "8Gi",
    }
}

fn vllm_worker<'a>(service: &'a str, image: &'a str, args: &'a [&'a str]) -> Expected<'a> {
    Expected {
        service,
        kind: Kind::Worker,
        component_type: "worker",
        sub_type: None,
        replicas: 1,
        image,
        command: &["python3", "-m", "dynamo.vllm"],
        args,
        env_from_secret: Some("hf-token-secret"),
        gpus: Some("1"),
        volumes: &[],
        shared_memory: "8Gi",
    }
}

/// The built children of one service.
struct Children {
    deployment: Deployment,
    service: Service,
}

impl Children {
    fn of(dgd: &DynamoGraphDeployment, service: &str, config: &OperatorConfig) -> Self {
        let dcd = component(dgd, service, config);
        let template = component_pod_template(&dcd, config)
            .unwrap_or_else(|e| panic!("{} {service}: {e}", dgd.name_any()));
        Children {
            deployment: workload::deployment(&dcd, template),
            service: workload::service(&dcd, config).expect("a Service under Kubernetes discovery"),
        }
    }

    fn pod(&self) -> &PodSpec {
        let template = &self.deployment.spec.as_ref().unwrap().template;
        template.spec.as_ref().unwrap()
    }

    fn main(&self) -> &Container {
        &self.pod().containers[0]
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        let template = &self.deployment.spec.as_ref().unwrap().template;
        template.metadata.clone().unwrap().labels.unwrap()
    }

    fn env(&self) -> BTreeMap<String, Value> {
        self.main()
            .env
            .iter()
            .flatten()
            .map(|var| {
                let value = match (&var.value, &var.value_from) {
                    (Some(value), _) => json!(value),
                    (None, Some(source)) => serde_json::to_value(source).unwrap(),
                    (None, None) => Value::Null,
                };
                (var.name.clone(), value)
            })
            .collect()
    }
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|s| (*s).to_owned()).collect())
}

fn field_ref(path: &str) -> Value {
    json!({"fieldRef": {"fieldPath": path}})
}

fn http_probe(path: &str, port: &str, timing: Value) -> Value {
    let mut probe = json!({"httpGet": {"path": path, "port": port}});
    probe
        .as_object_mut()
        .unwrap()
        .extend(timing.as_object().unwrap().clone());
    probe
}

/// Every fact upstream's component pathway fixes for `expected`'s service of `dgd` (namespace
/// `ns`, default operator settings: Kubernetes discovery).
fn check(dgd: &DynamoGraphDeployment, expected: &Expected<'_>) -> Children {
    let graph = dgd.name_any();
    let name = format!("{graph}-{}", expected.service.to_lowercase());
    let dynamo_namespace = format!("ns-{graph}");
    let what = format!("{graph} {}", expected.service);
    let children = Children::of(dgd, expected.service, &OperatorConfig::default());

    // Deployment: named like the component, selecting its pods by nvidia.com/selector, rolling
    // 25%/25%, owned by the component.
    let deployment = &children.deployment;
    assert_eq!(deployment.name_any(), name, "{what}");
    assert_eq!(deployment.namespace().as_deref(), Some("ns"), "{what}");
    let labels = deployment.labels();
    assert_eq!(labels[label::COMPONENT], expected.service, "{what}");
    assert_eq!(labels[label::DYNAMO_NAMESPACE], dynamo_namespace, "{what}");
    assert_eq!(labels[label::GRAPH_DEPLOYMENT_NAME], graph, "{what}");
    assert_eq!(
        deployment.owner_references()[0].kind,
        "DynamoComponentDeployment"
    );
    let spec = json_of(deployment.spec.as_ref().unwrap());
    assert_eq!(spec["replicas"], expected.replicas, "{what}");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"nvidia.com/selector": name}}),
        "{what}"
    );
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        "{what}"
    );

    // Pod labels.
    let mut pod_labels = BTreeMap::from([
        (label::SELECTOR, name.as_str()),
        (label::COMPONENT, expected.service),
        (label::DYNAMO_NAMESPACE, dynamo_namespace.as_str()),
        (label::GRAPH_DEPLOYMENT_NAME, graph.as_str()),
        (label::COMPONENT_TYPE, expected.component_type),
        (label::METRICS_ENABLED, "true"),
        (label::DISCOVERY_BACKEND, "kubernetes"),
        (label::DISCOVERY_ENABLED, "true"),
    ]);
    if let Some(sub_type) = expected.sub_type {
        pod_labels.insert(label::SUB_COMPONENT_TYPE, sub_type);
    }
    let model_hash = dgd.spec.services.as_ref().unwrap()[expected.service]
        .model_ref
        .as_ref()
        .map(|model| base_model_hash(&model.name));
    if let Some(hash) = &model_hash {
        pod_labels.insert(label::BASE_MODEL_HASH, hash);
    }
    let pod_labels: BTreeMap<String, String> = pod_labels
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(children.pod_labels(), pod_labels, "{what}");
    // None of the examples annotates its pods; the base model's name goes on the Deployment.
    let template = &deployment.spec.as_ref().unwrap().template;
    assert_eq!(
        template.metadata.as_ref().unwrap().annotations,
        None,
        "{what}"
    );
    let model_name = dgd.spec.services.as_ref().unwrap()[expected.service]
        .model_ref
        .as_ref()
        .map(|model| model.name.clone());
    assert_eq!(
        deployment.metadata.annotations,
        model_name.map(|name| BTreeMap::from([(operator_annotation::BASE_MODEL.to_owned(), name)])),
        "{what}"
    );

    // Pod spec.
    let pod = children.pod();
    assert_eq!(pod.containers.len(), 1, "{what}");
    assert_eq!(pod.termination_grace_period_seconds, Some(60), "{what}");
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"), "{what}");
    assert_eq!(
        json_of(&pod.security_context),
        json!({"fsGroup": 1000}),
        "{what}"
    );
    let account = match expected.kind {
        Kind::Planner => "planner-serviceaccount".to_owned(),
        _ => format!("{graph}-k8s-service-discovery"),
    };
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(account.as_str()),
        "{what}"
    );
    let volumes = json_of(pod.volumes.as_ref().unwrap());
    let volume_names: Vec<&str> = volumes
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mut expected_volumes = expected.volumes.to_vec();
    expected_volumes.push("shared-memory");
    assert_eq!(volume_names, expected_volumes, "{what}");
    assert_eq!(
        volumes.as_array().unwrap().last().unwrap(),
        &json!({"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": expected.shared_memory}}),
        "{what}"
    );

    // Main container.
    let main = children.main();
    assert_eq!(main.name, "main", "{what}");
    assert_eq!(main.image.as_deref(), Some(expected.image), "{what}");
    assert_eq!(main.command, strings(expected.command), "{what}");
    assert_eq!(main.args, strings(expected.args), "{what}");
    let mounts = json_of(main.volume_mounts.as_ref().unwrap());
    assert_eq!(
        mounts.as_array().unwrap().last().unwrap(),
        &json!({"name": "shared-memory", "mountPath": "/dev/shm"}),
        "{what}"
    );
    let ports = json_of(&main.ports);
    let probes = json!([
        main.liveness_probe,
        main.readiness_probe,
        main.startup_probe
    ]);
    let (expected_ports, expected_probes) = match expected.kind {
        Kind::Frontend => (
            json!([{"name": "http", "containerPort": 8000, "protocol": "TCP"}]),
            json!([
                http_probe(
                    "/live",
                    "http",
                    json!({"initialDelaySeconds": 15, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3})
                ),
                http_probe(
                    "/health",
                    "http",
                    json!({"initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3})
                ),
                null,
            ]),
        ),
        Kind::Worker => (
            json!([{"name": "system", "containerPort": 9090, "protocol": "TCP"}]),
            json!([
                http_probe(
                    "/live",
                    "system",
                    json!({"periodSeconds": 5, "timeoutSeconds": 4, "failureThreshold": 1})
                ),
                http_probe(
                    "/health",
                    "system",
                    json!({"periodSeconds": 10, "timeoutSeconds": 4, "failureThreshold": 3})
                ),
                http_probe(
                    "/live",
                    "system",
                    json!({"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 720})
                ),
            ]),
        ),
        Kind::Planner => (
            json!([{"name": "metrics", "containerPort": 9085, "protocol": "TCP"}]),
            json!([null, null, null]),
        ),
    };
    assert_eq!(ports, expected_ports, "{what}");
    // A startup probe the example sets itself is checked by the caller.
    let overridden_startup = dgd.spec.services.as_ref().unwrap()[expected.service]
        .extra_pod_spec
        .as_ref()
        .and_then(|e| e.main_container.as_ref())
        .is_some_and(|c| c.startup_probe.is_some());
    let checked = if overridden_startup { 2 } else { 3 };
    assert_eq!(
        probes.as_array().unwrap()[..checked],
        expected_probes.as_array().unwrap()[..checked],
        "{what}"
    );

    // Environment: the injected identity, the type's variables, sorted by name.
    let env = children.env();
    let mut expected_env = BTreeMap::from([
        ("DYN_NAMESPACE", json!(dynamo_namespace)),
        ("DYN_COMPONENT", json!(expected.component_type)),
        ("DYN_PARENT_DGD_K8S_NAME", json!(graph)),
        ("DYN_PARENT_DGD_K8S_NAMESPACE", json!("ns")),
        ("POD_NAME", field_ref("metadata.name")),
        ("POD_NAMESPACE", field_ref("metadata.namespace")),
        ("POD_UID", field_ref("metadata.uid")),
        ("DYN_DISCOVERY_BACKEND", json!("kubernetes")),
    ]);
    match expected.kind {
        Kind::Frontend => {
            expected_env.insert("DYNAMO_PORT", json!("8000"));
            expected_env.insert("DYN_HTTP_PORT", json!("8000"));
        }
        Kind::Worker => {
            expected_env.insert("DYN_SYSTEM_ENABLED", json!("true"));
            expected_env.insert(
                "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
                json!("[\"generate\"]"),
            );
            expected_env.insert("DYN_SYSTEM_PORT", json!("9090"));
            expected_env.insert("DYN_HEALTH_CHECK_ENABLED", json!("false"));
        }
        Kind::Planner => {
            expected_env.insert("PLANNER_PROMETHEUS_PORT", json!("9085"));
        }
    }
    for (variable, value) in &expected_env {
        assert_eq!(env.get(*variable), Some(value), "{what}: {variable}");
    }
    let names: Vec<&String> = main.env.iter().flatten().map(|v| &v.name).collect();
    assert!(names.is_sorted(), "{what}: {names:?}");
    assert_eq!(
        json_of(&main.env_from),
        match expected.env_from_secret {
            Some(secret) => json!([{"secretRef": {"name": secret}}]),
            None => json!(null),
        },
        "{what}"
    );
    let limits = main.resources.as_ref().and_then(|r| r.limits.as_ref());
    assert_eq!(
        limits
            .and_then(|l| l.get("nvidia.com/gpu"))
            .map(|q| q.0.as_str()),
        expected.gpus,
        "{what}"
    );

    // Service: same name; port by type; discovery labels (discovery-enabled except frontends).
    // It selects by nvidia.com/selector, not by type and Dynamo namespace (on purpose).
    let service = &children.service;
    assert_eq!(service.name_any(), name, "{what}");
    let (port, number) = match expected.kind {
        Kind::Frontend => ("http", 8000),
        _ => ("system", 9090),
    };
    assert_eq!(
        json_of(service.spec.as_ref().unwrap()),
        json!({
            "selector": {"nvidia.com/selector": name},
            "ports": [{"name": port, "port": number, "targetPort": port, "protocol": "TCP"}],
        }),
        "{what}"
    );
    let labels = service.labels();
    assert_eq!(labels[label::DISCOVERY_BACKEND], "kubernetes", "{what}");
    assert_eq!(
        labels.get(label::DISCOVERY_ENABLED).map(String::as_str),
        (expected.kind != Kind::Frontend).then_some("true"),
        "{what}"
    );
    assert_eq!(labels[label::COMPONENT], expected.service, "{what}");
    assert_eq!(
        labels.get(label::BASE_MODEL_HASH),
        model_hash.as_ref(),
        "{what}"
    );
    children
}

#[test]
fn vllm_aggregated() {
    let dgd = upstream_fixture("vllm-agg.yaml");
    let image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:my-tag";
    let frontend = check(
        &dgd,
        &Expected {
            env_from_secret: Some("hf-token-secret"),
            ..frontend_service(image)
        },
    );
    assert_eq!(frontend.main().working_dir, None);
    let worker = check(
        &dgd,
        &vllm_worker("worker", image, &["--model", "Qwen/Qwen3-0.6B"]),
    );
    assert_eq!(
        worker.main().working_dir.as_deref(),
        Some("/workspace/examples/backends/vllm")
    );
    assert_eq!(
        json_of(&worker.main().resources),
        json!({"requests": {"ephemeral-storage": "2Gi"}, "limits": {"nvidia.com/gpu": "1"}})
    );
}

#[test]
fn vllm_disaggregated() {
    let dgd = upstream_fixture("vllm-disagg.yaml");
    let image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0";
    check(&dgd, &frontend_service(image));
    for (service, sub_type, flag) in [
        ("VllmDecodeWorker", "decode", "--is-decode-worker"),
        ("VllmPrefillWorker", "prefill", "--is-prefill-worker"),
    ] {
        let children = check(
            &dgd,
            &Expected {
                sub_type: Some(sub_type),
                ..vllm_worker(service, image, &["--model", "Qwen/Qwen3-0.6B", flag])
            },
        );
        // Each worker Service selects its own pods only (upstream's type-and-namespace
        // selector would pick the other worker's too).
        assert_eq!(
            children.service.spec.unwrap().selector.unwrap()[label::SELECTOR],
            format!("vllm-disagg-{}", service.to_lowercase())
        );
    }
}

#[test]
fn vllm_aggregated_router_and_kv_offload() {
    let dgd = upstream_fixture("vllm-agg-router.yaml");
    let image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0";
    let frontend = check(&dgd, &frontend_service(image));
    assert_eq!(frontend.env()["DYN_ROUTER_MODE"], "kv");
    check(
        &dgd,
        &Expected {
            replicas: 2,
            ..vllm_worker("VllmDecodeWorker", image, &["--model", "Qwen/Qwen3-0.6B"])
        },
    );

    let dgd = upstream_fixture("vllm-agg-kvbm.yaml");
    check(&dgd, &frontend_service(image));
    let offloading = check(
        &dgd,
        &vllm_worker(
            "VllmDecodeWorker",
            image,
            &[
                "--model",
                "Qwen/Qwen3-8B",
                "--max-model-len",
                "32000",
                "--enforce-eager",
                "--connector",
                "kvbm",
            ],
        ),
    );
    assert_eq!(offloading.env()["DYN_KVBM_CPU_CACHE_GB"], "100");
    // requests.gpu is kept (upstream drops it; the limit makes it the same request).
    assert_eq!(
        json_of(&offloading.main().resources),
        json!({"requests": {"memory": "200Gi", "nvidia.com/gpu": "1"},
               "limits": {"memory": "250Gi", "nvidia.com/gpu": "1"}})
    );
}

#[test]
fn vllm_disaggregated_with_planner() {
    let dgd = upstream_fixture("vllm-disagg-planner.yaml");
    let image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0";
    check(&dgd, &frontend_service(image));
    let planner = check(
        &dgd,
        &Expected {
            service: "Planner",
            kind: Kind::Planner,
            component_type: "planner",
            command: &["python3", "-m", "planner_sla"],
            args: &[
                "--environment=kubernetes",
                "--backend=vllm",
                "--adjustment-interval=60",
                "--profile-results-dir=/workspace/profiling_results",
            ],
            volumes: &["planner-profile-data"],
            ..frontend_service(image)
        },
    );
    assert_eq!(
        json_of(&planner.pod().volumes.as_ref().unwrap()[0]),
        json!({"name": "planner-profile-data", "configMap": {"name": "planner-profile-data"}})
    );
    assert_eq!(
        json_of(&planner.main().volume_mounts),
        json!([{"name": "planner-profile-data", "mountPath": "/workspace/profiling_results", "readOnly": true},
               {"name": "shared-memory", "mountPath": "/dev/shm"}])
    );
    assert_eq!(
        planner.main().working_dir.as_deref(),
        Some("/workspace/components/src/dynamo/planner")
    );
    for (service, sub_type, args) in [
        (
            "VllmDecodeWorker",
            "decode",
            &["-m", "dynamo.vllm", "--model", "Qwen/Qwen3-0.6B"][..],
        ),
        (
            "VllmPrefillWorker",
            "prefill",
            &[
                "-m",
                "dynamo.vllm",
                "--model",
                "Qwen/Qwen3-0.6B",
                "--is-prefill-worker",
            ],
        ),
    ] {
        check(
            &dgd,
            &Expected {
                sub_type: Some(sub_type),
                command: &["python3"],
                ..vllm_worker(service, image, args)
            },
        );
    }
}

#[test]
fn vllm_lora_base_model() {
    let dgd = upstream_fixture("vllm-agg-lora.yaml");
    let image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:my-tag";
    check(&dgd, &frontend_service(image));
    let worker = check(
        &dgd,
        &Expected {
            sub_type: Some("decode"),
            ..vllm_worker(
                "worker",
                image,
                &[
                    "--model",
                    "Qwen/Qwen3-0.6B",
                    "--enable-lora",
                    "--max-lora-rank",
                    "64",
                    "--enforce-eager",
                ],
            )
        },
    );
    // The base model's name goes on the Deployment (and Service), its hash on the pods.
    assert_eq!(
        worker.deployment.annotations()[operator_annotation::BASE_MODEL],
        "Qwen/Qwen3-0.6B"
    );
    assert_eq!(
        worker.deployment.labels()[label::BASE_MODEL_HASH],
        base_model_hash("Qwen/Qwen3-0.6B")
    );
    let env = worker.env();
    assert_eq!(env["DYN_LORA_ENABLED"], "true");
    assert_eq!(
        env["AWS_ACCESS_KEY_ID"],
        json!({"secretKeyRef": {"name": "minio-secret", "key": "AWS_ACCESS_KEY_ID"}})
    );
}

#[test]
fn sglang_disaggregated_recipe() {
    let dgd = upstream_fixture("sglang-dsr1-16gpu.yaml");
    let image = "my-registry/sglang-wideep-runtime:my-tag";
    let frontend = check(&dgd, &frontend_service(image));
    // The recipe's own startup probes are used as written.
    assert_eq!(
        json_of(&frontend.main().startup_probe),
        json!({"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10,
               "timeoutSeconds": 1800, "failureThreshold": 60})
    );
    let common = [
        "--model-path",
        "/model-cache/deepseek-r1",
        "--served-model-name",
        "deepseek-ai/DeepSeek-R1",
        "--tp",
        "8",
    ];
    let transfer = [
        "--disaggregation-transfer-backend",
        "nixl",
        "--disaggregation-bootstrap-port",
        "30001",
        "--host",
        "0.0.0.0",
    ];
    let decode: Vec<&str> = [
        &common[..],
        &["--dp", "8", "--enable-dp-attention", "--ep-size", "8"],
    ]
    .concat()
    .into_iter()
    .chain([
        "--trust-remote-code",
        "--skip-tokenizer-init",
        "--disaggregation-mode",
        "decode",
    ])
    .chain(transfer)
    .chain(["--prefill-round-robin-balance"])
    .collect();
    let prefill: Vec<&str> = [&common[..], &["--ep-size", "8"]]
        .concat()
        .into_iter()
        .chain([
            "--trust-remote-code",
            "--skip-tokenizer-init",
            "--disaggregation-mode",
            "prefill",
        ])
        .chain(transfer)
        .chain(["--load-balance-method", "round_robin"])
        .collect();
    for (service, args) in [("decode", &decode), ("prefill", &prefill)] {
        let children = check(
            &dgd,
            &Expected {
                command: &["python3", "-m", "dynamo.sglang"],
                env_from_secret: None,
                gpus: Some("8"),
                volumes: &["model-cache-pvc"],
                shared_memory: "80Gi",
                ..vllm_worker(service, image, args)
            },
        );
        let main = children.main();
        assert_eq!(
            json_of(&main.startup_probe),
            json!({"httpGet": {"path": "/health", "port": 9090}, "periodSeconds": 10,
                   "timeoutSeconds": 10, "failureThreshold": 600})
        );
        assert_eq!(
            json_of(&main.volume_mounts.as_ref().unwrap()[0]),
            json!({"name": "model-cache-pvc", "mountPath": "/model-cache"})
        );
        assert_eq!(
            json_of(&children.pod().volumes.as_ref().unwrap()[0]),
            json!({"name": "model-cache-pvc", "persistentVolumeClaim": {"claimName": "model-cache-pvc"}})
        );
        // The deprecated `dynamoNamespace: sgl-dsr1-8gpu` is ignored: the namespace is computed.
        assert_eq!(children.env()["DYN_NAMESPACE"], "ns-sgl-dsr1-16gpu");
    }
}

#[test]
fn trtllm_aggregated() {
    let dgd = graph_manifest(UPSTREAM_TRTLLM_AGG);
    let image = "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.0";
    check(&dgd, &frontend_service(image));
    let worker = check(
        &dgd,
        &Expected {
            command: &["python3", "-m", "dynamo.trtllm"],
            ..vllm_worker(
                "TRTLLMWorker",
                image,
                &[
                    "--model-path",
                    "Qwen/Qwen3-0.6B",
                    "--served-model-name",
                    "Qwen/Qwen3-0.6B",
                    "--extra-engine-args",
                    "./examples/backends/trtllm/engine_configs/qwen3/agg.yaml",
                ],
            )
        },
    );
    assert_eq!(worker.main().working_dir.as_deref(), Some("/workspace/"));
}

#[test]
fn discovery_identity_of_an_example() {
    let dgd = upstream_fixture("vllm-disagg.yaml");
    let (account, role, binding) = rbac::discovery_rbac(&dgd);
    let name = "vllm-disagg-k8s-service-discovery";
    for (metadata, object_name) in [
        (&account.metadata, name.to_owned()),
        (&role.metadata, format!("{name}-role")),
        (&binding.metadata, format!("{name}-binding")),
    ] {
        assert_eq!(metadata.name.as_deref(), Some(object_name.as_str()));
        let labels = metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "dynamo-operator");
        assert_eq!(labels["app.kubernetes.io/component"], "rbac");
        assert_eq!(labels["app.kubernetes.io/name"], name);
    }
    assert_eq!(
        json_of(&role.rules),
        json!([
            {"apiGroups": [""], "resources": ["endpoints", "pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["nvidia.com"], "resources": ["dynamoworkermetadatas"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        ])
    );
    assert_eq!(
        json_of(&binding.subjects),
        json!([{"kind": "ServiceAccount", "name": name, "namespace": "ns"}])
    );
}
