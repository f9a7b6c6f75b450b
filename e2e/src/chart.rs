//! Rendering the platform chart with the pinned helm (`helm template`), for tests that assert
//! on the objects a values file produces. Needs only `DYNAMO_E2E_BIN` (the tool directory
//! `hack/k8s-bins.sh` prints), not a running cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_yaml::Value;

/// The pinned helm binary.
pub fn helm_binary() -> PathBuf {
    let bin = std::env::var_os("DYNAMO_E2E_BIN").map(PathBuf::from).expect(
        "DYNAMO_E2E_BIN is not set: run through hack/e2e.sh, or set it to the output of hack/k8s-bins.sh",
    );
    bin.join("helm")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The installable copy of charts/platform that `hack/chart-offline.sh` makes (remote
/// dependencies dropped), made once per test binary.
pub fn offline_chart() -> &'static Path {
    static CHART: OnceLock<PathBuf> = OnceLock::new();
    CHART.get_or_init(|| {
        // Copies of test processes that have exited are removed first.
        for entry in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("dynamo-chart-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dest = std::env::temp_dir().join(format!("dynamo-chart-{}", std::process::id()));
        let output = Command::new(repo().join("hack/chart-offline.sh"))
            .arg(&dest)
            .output()
            .expect("running hack/chart-offline.sh");
        assert!(
            output.status.success(),
            "hack/chart-offline.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// The values every offline render starts from: the remote components off.
pub const OFFLINE_VALUES: [&str; 4] =
    ["--set", "nats.enabled=false", "--set", "etcd.enabled=false"];

/// The objects of one render.
#[derive(Debug)]
pub struct Rendered {
    pub objects: Vec<Value>,
}

/// `helm template RELEASE <offline chart> -n NAMESPACE <args>`; `Err` carries helm's stderr.
pub fn template(release: &str, namespace: &str, args: &[&str]) -> Result<Rendered, String> {
    let output = Command::new(helm_binary())
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("dynamo-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("dynamo-helm-config"),
        )
        .args(["template", release])
        .arg(offline_chart())
        .args(["--namespace", namespace])
        .args(OFFLINE_VALUES)
        .args(args)
        .output()
        .expect("running helm template");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(Rendered::parse(&String::from_utf8_lossy(&output.stdout)))
}

impl Rendered {
    pub fn parse(text: &str) -> Rendered {
        use serde::Deserialize as _;
        let objects = serde_yaml::Deserializer::from_str(text)
            .map(|doc| Value::deserialize(doc).expect("helm rendered invalid YAML"))
            .filter(|v| !v.is_null())
            .collect();
        Rendered { objects }
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// The object, or a panic listing what there is.
    pub fn expect(&self, kind: &str, name: &str) -> &Value {
        self.get(kind, name).unwrap_or_else(|| {
            panic!(
                "no {kind} {name} among: {:?}",
                self.objects
                    .iter()
                    .map(|o| format!("{}/{}", str(&o["kind"]), str(&o["metadata"]["name"])))
                    .collect::<Vec<_>>()
            )
        })
    }

    pub fn kinds(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| str(&o["kind"]).to_owned())
            .collect()
    }

    /// Every pod spec: Deployments, Jobs and the job template of CronJobs.
    pub fn pod_specs(&self) -> Vec<(String, &Value)> {
        self.objects
            .iter()
            .filter_map(|o| {
                let spec = match str(&o["kind"]) {
                    "Deployment" | "Job" => &o["spec"]["template"]["spec"],
                    "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                    _ => return None,
                };
                Some((
                    format!("{}/{}", str(&o["kind"]), str(&o["metadata"]["name"])),
                    spec,
                ))
            })
            .collect()
    }

    /// The args of the first container of a Deployment or Job.
    pub fn args(&self, kind: &str, name: &str) -> Vec<String> {
        self.expect(kind, name)["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_sequence()
            .map(|args| args.iter().map(|a| str(a).to_owned()).collect())
            .unwrap_or_default()
    }
}

pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

pub fn str(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}
