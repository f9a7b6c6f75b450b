//! Table tests of [`super::pod_template`] (a separate file to keep `pod.rs` readable).

use super::*;
use crate::desired::testing::{component, example, single};
use serde_json::{Value, json};

fn build(dcd: &DynamoComponentDeployment, config: &OperatorConfig) -> PodTemplateSpec {
    component_pod_template(dcd, config).unwrap()
}

fn pod_of(yaml: &str) -> PodTemplateSpec {
    build(
        &single(None, yaml, &Default::default()),
        &Default::default(),
    )
}

fn main_of(template: &PodTemplateSpec) -> &Container {
    let containers = &template.spec.as_ref().unwrap().containers;
    assert_eq!(containers[0].name, "main");
    &containers[0]
}

fn env_value(container: &Container, name: &str) -> Option<String> {
    let var = container.env.iter().flatten().find(|v| v.name == name)?;
    Some(
        var.value
            .clone()
            .unwrap_or_else(|| "<valueFrom>".to_owned()),
    )
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn every_component_type_gets_its_defaults() {
    let cases = [
        ("frontend", Some("python3 -m dynamo.frontend"), "http", true),
        ("worker", None, "system", true),
        ("prefill", None, "system", true),
        ("decode", None, "system", true),
        ("planner", None, "metrics", false),
        ("epp", None, "grpc", true),
        ("default", None, "", false),
    ];
    for (component_type, command, first_port, probes) in cases {
        let template = pod_of(&format!("{{componentType: {component_type}}}"));
        let main = main_of(&template);
        let command_line: Vec<&str> = main
            .command
            .iter()
            .chain(&main.args)
            .flatten()
            .map(String::as_str)
            .collect();
        assert_eq!(
            Some(command_line.join(" "))
                .filter(|c| !c.is_empty())
                .as_deref(),
            command,
            "{component_type}"
        );
        let port = main.ports.iter().flatten().next();
        assert_eq!(
            port.and_then(|p| p.name.clone()).unwrap_or_default(),
            first_port,
            "{component_type}"
        );
        assert_eq!(main.liveness_probe.is_some(), probes, "{component_type}");
        assert_eq!(
            env_value(main, "DYN_COMPONENT").as_deref(),
            Some(component_type)
        );
        assert_eq!(env_value(main, "DYN_NAMESPACE").as_deref(), Some("ns-g"));
        assert_eq!(
            env_value(main, "DYN_PARENT_DGD_K8S_NAME").as_deref(),
            Some("g")
        );
        assert_eq!(env_value(main, "POD_UID").as_deref(), Some("<valueFrom>"));
    }
}

#[test]
fn env_precedence_each_level_overrides_the_lower() {
    let config = OperatorConfig {
        nats_addr: Some("operator".into()),
        ..Default::default()
    };
    // (graph envs, service yaml, variable, expected value)
    let cases = [
        ("[]", "{}", "NATS_SERVER", "operator"),
        (
            "[]",
            "{extraPodSpec: {mainContainer: {env: [{name: NATS_SERVER, value: main}]}}}",
            "NATS_SERVER",
            "main",
        ),
        ("[]", "{componentType: worker}", "DYN_SYSTEM_PORT", "9090"),
        (
            "[]",
            "{componentType: worker, extraPodSpec: {mainContainer: {env: [{name: DYN_SYSTEM_PORT, value: main}]}}}",
            "DYN_SYSTEM_PORT",
            "main",
        ),
        (
            "[{name: DYN_SYSTEM_PORT, value: graph}]",
            "{componentType: worker, extraPodSpec: {mainContainer: {env: [{name: DYN_SYSTEM_PORT, value: main}]}}}",
            "DYN_SYSTEM_PORT",
            "graph",
        ),
        (
            "[{name: DYN_SYSTEM_PORT, value: graph}]",
            "{componentType: worker, envs: [{name: DYN_SYSTEM_PORT, value: service}], extraPodSpec: {mainContainer: {env: [{name: DYN_SYSTEM_PORT, value: main}]}}}",
            "DYN_SYSTEM_PORT",
            "service",
        ),
        (
            "[]",
            "{envs: [{name: DYN_NAMESPACE, value: service}]}",
            "DYN_NAMESPACE",
            "service",
        ),
        (
            "[{name: NATS_SERVER, value: graph}]",
            "{}",
            "NATS_SERVER",
            "graph",
        ),
    ];
    for (graph_envs, service, variable, expected) in cases {
        let dgd = crate::desired::testing::graph(&format!(
            "metadata: {{name: g}}\nspec:\n  envs: {graph_envs}\n  services:\n    Svc: {service}\n"
        ));
        let template = build(&component(&dgd, "Svc", &config), &config);
        let main = main_of(&template);
        assert_eq!(
            env_value(main, variable).as_deref(),
            Some(expected),
            "{service}"
        );
        let names: Vec<&str> = main.env.iter().flatten().map(|v| v.name.as_str()).collect();
        assert!(names.is_sorted(), "{names:?}");
    }
}

#[test]
fn discovery_backend_env_follows_config_and_graph_annotation() {
    let etcd = OperatorConfig {
        discovery_backend: DiscoveryBackend::Etcd,
        ..Default::default()
    };
    let cases = [
        ("{}", OperatorConfig::default(), Some("kubernetes")),
        ("{}", etcd.clone(), None),
        (
            "{annotations: {nvidia.com/dynamo-discovery-backend: kubernetes}}",
            etcd.clone(),
            Some("kubernetes"),
        ),
    ];
    for (service, config, expected) in cases {
        let template = build(&single(None, service, &config), &config);
        assert_eq!(
            env_value(main_of(&template), "DYN_DISCOVERY_BACKEND").as_deref(),
            expected
        );
    }
}

#[test]
fn resources_reach_the_main_container() {
    let template = pod_of(
        "{resources: {requests: {cpu: '1', gpu: '1'}, limits: {gpu: '1', gpuType: nvidia.com/mig-1g.10gb, custom: {rdma/ib: '1'}}, claims: [{name: c}]}, extraPodSpec: {mainContainer: {resources: {limits: {memory: 2Gi}}}}}",
    );
    assert_eq!(
        json_of(&main_of(&template).resources),
        json!({
            "requests": {"cpu": "1", "nvidia.com/mig-1g.10gb": "1"},
            "limits": {"nvidia.com/mig-1g.10gb": "1", "rdma/ib": "1", "memory": "2Gi"},
            "claims": [{"name": "c"}],
        })
    );
}

#[test]
fn spec_probes_replace_the_defaults_wholesale() {
    let exec = json!({"exec": {"command": ["true"]}});
    let cases = [
        (
            "livenessProbe",
            "{componentType: worker, livenessProbe: {exec: {command: ['true']}}}",
        ),
        (
            "readinessProbe",
            "{componentType: frontend, readinessProbe: {exec: {command: ['true']}}}",
        ),
        (
            "livenessProbe",
            "{componentType: worker, livenessProbe: {exec: {command: ['true']}}, extraPodSpec: {mainContainer: {livenessProbe: {tcpSocket: {port: 1}, periodSeconds: 1}}}}",
        ),
    ];
    for (probe, service) in cases {
        let main = json_of(main_of(&pod_of(service)));
        assert_eq!(main[probe], exec, "{service}");
    }
}

#[test]
fn main_container_probes_merge_over_the_defaults() {
    let worker_startup = |initial_delay: Value| {
        json!({"httpGet": {"path": "/live", "port": "system"}, "initialDelaySeconds": initial_delay,
               "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 720})
    };
    // (service yaml, probe, expected probe)
    let cases = [
        (
            "{componentType: worker, extraPodSpec: {mainContainer: {startupProbe: {initialDelaySeconds: 120}}}}",
            "startupProbe",
            worker_startup(json!(120)),
        ),
        (
            "{componentType: worker, extraPodSpec: {mainContainer: {startupProbe: {exec: {command: ['true']}}}}}",
            "startupProbe",
            json!({"exec": {"command": ["true"]}, "periodSeconds": 10, "timeoutSeconds": 5,
                   "failureThreshold": 720}),
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {readinessProbe: {httpGet: {path: /ready, port: http}, failureThreshold: 10}}}}",
            "readinessProbe",
            json!({"httpGet": {"path": "/ready", "port": "http"}, "initialDelaySeconds": 10,
                   "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 10}),
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {startupProbe: {tcpSocket: {port: http}}}}}",
            "startupProbe",
            json!({"tcpSocket": {"port": "http"}}),
        ),
    ];
    for (service, probe, expected) in cases {
        let main = json_of(main_of(&pod_of(service)));
        assert_eq!(main[probe], expected, "{service}");
    }
}

/// Upstream `examples/deployments/GKE/vllm/disagg.yaml` (v1alpha1), as a user applies it: a
/// decode worker whose `startupProbe` sets only `initialDelaySeconds`.
const UPSTREAM_GKE_VLLM_DISAGG: &str = r#"
metadata:
  name: vllm-disagg
spec:
  services:
    Frontend:
      componentType: frontend
      replicas: 1
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:${VERSION}
    VllmDecodeWorker:
      envFromSecret: hf-token-secret
      componentType: worker
      subComponentType: decode
      replicas: 1
      resources:
        limits:
          gpu: "1"
      extraPodSpec:
        mainContainer:
          startupProbe:
            initialDelaySeconds: 180
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:${VERSION}
          workingDir: /workspace/examples/backends/vllm
          command:
            - /bin/sh
            - -c
          args:
          - |
            export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$LD_LIBRARY_PATH
            export PATH=$PATH:/usr/local/nvidia/bin:/usr/local/nvidia/lib64
            /sbin/ldconfig
            python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B
    VllmPrefillWorker:
      envFromSecret: hf-token-secret
      componentType: worker
      subComponentType: prefill
      replicas: 1
      resources:
        limits:
          gpu: "1"
      extraPodSpec:
        mainContainer:
          image: nvcr.io/nvidia/ai-dynamo/vllm-runtime:${VERSION}
          workingDir: /workspace/examples/backends/vllm
          command:
            - /bin/sh
            - -c
          args:
          - |
            export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$LD_LIBRARY_PATH
            export PATH=$PATH:/usr/local/nvidia/bin:/usr/local/nvidia/lib64
            /sbin/ldconfig
            python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B --is-prefill-worker
"#;

#[test]
fn upstream_gke_example_keeps_the_startup_probe_handler() {
    let config = OperatorConfig::default();
    let dgd = crate::desired::testing::graph(UPSTREAM_GKE_VLLM_DISAGG);
    let template = |service: &str| build(&component(&dgd, service, &config), &config);
    let decode = json_of(main_of(&template("VllmDecodeWorker")));
    assert_eq!(
        decode["startupProbe"],
        json!({"httpGet": {"path": "/live", "port": "system"}, "initialDelaySeconds": 180,
               "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 720})
    );
    assert_eq!(decode["command"], json!(["/bin/sh", "-c"]));
    let prefill = json_of(main_of(&template("VllmPrefillWorker")));
    assert_eq!(prefill["startupProbe"]["failureThreshold"], 720);
    let frontend = json_of(main_of(&template("Frontend")));
    assert_eq!(frontend["command"], json!(["python3"]));
    assert_eq!(frontend["args"], json!(["-m", "dynamo.frontend"]));
}

#[test]
fn main_container_overrides() {
    // (service yaml, expected command, expected args)
    type Case<'a> = (&'a str, Option<&'a [&'a str]>, Option<&'a [&'a str]>);
    let cases: [Case; 7] = [
        (
            // Command only: it brings its own arguments.
            "{componentType: frontend, extraPodSpec: {mainContainer: {command: [my-frontend]}}}",
            Some(&["my-frontend"]),
            None,
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {args: [-m, dynamo.frontend, --router-mode, kv]}}}",
            Some(&["python3"]),
            Some(&["-m", "dynamo.frontend", "--router-mode", "kv"]),
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.frontend], args: [--router-mode, kv]}}}",
            Some(&["python3", "-m", "dynamo.frontend"]),
            Some(&["--router-mode", "kv"]),
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {command: [], args: []}}}",
            Some(&["python3"]),
            Some(&["-m", "dynamo.frontend"]),
        ),
        (
            "{componentType: worker, extraPodSpec: {mainContainer: {args: ['python3 -m dynamo.vllm']}}}",
            Some(&["/bin/sh", "-c"]),
            Some(&["python3 -m dynamo.vllm"]),
        ),
        ("{componentType: worker}", None, None),
        (
            "{componentType: worker, extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.vllm]}}}",
            Some(&["python3", "-m", "dynamo.vllm"]),
            None,
        ),
    ];
    for (service, command, args) in cases {
        let template = pod_of(service);
        let main = main_of(&template);
        let owned = |items: Option<&[&str]>| {
            items.map(|i| i.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(main.command, owned(command), "{service}");
        assert_eq!(main.args, owned(args), "{service}");
    }
    let template = pod_of("{extraPodSpec: {mainContainer: {image: 'img:1', workingDir: /w}}}");
    assert_eq!(main_of(&template).image.as_deref(), Some("img:1"));
    assert_eq!(main_of(&template).working_dir.as_deref(), Some("/w"));
}

#[test]
fn named_lists_merge_by_key() {
    // (service yaml, field of the main container or pod, expected list)
    let cases = [
        (
            "{componentType: worker, extraPodSpec: {mainContainer: {ports: [{name: system, containerPort: 9345}, {name: nixl, containerPort: 5600}]}}}",
            "ports",
            json!([{"name": "system", "containerPort": 9345}, {"name": "nixl", "containerPort": 5600}]),
        ),
        (
            "{componentType: frontend, extraPodSpec: {mainContainer: {ports: [{name: metrics, containerPort: 8081}]}}}",
            "ports",
            json!([{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                   {"name": "metrics", "containerPort": 8081}]),
        ),
        (
            // The user's mount at /dev/shm wins; the generated shared-memory mount is not added.
            "{extraPodSpec: {volumes: [{name: big-shm, emptyDir: {medium: Memory}}], mainContainer: {volumeMounts: [{name: big-shm, mountPath: /dev/shm}]}}}",
            "volumeMounts",
            json!([{"name": "big-shm", "mountPath": "/dev/shm"}]),
        ),
        (
            // One volume at two paths: both mounts stay.
            "{extraPodSpec: {mainContainer: {volumeMounts: [{name: shared-memory, mountPath: /tmp/shm}]}}}",
            "volumeMounts",
            json!([{"name": "shared-memory", "mountPath": "/tmp/shm"},
                   {"name": "shared-memory", "mountPath": "/dev/shm"}]),
        ),
        (
            "{extraPodSpec: {containers: [{name: main, volumeMounts: [{name: a, mountPath: /a}]}], mainContainer: {volumeMounts: [{name: b, mountPath: /a}, {name: c, mountPath: /c}]}}}",
            "volumeMounts",
            json!([{"name": "b", "mountPath": "/a"}, {"name": "c", "mountPath": "/c"},
                   {"name": "shared-memory", "mountPath": "/dev/shm"}]),
        ),
        (
            "{extraPodSpec: {mainContainer: {env: [{name: A, value: '1'}]}, containers: [{name: main, env: [{name: A, value: '0'}, {name: B, value: '2'}]}]}}",
            "env",
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        ),
    ];
    for (service, field, expected) in cases {
        let mut main = json_of(main_of(&pod_of(service)));
        if field == "env" {
            let env = main[field].as_array_mut().unwrap();
            env.retain(|v| ["A", "B"].contains(&v["name"].as_str().unwrap()));
        }
        assert_eq!(main[field], expected, "{service}");
    }
    let template = pod_of(
        "{extraPodSpec: {imagePullSecrets: [{name: ngc}], volumes: [{name: shared-memory, emptyDir: {sizeLimit: 1Gi}}, {name: extra, emptyDir: {}}]}}",
    );
    let pod = json_of(template.spec.as_ref().unwrap());
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "ngc"}]));
    assert_eq!(
        pod["volumes"],
        json!([{"name": "shared-memory", "emptyDir": {"sizeLimit": "1Gi"}},
               {"name": "extra", "emptyDir": {}}])
    );
}

