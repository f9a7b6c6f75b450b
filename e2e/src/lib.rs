//! Harness for tests against the local control plane that `hack/e2e.sh` starts
//! (`hack/cluster.sh`): a real kube-apiserver, etcd, controller-manager, scheduler and kwok.
//!
//! The cluster is given by the environment `hack/cluster.sh env` prints. Each test gets its
//! own namespace; when a test fails, the tail of every control-plane log is printed.
//!
//! Domain helpers, so a test file starts with its scenario rather than with set-up:
//! [`operator`] starts the controller-manager and reads its probes and metrics, [`webhook`]
//! wires the admission webhook behind the API server and asserts what it accepts or rejects,
//! [`manifests`] writes graph manifests, [`ports`] hands out free ports, [`chart`] renders the
//! Helm chart, [`platform`] installs it with helm (one cluster-wide install shared by the
//! tests of a binary, or a release of a test's own), [`certificates`] plants and reads
//! webhook certificates, [`grove`] installs Grove's CRDs and plays Grove's part.

pub mod certificates;
pub mod chart;
pub mod graphs;
pub mod grove;
pub mod http;
pub mod manifests;
pub mod operator;
pub mod platform;
pub mod ports;
mod running;
pub mod tls;
pub mod webhook;

pub use running::Running;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

/// The running control plane.
#[derive(Debug)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub state: PathBuf,
    pub bin: PathBuf,
    pub repo: PathBuf,
}

impl Cluster {
    /// The cluster of this test run, from `KUBECONFIG`, `DYNAMO_E2E_STATE` and `DYNAMO_E2E_BIN`.
    pub fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let var = |name: &str| {
                std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
                    panic!("{name} is not set: run these tests through hack/e2e.sh, which starts the local control plane")
                })
            };
            Cluster {
                kubeconfig: var("KUBECONFIG"),
                state: var("DYNAMO_E2E_STATE"),
                bin: var("DYNAMO_E2E_BIN"),
                repo: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
            }
        })
    }

    /// A client with the admin identity.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await.expect("admin client")
    }

    /// `kubectl` of the pinned version, talking to this cluster as admin.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// `helm` of the pinned version, talking to this cluster as admin.
    pub fn helm(&self) -> Command {
        let mut command = Command::new(self.bin.join("helm"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command.env("HELM_CACHE_HOME", self.state.join("helm/cache"));
        command.env("HELM_CONFIG_HOME", self.state.join("helm/config"));
        command.env("HELM_DATA_HOME", self.state.join("helm/data"));
        command
    }

    /// Runs the pinned helm with `args` against this cluster.
    pub fn run_helm(&self, args: &[&str]) -> Output {
        self.helm().args(args).output().expect("running helm")
    }

    /// `helm <verb> RELEASE <offline platform chart> --namespace NS` with the remote
    /// components off (`chart::OFFLINE_VALUES`), then `extra`.
    pub fn helm_platform(
        &self,
        verb: &str,
        release: &str,
        namespace: &str,
        extra: &[&str],
    ) -> Output {
        let chart = chart::offline_chart().to_string_lossy().into_owned();
        let mut args = vec![verb, release, chart.as_str(), "--namespace", namespace];
        args.extend(chart::OFFLINE_VALUES);
        args.extend(extra);
        self.run_helm(&args)
    }

    /// Path of one of our binaries, built by `cargo build` before the tests run.
    pub fn our_binary(&self, name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.repo.join("target"));
        target.join("debug").join(name)
    }

    /// The last lines of every control-plane log, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut report = String::new();
        let Ok(entries) = std::fs::read_dir(self.state.join("logs")) else {
            return format!("(no logs under {})", self.state.display());
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            report.push_str(&format!(
                "\n----- {} (last {lines} lines)\n",
                path.display()
            ));
            for line in tail.into_iter().rev() {
                report.push_str(line);
                report.push('\n');
            }
        }
        report
    }

    /// Installs the `dynamo-crds` chart with helm, once per test run, and waits until every
    /// CRD is Established.
    pub async fn install_crds(&self) {
        static INSTALLED: OnceCell<()> = OnceCell::const_new();
        INSTALLED
            .get_or_init(|| async {
                let output = self
                    .helm()
                    .args(["upgrade", "--install", "dynamo-crds"])
                    .arg(self.repo.join("charts/crds"))
                    .args(["--namespace", "default", "--wait", "--timeout", "60s"])
                    .output()
                    .expect("running helm");
                assert_success("helm upgrade --install dynamo-crds", &output);
                let crds: Api<CustomResourceDefinition> = Api::all(self.client().await);
                for crd in dynamo_api::crd::all() {
                    let name = crd.metadata.name.clone().unwrap();
                    wait_until(
                        &format!("CRD {name} Established"),
                        Duration::from_secs(30),
                        || async {
                            let crd = crds.get(&name).await.ok()?;
                            established(&crd).then_some(())
                        },
                    )
                    .await;
                }
            })
            .await;
    }
}

pub fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Panics with the command's output unless it succeeded.
pub fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace of one test; deleted when dropped. A failing test prints the control-plane
/// logs on its way out.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    cluster: &'static Cluster,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let cluster = Cluster::get();
        let client = cluster.client().await;
        let name = format!(
            "e2e-{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("dynamo-e2e".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace {
            name,
            client,
            cluster,
        }
    }

    /// The namespace's uid, for owner references that tie cluster-scoped test objects to it.
    pub async fn uid(&self) -> String {
        Api::<Namespace>::all(self.client.clone())
            .get(&self.name)
            .await
            .unwrap_or_else(|e| panic!("reading namespace {}: {e}", self.name))
            .metadata
            .uid
            .expect("a stored namespace has a uid")
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// `kubectl apply` of `yaml` in this namespace, as a user would run it.
    pub fn kubectl_apply(&self, yaml: &str) -> Output {
        self.kubectl_stdin(&["apply", "--namespace", &self.name, "-f", "-"], yaml)
    }

    /// Runs kubectl with `stdin` as its input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cluster
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Creates ServiceAccount `name` (if missing) and returns a one-hour token for it from the
    /// TokenRequest API.
    pub async fn service_account_token(&self, name: &str) -> anyhow::Result<String> {
        let accounts: Api<ServiceAccount> = self.api();
        if accounts.get_opt(name).await?.is_none() {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            accounts.create(&PostParams::default(), &account).await?;
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?
            .status
            .context("TokenRequest returned no status")?
            .token;
        token.context("TokenRequest returned no token")
    }

    /// Creates ServiceAccount `name` and writes a kubeconfig that authenticates as it, with a
    /// token from the TokenRequest API.
    pub async fn service_account_kubeconfig(&self, name: &str) -> anyhow::Result<PathBuf> {
        let token = self.service_account_token(name).await?;
        let admin = std::fs::read_to_string(&self.cluster.kubeconfig)?;
        let mut config: serde_yaml::Value = serde_yaml::from_str(&admin)?;
        let Some(users) = config["users"].as_sequence_mut() else {
            bail!("kubeconfig has no users");
        };
        for user in users {
            user["user"] = serde_yaml::to_value(serde_json::json!({ "token": token }))?;
        }
        let path = self
            .cluster
            .state
            .join(format!("{}-{name}.kubeconfig", self.name));
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok(path)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test in namespace {} failed; control-plane logs:{}",
                self.name,
                self.cluster.log_tails(40)
            );
        }
        // Synchronous and fire-and-forget: Drop cannot await, and the namespace controller
        // finishes the deletion on its own.
        let _ = self
            .cluster
            .kubectl()
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
