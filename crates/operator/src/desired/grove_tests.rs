//! Upstream's `TestGenerateGrovePodCliqueSet` goldens (graph_test.go @ d44fcde27), its Grove
//! readiness and KAI tables (grove_test.go), and the checks this port adds.
//!
//! Adjustments of the goldens, each a deliberate difference: the operator's discovery backend is
//! `kubernetes` (upstream's test config leaves it empty, which production never does), so every
//! clique carries the `nvidia.com/dynamo-discovery-backend` annotation, its pods the discovery
//! labels, and pods without a service account the graph's discovery one; the PodCliqueSet is
//! owned by the graph (upstream sets that when it creates it); cliques come sorted by name.

use std::collections::BTreeMap;

use dynamo_api::parse::from_yaml;

use super::*;
use crate::desired::config::{SecretRef, ServedApis};
use crate::desired::graph::graph_components;
use crate::desired::testing::graph;
use crate::kinds::{
    PodCliqueReplicas, PodCliqueScalingGroupReplicas, PodCliqueScalingGroupStatus, PodCliqueStatus,
};

const GRAPH: &str = "test-dynamo-graph-deployment";
const DISCOVERY_SA: &str = "test-dynamo-graph-deployment-k8s-service-discovery";

fn settings() -> GroveSettings {
    GroveSettings {
        termination_delay: DEFAULT_TERMINATION_DELAY,
        kai_queue: None,
    }
}

fn base_config() -> OperatorConfig {
    OperatorConfig {
        etcd_addr: Some("etcd-address".into()),
        nats_addr: Some("nats-address".into()),
        ..Default::default()
    }
}

fn build(
    dgd: &DynamoGraphDeployment,
    config: &OperatorConfig,
    settings: &GroveSettings,
) -> Result<PodCliqueSet, BuildError> {
    let components = graph_components(dgd, config)?;
    pod_clique_set(dgd, &components, config, settings)
}

/// The PodCliqueSet spec with each container's env sorted by name (upstream's test sorts
/// them too: env order is not asserted).
fn normalized(mut spec: PodCliqueSetSpec) -> PodCliqueSetSpec {
    for clique in &mut spec.template.cliques {
        for container in &mut clique.spec.pod_spec.containers {
            if let Some(env) = &mut container.env {
                env.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
    }
    spec
}

fn assert_spec(got: &PodCliqueSet, want_yaml: &str) {
    let want: PodCliqueSetSpec = from_yaml(want_yaml).unwrap();
    let (got, want) = (normalized(got.spec.clone()), normalized(want));
    for (g, w) in got.template.cliques.iter().zip(&want.template.cliques) {
        assert_eq!(
            serde_json::to_value(g).unwrap(),
            serde_json::to_value(w).unwrap(),
            "clique {}",
            w.name
        );
    }
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&want).unwrap()
    );
}

const PLANNER_INPUT: &str = r#"
    Planner:
      replicas: 2
      componentType: planner
      resources:
        requests: {cpu: "2", memory: 2Gi}
        limits: {cpu: "2", memory: 2Gi, gpu: "2"}
      envs: [{name: PLANNER_ENV_1, value: "2"}]
      volumeMounts: [{name: dynamo-pvc, mountPoint: /planner}]
      envFromSecret: planner-secret
      livenessProbe: {httpGet: {path: /health, port: 8080}}
      readinessProbe: {httpGet: {path: /ready, port: 8080}}
      extraPodSpec:
        mainContainer:
          command: [/bin/sh, -c, echo $PLANNER_ENV_1]
          args: [--planner-env-1, "1"]
          image: planner-image
"#;