#[test]
fn pod_spec_overrides_merge_and_sidecars_are_appended() {
    let template = pod_of(
        "{extraPodSpec: {nodeSelector: {gpu: h100}, tolerations: [{key: nvidia.com/gpu, operator: Exists}], terminationGracePeriodSeconds: 120, volumes: [{name: extra, emptyDir: {}}, {name: shared-memory, emptyDir: {}}], containers: [{name: sidecar, image: 's:1'}, {name: main, image: 'from-containers'}], mainContainer: {volumeMounts: [{name: extra, mountPath: /extra}]}}}",
    );
    let pod = json_of(template.spec.as_ref().unwrap());
    assert_eq!(pod["nodeSelector"], json!({"gpu": "h100"}));
    assert_eq!(
        pod["tolerations"],
        json!([{"key": "nvidia.com/gpu", "operator": "Exists"}])
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 120);
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(
        pod["containers"][1],
        json!({"name": "sidecar", "image": "s:1"})
    );
    assert_eq!(pod["containers"].as_array().unwrap().len(), 2);
    assert_eq!(pod["containers"][0]["image"], "from-containers");
    // The user's volume named shared-memory wins; the generated mount is still added.
    assert_eq!(
        pod["volumes"],
        json!([{"name": "extra", "emptyDir": {}}, {"name": "shared-memory", "emptyDir": {}}])
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"],
        json!([{"name": "extra", "mountPath": "/extra"},
               {"name": "shared-memory", "mountPath": "/dev/shm"}])
    );
}

