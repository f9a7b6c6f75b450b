//! The platform chart rendered with `helm template`: what each values key changes, the three
//! certificate modes, RBAC per scope, pod security, and bad input failing with the key named.

use dynamo_e2e::chart::{self, Rendered, str, template};
use serde_yaml::Value;

const NS: &str = "dynamo-system";
const FULL: &str = "dp-dynamo-operator";

fn render(args: &[&str]) -> Rendered {
    template("dp", NS, args).unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}"))
}

fn set(pairs: &[&str]) -> Rendered {
    let args: Vec<&str> = pairs.iter().flat_map(|p| ["--set", *p]).collect();
    render(&args)
}

fn manager_args(r: &Rendered) -> Vec<String> {
    r.args("Deployment", &format!("{FULL}-controller-manager"))
}

fn webhooks(r: &Rendered) -> &Vec<Value> {
    r.expect(
        "ValidatingWebhookConfiguration",
        &format!("{FULL}-validating"),
    )["webhooks"]
        .as_sequence()
        .expect("webhooks list")
}

fn external_ca() -> String {
    // Any PEM certificate will do for rendering: the chart only checks it is one.
    chart::base64_encode(b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")
}

#[test]
fn defaults_render_the_three_programs_wired_together() {
    let r = render(&[]);
    let args = manager_args(&r);
    for expected in [
        "--leader-elect",
        "--leader-election-id=dynamo.nvidia.com",
        "--leader-election-namespace=kube-system",
        "--health-probe-bind-address=:8081",
        "--metrics-bind-address=127.0.0.1:8080",
        "--discovery-backend=kubernetes",
        "--enable-webhooks=true",
        "--natsAddr=nats://dp-nats.dynamo-system.svc.cluster.local:4222",
        "--etcdAddr=http://dp-etcd.dynamo-system.svc.cluster.local:2379",
        "--mpi-run-ssh-secret-name=mpi-run-ssh-secret",
        "--grove-termination-delay=4h",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    assert!(!args.iter().any(|a| a.starts_with("--restrictedNamespace")));
    // Webhook: Deployment, Service 443 -> 9443 and a PDB for its two replicas.
    let webhook = r.expect("Deployment", &format!("{FULL}-webhook"));
    assert_eq!(webhook["spec"]["replicas"], 2);
    let service = r.expect("Service", &format!("{FULL}-webhook-service"));
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "webhook-server");
    r.expect("PodDisruptionBudget", &format!("{FULL}-webhook"));
    let volume = &webhook["spec"]["template"]["spec"]["volumes"][0]["secret"];
    assert_eq!(volume["secretName"], "webhook-server-cert");
    // Automatic certificates: two hook Jobs of our cert generator.
    let pre = r.expect("Job", &format!("{FULL}-webhook-cert-gen-1"));
    let post = r.expect("Job", &format!("{FULL}-webhook-ca-inject-1"));
    assert_eq!(
        pre["metadata"]["annotations"]["helm.sh/hook"],
        "pre-install,pre-upgrade,pre-rollback"
    );
    assert_eq!(
        post["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade,post-rollback"
    );
    let image = str(&pre["spec"]["template"]["spec"]["containers"][0]["image"]);
    assert!(
        image.starts_with("ghcr.io/dynamo-rs/dynamo-certgen:"),
        "{image}"
    );
    // Without a cluster (GitOps) the full webhooks render, without a CA: see
    // `helm_template_renders_the_full_webhooks_for_gitops`.
    assert_eq!(webhooks(&r).len(), 3);
    // No PVCs or LoadBalancers when NATS and etcd are off.
    assert!(!r.kinds().iter().any(|k| k == "PersistentVolumeClaim"));
    for service in r.of_kind("Service") {
        assert_ne!(service["spec"]["type"], "LoadBalancer");
    }
}

#[test]
fn every_pod_runs_with_the_restricted_pod_security_settings() {
    let r = set(&["dynamo-operator.dynamo.dockerRegistry.useKubernetesSecret=false"]);
    let pods = r.pod_specs();
    assert!(
        pods.len() >= 5,
        "expected manager, webhook and three Jobs: {pods:?}"
    );
    for (name, pod) in pods {
        let security = &pod["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        assert_eq!(security["runAsUser"], 65532, "{name}");
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for container in pod["containers"].as_sequence().unwrap() {
            let c = &container["securityContext"];
            assert_eq!(c["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(c["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(c["capabilities"]["drop"][0], "ALL", "{name}");
        }
    }
}

#[test]
fn restricted_mode_uses_roles_in_the_target_namespace_and_scopes_the_webhook() {
    let r = set(&[
        "dynamo-operator.namespaceRestriction.enabled=true",
        "dynamo-operator.namespaceRestriction.targetNamespace=tenant-a",
        "dynamo-operator.namespaceRestriction.lease.duration=20s",
        "dynamo-operator.namespaceRestriction.lease.renewInterval=5s",
    ]);
    let role = r.expect("Role", &format!("{FULL}-manager-role"));
    assert_eq!(role["metadata"]["namespace"], "tenant-a");
    assert_eq!(
        role["metadata"]["labels"]["nvidia.com/dynamo-operator-scope"],
        "namespace-restricted"
    );
    assert!(
        r.get("ClusterRole", &format!("{FULL}-manager-role"))
            .is_none()
    );
    assert!(
        r.get("ClusterRole", &format!("{FULL}-webhook-lease-reader"))
            .is_none()
    );
    let binding = r.expect("RoleBinding", &format!("{FULL}-manager-rolebinding"));
    assert_eq!(binding["subjects"][0]["namespace"], NS);
    let args = manager_args(&r);
    for expected in [
        "--restrictedNamespace=tenant-a",
        "--leader-election-namespace=tenant-a",
        "--namespace-scope-lease-duration=20s",
        "--namespace-scope-lease-renew-interval=5s",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} missing from {args:?}"
        );
    }
    let webhook_args = r.args("Deployment", &format!("{FULL}-webhook"));
    assert!(
        webhook_args
            .iter()
            .any(|a| a == "--restrictedNamespace=tenant-a")
    );
    let leader = r.expect("Role", &format!("{FULL}-leader-election-role"));
    assert_eq!(leader["metadata"]["namespace"], "tenant-a");
    // The configuration is named per release namespace; its selector is the target namespace
    // (upstream used the release namespace even when the target differs).
    let external = external_ca();
    let r = set(&[
        "dynamo-operator.namespaceRestriction.enabled=true",
        "dynamo-operator.namespaceRestriction.targetNamespace=tenant-a",
        "dynamo-operator.webhook.certificateSecret.external=true",
        &format!("dynamo-operator.webhook.caBundle={external}"),
    ]);
    let vwc = r.expect(
        "ValidatingWebhookConfiguration",
        &format!("{FULL}-validating-{NS}"),
    );
    for webhook in vwc["webhooks"].as_sequence().unwrap() {
        assert_eq!(
            webhook["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "tenant-a"
        );
    }
}

#[test]
fn cluster_wide_rbac_is_cluster_scoped_and_marked() {
    let r = render(&[]);
    let role = r.expect("ClusterRole", &format!("{FULL}-manager-role"));
    assert_eq!(
        role["metadata"]["labels"]["nvidia.com/dynamo-operator-scope"],
        "cluster-wide"
    );
    r.expect("ClusterRoleBinding", &format!("{FULL}-manager-rolebinding"));
    r.expect("ClusterRole", &format!("{FULL}-webhook-lease-reader"));
    assert!(r.get("Role", &format!("{FULL}-manager-role")).is_none());
    // Istio rights only when Istio is on.
    let rules = serde_yaml::to_string(&role["rules"]).unwrap();
    assert!(!rules.contains("virtualservices"));
    let r = set(&["dynamo-operator.dynamo.istio.enabled=true"]);
    let role = r.expect("ClusterRole", &format!("{FULL}-manager-role"));
    assert!(
        serde_yaml::to_string(&role["rules"])
            .unwrap()
            .contains("virtualservices")
    );
}

#[test]
fn grove_and_kai_rights_follow_the_scope() {
    let grove = |role: &Value| {
        grants_all(role, "grove.io", "podcliquesets", ALL);
        for resource in ["podcliques", "podcliquescalinggroups"] {
            grants_all(role, "grove.io", resource, READ);
            grants_all(
                role,
                "grove.io",
                &format!("{resource}/scale"),
                &["get", "update", "patch"],
            );
        }
        // Grove's objects are Grove's to change: only their replicas, through /scale.
        let grants = grants(role);
        for (group, resource, verb) in &grants {
            if group == "grove.io" && resource == "podcliques" {
                assert!(READ.contains(&verb.as_str()), "{verb} on podcliques");
            }
        }
    };
    let r = render(&[]);
    let cluster = r.expect("ClusterRole", &format!("{FULL}-manager-role"));
    grove(cluster);
    grants_all(cluster, "scheduling.run.ai", "queues", &["get", "list"]);
    let r = set(&["dynamo-operator.namespaceRestriction.enabled=true"]);
    let restricted = r.expect("Role", &format!("{FULL}-manager-role"));
    grove(restricted);
    // Queues are cluster-scoped: a Role cannot grant them (the operator leaves KAI out there).
    assert!(
        !grants(restricted)
            .iter()
            .any(|(group, _, _)| group == "scheduling.run.ai"),
        "{:?}",
        grants(restricted)
    );
}

/// The rules of a Role or ClusterRole as (apiGroup, resource, verb) triples.
fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut grants = Vec::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_sequence()
                .map(|items| items.iter().map(|i| str(i).to_owned()).collect())
                .unwrap_or_default()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    grants.push((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

fn grants_all(role: &Value, group: &str, resource: &str, verbs: &[&str]) {
    let grants = grants(role);
    for verb in verbs {
        let wanted = (group.to_owned(), resource.to_owned(), (*verb).to_owned());
        assert!(
            grants.contains(&wanted),
            "{}: no {verb} on {group}/{resource} in {grants:?}",
            str(&role["metadata"]["name"])
        );
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const ALL: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The Planner scales graphs (directly or through adapters) and both use Kubernetes discovery;
/// the EPP only reads.
fn assert_planner_and_epp_rules(planner: &Value, epp: &Value) {
    for resource in ["dynamographdeployments", "dynamocomponentdeployments"] {
        grants_all(
            planner,
            "nvidia.com",
            resource,
            &["get", "list", "create", "update", "patch"],
        );
    }
    grants_all(
        planner,
        "nvidia.com",
        "dynamographdeploymentscalingadapters/scale",
        &["patch"],
    );
    grants_all(
        planner,
        "nvidia.com",
        "dynamographdeploymentscalingadapters",
        &["get"],
    );
    grants_all(planner, "nvidia.com", "dynamoworkermetadatas", ALL);
    for role in [planner, epp] {
        grants_all(role, "discovery.k8s.io", "endpointslices", READ);
        grants_all(role, "", "endpoints", READ);
    }
    grants_all(epp, "nvidia.com", "dynamoworkermetadatas", READ);
    grants_all(epp, "inference.networking.k8s.io", "inferencepools", READ);
    let epp_grants = grants(epp);
    assert!(
        !epp_grants
            .iter()
            .any(|(_, resource, verb)| resource.starts_with("dynamograph") || verb == "delete"),
        "the EPP only reads: {epp_grants:?}"
    );
}

#[test]
fn cluster_wide_mode_renders_planner_and_epp_cluster_roles_the_operator_may_bind() {
    let r = render(&[]);
    let planner = r.expect("ClusterRole", &format!("{FULL}-planner"));
    let epp = r.expect("ClusterRole", &format!("{FULL}-epp"));
    assert_planner_and_epp_rules(planner, epp);
    assert_eq!(
        planner["metadata"]["labels"]["app.kubernetes.io/component"],
        "planner"
    );
    assert_eq!(
        epp["metadata"]["labels"]["app.kubernetes.io/component"],
        "epp"
    );
    // The operator creates the accounts and bindings per graph namespace; the chart none.
    for account in ["planner-serviceaccount", "epp-serviceaccount"] {
        assert!(r.get("ServiceAccount", account).is_none(), "{account}");
        assert!(r.get("Role", &format!("{account}-role")).is_none());
        assert!(
            r.get("RoleBinding", &format!("{account}-binding"))
                .is_none()
        );
    }
    let args = manager_args(&r);
    for expected in [
        format!("--planner-cluster-role-name={FULL}-planner"),
        format!("--epp-cluster-role-name={FULL}-epp"),
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    // Binding a ClusterRole needs `bind` on exactly these two, nothing wider.
    let manager = r.expect("ClusterRole", &format!("{FULL}-manager-role"));
    let bind: Vec<&Value> = manager["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|rule| {
            rule["verbs"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v == "bind")
        })
        .collect();
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!(bind[0]["resources"][0], "clusterroles");
    let names: Vec<&str> = bind[0]["resourceNames"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str)
        .collect();
    assert_eq!(names, [format!("{FULL}-planner"), format!("{FULL}-epp")]);
    for resource in [
        "dynamographdeploymentscalingadapters",
        "dynamographdeploymentscalingadapters/status",
        "dynamoworkermetadatas",
    ] {
        grants_all(manager, "nvidia.com", resource, ALL);
    }
}

#[test]
fn restricted_mode_renders_planner_and_epp_accounts_in_the_target_namespace() {
    let r = set(&[
        "dynamo-operator.namespaceRestriction.enabled=true",
        "dynamo-operator.namespaceRestriction.targetNamespace=tenant-a",
    ]);
    for workload in ["planner", "epp"] {
        assert!(
            r.get("ClusterRole", &format!("{FULL}-{workload}"))
                .is_none(),
            "no {workload} ClusterRole in restricted mode"
        );
        let account = format!("{workload}-serviceaccount");
        let sa = r.expect("ServiceAccount", &account);
        let role = r.expect("Role", &format!("{account}-role"));
        let binding = r.expect("RoleBinding", &format!("{account}-binding"));
        for object in [sa, role, binding] {
            let metadata = &object["metadata"];
            assert_eq!(metadata["namespace"], "tenant-a", "{metadata:?}");
            // The chart's, not the operator's: a restricted operator never changes them.
            assert_eq!(metadata["labels"]["app.kubernetes.io/managed-by"], "Helm");
            assert_eq!(metadata["labels"]["app.kubernetes.io/component"], workload);
            assert_eq!(metadata["labels"]["app.kubernetes.io/instance"], "dp");
        }
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["roleRef"]["name"], format!("{account}-role"));
        assert_eq!(binding["subjects"][0]["name"], account.as_str());
        assert_eq!(binding["subjects"][0]["namespace"], "tenant-a");
    }
    assert_planner_and_epp_rules(
        r.expect("Role", "planner-serviceaccount-role"),
        r.expect("Role", "epp-serviceaccount-role"),
    );
    let args = manager_args(&r);
    assert!(
        !args.iter().any(|a| a.contains("cluster-role-name")),
        "{args:?}"
    );
    let manager = r.expect("Role", &format!("{FULL}-manager-role"));
    assert!(
        !grants(manager).iter().any(|(_, _, verb)| verb == "bind"),
        "a restricted operator binds no ClusterRole"
    );
    // The accounts pull images like the other component pods.
    let r = set(&[
        "dynamo-operator.namespaceRestriction.enabled=true",
        "dynamo-operator.dynamo.dockerRegistry.useKubernetesSecret=true",
        "dynamo-operator.dynamo.dockerRegistry.existingSecretName=my-regcred",
    ]);
    for account in ["planner-serviceaccount", "epp-serviceaccount"] {
        let sa = r.expect("ServiceAccount", account);
        assert_eq!(sa["metadata"]["namespace"], NS);
        assert_eq!(sa["imagePullSecrets"][0]["name"], "my-regcred");
    }
}

/// `helm template` of the CRDs chart.
fn render_crds_chart() -> Rendered {
    let output = std::process::Command::new(chart::helm_binary())
        .args(["template", "crds"])
        .arg(chart::repo().join("charts/crds"))
        .output()
        .expect("running helm template");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Rendered::parse(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn crds_chart_holds_every_kind_and_keeps_them_on_uninstall() {
    let r = render_crds_chart();
    let mut rendered: Vec<&str> = r
        .of_kind("CustomResourceDefinition")
        .map(|crd| str(&crd["metadata"]["name"]))
        .collect();
    rendered.sort_unstable();
    let mut expected: Vec<String> = dynamo_api::crd::all()
        .into_iter()
        .map(|crd| crd.metadata.name.unwrap())
        .collect();
    expected.sort_unstable();
    assert_eq!(rendered, expected);
    for name in [
        "dynamographdeploymentscalingadapters.nvidia.com",
        "dynamoworkermetadatas.nvidia.com",
    ] {
        let crd = r.expect("CustomResourceDefinition", name);
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    let adapter = r.expect(
        "CustomResourceDefinition",
        "dynamographdeploymentscalingadapters.nvidia.com",
    );
    let scale = &adapter["spec"]["versions"][0]["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
}

#[test]
fn external_certificates_put_the_ca_bundle_in_every_webhook_and_render_no_hooks() {
    let ca = external_ca();
    let r = set(&[
        "dynamo-operator.webhook.certificateSecret.external=true",
        "dynamo-operator.webhook.certificateSecret.name=my-cert",
        &format!("dynamo-operator.webhook.caBundle={ca}"),
        "dynamo-operator.webhook.failurePolicy=Ignore",
        "dynamo-operator.webhook.timeoutSeconds=7",
    ]);
    let hooks = webhooks(&r);
    assert_eq!(hooks.len(), 3);
    for webhook in hooks {
        assert_eq!(str(&webhook["clientConfig"]["caBundle"]), ca);
        assert_eq!(webhook["failurePolicy"], "Ignore");
        assert_eq!(webhook["timeoutSeconds"], 7);
        assert_eq!(
            webhook["clientConfig"]["service"]["name"],
            format!("{FULL}-webhook-service")
        );
        assert_eq!(webhook["clientConfig"]["service"]["namespace"], NS);
    }
    let paths: Vec<&str> = hooks
        .iter()
        .map(|w| str(&w["clientConfig"]["service"]["path"]))
        .collect();
    assert_eq!(
        paths,
        [
            "/validate-nvidia-com-v1alpha1-dynamocomponentdeployment",
            "/validate-nvidia-com-v1alpha1-dynamographdeployment",
            "/validate-nvidia-com-v1alpha1-dynamomodel"
        ]
    );
    assert!(
        r.get("Job", &format!("{FULL}-webhook-cert-gen-1"))
            .is_none()
    );
    assert!(
        r.get("Job", &format!("{FULL}-webhook-ca-inject-1"))
            .is_none()
    );
    let webhook = r.expect("Deployment", &format!("{FULL}-webhook"));
    assert_eq!(
        webhook["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "my-cert"
    );
}

#[test]
fn the_cert_generator_creates_the_same_webhooks_the_chart_renders() {
    // External mode renders the webhooks in the manifest; automatic mode hands the same list
    // to the post-install Job. Apart from caBundle they must be identical.
    let ca = external_ca();
    let external = set(&[
        "dynamo-operator.webhook.certificateSecret.external=true",
        &format!("dynamo-operator.webhook.caBundle={ca}"),
    ]);
    let mut rendered: Vec<serde_json::Value> = webhooks(&external)
        .iter()
        .map(|w| serde_json::to_value(w).unwrap())
        .collect();
    for webhook in &mut rendered {
        webhook["clientConfig"]
            .as_object_mut()
            .unwrap()
            .remove("caBundle");
    }
    let auto = render(&[]);
    let job = auto.expect("Job", &format!("{FULL}-webhook-ca-inject-1"));
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "CERTGEN_VALIDATING_WEBHOOKS");
    let template: Vec<serde_json::Value> = serde_json::from_str(str(&env["value"])).unwrap();
    assert_eq!(template, rendered);
    let args = auto.args("Job", &format!("{FULL}-webhook-ca-inject-1"));
    assert!(
        args.iter()
            .any(|a| a == &format!("--validating-configuration={FULL}-validating"))
    );
    assert!(
        args.iter()
            .any(|a| a == "--service-name=dp-dynamo-operator-webhook-service")
    );
}

#[test]
fn cert_manager_mode_renders_issuers_and_certificates_with_the_configured_durations() {
    let r = set(&[
        "dynamo-operator.webhook.certManager.enabled=true",
        "dynamo-operator.webhook.certManager.certificate.duration=100h",
        "dynamo-operator.webhook.certManager.certificate.renewBefore=10h",
        "dynamo-operator.webhook.certManager.certificate.rootCA.duration=1000h",
        "dynamo-operator.webhook.certManager.certificate.rootCA.renewBefore=20h",
    ]);
    r.expect("Issuer", &format!("{FULL}-selfsigned-issuer"));
    r.expect("Issuer", &format!("{FULL}-ca-issuer"));
    let ca = r.expect("Certificate", &format!("{FULL}-root-ca"));
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(ca["spec"]["duration"], "1000h");
    assert_eq!(ca["spec"]["renewBefore"], "20h");
    let serving = r.expect("Certificate", &format!("{FULL}-serving-cert"));
    assert_eq!(serving["spec"]["duration"], "100h");
    assert_eq!(serving["spec"]["renewBefore"], "10h");
    assert_eq!(serving["spec"]["secretName"], "webhook-server-cert");
    let names: Vec<&str> = serving["spec"]["dnsNames"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str)
        .collect();
    let svc = format!("{FULL}-webhook-service");
    assert!(names.contains(&format!("{svc}.{NS}").as_str()), "{names:?}");
    assert!(
        names.contains(&format!("{svc}.{NS}.svc").as_str()),
        "{names:?}"
    );
    let vwc = r.expect(
        "ValidatingWebhookConfiguration",
        &format!("{FULL}-validating"),
    );
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{NS}/{FULL}-serving-cert")
    );
    assert_eq!(vwc["webhooks"].as_sequence().unwrap().len(), 3);
    assert!(
        r.get("Job", &format!("{FULL}-webhook-cert-gen-1"))
            .is_none()
    );
}

#[test]
fn webhook_namespace_selector_and_disabling_the_webhook() {
    let ca = external_ca();
    let r = render(&[
        "--set",
        "dynamo-operator.webhook.certificateSecret.external=true",
        "--set",
        &format!("dynamo-operator.webhook.caBundle={ca}"),
        "--set-json",
        r#"dynamo-operator.webhook.namespaceSelector={"matchExpressions":[{"key":"team","operator":"In","values":["ml"]}]}"#,
    ]);
    for webhook in webhooks(&r) {
        assert_eq!(
            webhook["namespaceSelector"]["matchExpressions"][0]["key"],
            "team"
        );
    }
    let r = set(&["dynamo-operator.webhook.enabled=false"]);
    for kind in ["ValidatingWebhookConfiguration", "Issuer", "Certificate"] {
        assert_eq!(
            r.of_kind(kind).count(),
            0,
            "{kind} rendered with the webhook off"
        );
    }
    assert!(r.get("Deployment", &format!("{FULL}-webhook")).is_none());
    assert!(
        r.get("Job", &format!("{FULL}-webhook-cert-gen-1"))
            .is_none()
    );
    assert!(
        manager_args(&r)
            .iter()
            .any(|a| a == "--enable-webhooks=false")
    );
}

#[test]
fn metrics_services_and_service_monitor_follow_the_toggles() {
    let r = render(&[]);
    let service = r.expect("Service", FULL);
    assert_eq!(service["spec"]["ports"][0]["port"], 8443);
    r.expect("Service", &format!("{FULL}-webhook-metrics"));
    r.expect("ClusterRole", &format!("{FULL}-{NS}-metrics-reader"));
    assert_eq!(
        r.of_kind("ServiceMonitor").count(),
        0,
        "no monitoring API, no ServiceMonitor"
    );
    let r = render(&["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]);
    let monitor = r.expect("ServiceMonitor", &format!("{FULL}-operator"));
    assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
    let r = render(&[
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--set",
        "dynamo-operator.metricsService.enabled=false",
    ]);
    assert!(r.get("Service", FULL).is_none());
    assert_eq!(r.of_kind("ServiceMonitor").count(), 0);
    let dashboard = r.expect("ConfigMap", &format!("{FULL}-grafana-dashboard"));
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: serde_json::Value =
        serde_json::from_str(str(&dashboard["data"]["dynamo-operator.json"])).unwrap();
    assert_eq!(json["uid"], "dynamo-operator");
    let r = set(&["dynamo-operator.grafanaDashboard.enabled=false"]);
    assert_eq!(r.of_kind("ConfigMap").count(), 0);
}

#[test]
fn monitors_render_with_the_api_or_when_switched_on_for_gitops() {
    let monitors =
        |r: &Rendered| r.of_kind("ServiceMonitor").count() + r.of_kind("PodMonitor").count();
    assert_eq!(
        monitors(&render(&[])),
        0,
        "no monitoring API, nothing by default"
    );
    let r = render(&[
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "monitoring.coreos.com/v1/PodMonitor",
    ]);
    assert_eq!(monitors(&r), 4, "a ServiceMonitor and three PodMonitors");
    for (name, port, types) in [
        ("frontend", "http", vec!["frontend"]),
        ("worker", "system", vec!["worker", "prefill", "decode"]),
        ("planner", "metrics", vec!["planner"]),
    ] {
        let monitor = r.expect("PodMonitor", &format!("{FULL}-{name}"));
        let spec = &monitor["spec"];
        assert_eq!(spec["namespaceSelector"]["any"], true, "{name}");
        assert_eq!(
            spec["selector"]["matchLabels"]["nvidia.com/metrics-enabled"],
            "true"
        );
        let expression = &spec["selector"]["matchExpressions"][0];
        assert_eq!(expression["key"], "nvidia.com/dynamo-component-type");
        let values: Vec<&str> = expression["values"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(str)
            .collect();
        assert_eq!(values, types, "{name}");
        let endpoint = &spec["podMetricsEndpoints"][0];
        assert_eq!(
            (str(&endpoint["port"]), str(&endpoint["path"])),
            (port, "/metrics")
        );
    }
    // GitOps: rendered without the API when switched on, and never when switched off.
    let r = set(&[
        "dynamo-operator.monitoring.serviceMonitor=true",
        "dynamo-operator.monitoring.podMonitors=true",
        "dynamo-operator.namespaceRestriction.enabled=true",
    ]);
    assert_eq!(monitors(&r), 4);
    let worker = r.expect("PodMonitor", &format!("{FULL}-worker"));
    assert_eq!(
        worker["spec"]["namespaceSelector"]["matchNames"][0], NS,
        "a restricted install watches its own namespace"
    );
    let r = render(&[
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "monitoring.coreos.com/v1/PodMonitor",
        "--set",
        "dynamo-operator.monitoring.serviceMonitor=false",
        "--set",
        "dynamo-operator.monitoring.podMonitors=false",
    ]);
    assert_eq!(monitors(&r), 0);
}

#[test]
fn kai_queues_render_only_with_the_kai_api() {
    assert_eq!(render(&[]).of_kind("Queue").count(), 0);
    let r = render(&["--api-versions", "scheduling.run.ai/v2"]);
    let parent = r.expect("Queue", "dynamo-default");
    let child = r.expect("Queue", "dynamo");
    assert_eq!(child["spec"]["parentQueue"], "dynamo-default");
    assert_eq!(
        parent["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(
        parent["metadata"]["annotations"]
            .get("helm.sh/hook-delete-policy")
            .is_none()
    );
}

/// One values key → what it must change, on the manager's args or elsewhere.
#[test]
fn each_operator_value_reaches_its_flag() {
    let cases: &[(&str, &str)] = &[
        (
            "dynamo-operator.natsAddr=nats://n:4222",
            "--natsAddr=nats://n:4222",
        ),
        (
            "dynamo-operator.etcdAddr=http://e:2379",
            "--etcdAddr=http://e:2379",
        ),
        (
            "dynamo-operator.modelExpressURL=http://mx:8001",
            "--model-express-url=http://mx:8001",
        ),
        (
            "dynamo-operator.discoveryBackend=etcd",
            "--discovery-backend=etcd",
        ),
        (
            "dynamo-operator.controllerManager.leaderElection.namespace=leases",
            "--leader-election-namespace=leases",
        ),
        (
            "dynamo-operator.dynamo.groveTerminationDelay=15m",
            "--grove-termination-delay=15m",
        ),
        (
            "dynamo-operator.dynamo.internalImages.debugger=busybox:1",
            "--debugger-image=busybox:1",
        ),
        (
            "dynamo-operator.dynamo.enableRestrictedSecurityContext=true",
            "--enable-restricted-security-context",
        ),
        (
            "dynamo-operator.dynamo.ingressHostSuffix=example.com",
            "--ingress-host-suffix=example.com",
        ),
        (
            "dynamo-operator.dynamo.virtualServiceSupportsHTTPS=true",
            "--virtual-service-supports-https",
        ),
        (
            "dynamo-operator.dynamo.metrics.prometheusEndpoint=http://prom:9090",
            "--prometheus-endpoint=http://prom:9090",
        ),
        (
            "dynamo-operator.dynamo.mpiRun.secretName=my-ssh",
            "--mpi-run-ssh-secret-name=my-ssh",
        ),
        (
            "dynamo-operator.controllerManager.manager.args[0]=--health-probe-bind-address=:9091",
            "--health-probe-bind-address=:9091",
        ),
    ];
    for (value, flag) in cases {
        let args = manager_args(&set(&[value]));
        assert!(
            args.iter().any(|a| a == flag),
            "{value}: {flag} missing from {args:?}"
        );
    }
    // Ingress flags only when ingress is enabled; Istio gateway only when Istio is.
    let off = manager_args(&set(&["dynamo-operator.dynamo.ingress.className=nginx"]));
    assert!(
        !off.iter()
            .any(|a| a.starts_with("--ingress-controller-class-name"))
    );
    let on = manager_args(&set(&[
        "dynamo-operator.dynamo.ingress.enabled=true",
        "dynamo-operator.dynamo.ingress.className=nginx",
    ]));
    assert!(
        on.iter()
            .any(|a| a == "--ingress-controller-class-name=nginx")
    );
    assert!(
        on.iter()
            .any(|a| a == "--ingress-controller-tls-secret-name=my-tls-secret")
    );
    let istio = manager_args(&set(&[
        "dynamo-operator.dynamo.istio.enabled=true",
        "dynamo-operator.dynamo.istio.gateway=gw",
    ]));
    assert!(
        istio
            .iter()
            .any(|a| a == "--istio-virtual-service-gateway=gw")
    );
}

#[test]
fn image_scheduling_and_pull_secret_values_reach_the_pods() {
    let r = render(&[
        "--set",
        "dynamo-operator.controllerManager.manager.image.repository=reg/op",
        "--set",
        "dynamo-operator.controllerManager.manager.image.tag=v9",
        "--set",
        "dynamo-operator.controllerManager.manager.image.pullPolicy=Always",
        "--set",
        "dynamo-operator.webhook.certGenerator.image.repository=reg/cg",
        "--set",
        "dynamo-operator.webhook.certGenerator.image.tag=v8",
        "--set",
        "dynamo-operator.webhook.certGenerator.image.pullPolicy=Never",
        "--set",
        "dynamo-operator.webhook.certificateValidity=60",
        "--set",
        "dynamo-operator.controllerManager.replicas=2",
        "--set-json",
        r#"dynamo-operator.controllerManager.tolerations=[{"key":"gpu","operator":"Exists"}]"#,
        "--set-json",
        r#"dynamo-operator.controllerManager.affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"pool","operator":"In","values":["cpu"]}]}]}}}"#,
        "--set-json",
        r#"dynamo-operator.imagePullSecrets=[{"name":"pull"}]"#,
    ]);
    let manager = r.expect("Deployment", &format!("{FULL}-controller-manager"));
    let container = &manager["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "reg/op:v9");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(manager["spec"]["replicas"], 2);
    assert!(
        manager_args(&r)
            .iter()
            .any(|a| a == "--operator-version=v9")
    );
    let job = r.expect("Job", &format!("{FULL}-webhook-cert-gen-1"));
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "reg/cg:v8");
    assert_eq!(container["imagePullPolicy"], "Never");
    let args = r.args("Job", &format!("{FULL}-webhook-cert-gen-1"));
    assert!(args.iter().any(|a| a == "--validity-days=60"), "{args:?}");
    assert!(
        args.iter().any(|a| a == "--renew-before-days=20"),
        "{args:?}"
    );
    for (name, pod) in r.pod_specs() {
        assert_eq!(pod["tolerations"][0]["key"], "gpu", "{name}");
        assert!(pod["affinity"]["nodeAffinity"].is_mapping(), "{name}");
        assert_eq!(pod["imagePullSecrets"][0]["name"], "pull", "{name}");
    }
}

#[test]
fn registry_credentials_become_a_dockerconfigjson_secret() {
    let r = set(&[
        "dynamo-operator.dynamo.dockerRegistry.useKubernetesSecret=true",
        "dynamo-operator.dynamo.dockerRegistry.server=docker.io/team",
        "dynamo-operator.dynamo.dockerRegistry.username=u",
        "dynamo-operator.dynamo.dockerRegistry.password=p",
    ]);
    let secret = r.expect("Secret", &format!("{FULL}-regcred"));
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let encoded = str(&secret["data"][".dockerconfigjson"]);
    let config: serde_json::Value = serde_json::from_slice(&chart::base64_decode(encoded)).unwrap();
    assert_eq!(
        config["auths"]["https://index.docker.io/v1/"]["username"],
        "u"
    );
    let component = r.expect("ServiceAccount", &format!("{FULL}-component"));
    assert_eq!(
        component["imagePullSecrets"][0]["name"],
        format!("{FULL}-regcred")
    );
    // An existing Secret is used by name and nothing is rendered.
    let r = set(&[
        "dynamo-operator.dynamo.dockerRegistry.useKubernetesSecret=true",
        "dynamo-operator.dynamo.dockerRegistry.existingSecretName=mine",
    ]);
    assert!(r.get("Secret", &format!("{FULL}-regcred")).is_none());
    let component = r.expect("ServiceAccount", &format!("{FULL}-component"));
    assert_eq!(component["imagePullSecrets"][0]["name"], "mine");
}

#[test]
fn mpi_ssh_key_job_runs_our_cert_generator_and_can_be_turned_off() {
    let r = render(&[]);
    let args = r.args("Job", &format!("{FULL}-ssh-keygen"));
    assert_eq!(args[0], "ssh-key");
    assert!(args.iter().any(|a| a == "--secret-name=mpi-run-ssh-secret"));
    let r = set(&["dynamo-operator.dynamo.mpiRun.sshKeygen.enabled=false"]);
    assert!(r.get("Job", &format!("{FULL}-ssh-keygen")).is_none());
}

/// Bad input fails with one sentence naming the key.
#[test]
fn bad_values_fail_naming_the_key() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "dynamo-operator.discoveryBackend=consul"],
            "dynamo-operator.discoveryBackend must be",
        ),
        (
            &[
                "--set",
                "dynamo-operator.webhook.certManager.enabled=true",
                "--set",
                "dynamo-operator.webhook.certificateSecret.external=true",
            ],
            "certManager.enabled and dynamo-operator.webhook.certificateSecret.external are both true",
        ),
        (
            &[
                "--set",
                "dynamo-operator.webhook.certificateSecret.external=true",
            ],
            "dynamo-operator.webhook.caBundle is empty",
        ),
        (
            &["--set", "dynamo-operator.webhook.failurePolicy=Maybe"],
            "dynamo-operator.webhook.failurePolicy must be",
        ),
        (
            &["--set", "dynamo-operator.webhook.timeoutSeconds=60"],
            "dynamo-operator.webhook.timeoutSeconds must be",
        ),
        (
            &["--set-string", "dynamo-operator.webhook.timeoutSeconds=ten"],
            "dynamo-operator.webhook.timeoutSeconds must be",
        ),
        (
            &["--set", "dynamo-operator.webhook.certificateValidity=1"],
            "dynamo-operator.webhook.certificateValidity must be",
        ),
        (
            &[
                "--set",
                "dynamo-operator.controllerManager.leaderElection.id=mine",
            ],
            "dynamo-operator.controllerManager.leaderElection.id",
        ),
        (
            &[
                "--set",
                "dynamo-operator.controllerManager.leaderElection.namespace=dynamo-system",
            ],
            "dynamo-operator.controllerManager.leaderElection.namespace",
        ),
        (
            &[
                "--set",
                "dynamo-operator.namespaceRestriction.enabled=true",
                "--set",
                "dynamo-operator.controllerManager.leaderElection.namespace=other",
            ],
            "dynamo-operator.controllerManager.leaderElection.namespace",
        ),
        (
            &[
                "--set-string",
                "dynamo-operator.namespaceRestriction.enabled=yes",
            ],
            "dynamo-operator.namespaceRestriction.enabled must be true or false",
        ),
        (
            &[
                "--set",
                "dynamo-operator.namespaceRestriction.targetNamespace=Bad_NS",
            ],
            "dynamo-operator.namespaceRestriction.targetNamespace",
        ),
        (
            &[
                "--set",
                "dynamo-operator.namespaceRestriction.lease.renewInterval=30s",
            ],
            "lease.renewInterval",
        ),
        (
            &[
                "--set",
                "dynamo-operator.namespaceRestriction.lease.duration=soon",
            ],
            "dynamo-operator.namespaceRestriction.lease.duration",
        ),
        (
            &[
                "--set",
                "dynamo-operator.dynamo.dockerRegistry.useKubernetesSecret=true",
            ],
            "dynamo-operator.dynamo.dockerRegistry.server is required",
        ),
        (
            &[
                "--set-string",
                "dynamo-operator.webhook.namespaceSelector=all",
            ],
            "dynamo-operator.webhook.namespaceSelector must be",
        ),
        (
            &[
                "--set",
                "dynamo-operator.webhook.certificateSecret.external=true",
                "--set",
                "dynamo-operator.webhook.caBundle=bm90IGEgY2VydA==",
            ],
            "not a base64-encoded PEM",
        ),
    ];
    for (args, expected) in cases {
        let error = template("dp", NS, args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} rendered"));
        assert!(
            error.contains(expected),
            "{args:?}: expected {expected:?} in:\n{error}"
        );
    }
}

/// The platform chart repeats the subchart's defaults under `dynamo-operator:` (so the README
/// table lists them); the two must never drift apart.
#[test]
fn platform_values_repeat_the_subchart_defaults_exactly() {
    let read = |path: &str| -> Value {
        serde_yaml::from_str(&std::fs::read_to_string(chart::repo().join(path)).unwrap()).unwrap()
    };
    let platform = read("charts/platform/values.yaml");
    let mut section = platform["dynamo-operator"].clone();
    section.as_mapping_mut().unwrap().remove("enabled");
    let subchart = read("charts/platform/components/operator/values.yaml");
    assert_eq!(section, subchart);
}

/// Every key of the upstream chart's values table exists with its default, except the image
/// defaults, which point at this project's images on purpose (see the chart README).
#[test]
fn upstream_values_keys_exist_with_their_defaults() {
    let platform: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart::repo().join("charts/platform/values.yaml")).unwrap(),
    )
    .unwrap();
    let table =
        std::fs::read_to_string(chart::repo().join("e2e/fixtures/upstream-values.tsv")).unwrap();
    let deliberate = [
        "dynamo-operator.controllerManager.manager.image.repository",
        "dynamo-operator.webhook.certGenerator.image.repository",
        "dynamo-operator.webhook.certGenerator.image.tag",
    ];
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, default) = line.split_once('\t').expect("key<TAB>default");
        let mut value = &platform;
        for part in split_key(key) {
            value = match part {
                Part::Key(k) => value
                    .get(k.as_str())
                    .unwrap_or_else(|| panic!("{key}: no {k}")),
                Part::Index(i) => &value[i],
            };
        }
        let expected: Value = serde_yaml::from_str(default).unwrap();
        if deliberate.contains(&key) {
            assert_ne!(value, &Value::Null, "{key} must exist");
        } else {
            assert_eq!(value, &expected, "{key}");
        }
        checked += 1;
    }
    assert!(checked >= 55, "only {checked} keys in the fixture");
}

enum Part {
    Key(String),
    Index(usize),
}

/// `a.b-c.d[1]` → a, b-c, d, [1].
fn split_key(key: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    for segment in key.split('.') {
        match segment.split_once('[') {
            Some((name, index)) => {
                parts.push(Part::Key(name.into()));
                parts.push(Part::Index(index.trim_end_matches(']').parse().unwrap()));
            }
            None => parts.push(Part::Key(segment.into())),
        }
    }
    parts
}

/// The published chart keeps the seed's dependencies, each with its condition.
#[test]
fn published_chart_declares_the_upstream_dependencies() {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart::repo().join("charts/platform/Chart.yaml")).unwrap(),
    )
    .unwrap();
    let deps = chart["dependencies"].as_sequence().unwrap();
    let find = |name: &str| {
        deps.iter()
            .find(|d| d["name"] == name || d["alias"] == name)
            .unwrap_or_else(|| panic!("no dependency {name}"))
    };
    for (name, version, condition) in [
        ("dynamo-operator", "0.9.0", "dynamo-operator.enabled"),
        // Upstream's later `global.<name>.install` switches come first: Helm uses the first
        // path that is set, and the chart sets none of them by default.
        (
            "etcd",
            "12.0.18",
            "global.etcd.install,global.etcd.enabled,etcd.enabled",
        ),
        (
            "nats",
            "1.3.2",
            "global.nats.install,global.nats.enabled,nats.enabled",
        ),
        (
            "grove",
            "v0.1.0-alpha.6",
            "global.grove.install,grove.enabled",
        ),
        (
            "kai-scheduler",
            "v0.9.4",
            "global.kai-scheduler.install,kai-scheduler.enabled",
        ),
    ] {
        let dep = find(name);
        assert_eq!(dep["version"], version, "{name}");
        assert_eq!(dep["condition"], condition, "{name}");
    }
    assert_eq!(
        find("dynamo-operator")["repository"],
        "file://components/operator"
    );
    // Grove as upstream 0.9.0 pins it (the project moved to the ai-dynamo organisation).
    assert_eq!(find("grove")["repository"], "oci://ghcr.io/ai-dynamo/grove");
}

#[test]
fn disabling_the_operator_renders_none_of_it() {
    let r = set(&["dynamo-operator.enabled=false"]);
    assert!(
        r.objects.is_empty(),
        "rendered with the operator off: {:?}",
        r.kinds()
    );
}

/// The env value the cert generator gets: the webhooks it writes, as JSON.
fn cert_generator_webhooks(container: &Value) -> Vec<serde_json::Value> {
    let env = &container["env"][0];
    assert_eq!(env["name"], "CERTGEN_VALIDATING_WEBHOOKS");
    serde_json::from_str(str(&env["value"])).unwrap()
}

#[test]
fn helm_template_renders_the_full_webhooks_for_gitops() {
    // Rendered without a cluster (as Argo CD renders), the configuration holds the webhooks
    // the post-install Job writes, minus the CA it adds: a GitOps sync keeps them instead of
    // deleting them. (On a live install a new configuration starts empty; the e2e tests
    // cover that, since only a cluster answers the lookup.)
    let r = render(&[]);
    let rendered: Vec<serde_json::Value> = webhooks(&r)
        .iter()
        .map(|w| serde_json::to_value(w).unwrap())
        .collect();
    for webhook in &rendered {
        assert!(
            webhook["clientConfig"].get("caBundle").is_none(),
            "the chart must never carry the generated CA: {webhook}"
        );
        assert_eq!(webhook["failurePolicy"], "Fail");
    }
    let job = r.expect("Job", &format!("{FULL}-webhook-ca-inject-1"));
    let written = cert_generator_webhooks(&job["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(rendered, written);
    // Restricted installs too, with their own name and target-namespace selector.
    let restricted = set(&["dynamo-operator.namespaceRestriction.enabled=true"]);
    let configuration = restricted.expect(
        "ValidatingWebhookConfiguration",
        &format!("{FULL}-validating-{NS}"),
    );
    let hooks = configuration["webhooks"].as_sequence().unwrap();
    assert_eq!(hooks.len(), 3);
    for webhook in hooks {
        assert_eq!(
            webhook["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            NS
        );
    }
}

/// The renewal CronJob of a render, or a panic.
fn renewal_cron_job(r: &Rendered) -> &Value {
    r.expect("CronJob", &format!("{FULL}-webhook-cert-renewal"))
}

#[test]
fn a_daily_cron_job_renews_the_automatic_certificate_with_the_hook_jobs_rights() {
    let r = set(&["dynamo-operator.webhook.certificateValidity=60"]);
    let cron = renewal_cron_job(&r);
    assert_eq!(cron["spec"]["schedule"], "17 3 * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let post = r.expect("Job", &format!("{FULL}-webhook-ca-inject-1"));
    let post_container = &post["spec"]["template"]["spec"]["containers"][0];
    // The same program with the same arguments and webhooks as the post-install Job.
    assert_eq!(container["image"], post_container["image"]);
    assert_eq!(container["args"], post_container["args"]);
    assert_eq!(
        cert_generator_webhooks(container),
        cert_generator_webhooks(post_container)
    );
    let args = container["args"].as_sequence().unwrap();
    for expected in [
        "--renew-before-days=20",
        "--validity-days=60",
        "--wait-for-configurations=60s",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected}: {args:?}");
    }
    // Its own ServiceAccount (hook objects are deleted after their run) with exactly the
    // rights of the hook Job's.
    let account = format!("{FULL}-webhook-cert-renewal");
    assert_eq!(pod["serviceAccountName"], account.as_str());
    r.expect("ServiceAccount", &account);
    for (kind, renewal, hook) in [
        ("Role", account.clone(), format!("{FULL}-webhook-ca-inject")),
        (
            "ClusterRole",
            format!("{account}-{NS}"),
            format!("{FULL}-webhook-ca-inject-{NS}"),
        ),
    ] {
        let role = r.expect(kind, &renewal);
        assert!(role["metadata"]["annotations"]["helm.sh/hook"].is_null());
        assert_eq!(role["rules"], r.expect(kind, &hook)["rules"], "{kind}");
    }
    for (kind, name) in [
        ("RoleBinding", account.clone()),
        ("ClusterRoleBinding", format!("{account}-{NS}")),
    ] {
        let binding = r.expect(kind, &name);
        assert_eq!(binding["subjects"][0]["name"], account.as_str(), "{kind}");
        assert_eq!(binding["subjects"][0]["namespace"], NS, "{kind}");
    }

    let custom = set(&["dynamo-operator.webhook.certificateRenewal.schedule=@weekly"]);
    assert_eq!(renewal_cron_job(&custom)["spec"]["schedule"], "@weekly");
    // Only the automatic mode renews this way; cert-manager and external Secrets renew
    // by their own means.
    for (what, values) in [
        (
            "renewal off",
            vec!["dynamo-operator.webhook.certificateRenewal.enabled=false".to_owned()],
        ),
        (
            "cert-manager",
            vec!["dynamo-operator.webhook.certManager.enabled=true".to_owned()],
        ),
        (
            "external",
            vec![
                "dynamo-operator.webhook.certificateSecret.external=true".to_owned(),
                format!("dynamo-operator.webhook.caBundle={}", external_ca()),
            ],
        ),
        (
            "webhook off",
            vec!["dynamo-operator.webhook.enabled=false".to_owned()],
        ),
    ] {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let r = set(&values);
        assert!(r.of_kind("CronJob").next().is_none(), "{what}");
        assert!(
            r.get("ServiceAccount", &account).is_none(),
            "{what}: renewal ServiceAccount rendered"
        );
    }
    let bad = template(
        "dp",
        NS,
        &[
            "--set",
            "dynamo-operator.webhook.certificateRenewal.schedule=daily",
        ],
    )
    .unwrap_err();
    assert!(
        bad.contains("dynamo-operator.webhook.certificateRenewal.schedule"),
        "{bad}"
    );
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(chart::repo().join("e2e/fixtures").join(name)).unwrap()
}

fn pod_template<'a>(r: &'a Rendered, kind: &str, name: &str) -> &'a Value {
    &r.expect(kind, name)["spec"]["template"]
}

/// Selectors are immutable: ours must be upstream's for `helm upgrade` from an upstream
/// release, and the pod labels must still carry it (plus the component).
#[test]
fn manager_selector_equals_upstreams_so_upgrades_from_upstream_work() {
    let upstream: Value = serde_yaml::from_str(&fixture("upstream-manager-selector.yaml")).unwrap();
    let r = render(&[]);
    let manager = r.expect("Deployment", &format!("{FULL}-controller-manager"));
    assert_eq!(manager["spec"]["selector"], upstream);
    let labels = manager["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .unwrap();
    for (key, value) in upstream["matchLabels"].as_mapping().unwrap() {
        assert_eq!(labels.get(key), Some(value), "pod label {key:?}");
    }
    assert_eq!(
        labels.get("app.kubernetes.io/component").unwrap(),
        "manager"
    );
    // The webhook pods carry no control-plane label, so the manager selector never matches them.
    let webhook = pod_template(&r, "Deployment", &format!("{FULL}-webhook"));
    assert!(webhook["metadata"]["labels"].get("control-plane").is_none());
    // Extra pod labels cannot change the selector labels.
    let r = set(&[
        "dynamo-operator.controllerManager.podLabels.control-plane=other",
        "dynamo-operator.controllerManager.podLabels.team=ml",
    ]);
    let template = pod_template(&r, "Deployment", &format!("{FULL}-controller-manager"));
    assert_eq!(
        template["metadata"]["labels"]["control-plane"],
        "controller-manager"
    );
    assert_eq!(template["metadata"]["labels"]["team"], "ml");
}

#[test]
fn service_account_annotations_reach_the_manager_and_component_accounts() {
    let r = set(&[
        "dynamo-operator.controllerManager.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/op",
        "dynamo-operator.dynamo.components.serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=c@p.iam.gserviceaccount.com",
    ]);
    let manager = r.expect("ServiceAccount", &format!("{FULL}-controller-manager"));
    assert_eq!(
        manager["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::1:role/op"
    );
    let component = r.expect("ServiceAccount", &format!("{FULL}-component"));
    assert_eq!(
        component["metadata"]["annotations"]["iam.gke.io/gcp-service-account"],
        "c@p.iam.gserviceaccount.com"
    );
}

#[test]
fn manager_pod_annotations_env_and_container_security_context_are_honoured() {
    let r = set(&[
        "dynamo-operator.controllerManager.podAnnotations.example\\.com/scrape=no",
        "dynamo-operator.env[0].name=HTTPS_PROXY",
        "dynamo-operator.env[0].value=http://proxy:3128",
        "dynamo-operator.controllerManager.manager.containerSecurityContext.runAsUser=1001",
    ]);
    let template = pod_template(&r, "Deployment", &format!("{FULL}-controller-manager"));
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["example.com/scrape"], "no");
    assert_eq!(
        annotations["kubectl.kubernetes.io/default-container"],
        "manager"
    );
    let container = &template["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    assert_eq!(env[0]["name"], "KUBERNETES_CLUSTER_DOMAIN");
    assert!(
        env.iter()
            .any(|e| e["name"] == "HTTPS_PROXY" && e["value"] == "http://proxy:3128"),
        "{env:?}"
    );
    // A map replaces the manager's container securityContext (the webhook keeps the default).
    assert_eq!(
        container["securityContext"],
        serde_yaml::from_str::<Value>("runAsUser: 1001").unwrap()
    );
    let webhook = pod_template(&r, "Deployment", &format!("{FULL}-webhook"));
    assert_eq!(
        webhook["spec"]["containers"][0]["securityContext"]["runAsUser"],
        65532
    );
}

#[test]
fn metrics_service_type_ports_and_labels_are_honoured() {
    let r = render(&[
        "--set",
        "dynamo-operator.metricsService.type=NodePort",
        "--set",
        "dynamo-operator.metricsService.labels.team=ml",
        "--set-json",
        r#"dynamo-operator.metricsService.ports=[{"name":"https","port":9443,"targetPort":"https","nodePort":30443}]"#,
    ]);
    let service = r.expect("Service", FULL);
    assert_eq!(service["spec"]["type"], "NodePort");
    assert_eq!(service["metadata"]["labels"]["team"], "ml");
    assert_eq!(service["spec"]["ports"][0]["port"], 9443);
    assert_eq!(service["spec"]["ports"][0]["nodePort"], 30443);
    // Upstream's later default `enabled: null` still creates the Service.
    let r = set(&["dynamo-operator.metricsService.enabled=null"]);
    assert_eq!(r.expect("Service", FULL)["spec"]["type"], "ClusterIP");
}

#[test]
fn name_overrides_rename_every_object() {
    let r = set(&["dynamo-operator.fullnameOverride=dynamo"]);
    r.expect("Deployment", "dynamo-controller-manager");
    r.expect("Deployment", "dynamo-webhook");
    r.expect("ServiceAccount", "dynamo-component");
    assert!(
        r.get("Deployment", &format!("{FULL}-controller-manager"))
            .is_none()
    );
    let r = set(&["dynamo-operator.nameOverride=ops"]);
    let manager = r.expect("Deployment", "dp-ops-controller-manager");
    assert_eq!(
        manager["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "ops"
    );
}

#[test]
fn turning_nats_off_gives_the_operator_no_nats_address() {
    let nats = |args: &[String]| -> Option<String> {
        args.iter().find(|a| a.starts_with("--natsAddr")).cloned()
    };
    let on = manager_args(&render(&[]));
    assert_eq!(
        nats(&on).as_deref(),
        Some("--natsAddr=nats://dp-nats.dynamo-system.svc.cluster.local:4222")
    );
    for off in [
        "dynamo-operator.nats.enabled=false",
        "global.nats.enabled=false",
        "global.nats.install=false",
    ] {
        let args = manager_args(&set(&[off]));
        assert_eq!(nats(&args), None, "{off}: {args:?}");
    }
    // An explicit address is an external NATS: always given.
    let args = manager_args(&set(&[
        "dynamo-operator.nats.enabled=false",
        "dynamo-operator.natsAddr=nats://ext:4222",
    ]));
    assert_eq!(nats(&args).as_deref(), Some("--natsAddr=nats://ext:4222"));
    // Upstream's global.etcd.install=false likewise drops the bundled etcd address.
    let args = manager_args(&set(&["global.etcd.install=false"]));
    assert!(
        !args.iter().any(|a| a.starts_with("--etcdAddr")),
        "{args:?}"
    );
}

/// The bundled NATS chart's nats-box Deployment (and its `helm test` Pod, which needs it) is
/// off, as upstream has it.
#[test]
fn platform_values_turn_off_the_nats_box() {
    let platform: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart::repo().join("charts/platform/values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(platform["nats"]["natsBox"]["enabled"], false);
}

#[test]
fn openshift_and_empty_security_contexts_drop_the_fixed_uid() {
    let uid_free = |r: &Rendered| {
        let pods = r.pod_specs();
        assert!(pods.len() >= 5, "{pods:?}");
        for (name, pod) in pods {
            let text = serde_yaml::to_string(pod).unwrap();
            assert!(!text.contains("65532"), "{name}: {text}");
        }
    };
    let r = set(&["dynamo-operator.openshift=true"]);
    uid_free(&r);
    for (name, pod) in r.pod_specs() {
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        let container = &pod["containers"][0]["securityContext"];
        assert_eq!(container["readOnlyRootFilesystem"], true, "{name}");
    }
    let r = render(&[
        "--set-json",
        "dynamo-operator.podSecurityContext={}",
        "--set-json",
        "dynamo-operator.containerSecurityContext={}",
    ]);
    uid_free(&r);
    for (name, pod) in r.pod_specs() {
        assert!(pod.get("securityContext").is_none(), "{name}");
        if !name.contains("controller-manager") && !name.contains("-webhook") {
            continue;
        }
        assert!(
            pod["containers"][0].get("securityContext").is_none(),
            "{name}"
        );
    }
}

#[test]
fn webhook_spreads_over_nodes_by_default() {
    let r = render(&[]);
    let pod = &pod_template(&r, "Deployment", &format!("{FULL}-webhook"))["spec"];
    let term =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "webhook"
    );
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    // The controllerManager's node affinity keeps the spread beside it.
    let r = set(&[
        "dynamo-operator.controllerManager.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
        "dynamo-operator.controllerManager.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=pool",
        "dynamo-operator.controllerManager.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists",
    ]);
    let affinity = &pod_template(&r, "Deployment", &format!("{FULL}-webhook"))["spec"]["affinity"];
    assert_eq!(
        affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        1
    );
    assert_eq!(
        affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        100
    );
    let r = set(&["dynamo-operator.webhook.spreadAcrossNodes=false"]);
    let pod = &pod_template(&r, "Deployment", &format!("{FULL}-webhook"))["spec"];
    assert!(pod.get("affinity").is_none() && pod.get("topologySpreadConstraints").is_none());
}

/// priorityClassName, nodeSelector, tolerations and affinity of the controllerManager reach
/// every pod; each component's own values win; every pod's resources can be set.
#[test]
fn scheduling_and_resources_reach_every_pod() {
    let r = set(&[
        "dynamo-operator.controllerManager.priorityClassName=system-cluster-critical",
        "dynamo-operator.controllerManager.nodeSelector.pool=system",
        "dynamo-operator.controllerManager.tolerations[0].key=dedicated",
        "dynamo-operator.controllerManager.tolerations[0].operator=Exists",
        "dynamo-operator.webhook.priorityClassName=webhook-critical",
        "dynamo-operator.webhook.certGenerator.nodeSelector.pool=jobs",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=pool",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists",
        "dynamo-operator.webhook.resources.limits.memory=256Mi",
        "dynamo-operator.webhook.certGenerator.resources.limits.memory=96Mi",
        "dynamo-operator.dynamo.mpiRun.sshKeygen.resources.limits.memory=80Mi",
    ]);
    for (name, pod) in r.pod_specs() {
        assert_eq!(pod["tolerations"][0]["key"], "dedicated", "{name}");
        let priority = if name.ends_with("-webhook") {
            "webhook-critical"
        } else {
            "system-cluster-critical"
        };
        assert_eq!(pod["priorityClassName"], priority, "{name}");
        // The certificate Jobs (and the renewal CronJob) run the cert generator.
        let pool = if ["cert-gen", "ca-inject", "cert-renewal"]
            .iter()
            .any(|job| name.contains(job))
        {
            "jobs"
        } else {
            "system"
        };
        assert_eq!(pod["nodeSelector"]["pool"], pool, "{name}");
    }
    let keygen = &pod_template(&r, "Job", &format!("{FULL}-ssh-keygen"))["spec"];
    assert_eq!(
        keygen["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        1
    );
    let memory = |kind: &str, name: &str| -> String {
        str(&pod_template(&r, kind, name)["spec"]["containers"][0]["resources"]["limits"]["memory"])
            .to_owned()
    };
    assert_eq!(memory("Deployment", &format!("{FULL}-webhook")), "256Mi");
    assert_eq!(memory("Job", &format!("{FULL}-webhook-cert-gen-1")), "96Mi");
    assert_eq!(
        memory("Job", &format!("{FULL}-webhook-ca-inject-1")),
        "96Mi"
    );
    assert_eq!(memory("Job", &format!("{FULL}-ssh-keygen")), "80Mi");
}

/// values.schema.json refuses a wrong type, naming the key.
#[test]
fn schema_refuses_wrong_types_naming_the_key() {
    for (args, key) in [
        (
            [
                "--set",
                "dynamo-operator.controllerManager.tolerations=oops",
            ],
            "/dynamo-operator/controllerManager/tolerations",
        ),
        (
            ["--set-string", "dynamo-operator.webhook.enabled=yes"],
            "/dynamo-operator/webhook/enabled",
        ),
        (
            ["--set-string", "global.nats.install=no"],
            "/global/nats/install",
        ),
        (
            ["--set", "dynamo-operator.metricsService.type=Internal"],
            "/dynamo-operator/metricsService/type",
        ),
        (
            ["--set", "dynamo-operator.env=HTTPS_PROXY"],
            "/dynamo-operator/env",
        ),
    ] {
        let error = template("dp", NS, &args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} rendered"));
        assert!(error.contains(key), "{args:?}: expected {key} in:\n{error}");
    }
}

/// Upstream's values (the README table with its defaults, and the keys of the values files
/// beyond it) pass the schema and render.
#[test]
fn upstream_values_pass_the_schema() {
    let mut values = Value::Mapping(Default::default());
    for line in fixture("upstream-values.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, default) = line.split_once('\t').expect("key<TAB>default");
        let mut slot = &mut values;
        for part in split_key(key) {
            slot = match part {
                Part::Key(k) => {
                    if !slot.is_mapping() {
                        *slot = Value::Mapping(Default::default());
                    }
                    slot.as_mapping_mut()
                        .unwrap()
                        .entry(Value::from(k))
                        .or_insert(Value::Null)
                }
                Part::Index(i) => {
                    if !slot.is_sequence() {
                        *slot = Value::Sequence(Vec::new());
                    }
                    let list = slot.as_sequence_mut().unwrap();
                    list.resize(list.len().max(i + 1), Value::Null);
                    &mut list[i]
                }
            };
        }
        *slot = serde_yaml::from_str(default).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("dynamo-upstream-values-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let table = dir.join("table.yaml");
    std::fs::write(&table, serde_yaml::to_string(&values).unwrap()).unwrap();
    let extra = chart::repo().join("e2e/fixtures/upstream-values-extra.yaml");
    for files in [vec![&table], vec![&table, &extra]] {
        let mut args = Vec::new();
        for file in &files {
            args.push("-f");
            args.push(file.to_str().unwrap());
        }
        let r = render(&args);
        r.expect("Deployment", &format!("{FULL}-controller-manager"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
