//! TRT-LLM: MPI launches every rank from the leader. The leader runs its command line under
//! `mpirun` (ranks = nodes × GPUs per node), which reaches the workers over SSH on port 2222;
//! the workers only run sshd. Both get the SSH key pair from the operator's Secret at
//! `/ssh-pk`, and `OMPI_MCA_orte_keep_fqdn_hostnames=1` so Open MPI keeps the pods' DNS names.

use dynamo_api::v1alpha1::Resources;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Probe, SecretVolumeSource, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::BuildError;
use super::super::merge::append_missing;
use super::{Multinode, Role, command_line_text, escape_single_quotes};

/// Port of the workers' sshd (unprivileged, so it runs as any user).
const SSH_PORT: i32 = 2222;
/// Where the SSH key Secret is mounted.
const SSH_KEY_PATH: &str = "/ssh-pk";
/// Keeps Open MPI from shortening the pods' host names to their first label.
const KEEP_FQDN_ENV: &str = "OMPI_MCA_orte_keep_fqdn_hostnames";
/// Variables mpirun forwards to every rank besides the container's own (`-x NAME`).
const FORWARDED_ENV: [&str; 19] = [
    "CUDA_VISIBLE_DEVICES",
    "MODEL_PATH",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "TOKENIZERS_PARALLELISM",
    "NCCL_DEBUG",
    "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE",
    "TENSORRT_LLM_CACHE_DIR",
    "HF_HOME",
    "TRANSFORMERS_CACHE",
    "HF_DATASETS_CACHE",
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "HOME",
    "USER",
    "TRTLLM_USE_UCX_KVCACHE",
];
/// The SSH client setup both roles start with (keys from the Secret, port 2222, no host key
/// prompts: the workers' host keys are generated at start).
const SSH_CLIENT_SETUP: [&str; 7] = [
    "ls -la /ssh-pk/",
    "cp /ssh-pk/private.key ~/.ssh/id_rsa",
    "cp /ssh-pk/private.key.pub ~/.ssh/id_rsa.pub",
    "cp /ssh-pk/private.key.pub ~/.ssh/authorized_keys",
    "chmod 600 ~/.ssh/id_rsa ~/.ssh/authorized_keys",
    "chmod 644 ~/.ssh/id_rsa.pub ~/.ssh/authorized_keys",
    r"printf 'Host *\nIdentityFile ~/.ssh/id_rsa\nStrictHostKeyChecking no\nPort 2222\n' > ~/.ssh/config",
];
/// A worker's sshd, as an unprivileged user can run it: host keys and pid file under ~/.ssh.
const SSHD: [&str; 5] = [
    "ssh-keygen -t rsa -f ~/.ssh/host_keys/ssh_host_rsa_key -N ''",
    "ssh-keygen -t ecdsa -f ~/.ssh/host_keys/ssh_host_ecdsa_key -N ''",
    "ssh-keygen -t ed25519 -f ~/.ssh/host_keys/ssh_host_ed25519_key -N ''",
    r"printf 'Port 2222\nHostKey ~/.ssh/host_keys/ssh_host_rsa_key\nHostKey ~/.ssh/host_keys/ssh_host_ecdsa_key\nHostKey ~/.ssh/host_keys/ssh_host_ed25519_key\nPidFile ~/.ssh/run/sshd.pid\nPermitRootLogin yes\nPasswordAuthentication no\nPubkeyAuthentication yes\nAuthorizedKeysFile ~/.ssh/authorized_keys\n' > ~/.ssh/sshd_config",
    "/usr/sbin/sshd -D -f ~/.ssh/sshd_config",
];

/// The multinode rewrite of a TRT-LLM main container and its pod's volumes.
pub(super) fn rewrite(
    container: &mut Container,
    volumes: &mut Option<Vec<Volume>>,
    resources: Option<&Resources>,
    multinode: &Multinode<'_>,
) -> Result<(), BuildError> {
    let secret = multinode.mpi_ssh_secret;
    if secret.is_empty() {
        // An unnamed volume is no valid pod; say which setting is missing instead.
        return Err(BuildError::MpiSshSecretUnset);
    }
    if multinode.role == Role::Worker {
        // The worker runs sshd only: probe that, not the serving process.
        container.liveness_probe = None;
        container.startup_probe = None;
        container.readiness_probe = Some(sshd_readiness_probe());
    }
    // Keyed by path and name (difference 6): a duplicate would make the pod invalid.
    append_missing(
        container.volume_mounts.get_or_insert_default(),
        [ssh_key_mount(secret)],
        |m| m.mount_path.clone(),
    );
    set_keep_fqdn_env(container);
    let script = match multinode.role {
        Role::Leader => leader_script(container, resources, multinode),
        Role::Worker => worker_script(),
    };
    container.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    container.args = Some(vec![script]);
    append_missing(
        volumes.get_or_insert_default(),
        [ssh_key_volume(secret)],
        |v| v.name.clone(),
    );
    Ok(())
}

/// TCP on the workers' sshd; slow and patient, as host key generation comes first.
fn sshd_readiness_probe() -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(SSH_PORT),
            ..Default::default()
        }),
        initial_delay_seconds: Some(20),
        period_seconds: Some(20),
        timeout_seconds: Some(5),
        failure_threshold: Some(10),
        ..Default::default()
    }
}