#[test]
fn pod_defaults_and_security_context() {
    let restricted = OperatorConfig {
        restricted_security_context: true,
        ..Default::default()
    };
    let cases = [
        (
            "{}",
            OperatorConfig::default(),
            json!({"fsGroup": 1000}),
            json!(null),
        ),
        (
            "{extraPodSpec: {securityContext: {runAsUser: 5}}}",
            OperatorConfig::default(),
            json!({"runAsUser": 5}),
            json!(null),
        ),
        (
            "{}",
            restricted.clone(),
            json!({"fsGroup": 1000, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        ),
        (
            "{extraPodSpec: {securityContext: {runAsNonRoot: false}, mainContainer: {securityContext: {capabilities: {add: [SYS_PTRACE]}}}}}",
            restricted,
            json!({"runAsNonRoot": false, "seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["SYS_PTRACE"], "drop": ["ALL"]}}),
        ),
    ];
    for (service, config, pod_context, container_context) in cases {
        let template = build(&single(None, service, &config), &config);
        let pod = json_of(template.spec.as_ref().unwrap());
        assert_eq!(pod["securityContext"], pod_context, "{service}");
        assert_eq!(
            pod["containers"][0]["securityContext"], container_context,
            "{service}"
        );
        assert_eq!(pod["terminationGracePeriodSeconds"], 60);
        assert_eq!(pod["restartPolicy"], "Always");
    }
}

#[test]
fn service_account_precedence() {
    let etcd = OperatorConfig {
        discovery_backend: DiscoveryBackend::Etcd,
        ..Default::default()
    };
    let cases = [
        (
            "{componentType: worker}",
            OperatorConfig::default(),
            Some("g-k8s-service-discovery"),
        ),
        ("{componentType: worker}", etcd.clone(), None),
        (
            "{componentType: planner}",
            etcd.clone(),
            Some("planner-serviceaccount"),
        ),
        (
            "{componentType: planner}",
            OperatorConfig::default(),
            Some("planner-serviceaccount"),
        ),
        (
            "{extraPodSpec: {serviceAccountName: mine}}",
            OperatorConfig::default(),
            Some("mine"),
        ),
    ];
    for (service, config, expected) in cases {
        let template = build(&single(None, service, &config), &config);
        let account = template.spec.unwrap().service_account_name;
        assert_eq!(account.as_deref(), expected, "{service}");
    }
}

#[test]
fn labels_and_annotations() {
    let template = pod_of(
        "{componentType: worker, subComponentType: prefill, modelRef: {name: abc}, labels: {team: a, nvidia.com/selector: spoofed, nvidia.com/dynamo-component-type: spoofed}, annotations: {nvidia.com/restartAt: r1, note: spec}, extraPodMetadata: {labels: {team: b}, annotations: {note: extra, nvidia.com/restartAt: user}}}",
    );
    let metadata = template.metadata.unwrap();
    assert_eq!(
        json_of(&metadata.labels),
        json!({
            "nvidia.com/selector": "g-svc",
            "nvidia.com/dynamo-component": "Svc",
            "nvidia.com/dynamo-namespace": "ns-g",
            "nvidia.com/dynamo-graph-deployment-name": "g",
            "nvidia.com/dynamo-component-type": "worker",
            "nvidia.com/dynamo-sub-component-type": "prefill",
            "nvidia.com/metrics-enabled": "true",
            "nvidia.com/dynamo-base-model-hash": "ba7816bf",
            "nvidia.com/dynamo-discovery-backend": "kubernetes",
            "nvidia.com/dynamo-discovery-enabled": "true",
            "team": "b",
        })
    );
    // The service's own annotations go on the Deployment; the pods get extraPodMetadata's and
    // the restart stamp.
    assert_eq!(
        json_of(&metadata.annotations),
        json!({"nvidia.com/restartAt": "r1", "note": "extra"})
    );
    for (annotation, metrics_label) in [
        ("'false'", None),
        ("'False'", None),
        ("'true'", Some("true")),
    ] {
        let template = pod_of(&format!(
            "{{annotations: {{nvidia.com/enable-metrics: {annotation}}}}}"
        ));
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            labels.get(label::METRICS_ENABLED).map(String::as_str),
            metrics_label
        );
    }
    assert_eq!(
        pod_of("{annotations: {note: spec}}")
            .metadata
            .unwrap()
            .annotations,
        None
    );
    let etcd = OperatorConfig {
        discovery_backend: DiscoveryBackend::Etcd,
        ..Default::default()
    };
    let labels = build(&single(None, "{}", &etcd), &etcd)
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert!(!labels.contains_key(label::DISCOVERY_BACKEND));
    assert!(!labels.contains_key(label::DISCOVERY_ENABLED));
}

#[test]
fn env_from_secret_and_volume_errors() {
    let main = json_of(main_of(&pod_of("{envFromSecret: hf-token}")));
    assert_eq!(
        main["envFrom"],
        json!([{"secretRef": {"name": "hf-token"}}])
    );
    let dcd = single(
        Some("sglang"),
        "{volumeMounts: [{name: cache, useAsCompilationCache: true}]}",
        &Default::default(),
    );
    let err = component_pod_template(&dcd, &Default::default()).unwrap_err();
    assert_eq!(err.reason(), "NoCompilationCacheDefault");
    // Only workers have a backend: a frontend gets no vLLM default, whatever the graph says.
    let dcd = single(
        Some("vllm"),
        "{componentType: frontend, volumeMounts: [{name: cache, useAsCompilationCache: true}]}",
        &Default::default(),
    );
    let err = component_pod_template(&dcd, &Default::default()).unwrap_err();
    assert_eq!(err.reason(), "NoCompilationCacheDefault");
    // (backendFramework, service yaml, cache mount path)
    let cases = [
        (
            Some("vllm"),
            "{componentType: worker, volumeMounts: [{name: cache, useAsCompilationCache: true}]}",
            "/root/.cache/vllm",
        ),
        // Detected from the command line, as upstream does, without a backendFramework.
        (
            None,
            "{componentType: decode, volumeMounts: [{name: cache, useAsCompilationCache: true}], extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.vllm]}}}",
            "/root/.cache/vllm",
        ),
        (
            Some("vllm"),
            "{componentType: worker, volumeMounts: [{name: cache, mountPoint: /cache, useAsCompilationCache: true}]}",
            "/cache",
        ),
    ];
    for (backend, service, path) in cases {
        let dcd = single(backend, service, &Default::default());
        let main = main_of(&build(&dcd, &Default::default())).clone();
        assert_eq!(
            json_of(&main)["volumeMounts"][0],
            json!({"name": "cache", "mountPath": path}),
            "{service}"
        );
        assert_eq!(
            env_value(&main, "VLLM_CACHE_ROOT").as_deref(),
            Some(path),
            "{service}"
        );
    }
    // An sglang worker with a cache at a path of its own gets no vLLM variable.
    let dcd = single(
        Some("sglang"),
        "{componentType: worker, volumeMounts: [{name: cache, mountPoint: /cache, useAsCompilationCache: true}]}",
        &Default::default(),
    );
    assert_eq!(
        env_value(
            main_of(&build(&dcd, &Default::default())),
            "VLLM_CACHE_ROOT"
        ),
        None
    );
    let dcd = single(
        Some("sglang"),
        "{componentType: worker, extraPodSpec: {mainContainer: {command: [python3, -m, dynamo.vllm]}}}",
        &Default::default(),
    );
    let err = component_pod_template(&dcd, &Default::default()).unwrap_err();
    assert_eq!(err.reason(), "BackendFrameworkMismatch");
}

#[test]
fn examples_build() {
    let config = OperatorConfig::default();
    for (file, services) in [
        ("vllm-agg.yaml", &["Frontend", "VllmDecodeWorker"][..]),
        (
            "vllm-disagg.yaml",
            &["Frontend", "VllmPrefillWorker", "VllmDecodeWorker"],
        ),
        ("sglang-agg.yaml", &["Frontend", "SGLangDecodeWorker"]),
    ] {
        let dgd = example(file);
        for service in services {
            let dcd = component(&dgd, service, &config);
            component_pod_template(&dcd, &config)
                .unwrap_or_else(|e| panic!("{file} {service}: {e}"));
        }
    }
    let dgd = example("vllm-disagg.yaml");
    let prefill = component(&dgd, "VllmPrefillWorker", &config);
    let template = component_pod_template(&prefill, &config).unwrap();
    let pod = json_of(template.spec.as_ref().unwrap());
    let main = &pod["containers"][0];
    assert_eq!(
        main["resources"]["limits"],
        json!({"nvidia.com/gpu": "1", "rdma/ib": "1"})
    );
    assert_eq!(main["args"][2], "--is-prefill-worker");
    assert_eq!(
        pod["volumes"],
        json!([{"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}},
               {"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}])
    );
    assert_eq!(
        pod["nodeSelector"]["nvidia.com/gpu.product"],
        "NVIDIA-H100-80GB-HBM3"
    );
    let main = main_of(&template);
    assert_eq!(env_value(main, "HF_HOME").as_deref(), Some("/models/hf"));
    assert_eq!(env_value(main, "POD_IP").as_deref(), Some("<valueFrom>"));
    assert_eq!(
        env_value(main, "DYN_NAMESPACE").as_deref(),
        Some("ns-vllm-disagg")
    );
    assert_eq!(
        template.metadata.unwrap().labels.unwrap()["team"],
        "inference"
    );

    let sglang = example("sglang-agg.yaml");
    let worker = component(&sglang, "SGLangDecodeWorker", &config);
    let pod = component_pod_template(&worker, &config)
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(120));
}

#[test]
fn namespace_is_required() {
    let mut dcd = single(None, "{}", &Default::default());
    dcd.metadata.namespace = None;
    assert_eq!(
        component_pod_template(&dcd, &Default::default())
            .unwrap_err()
            .reason(),
        "MissingMetadata"
    );
}

#[test]
fn a_graph_level_pathway_builds_the_same_pod_from_the_service_itself() {
    let config = OperatorConfig::default();
    let dgd = example("vllm-disagg.yaml");
    let dcd = component(&dgd, "VllmDecodeWorker", &config);
    // What a pathway without DynamoComponentDeployments (one object per graph) passes.
    let service = ServiceInput {
        namespace: "ns",
        graph_name: "vllm-disagg",
        service_name: "VllmDecodeWorker",
        component_name: "vllm-disagg-vllmdecodeworker",
        dynamo_namespace: "ns-vllm-disagg",
        backend: dgd.spec.backend_framework,
        spec: &dcd.spec.shared,
    };
    let direct = pod_template(&service, &config).unwrap();
    assert_eq!(json_of(&direct), json_of(&build(&dcd, &config)));
    let labels = direct.metadata.unwrap().labels.unwrap();
    assert_eq!(labels[label::SELECTOR], "vllm-disagg-vllmdecodeworker");
    assert_eq!(labels[label::DYNAMO_NAMESPACE], "ns-vllm-disagg");
}

#[test]
fn a_component_made_by_hand_gets_the_graph_builders_defaults() {
    let mut dcd = DynamoComponentDeployment::new("solo", Default::default());
    dcd.metadata.namespace = Some("team".into());
    dcd.metadata.uid = Some("u".into());
    dcd.spec.shared.service_name = Some("Solo".into());
    // Written by hand without a graph: the deprecated field is not trusted.
    dcd.spec.shared.dynamo_namespace = Some("mine".into());
    let service = ComponentService::of(&dcd).unwrap();
    let input = service.input();
    assert_eq!(input.dynamo_namespace, "team-");
    assert_eq!((input.graph_name, input.component_name), ("", "solo"));
}

#[test]
fn without_nats_the_event_plane_is_zeromq_unless_the_user_chose_one() {
    let no_nats = OperatorConfig::default();
    let with_nats = OperatorConfig {
        nats_addr: Some("nats://nats:4222".into()),
        ..Default::default()
    };
    // (operator config, service yaml, DYN_EVENT_PLANE)
    let cases = [
        (&no_nats, "{componentType: worker}", Some("zmq")),
        (&no_nats, "{componentType: frontend}", Some("zmq")),
        (
            &no_nats,
            "{componentType: worker, envs: [{name: DYN_EVENT_PLANE, value: nats}]}",
            Some("nats"),
        ),
        (&with_nats, "{componentType: worker}", None),
    ];
    for (config, yaml, expected) in cases {
        let template = build(&single(None, yaml, &Default::default()), config);
        assert_eq!(
            env_value(main_of(&template), "DYN_EVENT_PLANE").as_deref(),
            expected,
            "{yaml}"
        );
    }
}
