//! The platform chart installed with helm on the local control plane, as a user installs it
//! (the offline copy, remote components off): releases that are uninstalled however their test
//! ends, the pods of a release, and one cluster-wide install shared by the tests of a test
//! binary.
//!
//! Only one cluster-wide operator may run (the chart refuses a second), and a test's own
//! install must not share the cluster with another test's operators, so tests of one binary
//! that install differently take turns: [`SharedPlatform::join`]
//! shares the cluster-wide install among the tests running at once (installed by the first,
//! uninstalled by the last), and [`ClusterToItself::wait`] waits until nobody uses it, for a
//! test that installs a release of its own.

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::{Cluster, assert_success};

/// `helm` with `args` against the cluster.
pub fn helm(args: &[&str]) -> Output {
    Cluster::get().run_helm(args)
}

/// `helm <verb> RELEASE <offline chart> -n NS --wait <extra>`.
pub fn helm_chart(verb: &str, release: &str, namespace: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--wait", "--timeout", "120s"];
    args.extend(extra);
    Cluster::get().helm_platform(verb, release, namespace, &args)
}

/// `<release>-dynamo-operator`, the prefix of the operator subchart's object names.
pub fn operator_fullname(release: &str) -> String {
    format!("{release}-dynamo-operator")
}

/// A release a test installed; uninstalled when the test ends, passing or failing, so a
/// failed run leaves no cluster-wide operator behind to block the next.
pub struct Installed {
    pub release: &'static str,
    pub namespace: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            self.release,
            "--namespace",
            &self.namespace,
            "--ignore-not-found",
        ]);
    }
}

/// The pods of `release`'s `component` (`manager`, `webhook`) in `ns`.
pub async fn pods(ns: &str, release: &str, component: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(Cluster::get().client().await, ns);
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/component={component}");
    api.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

pub fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The release name of the shared cluster-wide install.
pub const SHARED_RELEASE: &str = "shared";

/// How long a test waits for its turn: the other tests of its binary may hold the cluster
/// for several minutes each.
const TURN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Who uses the cluster's one operator slot.
enum Slot {
    Free,
    /// The shared cluster-wide install, in `namespace`, and how many tests use it.
    Shared {
        users: usize,
        namespace: String,
    },
    /// A test with a release of its own.
    Exclusive,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot::Free);

/// A failed test poisons nothing: the slot's state stays meaningful.
fn slot() -> MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits (sleeping, not blocking other tests) until `take` succeeds on the slot.
async fn take_turn<T>(what: &str, mut take: impl FnMut(&mut Slot) -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(taken) = take(&mut slot()) {
            return taken;
        }
        assert!(
            started.elapsed() < TURN_TIMEOUT,
            "waited {TURN_TIMEOUT:?} for {what}: another test of this binary held the cluster"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The cluster-wide install (release [`SHARED_RELEASE`], webhook on) a test uses; the last
/// test to drop it uninstalls it.
pub struct SharedPlatform {
    pub release: &'static str,
    /// The namespace the release is installed in.
    pub namespace: String,
}

impl SharedPlatform {
    /// Joins the install, installing it first when no test uses it.
    pub async fn join() -> SharedPlatform {
        let cluster = Cluster::get();
        cluster.install_crds().await;
        let namespace = take_turn("the shared cluster-wide install", |slot| match slot {
            Slot::Shared { users, namespace } => {
                *users += 1;
                Some(namespace.clone())
            }
            Slot::Free => {
                // Installed under the lock: the other tests wait for it rather than install.
                let namespace = install_shared();
                *slot = Slot::Shared {
                    users: 1,
                    namespace: namespace.clone(),
                };
                Some(namespace)
            }
            Slot::Exclusive => None,
        })
        .await;
        SharedPlatform {
            release: SHARED_RELEASE,
            namespace,
        }
    }

    /// `<release>-dynamo-operator`.
    pub fn fullname(&self) -> String {
        operator_fullname(self.release)
    }
}

impl Drop for SharedPlatform {
    fn drop(&mut self) {
        let mut slot = slot();
        if let Slot::Shared { users, .. } = &mut *slot {
            *users -= 1;
            if *users == 0 {
                uninstall_shared(&self.namespace);
                *slot = Slot::Free;
            }
        }
    }
}

/// `helm install --wait` of the shared release into a namespace of its own; returns the
/// namespace. A failed install is cleaned up before the panic.
fn install_shared() -> String {
    // A new name each time: the previous install's namespace may still be terminating.
    static INSTALLS: AtomicUsize = AtomicUsize::new(0);
    let namespace = format!(
        "e2e-shared-platform-{}-{}",
        std::process::id(),
        INSTALLS.fetch_add(1, Ordering::Relaxed)
    );
    let create = Cluster::get()
        .kubectl()
        .args(["create", "namespace", &namespace])
        .output()
        .expect("running kubectl");
    assert_success("creating the shared platform namespace", &create);
    let started = Instant::now();
    let output = helm_chart("install", SHARED_RELEASE, &namespace, &[]);
    if !output.status.success() {
        uninstall_shared(&namespace);
    }
    assert_success("helm install (shared cluster-wide platform)", &output);
    eprintln!(
        "shared platform: helm install --wait took {:?}",
        started.elapsed()
    );
    namespace
}

fn uninstall_shared(namespace: &str) {
    let _ = helm(&[
        "uninstall",
        SHARED_RELEASE,
        "--namespace",
        namespace,
        "--ignore-not-found",
        "--wait",
    ]);
    let _ = Cluster::get()
        .kubectl()
        .args(["delete", "namespace", namespace, "--wait=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The cluster without the shared install, for a test that installs a release of its own;
/// the shared install waits until this is dropped.
pub struct ClusterToItself(());

impl ClusterToItself {
    pub async fn wait() -> ClusterToItself {
        take_turn("the cluster without the shared install", |slot| {
            matches!(slot, Slot::Free).then(|| {
                *slot = Slot::Exclusive;
                ClusterToItself(())
            })
        })
        .await
    }
}

impl Drop for ClusterToItself {
    fn drop(&mut self) {
        *slot() = Slot::Free;
    }
}
