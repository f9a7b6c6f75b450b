use super::*;
use serde_json::{Value, json};

fn env_map(container: &Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
        .collect()
}

fn probe(probe: &Option<Probe>) -> Value {
    serde_json::to_value(probe).unwrap()
}

#[test]
fn ports_and_service_accounts_per_component_type() {
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, i32)], Option<&'a str>);
    let cases: [Case; 9] = [
        (Some("frontend"), &[("http", 8000)], None),
        (Some("worker"), &[("system", 9090)], None),
        (Some("prefill"), &[("system", 9090)], None),
        (Some("decode"), &[("system", 9090)], None),
        (
            Some("planner"),
            &[("metrics", 9085)],
            Some("planner-serviceaccount"),
        ),
        (
            Some("epp"),
            &[("grpc", 9002), ("grpc-health", 9003), ("metrics", 9090)],
            None,
        ),
        (Some("default"), &[], None),
        (Some("something-else"), &[], None),
        (None, &[], None),
    ];
    for (component_type, ports, service_account) in cases {
        let defaults = component_defaults(component_type.map(ComponentType::from).as_ref());
        assert_eq!(defaults.container.name, "main");
        let actual: Vec<(String, i32)> = defaults
            .container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect();
        let expected: Vec<(String, i32)> =
            ports.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
        assert_eq!(actual, expected, "{component_type:?}");
        assert_eq!(
            defaults.service_account_name.as_deref(),
            service_account,
            "{component_type:?}"
        );
        let is_frontend = component_type == Some("frontend");
        assert_eq!(
            defaults.container.command.is_some(),
            is_frontend,
            "{component_type:?}"
        );
        assert_eq!(
            defaults.container.args.is_some(),
            is_frontend,
            "{component_type:?}"
        );
    }
}