/// The SSH key Secret at `/ssh-pk`, read-only.
fn ssh_key_mount(secret: &str) -> VolumeMount {
    VolumeMount {
        name: secret.to_owned(),
        mount_path: SSH_KEY_PATH.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The SSH key Secret as a volume named after it, files mode 0644 (the scripts copy the keys
/// and set their own modes).
fn ssh_key_volume(secret: &str) -> Volume {
    Volume {
        name: secret.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            default_mode: Some(0o644),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `OMPI_MCA_orte_keep_fqdn_hostnames=1`, appended after the (sorted) env as upstream; set in
/// place when the user already has it (difference 6: upstream's duplicate, whose last value
/// wins, is refused by server-side apply).
fn set_keep_fqdn_env(container: &mut Container) {
    let env = container.env.get_or_insert_default();
    let keep_fqdn = EnvVar {
        name: KEEP_FQDN_ENV.to_owned(),
        value: Some("1".to_owned()),
        value_from: None,
    };
    match env.iter_mut().find(|var| var.name == KEEP_FQDN_ENV) {
        Some(existing) => *existing = keep_fqdn,
        None => env.push(keep_fqdn),
    }
}

/// The leader: SSH client setup, a DNS wait for the workers when the deployer needs one, then
/// `mpirun … bash -c 'trtllm-llmapi-launch <command line>'` over all nodes' GPUs.
fn leader_script(
    container: &Container,
    resources: Option<&Resources>,
    multinode: &Multinode<'_>,
) -> String {
    let hosts = multinode.deployer.host_names(multinode.nodes);
    let command_line = command_line_text(
        container.command.as_deref().unwrap_or_default(),
        container.args.as_deref().unwrap_or_default(),
    );
    let ranks = multinode.nodes.wrapping_mul(gpus_per_node(resources));
    // The command line sits between single quotes (difference 2).
    let launch = escape_single_quotes(&format!("trtllm-llmapi-launch {command_line}"));
    let mpirun = format!(
        "mpirun --allow-run-as-root --oversubscribe -n {ranks} -H {} --mca pml ob1 --mca plm_rsh_args \"-p {SSH_PORT} -o StrictHostKeyChecking=no -i ~/.ssh/id_rsa\" {} bash -c '{launch}'",
        hosts.join(","),
        mpirun_env_flags(container),
    );
    let dns_wait = multinode
        .deployer
        .needs_dns_wait()
        .then(|| dns_wait(&hosts[1..]));
    std::iter::once("mkdir -p ~/.ssh".to_owned())
        .chain(SSH_CLIENT_SETUP.map(str::to_owned))
        .chain(dns_wait)
        .chain([mpirun])
        .collect::<Vec<_>>()
        .join(" && ")
}

/// A worker: SSH client setup (the keys serve as its authorized key too), then sshd in the
/// foreground. Its own command line is dropped: mpirun starts its ranks.
fn worker_script() -> String {
    std::iter::once("mkdir -p ~/.ssh ~/.ssh/host_keys ~/.ssh/run")
        .chain(SSH_CLIENT_SETUP)
        .chain(SSHD)
        .collect::<Vec<_>>()
        .join(" && ")
}

/// GPUs per node: `requests.gpu`, else `limits.gpu` (a value that is no 32-bit integer counts
/// as unset); 0 when neither.
fn gpus_per_node(resources: Option<&Resources>) -> i32 {
    let Some(resources) = resources else {
        return 0;
    };
    [&resources.requests, &resources.limits]
        .into_iter()
        .flatten()
        .find_map(|side| side.gpu.as_deref()?.parse().ok())
        .unwrap_or(0)
}

/// `-x NAME` for every variable the container sets and every one of [`FORWARDED_ENV`], sorted
/// and without duplicates: mpirun passes only the names, the ranks take the leader's values.
fn mpirun_env_flags(container: &Container) -> String {
    let own = container.env.iter().flatten().map(|var| var.name.as_str());
    let names: std::collections::BTreeSet<&str> = own.chain(FORWARDED_ENV).collect();
    names
        .into_iter()
        .map(|name| format!("-x {name}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits up to 300 s until every host in `workers` resolves: LWS starts the leader with the
/// workers, whose DNS names appear only once their pods exist.
fn dns_wait(workers: &[String]) -> String {
    format!(
        r#"TIMEOUT=300; START_TIME=$(date +%s); for worker in {}; do echo "Waiting for DNS: $worker"; until getent hosts $worker >/dev/null 2>&1; do CURRENT_TIME=$(date +%s); if [ $((CURRENT_TIME - START_TIME)) -gt $TIMEOUT ]; then echo "ERROR: Timeout waiting for DNS: $worker"; exit 1; fi; echo "DNS not ready for $worker, retrying..."; sleep 2; done; echo "✓ DNS resolved: $worker"; done; echo "All workers DNS ready""#,
        workers.join(" ")
    )
}

#[cfg(test)]
#[path = "trtllm_tests.rs"]
mod tests;