/// Env of every pod: the graph's, the operator's and the injected identity (with `extra`).
fn env_yaml(component_type: &str, extra: &[(&str, &str)]) -> String {
    let mut env = vec![
        ("DYNAMO_POD_GANG_SET_REPLICAS".to_owned(), "1".to_owned()),
        ("NATS_SERVER".into(), "nats-address".into()),
        ("ETCD_ENDPOINTS".into(), "etcd-address".into()),
        (
            "DYN_NAMESPACE".into(),
            "test-namespace-test-dynamo-graph-deployment".into(),
        ),
        ("DYN_COMPONENT".into(), component_type.into()),
        ("DYN_DISCOVERY_BACKEND".into(), "kubernetes".into()),
        ("DYN_PARENT_DGD_K8S_NAME".into(), GRAPH.into()),
        (
            "DYN_PARENT_DGD_K8S_NAMESPACE".into(),
            "test-namespace".into(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut yaml: String = env
        .iter()
        .map(|(k, v)| format!("            - {{name: {k}, value: '{v}'}}\n"))
        .collect();
    for (name, path) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_UID", "metadata.uid"),
    ] {
        yaml.push_str(&format!(
            "            - {{name: {name}, valueFrom: {{fieldRef: {{fieldPath: {path}}}}}}}\n"
        ));
    }
    yaml
}

fn labels_yaml(service: &str, component_type: &str, extra: &str) -> String {
    format!(
        "      labels:
        nvidia.com/selector: test-dynamo-graph-deployment-{lower}
        nvidia.com/dynamo-component: {service}
        nvidia.com/metrics-enabled: 'true'
        nvidia.com/dynamo-component-type: {component_type}
        nvidia.com/dynamo-graph-deployment-name: test-dynamo-graph-deployment
        nvidia.com/dynamo-namespace: test-namespace-test-dynamo-graph-deployment
        nvidia.com/dynamo-discovery-backend: kubernetes
        nvidia.com/dynamo-discovery-enabled: 'true'
{extra}",
        lower = service.to_lowercase()
    )
}

const SHARED_MEMORY: &str = "{name: shared-memory, emptyDir: {medium: Memory, sizeLimit: 8Gi}}";

fn frontend_clique(operator_env: &[(&str, &str)], metadata: &str) -> String {
    let mut extra = vec![
        ("DYN_HTTP_PORT", "8000"),
        ("DYNAMO_PORT", "8000"),
        ("FRONTEND_ENV_1", "1"),
    ];
    extra.extend(operator_env);
    format!(
        "    - name: frontend
{metadata}      spec:
        roleName: frontend
        replicas: 1
        minAvailable: 1
        podSpec:
          volumes: [{SHARED_MEMORY}]
          terminationGracePeriodSeconds: 10
          securityContext: {{fsGroup: 1000}}
          imagePullSecrets: [{{name: frontend-secret}}]
          restartPolicy: Always
          serviceAccountName: {DISCOVERY_SA}
          containers:
          - name: main
            image: frontend-image
            command: [/bin/sh, -c, echo $FRONTEND_ENV_1]
            args: [--frontend-env-1, '1']
            envFrom: [{{secretRef: {{name: frontend-secret}}}}]
            livenessProbe: {{httpGet: {{path: /health, port: 8080}}}}
            readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
            env:
{env}            resources:
              requests: {{cpu: '1', memory: 1Gi}}
              limits: {{cpu: '1', memory: 1Gi, nvidia.com/gpu: '1'}}
            volumeMounts: [{{name: shared-memory, mountPath: /dev/shm}}]
            ports: [{{protocol: TCP, name: http, containerPort: 8000}}]
",
        env = env_yaml("frontend", &extra)
    )
}

fn planner_clique(operator_env: &[(&str, &str)]) -> String {
    let mut extra = vec![("PLANNER_ENV_1", "2"), ("PLANNER_PROMETHEUS_PORT", "9085")];
    extra.extend(operator_env);
    format!(
        "    - name: planner
{labels}      annotations: {{nvidia.com/dynamo-discovery-backend: kubernetes}}
      spec:
        roleName: planner
        replicas: 2
        minAvailable: 1
        podSpec:
          volumes:
          - {{name: dynamo-pvc, persistentVolumeClaim: {{claimName: dynamo-pvc}}}}
          - {SHARED_MEMORY}
          serviceAccountName: planner-serviceaccount
          terminationGracePeriodSeconds: 60
          securityContext: {{fsGroup: 1000}}
          restartPolicy: Always
          containers:
          - name: main
            image: planner-image
            command: [/bin/sh, -c, echo $PLANNER_ENV_1]
            args: [--planner-env-1, '1']
            envFrom: [{{secretRef: {{name: planner-secret}}}}]
            livenessProbe: {{httpGet: {{path: /health, port: 8080}}}}
            readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
            env:
{env}            resources:
              requests: {{cpu: '2', memory: 2Gi}}
              limits: {{cpu: '2', memory: 2Gi, nvidia.com/gpu: '2'}}
            volumeMounts:
            - {{name: dynamo-pvc, mountPath: /planner}}
            - {{name: shared-memory, mountPath: /dev/shm}}
            ports: [{{protocol: TCP, name: metrics, containerPort: 9085}}]
",
        labels = labels_yaml("Planner", "planner", ""),
        env = env_yaml("planner", &extra)
    )
}

/// `test_generate_grove_pod_clique_set_single_node`.
#[test]
fn golden_single_node() {
    let dgd = graph(&format!(
        r#"metadata: {{name: {GRAPH}, namespace: test-namespace}}
spec:
  envs: [{{name: DYNAMO_POD_GANG_SET_REPLICAS, value: "1"}}]
  services:
    Frontend:
      componentType: frontend
      subComponentType: test-sub-component
      extraPodMetadata:
        annotations: {{nvidia.com/annotation1: annotation1, nvidia.com/annotation2: annotation2}}
        labels: {{nvidia.com/label1: label1, nvidia.com/label2: label2}}
      replicas: 1
      resources:
        requests: {{cpu: "1", memory: 1Gi}}
        limits: {{cpu: "1", memory: 1Gi, gpu: "1"}}
      envs: [{{name: FRONTEND_ENV_1, value: "1"}}]
      envFromSecret: frontend-secret
      livenessProbe: {{httpGet: {{path: /health, port: 8080}}}}
      readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
      extraPodSpec:
        terminationGracePeriodSeconds: 10
        imagePullSecrets: [{{name: frontend-secret}}]
        mainContainer:
          command: [/bin/sh, -c, echo $FRONTEND_ENV_1]
          args: [--frontend-env-1, "1"]
          image: frontend-image
{PLANNER_INPUT}"#
    ));
    let config = OperatorConfig {
        model_express_url: Some("model-express-url".into()),
        prometheus_endpoint: Some("http://localhost:9090".into()),
        ..base_config()
    };
    let pcs = build(&dgd, &config, &settings()).unwrap();

    assert_eq!(pcs.metadata.name.as_deref(), Some(GRAPH));
    assert_eq!(pcs.metadata.namespace.as_deref(), Some("test-namespace"));
    assert_eq!(pcs.metadata.labels, None);
    let owner = &pcs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        (
            "DynamoGraphDeployment",
            GRAPH,
            "uid-test-dynamo-graph-deployment"
        )
    );
    assert_eq!(owner.controller, Some(true));

    let operator_env = [
        ("MODEL_EXPRESS_URL", "model-express-url"),
        ("PROMETHEUS_ENDPOINT", "http://localhost:9090"),
    ];
    let frontend_metadata = format!(
        "{}      annotations:
        nvidia.com/annotation1: annotation1
        nvidia.com/annotation2: annotation2
        nvidia.com/dynamo-discovery-backend: kubernetes
",
        labels_yaml(
            "Frontend",
            "frontend",
            "        nvidia.com/dynamo-sub-component-type: test-sub-component
        nvidia.com/label1: label1
        nvidia.com/label2: label2
"
        )
    );
    let want = format!(
        "replicas: 1
template:
  cliqueStartupType: CliqueStartupTypeAnyOrder
  headlessServiceConfig: {{publishNotReadyAddresses: true}}
  terminationDelay: 15m0s
  cliques:
{}{}",
        frontend_clique(&operator_env, &frontend_metadata),
        planner_clique(&operator_env)
    );
    assert_spec(&pcs, &want);
    // On the wire as upstream names the fields.
    let wire = serde_json::to_value(&pcs).unwrap();
    assert_eq!(wire["apiVersion"], "grove.io/v1alpha1");
    assert_eq!(wire["kind"], "PodCliqueSet");
    assert_eq!(wire["spec"]["template"]["terminationDelay"], "15m0s");
    assert!(
        wire["spec"]["template"]
            .get("podCliqueScalingGroups")
            .is_none()
    );
    assert!(wire.get("status").is_none());
}

const SGLANG_WORKER_INPUT: &str = r#"
    worker:
      multinode: {nodeCount: 3}
      extraPodMetadata:
        annotations: {nvidia.com/annotation1: annotation1, nvidia.com/annotation2: annotation2}
        labels: {nvidia.com/label1: label1, nvidia.com/label2: label2}
      replicas: 5
      componentType: worker
      subComponentType: test-sub-component
      extraPodSpec:
        mainContainer:
          image: worker-image
          command: [/bin/sh, -c]
          args: [python3 -m dynamo.sglang --custom-flag custom-value]
      resources:
        requests: {cpu: "2", memory: 2Gi}
        limits: {cpu: "2", memory: 2Gi, gpu: "2"}
      envs: [{name: WORKER_ENV_1, value: "1"}]
"#;

const FRONTEND_INPUT: &str = r#"
    Frontend:
      replicas: 1
      resources:
        requests: {cpu: "1", memory: 1Gi}
        limits: {cpu: "1", memory: 1Gi, gpu: "1"}
      componentType: frontend
      envs: [{name: FRONTEND_ENV_1, value: "1"}]
      envFromSecret: frontend-secret
      livenessProbe: {httpGet: {path: /health, port: 8080}}
      readinessProbe: {httpGet: {path: /ready, port: 8080}}
      extraPodSpec:
        imagePullSecrets: [{name: frontend-secret}]
        terminationGracePeriodSeconds: 10
        mainContainer:
          command: [/bin/sh, -c, echo $FRONTEND_ENV_1]
          args: [--frontend-env-1, "1"]
          image: frontend-image
"#;

fn multinode_graph(backend: &str, worker: &str) -> DynamoGraphDeployment {
    graph(&format!(
        r#"metadata: {{name: {GRAPH}, namespace: test-namespace}}
spec:
  envs: [{{name: DYNAMO_POD_GANG_SET_REPLICAS, value: "1"}}]
  backendFramework: {backend}
  services:
{FRONTEND_INPUT}{worker}{PLANNER_INPUT}"#
    ))
}

fn worker_clique(name: &str, replicas: i32, args: &str, probes: bool) -> String {
    let probes = if probes {
        "            livenessProbe:
              httpGet: {path: /live, port: system}
              timeoutSeconds: 4
              periodSeconds: 5
              failureThreshold: 1
            readinessProbe:
              httpGet: {path: /health, port: system}
              timeoutSeconds: 4
              periodSeconds: 10
              failureThreshold: 3
            startupProbe:
              httpGet: {path: /live, port: system}
              timeoutSeconds: 5
              periodSeconds: 10
              failureThreshold: 720
"
    } else {
        ""
    };
    let extra = [
        ("DYN_SYSTEM_ENABLED", "true"),
        ("DYN_SYSTEM_PORT", "9090"),
        ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[\"generate\"]"),
        ("WORKER_ENV_1", "1"),
        ("DYN_HEALTH_CHECK_ENABLED", "false"),
    ];
    format!(
        "    - name: {name}
{labels}      annotations:
        nvidia.com/annotation1: annotation1
        nvidia.com/annotation2: annotation2
        nvidia.com/dynamo-discovery-backend: kubernetes
      spec:
        roleName: {name}
        replicas: {replicas}
        minAvailable: 1
        podSpec:
          restartPolicy: Always
          terminationGracePeriodSeconds: 60
          serviceAccountName: {DISCOVERY_SA}
          securityContext: {{fsGroup: 1000}}
          volumes: [{SHARED_MEMORY}]
          containers:
          - name: main
            image: worker-image
            command: [/bin/sh, -c]
            args: ['{args}']
            ports: [{{protocol: TCP, name: system, containerPort: 9090}}]
            env:
{env}            resources:
              requests: {{cpu: '2', memory: 2Gi}}
              limits: {{cpu: '2', memory: 2Gi, nvidia.com/gpu: '2'}}
            volumeMounts: [{{name: shared-memory, mountPath: /dev/shm}}]
{probes}",
        labels = labels_yaml(
            "worker",
            "worker",
            "        nvidia.com/dynamo-sub-component-type: test-sub-component
        nvidia.com/label1: label1
        nvidia.com/label2: label2
"
        ),
        env = env_yaml("worker", &extra)
    )
}

/// `test_generate_grove_pod_gang_set_multinode sglang`.
#[test]
fn golden_multinode_sglang() {
    let dgd = multinode_graph("sglang", SGLANG_WORKER_INPUT);
    let pcs = build(&dgd, &base_config(), &settings()).unwrap();
    let leader =
        "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE):29500";
    let frontend_metadata = format!(
        "{}      annotations: {{nvidia.com/dynamo-discovery-backend: kubernetes}}\n",
        labels_yaml("Frontend", "frontend", "")
    );
    let want = format!(
        "replicas: 1
template:
  cliqueStartupType: CliqueStartupTypeAnyOrder
  headlessServiceConfig: {{publishNotReadyAddresses: true}}
  terminationDelay: 15m0s
  podCliqueScalingGroups:
  - {{name: worker, cliqueNames: [worker-ldr, worker-wkr], replicas: 5, minAvailable: 1}}
  cliques:
{}{}{}{}",
        frontend_clique(&[], &frontend_metadata),
        planner_clique(&[]),
        worker_clique(
            "worker-ldr",
            1,
            &format!(
                "python3 -m dynamo.sglang --dist-init-addr {leader} --nnodes 3 --node-rank 0 --custom-flag custom-value"
            ),
            true
        ),
        worker_clique(
            "worker-wkr",
            2,
            &format!(
                "python3 -m dynamo.sglang --dist-init-addr {leader} --nnodes 3 --node-rank $((GROVE_PCLQ_POD_INDEX + 1)) --custom-flag custom-value"
            ),
            false
        ),
    );
    assert_spec(&pcs, &want);
}

/// `test_generate_grove_pod_gang_set_multinode vllm`: the structure and the worker cliques'
/// launch and probes (the rest of its cliques is the SGLang case's).
#[test]
fn golden_multinode_vllm() {
    let worker = r#"
    worker:
      multinode: {nodeCount: 3}
      replicas: 5
      componentType: worker
      livenessProbe: {httpGet: {path: /health, port: 8080}}
      readinessProbe: {httpGet: {path: /ready, port: 8080}}
      extraPodSpec:
        mainContainer:
          image: worker-image
          command: [python3, -m, dynamo.vllm]
          args: [--custom-flag, custom-value, --tensor-parallel-size, "4", --pipeline-parallel-size, "1"]
          startupProbe: {httpGet: {path: /startup, port: 8080}}
      resources:
        requests: {cpu: "2", memory: 2Gi}
        limits: {cpu: "2", memory: 2Gi, gpu: "2"}
"#;
    let pcs = build(
        &multinode_graph("vllm", worker),
        &base_config(),
        &settings(),
    )
    .unwrap();
    let template = &pcs.spec.template;
    assert_eq!(
        template.clique_startup_type,
        Some(CliqueStartupType::CliqueStartupTypeAnyOrder)
    );
    let groups: PodCliqueScalingGroupConfig = from_yaml(
        "{name: worker, cliqueNames: [worker-ldr, worker-wkr], replicas: 5, minAvailable: 1}",
    )
    .unwrap();
    assert_eq!(template.pod_clique_scaling_groups, Some(vec![groups]));
    let names: Vec<&str> = template.cliques.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["frontend", "planner", "worker-ldr", "worker-wkr"]);
    let main = |name: &str| {
        let clique = template.cliques.iter().find(|c| c.name == name).unwrap();
        assert_eq!(clique.spec.starts_after, None);
        assert!(
            !clique
                .labels
                .as_ref()
                .unwrap()
                .contains_key("nvidia.com/dynamo-sub-component-type")
        );
        clique.spec.pod_spec.containers[0].clone()
    };
    let leader = main("worker-ldr");
    assert_eq!(leader.command.unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(
        leader.args.unwrap(),
        [
            "ray start --head --port=6379 && python3 -m dynamo.vllm --custom-flag custom-value --tensor-parallel-size 4 --pipeline-parallel-size 1 --distributed-executor-backend ray"
        ]
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        (
            path(&leader.liveness_probe),
            path(&leader.readiness_probe),
            path(&leader.startup_probe)
        ),
        (
            Some("/health".into()),
            Some("/ready".into()),
            Some("/startup".into())
        )
    );
    let worker = main("worker-wkr");
    assert_eq!(worker.command.unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(
        worker.args.unwrap(),
        [
            "ray start --address=$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE):6379 --block"
        ]
    );
    assert!(
        worker.liveness_probe.is_none()
            && worker.readiness_probe.is_none()
            && worker.startup_probe.is_none()
    );
}

/// `TestGenerateGrovePodCliqueSet_StartsAfterDependencies`: a TRT-LLM multinode leader starts
/// after its workers, and the whole set starts explicitly.
#[test]
fn trtllm_leader_starts_after_its_workers() {
    let dgd = graph(
        "metadata: {name: g}
spec:
  backendFramework: trtllm
  services:
    main:
      componentType: worker
      replicas: 2
      multinode: {nodeCount: 2}
      resources: {limits: {gpu: '1'}}
      extraPodSpec: {mainContainer: {image: t, command: [python3, -m, dynamo.trtllm], args: [--model-path, m]}}
",
    );
    let config = OperatorConfig {
        mpi_ssh_secret: Some(SecretRef {
            namespace: "ops".into(),
            name: "mpi-ssh".into(),
        }),
        ..Default::default()
    };
    let pcs = build(&dgd, &config, &settings()).unwrap();
    let template = &pcs.spec.template;
    assert_eq!(
        template.clique_startup_type,
        Some(CliqueStartupType::CliqueStartupTypeExplicit)
    );
    let after: Vec<(&str, Option<Vec<String>>)> = template
        .cliques
        .iter()
        .map(|c| (c.name.as_str(), c.spec.starts_after.clone()))
        .collect();
    assert_eq!(
        after,
        [
            ("main-ldr", Some(vec!["main-wkr".to_owned()])),
            ("main-wkr", None)
        ]
    );
    let wire = serde_json::to_value(&pcs).unwrap();
    assert_eq!(
        wire["spec"]["template"]["cliqueStartupType"],
        "CliqueStartupTypeExplicit"
    );
    // The leader launches over SSH with the operator's key Secret; the workers run sshd.
    let leader = &template.cliques[0].spec.pod_spec;
    assert!(leader.containers[0].args.as_ref().unwrap()[0].contains("mpirun"));
    assert!(
        leader.volumes.iter().flatten().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("mpi-ssh"))
    );
}

/// `Test_GeneratePodCliqueSetGlobalDynamoNamespace`.
#[test]
fn global_dynamo_namespace() {
    let dgd = graph(
        "metadata: {name: test-dynamo-graph, namespace: k8s-namespace}
spec:
  services:
    Frontend: {componentType: frontend, replicas: 1, globalDynamoNamespace: true}
    Planner: {componentType: planner, replicas: 1}
",
    );
    let pcs = build(&dgd, &base_config(), &settings()).unwrap();
    for (clique, expected) in pcs
        .spec
        .template
        .cliques
        .iter()
        .zip(["dynamo", "k8s-namespace-test-dynamo-graph"])
    {
        assert_eq!(
            clique.labels.as_ref().unwrap()["nvidia.com/dynamo-namespace"],
            expected,
            "{}",
            clique.name
        );
        let env = clique.spec.pod_spec.containers[0].env.clone().unwrap();
        let dyn_namespace = env.iter().find(|e| e.name == "DYN_NAMESPACE").unwrap();
        assert_eq!(dyn_namespace.value.as_deref(), Some(expected));
    }
}

/// `TestExpandRolesForService`, and replicas: a missing count is 1, 0 is written as 1 (Grove
/// refuses 0 in templates; the scale subresource sets the live count).
#[test]
fn roles_and_replicas() {
    let dgd = graph(
        "metadata: {name: g}
spec:
  backendFramework: sglang
  services:
    One: {componentType: worker, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
    Two: {componentType: worker, replicas: 3, multinode: {nodeCount: 2}, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
    Five: {componentType: worker, replicas: 0, multinode: {nodeCount: 5}, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
    Zero: {componentType: worker, replicas: 0, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
",
    );
    let pcs = build(&dgd, &base_config(), &settings()).unwrap();
    let template = &pcs.spec.template;
    let cliques: Vec<(&str, &str, i32)> = template
        .cliques
        .iter()
        .map(|c| (c.name.as_str(), c.spec.role_name.as_str(), c.spec.replicas))
        .collect();
    assert_eq!(
        cliques,
        [
            ("five-ldr", "five-ldr", 1),
            ("five-wkr", "five-wkr", 4),
            ("one", "one", 1),
            ("two-ldr", "two-ldr", 1),
            ("two-wkr", "two-wkr", 1),
            ("zero", "zero", 1),
        ]
    );
    assert!(
        template
            .cliques
            .iter()
            .all(|c| c.spec.min_available == Some(1))
    );
    let groups: Vec<(&str, Option<i32>)> = template
        .pod_clique_scaling_groups
        .iter()
        .flatten()
        .map(|g| (g.name.as_str(), g.replicas))
        .collect();
    assert_eq!(groups, [("five", Some(1)), ("two", Some(3))]);
    assert_eq!(workload_name("g", "Five"), "g-0-five");
}

#[test]
fn clique_annotations_carry_discovery_and_restart() {
    let dgd = graph(
        "metadata:
  name: g
  annotations: {nvidia.com/dynamo-discovery-backend: etcd, nvidia.com/enable-metrics: 'false'}
spec:
  services:
    Frontend:
      componentType: frontend
      annotations: {team: a, nvidia.com/restartAt: old}
      extraPodMetadata: {annotations: {team: b, nvidia.com/restartAt: user}}
",
    );
    let mut components = graph_components(&dgd, &base_config()).unwrap();
    let plan = crate::desired::restart::RestartPlan {
        status: None,
        restart_at: BTreeMap::from([("Frontend".to_owned(), "r-2".to_owned())]),
    };
    crate::desired::restart::stamp_restarts(&mut components, &plan);
    let pcs = pod_clique_set(&dgd, &components, &base_config(), &settings()).unwrap();
    let clique = &pcs.spec.template.cliques[0];
    let annotations = clique.annotations.clone().unwrap();
    assert_eq!(annotations["team"], "b");
    assert_eq!(annotations["nvidia.com/restartAt"], "r-2");
    assert_eq!(annotations["nvidia.com/dynamo-discovery-backend"], "etcd");
    let labels = clique.labels.clone().unwrap();
    assert!(!labels.contains_key("nvidia.com/metrics-enabled"));
    assert!(!labels.contains_key("nvidia.com/dynamo-discovery-enabled"));
    // No discovery service account under etcd.
    assert_eq!(clique.spec.pod_spec.service_account_name, None);
}

#[test]
fn termination_delay_is_written_as_go_does() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_secs(15 * 60), "15m0s"),
        (Duration::from_secs(4 * 3600), "4h0m0s"),
        (Duration::from_secs(5400), "1h30m0s"),
        (Duration::from_secs(61), "1m1s"),
        (Duration::from_secs(3601), "1h0m1s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_millis(300), "300ms"),
        (Duration::from_micros(1500), "1.5ms"),
        (Duration::from_nanos(1500), "1.5µs"),
        (Duration::from_nanos(7), "7ns"),
        (Duration::from_nanos(60_000_000_001), "1m0.000000001s"),
    ];
    for (duration, text) in cases {
        assert_eq!(go_duration(duration), text, "{duration:?}");
    }
    // Zero leaves the field to Grove's default.
    let dgd = graph("metadata: {name: g}\nspec: {services: {A: {componentType: frontend}}}\n");
    let zero = GroveSettings {
        termination_delay: Duration::ZERO,
        kai_queue: None,
    };
    let pcs = build(&dgd, &base_config(), &zero).unwrap();
    assert_eq!(pcs.spec.template.termination_delay, None);
}

#[test]
fn grove_pathway_unless_disabled() {
    let annotations =
        |value: &str| BTreeMap::from([(ENABLE_GROVE_ANNOTATION.to_owned(), value.to_owned())]);
    let cases = [
        (true, BTreeMap::new(), true),
        (false, BTreeMap::new(), false),
        (true, annotations("false"), false),
        (true, annotations("FALSE"), false),
        (true, annotations("False"), false),
        (true, annotations("true"), true),
        (true, annotations("0"), true),
        (true, annotations("no"), true),
        (true, annotations(""), true),
        (false, annotations("true"), false),
    ];
    for (served, annotations, expected) in cases {
        assert_eq!(
            grove_pathway(served, &annotations),
            expected,
            "{served} {annotations:?}"
        );
    }
}

/// `TestResolveKaiSchedulerQueueName`.
#[test]
fn kai_queue_name_from_the_graph() {
    let annotations =
        |value: &str| BTreeMap::from([(KAI_QUEUE_ANNOTATION.to_owned(), value.to_owned())]);
    let cases = [
        (BTreeMap::new(), "dynamo"),
        (
            BTreeMap::from([("other".to_owned(), "x".to_owned())]),
            "dynamo",
        ),
        (annotations(""), "dynamo"),
        (annotations("   "), "dynamo"),
        (annotations("  custom-queue  "), "custom-queue"),
    ];
    for (annotations, expected) in cases {
        assert_eq!(kai_queue_name(&annotations), expected, "{annotations:?}");
    }
}

/// `TestInjectKaiSchedulerIfEnabled`: the scheduler and queue label unless another scheduler
/// was chosen; other labels kept; nothing without KAI.
#[test]
fn kai_scheduler_and_queue() {
    let dgd = |scheduler: &str| {
        graph(&format!(
            "metadata: {{name: g}}
spec:
  services:
    Frontend: {{componentType: frontend, extraPodMetadata: {{labels: {{keep: me}}}}, extraPodSpec: {{schedulerName: '{scheduler}'}}}}
"
        ))
    };
    let kai = GroveSettings {
        kai_queue: Some("test-queue".into()),
        ..settings()
    };
    let cases = [
        ("", &kai, Some("kai-scheduler"), Some("test-queue")),
        (
            "kai-scheduler",
            &kai,
            Some("kai-scheduler"),
            Some("test-queue"),
        ),
        ("manual-scheduler", &kai, Some("manual-scheduler"), None),
        ("", &settings(), None, None),
    ];
    for (scheduler, settings, want_scheduler, want_queue) in cases {
        let pcs = build(&dgd(scheduler), &base_config(), settings).unwrap();
        let clique = &pcs.spec.template.cliques[0];
        let labels = clique.labels.as_ref().unwrap();
        assert_eq!(
            clique
                .spec
                .pod_spec
                .scheduler_name
                .as_deref()
                .filter(|s| !s.is_empty()),
            want_scheduler,
            "{scheduler}"
        );
        assert_eq!(
            labels.get(KAI_QUEUE_LABEL).map(String::as_str),
            want_queue,
            "{scheduler}"
        );
        assert_eq!(labels["keep"], "me");
    }
}

#[test]
fn one_scheduler_for_all_cliques() {
    let dgd = graph(
        "metadata: {name: g}
spec:
  services:
    Frontend: {componentType: frontend}
    Planner: {componentType: planner, extraPodSpec: {schedulerName: manual-scheduler}}
",
    );
    let kai = GroveSettings {
        kai_queue: Some("q".into()),
        ..settings()
    };
    let err = build(&dgd, &base_config(), &kai).unwrap_err();
    assert_eq!(err.reason(), "GroveSchedulerMismatch");
    assert_eq!(
        err.to_string(),
        "Grove runs all pods of a graph with one scheduler, but the services use several: kai-scheduler (Frontend); manual-scheduler (Planner)"
    );
    // Without KAI: default-scheduler against manual-scheduler.
    let err = build(&dgd, &base_config(), &settings()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("default-scheduler (Frontend); manual-scheduler (Planner)"),
        "{err}"
    );
}

#[test]
fn names_fit_grove_pod_names() {
    let service = |graph_name: &str, service: &str, nodes: i32| {
        graph(&format!(
            "metadata: {{name: '{graph_name}'}}
spec:
  backendFramework: sglang
  services:
    '{service}': {{componentType: worker, multinode: {{nodeCount: {nodes}}}, extraPodSpec: {{mainContainer: {{image: x, args: [python3 -m dynamo.sglang]}}}}}}
"
        ))
    };
    let g40 = "g".repeat(40);
    // Single node: graph + clique <= 45.
    assert!(build(&service(&g40, "Abcde", 1), &base_config(), &settings()).is_ok());
    let err = build(&service(&g40, "Abcdef", 1), &base_config(), &settings()).unwrap_err();
    assert_eq!(err.reason(), "GroveNameTooLong");
    assert_eq!(
        err.to_string(),
        format!(
            "service Abcdef: Grove names its pods from \"{g40}\" + \"abcdef\", 46 characters, over Grove's limit of 45; shorten the graph or service name"
        )
    );
    // Multinode: graph + group + clique (`-ldr`) <= 45.
    let g31 = "g".repeat(31);
    assert!(build(&service(&g31, "Abcde", 2), &base_config(), &settings()).is_ok());
    let err = build(&service(&g31, "Abcdef", 2), &base_config(), &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "service Abcdef: Grove names its pods from \"{g31}\" + \"abcdef\" + \"abcdef-ldr\", 47 characters, over Grove's limit of 45; shorten the graph or service name"
        )
    );
}

#[test]
fn names_must_be_dns_labels() {
    let dgd = |graph_name: &str, service: &str| {
        graph(&format!(
            "metadata: {{name: '{graph_name}'}}\nspec: {{services: {{'{service}': {{componentType: frontend}}}}}}\n"
        ))
    };
    let err = build(&dgd("g", "Qwen3-0.6B"), &base_config(), &settings()).unwrap_err();
    assert_eq!(err.reason(), "GroveInvalidName");
    assert_eq!(
        err.to_string(),
        "service Qwen3-0.6B: \"qwen3-0.6b\" is no DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), but Grove puts it in the host names of graph g's pods"
    );
    let err = build(&dgd("my.graph", "Frontend"), &base_config(), &settings()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("graph: \"my.graph\" is no DNS label"),
        "{err}"
    );
    assert!(build(&dgd("g-1", "Frontend-2"), &base_config(), &settings()).is_ok());
}

#[test]
fn clique_names_are_unique() {
    let dgd = graph(
        "metadata: {name: g}
spec:
  backendFramework: sglang
  services:
    a: {componentType: worker, multinode: {nodeCount: 2}, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
    A-ldr: {componentType: worker, extraPodSpec: {mainContainer: {image: x, args: [python3 -m dynamo.sglang]}}}
",
    );
    let err = build(&dgd, &base_config(), &settings()).unwrap_err();
    assert_eq!(err.reason(), "GroveDuplicateClique");
    assert_eq!(
        err.to_string(),
        "services A-ldr and a both make the Grove clique \"a-ldr\""
    );
}

#[test]
fn pods_must_not_place_themselves() {
    let cases = [
        ("{nodeName: n1}", "nodeName"),
        (
            "{topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}",
            "topologySpreadConstraints",
        ),
    ];
    for (pod, field) in cases {
        let dgd = graph(&format!(
            "metadata: {{name: g}}\nspec: {{services: {{Frontend: {{componentType: frontend, extraPodSpec: {pod}}}}}}}\n"
        ));
        let err = build(&dgd, &base_config(), &settings()).unwrap_err();
        assert_eq!(err.reason(), "GroveForbiddenPodField");
        assert_eq!(
            err.to_string(),
            format!(
                "service Frontend: Grove does not allow extraPodSpec.podSpec.{field} (it places the pods itself)"
            )
        );
    }
}

#[test]
fn a_multinode_service_needs_a_known_backend() {
    let dgd = graph(
        "metadata: {name: g}\nspec: {services: {W: {componentType: worker, multinode: {nodeCount: 2}, extraPodSpec: {mainContainer: {image: x, command: [./serve]}}}}}\n",
    );
    let err = build(&dgd, &base_config(), &settings()).unwrap_err();
    assert_eq!(err.reason(), "MultinodeBackendUnknown");
    // Grove needs no LeaderWorkerSet: the components build without it.
    assert_eq!(base_config().served, ServedApis::default());
}

fn clique(generation: Option<i64>, desired: i32, status: Option<PodCliqueStatus>) -> PodClique {
    let mut clique = PodClique::new(
        "test-dgd-0-frontend",
        PodCliqueReplicas { replicas: desired },
    );
    clique.metadata.generation = generation;
    clique.status = status;
    clique
}

fn clique_status(
    observed: Option<i64>,
    replicas: i32,
    ready: i32,
    updated: i32,
) -> PodCliqueStatus {
    PodCliqueStatus {
        observed_generation: observed,
        replicas,
        ready_replicas: ready,
        updated_replicas: updated,
        ..Default::default()
    }
}

/// `TestCheckPodCliqueReady` and the PodClique half of
/// `Test_GetComponentReadinessAndServiceReplicaStatuses`.
#[test]
fn pod_clique_readiness() {
    let cases = [
        // The fixture of upstream's table: generation unset, observedGeneration 1.
        (
            clique(None, 2, Some(clique_status(Some(1), 2, 1, 2))),
            Some("desired=2, ready=1"),
        ),
        (
            clique(Some(1), 2, Some(clique_status(Some(1), 2, 2, 2))),
            None,
        ),
        (clique(Some(1), 2, None), Some("observedGeneration is nil")),
        (
            clique(Some(3), 2, Some(clique_status(Some(2), 2, 2, 2))),
            Some("spec not yet processed: generation=3, observedGeneration=2"),
        ),
        (
            clique(Some(1), 0, Some(clique_status(Some(1), 1, 0, 0))),
            None,
        ),
        (
            clique(Some(1), 2, Some(clique_status(Some(1), 2, 2, 1))),
            Some("desired=2, updated=1"),
        ),
        (
            clique(Some(1), 2, Some(clique_status(Some(1), 3, 2, 2))),
            Some("performing rolling update: desired=2, replicas=3"),
        ),
    ];
    for (live, why) in cases {
        let got = service_ready(
            "test-dgd",
            "Frontend",
            GroveWorkload::PodClique(Some(&live)),
        );
        assert_eq!(got.ready, why.is_none(), "{live:?}");
        assert_eq!(
            got.reason,
            why.map(|w| format!("podclique/test-dgd-0-frontend: {w}")),
            "{live:?}"
        );
    }
    let live = clique(None, 2, Some(clique_status(Some(1), 2, 1, 2)));
    let got = service_ready(
        "test-dgd",
        "frontend",
        GroveWorkload::PodClique(Some(&live)),
    );
    assert_eq!(
        got.status,
        ServiceReplicaStatus {
            component_kind: Some(ComponentKind::PodClique),
            component_name: Some("test-dgd-0-frontend".into()),
            component_names: None,
            replicas: 2,
            updated_replicas: 2,
            ready_replicas: Some(1),
            available_replicas: None,
        }
    );
}

fn group(desired: i32, status: PodCliqueScalingGroupStatus) -> PodCliqueScalingGroup {
    let mut group = PodCliqueScalingGroup::new(
        "test-dgd-0-worker",
        PodCliqueScalingGroupReplicas { replicas: desired },
    );
    group.status = Some(status);
    group
}

/// `TestCheckPCSGReady` and the PCSG half of `Test_GetComponentReadinessAndServiceReplicaStatuses`.
#[test]
fn scaling_group_readiness() {
    let status = |replicas, available, updated| PodCliqueScalingGroupStatus {
        observed_generation: Some(1),
        replicas,
        available_replicas: available,
        updated_replicas: updated,
        ..Default::default()
    };
    let cases = [
        (group(2, status(2, 1, 2)), Some("desired=2, available=1")),
        (group(2, status(2, 2, 2)), None),
        (group(2, status(2, 2, 0)), Some("desired=2, updated=0")),
        (group(0, status(0, 0, 0)), None),
    ];
    for (live, why) in cases {
        let got = service_ready(
            "test-dgd",
            "worker",
            GroveWorkload::ScalingGroup(Some(&live)),
        );
        assert_eq!(
            got.reason,
            why.map(|w| format!("pcsg/test-dgd-0-worker: {w}")),
            "{live:?}"
        );
        assert_eq!(got.ready, why.is_none());
    }
    let live = group(2, status(2, 1, 2));
    let got = service_ready(
        "test-dgd",
        "worker",
        GroveWorkload::ScalingGroup(Some(&live)),
    );
    assert_eq!(
        got.status,
        ServiceReplicaStatus {
            component_kind: Some(ComponentKind::PodCliqueScalingGroup),
            component_name: Some("test-dgd-0-worker".into()),
            component_names: None,
            replicas: 2,
            updated_replicas: 2,
            ready_replicas: None,
            available_replicas: Some(1),
        }
    );
    // The CRD default of a group's replicas.
    let read: PodCliqueScalingGroup = from_yaml(
        "apiVersion: grove.io/v1alpha1\nkind: PodCliqueScalingGroup\nmetadata: {name: x}\nspec: {cliqueNames: [a]}\n",
    )
    .unwrap();
    assert_eq!(read.spec.replicas, 1);
}

/// Not created yet: not ready, and the status names the kind and object (upstream's empty
/// `componentKind` breaks the graph's status write).
#[test]
fn missing_workloads_report_their_kind() {
    let clique = service_ready("test-dgd", "Frontend", GroveWorkload::PodClique(None));
    let group = service_ready("test-dgd", "Worker", GroveWorkload::ScalingGroup(None));
    assert!(!clique.ready && !group.ready);
    assert_eq!(
        clique.reason.as_deref(),
        Some("podclique/test-dgd-0-frontend: resource not found")
    );
    assert_eq!(
        group.reason.as_deref(),
        Some("pcsg/test-dgd-0-worker: resource not found")
    );
    assert_eq!(clique.status.component_kind, Some(ComponentKind::PodClique));
    assert_eq!(
        clique.status.component_name.as_deref(),
        Some("test-dgd-0-frontend")
    );
    assert_eq!(
        group.status.component_kind,
        Some(ComponentKind::PodCliqueScalingGroup)
    );
    let wire = serde_json::to_value(&group.status).unwrap();
    assert_eq!(wire["componentKind"], "PodCliqueScalingGroup");
    assert_eq!(wire["replicas"], 0);

    let services = BTreeMap::from([
        ("Worker".to_owned(), group),
        ("Frontend".to_owned(), clique),
        (
            "Ready".to_owned(),
            service_ready(
                "test-dgd",
                "Ready",
                GroveWorkload::PodClique(Some(&self::clique(
                    Some(1),
                    1,
                    Some(clique_status(Some(1), 1, 1, 1)),
                ))),
            ),
        ),
    ]);
    assert_eq!(
        not_ready_message(&services).as_deref(),
        Some(
            "podclique/test-dgd-0-frontend: resource not found; pcsg/test-dgd-0-worker: resource not found"
        )
    );
    assert_eq!(not_ready_message(&BTreeMap::new()), None);
}

#[test]
fn grove_kinds_read_live_objects() {
    let clique: PodClique = from_yaml(
        "apiVersion: grove.io/v1alpha1
kind: PodClique
metadata: {name: g-0-frontend, generation: 2, labels: {nvidia.com/dynamo-graph-deployment-name: g}}
spec: {roleName: frontend, replicas: 3, podSpec: {containers: []}}
status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3, scheduledReplicas: 3, scheduleGatedReplicas: 0, hpaPodSelector: x}
",
    )
    .unwrap();
    assert_eq!(clique.spec.replicas, 3);
    assert!(service_ready("g", "Frontend", GroveWorkload::PodClique(Some(&clique))).ready);
    let pcs: PodCliqueSet = from_yaml(
        "apiVersion: grove.io/v1alpha1
kind: PodCliqueSet
metadata: {name: g}
spec:
  replicas: 1
  template:
    cliqueStartupType: CliqueStartupTypeInOrder
    cliques: [{name: a, spec: {roleName: a, replicas: 1, podSpec: {containers: []}}}]
status: {observedGeneration: 1, availableReplicas: 1, updatedReplicas: 1}
",
    )
    .unwrap();
    assert_eq!(pcs.status.unwrap().observed_generation, Some(1));
    assert_eq!(
        pcs.spec.template.clique_startup_type,
        Some(CliqueStartupType::CliqueStartupTypeInOrder)
    );
}

#[test]
fn restart_at_of_a_live_set() {
    let pcs: PodCliqueSet = from_yaml(
        "apiVersion: grove.io/v1alpha1
kind: PodCliqueSet
metadata: {name: g}
spec:
  template:
    cliques:
    - {name: frontend, labels: {nvidia.com/dynamo-component: Frontend}, annotations: {nvidia.com/restartAt: r-1}, spec: {roleName: frontend, replicas: 1, podSpec: {containers: []}}}
    - {name: planner, labels: {nvidia.com/dynamo-component: Planner}, spec: {roleName: planner, replicas: 1, podSpec: {containers: []}}}
    - {name: worker-ldr, labels: {nvidia.com/dynamo-component: Worker}, annotations: {nvidia.com/restartAt: r-2}, spec: {roleName: worker-ldr, replicas: 1, podSpec: {containers: []}}}
    - {name: worker-wkr, labels: {nvidia.com/dynamo-component: Worker}, annotations: {nvidia.com/restartAt: r-2}, spec: {roleName: worker-wkr, replicas: 1, podSpec: {containers: []}}}
",
    )
    .unwrap();
    assert_eq!(
        live_restart_at(&pcs),
        BTreeMap::from([
            ("Frontend".to_owned(), "r-1".to_owned()),
            ("Worker".to_owned(), "r-2".to_owned()),
        ])
    );
}

/// What Grove's webhook refuses on update (the PodCliqueSet must be made anew), and what it
/// lets through (replicas, pod specs, labels).
#[test]
fn updates_grove_refuses() {
    let services = |extra: &str, worker: &str| {
        graph(&format!(
            "metadata: {{name: g}}
spec:
  backendFramework: {worker}
  services:
    Frontend: {{componentType: frontend, replicas: 1}}
    W: {{componentType: worker, replicas: 2, multinode: {{nodeCount: 2}}, resources: {{limits: {{gpu: '1'}}}}, extraPodSpec: {{mainContainer: {{image: x, command: [python3, -m, dynamo.{worker}]}}}}}}
{extra}"
        ))
    };
    let config = OperatorConfig {
        mpi_ssh_secret: Some(SecretRef {
            namespace: "ops".into(),
            name: "mpi".into(),
        }),
        ..base_config()
    };
    let pcs = |dgd: &DynamoGraphDeployment| build(dgd, &config, &settings()).unwrap();
    let live = pcs(&services("", "sglang"));

    // A service added.
    let with_planner = pcs(&services(
        "    Planner: {componentType: planner}\n",
        "sglang",
    ));
    assert_eq!(
        refused_update(&live, &with_planner).as_deref(),
        Some("cliques [frontend, w-ldr, w-wkr] would become [frontend, planner, w-ldr, w-wkr]")
    );
    // Replicas and pod specs may change.
    let mut same = live.clone();
    same.spec.template.cliques[0].spec.replicas = 5;
    same.spec.template.cliques[0].spec.pod_spec.containers[0].image = Some("y".into());
    assert_eq!(refused_update(&live, &same), None);

    // A service switched to one node: its leader and worker cliques and its group go.
    let single = pcs(&graph(
        "metadata: {name: g}
spec:
  backendFramework: sglang
  services:
    Frontend: {componentType: frontend, replicas: 1}
    W: {componentType: worker, replicas: 2, extraPodSpec: {mainContainer: {image: x, command: [python3, -m, dynamo.sglang]}}}
",
    ));
    assert_eq!(
        refused_update(&live, &single).as_deref(),
        Some(
            "cliques [frontend, w-ldr, w-wkr] would become [frontend, w]; scaling groups [w] would become []"
        )
    );

    // Another backend: TRT-LLM starts explicitly, its leader after the workers.
    let trtllm = pcs(&services("", "trtllm"));
    assert_eq!(
        refused_update(&live, &trtllm).as_deref(),
        Some(
            "cliqueStartupType CliqueStartupTypeAnyOrder would become CliqueStartupTypeExplicit; clique w-ldr: startsAfter would change"
        )
    );
    // Under Explicit startup the clique order is fixed.
    let mut reordered = trtllm.clone();
    reordered.spec.template.cliques.reverse();
    assert_eq!(
        refused_update(&trtllm, &reordered).as_deref(),
        Some("the clique order would change")
    );
    assert_eq!(refused_update(&trtllm, &trtllm), None);
}