#[test]
fn frontend_defaults() {
    let c = component_defaults(Some(&ComponentType::from("frontend"))).container;
    assert_eq!(c.command.unwrap(), vec!["python3"]);
    assert_eq!(c.args.unwrap(), vec!["-m", "dynamo.frontend"]);
    assert_eq!(
        env_map(&component_defaults(Some(&ComponentType::from("frontend"))).container),
        vec![
            ("DYNAMO_PORT".into(), "8000".into()),
            ("DYN_HTTP_PORT".into(), "8000".into())
        ]
    );
    assert_eq!(
        probe(&c.liveness_probe),
        json!({"httpGet": {"path": "/live", "port": "http"}, "initialDelaySeconds": 15,
               "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3})
    );
    assert_eq!(
        probe(&c.readiness_probe),
        json!({"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10,
               "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3})
    );
    assert!(c.startup_probe.is_none());
}

#[test]
fn worker_defaults_for_every_worker_type() {
    for component_type in ["worker", "prefill", "decode"] {
        let c = component_defaults(Some(&ComponentType::from(component_type))).container;
        assert_eq!(
            env_map(&c),
            vec![
                ("DYN_SYSTEM_ENABLED".into(), "true".into()),
                (
                    "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS".into(),
                    "[\"generate\"]".into()
                ),
                ("DYN_SYSTEM_PORT".into(), "9090".into()),
                ("DYN_HEALTH_CHECK_ENABLED".into(), "false".into()),
            ]
        );
        let http = |path: &str, period: i32, timeout: i32, failure: i32| {
            json!({"httpGet": {"path": path, "port": "system"}, "periodSeconds": period,
                   "timeoutSeconds": timeout, "failureThreshold": failure})
        };
        assert_eq!(probe(&c.liveness_probe), http("/live", 5, 4, 1));
        assert_eq!(probe(&c.readiness_probe), http("/health", 10, 4, 3));
        assert_eq!(probe(&c.startup_probe), http("/live", 10, 5, 720));
    }
}

#[test]
fn planner_and_epp_defaults() {
    let planner = component_defaults(Some(&ComponentType::from("planner"))).container;
    assert_eq!(
        env_map(&planner),
        vec![("PLANNER_PROMETHEUS_PORT".into(), "9085".into())]
    );
    assert!(planner.liveness_probe.is_none());
    let epp = component_defaults(Some(&ComponentType::from("epp"))).container;
    assert_eq!(
        probe(&epp.liveness_probe),
        json!({"grpc": {"port": 9003, "service": "inference-extension"},
               "initialDelaySeconds": 5, "periodSeconds": 10})
    );
}

#[test]
fn injected_env_per_discovery_backend() {
    for (backend, component_type, expect_backend_var, expect_component) in [
        (
            DiscoveryBackend::Kubernetes,
            Some("worker"),
            true,
            Some("worker"),
        ),
        (
            DiscoveryBackend::Etcd,
            Some("worker"),
            false,
            Some("worker"),
        ),
        (DiscoveryBackend::Kubernetes, None, true, None),
    ] {
        let vars = injected_env(&PodIdentity {
            dynamo_namespace: "ns-g",
            component_type,
            graph_name: "g",
            graph_namespace: "ns",
            discovery_backend: backend,
        });
        let value = |name: &str| vars.iter().find(|v| v.name == name).cloned();
        assert_eq!(value("DYN_NAMESPACE").unwrap().value.unwrap(), "ns-g");
        assert_eq!(
            value("DYN_PARENT_DGD_K8S_NAME").unwrap().value.unwrap(),
            "g"
        );
        assert_eq!(
            value("DYN_PARENT_DGD_K8S_NAMESPACE")
                .unwrap()
                .value
                .unwrap(),
            "ns"
        );
        for (name, path) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_UID", "metadata.uid"),
        ] {
            let source = value(name).unwrap().value_from.unwrap();
            assert_eq!(source.field_ref.unwrap().field_path, path);
        }
        assert_eq!(value("DYN_DISCOVERY_BACKEND").is_some(), expect_backend_var);
        // Always present; without a type it has no value.
        assert_eq!(
            value("DYN_COMPONENT").unwrap().value.as_deref(),
            expect_component
        );
    }
}

#[test]
fn operator_env_only_when_configured() {
    // Without NATS, only the event plane that needs none.
    let bare = operator_env(&OperatorConfig::default());
    assert_eq!(bare.len(), 1, "{bare:?}");
    assert_eq!(bare[0].name, "DYN_EVENT_PLANE");
    assert_eq!(bare[0].value.as_deref(), Some("zmq"));
    let config = OperatorConfig {
        nats_addr: Some("nats://nats:4222".into()),
        etcd_addr: Some("etcd:2379".into()),
        prometheus_endpoint: Some("http://prom:9090".into()),
        ..Default::default()
    };
    let names: Vec<String> = operator_env(&config).into_iter().map(|v| v.name).collect();
    assert_eq!(
        names,
        ["NATS_SERVER", "ETCD_ENDPOINTS", "PROMETHEUS_ENDPOINT"]
    );
}

#[test]
fn frontend_command_and_args_override() {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // (user command, user args, resulting command line)
    type Case<'a> = (Option<&'a [&'a str]>, Option<&'a [&'a str]>, &'a str);
    let cases: [Case; 6] = [
        (None, None, "python3 -m dynamo.frontend"),
        (
            None,
            Some(&["-m", "dynamo.frontend", "--router-mode", "kv"]),
            "python3 -m dynamo.frontend --router-mode kv",
        ),
        // Command only: it brings its own arguments (upstream would append the default ones).
        (Some(&["my-frontend"]), None, "my-frontend"),
        (
            Some(&["python3", "-m", "dynamo.frontend", "--router-mode", "kv"]),
            None,
            "python3 -m dynamo.frontend --router-mode kv",
        ),
        (
            Some(&["python3", "-m", "dynamo.frontend"]),
            Some(&["--router-mode", "kv"]),
            "python3 -m dynamo.frontend --router-mode kv",
        ),
        // Empty lists are "not set", as upstream.
        (Some(&[]), Some(&[]), "python3 -m dynamo.frontend"),
    ];
    let defaults = component_defaults(Some(&ComponentType::from("frontend"))).container;
    for (command, args, expected) in cases {
        let user = Container {
            command: command.map(strings),
            args: args.map(strings),
            ..Default::default()
        };
        let merged = crate::desired::merge::merge_container(&defaults, &user).unwrap();
        let line: Vec<String> = merged
            .command
            .into_iter()
            .chain(merged.args)
            .flatten()
            .collect();
        assert_eq!(line.join(" "), expected, "{command:?} {args:?}");
    }
}
