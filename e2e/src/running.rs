//! Our binaries as processes of a test, stopped when the test ends.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Cluster;

/// One of our binaries running as a process against the cluster; stopped when dropped. A
/// failing test prints the end of its log.
pub struct Running {
    child: std::process::Child,
    pub log: PathBuf,
}

impl Running {
    /// Starts `binary` (from the workspace's target directory) with `args`, authenticated by
    /// `kubeconfig`, logging to `<state>/logs/<log_name>.log`.
    pub fn start(binary: &str, args: &[&str], kubeconfig: &Path, log_name: &str) -> Running {
        let cluster = Cluster::get();
        let log = cluster.state.join("logs").join(format!("{log_name}.log"));
        let file = std::fs::File::create(&log).expect("creating the process log");
        let child = Command::new(cluster.our_binary(binary))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Running { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Stops the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- {} (last 40 lines)", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
