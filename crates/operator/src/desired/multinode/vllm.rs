//! vLLM: how a group shares the work depends on how many GPUs one node has (`limits.gpu`):
//!
//! - fewer than one model replica needs (TP × PP): a Ray cluster. The leader starts the Ray
//!   head, then vLLM with `--distributed-executor-backend ray`, which places its workers on the
//!   other nodes; the workers only run a Ray agent.
//! - enough for one replica but fewer than TP × PP × DP: data parallelism, each node serving
//!   `gpus / (TP × PP)` replicas of the DP group (`--data-parallel-hybrid-lb` and friends).
//! - otherwise (or with no GPU limit): the command line is left alone.
//!
//! Workers lose their probes in every case, as upstream.

use dynamo_api::v1alpha1::Resources;
use k8s_openapi::api::core::v1::Container;

use super::{
    Multinode, Role, command_line_text, command_line_words, flags_to_add, inject_flags, passes_flag,
};

/// Port of the Ray head on the leader.
const RAY_PORT: u16 = 6379;
/// Port of the data-parallel coordinator's RPC on the leader.
const DATA_PARALLEL_RPC_PORT: u16 = 13445;

/// How a vLLM group launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    Ray,
    /// `local` DP ranks per node, `size` in the whole group.
    DataParallel {
        local: i64,
        size: i64,
    },
    Unchanged,
}

/// The multinode rewrite of a vLLM main container.
pub(super) fn rewrite(
    container: &mut Container,
    resources: Option<&Resources>,
    multinode: &Multinode<'_>,
) {
    let args = arg_words(container);
    match launch_mode(&args, limits_gpus(resources), multinode.nodes) {
        Launch::Ray => ray(container, multinode),
        Launch::DataParallel { local, size } => data_parallel(container, multinode, local, size),
        Launch::Unchanged => {}
    }
    if multinode.role == Role::Worker {
        super::remove_probes(container);
    }
}

/// The words of `args` only: upstream reads the parallelism flags there, not in `command`.
fn arg_words(container: &Container) -> Vec<&str> {
    container
        .args
        .iter()
        .flatten()
        .flat_map(|arg| arg.split_whitespace())
        .collect()
}

/// `limits.gpu` as an integer; 0 when unset or not an integer. Upstream's vLLM reads only the
/// limit (TRT-LLM prefers the request).
fn limits_gpus(resources: Option<&Resources>) -> i64 {
    resources
        .and_then(|r| r.limits.as_ref())
        .and_then(|limits| limits.gpu.as_deref())
        .and_then(|gpu| gpu.parse().ok())
        .unwrap_or(0)
}

/// Ray when one node cannot hold TP × PP ranks; data parallel when it cannot hold TP × PP × DP;
/// else unchanged (also with no GPU limit, when the node's capacity is unknown).
fn launch_mode(args: &[&str], gpus: i64, nodes: i32) -> Launch {
    let tensor = flag_value(args, "--tensor-parallel-size");
    let pipeline = flag_value(args, "--pipeline-parallel-size");
    let data = flag_value(args, "--data-parallel-size");
    // Go's int64 arithmetic wraps; so does this, for identical results on absurd inputs.
    let world = tensor.wrapping_mul(pipeline);
    if gpus == 0 {
        Launch::Unchanged
    } else if world > gpus {
        Launch::Ray
    } else if world.wrapping_mul(data) > gpus {
        let local = gpus.checked_div(world).unwrap_or(0);
        let size = if data == 1 {
            local.wrapping_mul(i64::from(nodes))
        } else {
            data
        };
        Launch::DataParallel { local, size }
    } else {
        Launch::Unchanged
    }
}

/// The integer value of `flag` in `words` (upstream's `getFlagValue`): the first occurrence
/// whose value parses, `--flag N` or (difference 4) `--flag=N`; 1 when there is none.
fn flag_value(words: &[&str], flag: &str) -> i64 {
    words
        .iter()
        .enumerate()
        .find_map(|(i, word)| {
            let value = match word.strip_prefix(flag)? {
                "" => words.get(i + 1)?,
                rest => rest.strip_prefix('=')?,
            };
            value.parse().ok()
        })
        .unwrap_or(1)
}

/// Ray: the leader runs the Ray head, then its command line; a worker only joins the cluster
/// (its own command line is dropped: vLLM on the leader places its ranks there).
fn ray(container: &mut Container, multinode: &Multinode<'_>) {
    let script = match multinode.role {
        Role::Leader => ray_leader_script(container),
        Role::Worker => format!(
            "ray start --address={}:{RAY_PORT} --block",
            multinode.deployer.leader_host()
        ),
    };
    container.command = Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]);
    container.args = Some(vec![script]);
}

/// `ray start --head --port=6379 && <command line> --distributed-executor-backend ray`, the
/// backend flag unless the user passes one (difference 4).
fn ray_leader_script(container: &Container) -> String {
    let command_line = command_line_text(
        container.command.as_deref().unwrap_or_default(),
        container.args.as_deref().unwrap_or_default(),
    );
    let mut script = format!("ray start --head --port={RAY_PORT} && {command_line}");
    if !passes_flag(
        &command_line_words(container),
        "--distributed-executor-backend",
    ) {
        script.push_str(" --distributed-executor-backend ray");
    }
    script
}

/// Data parallel: every node runs its command line with the DP flags; a worker's start rank is
/// `local × rank`, shell arithmetic (so a worker's exec form gets a shell).
fn data_parallel(container: &mut Container, multinode: &Multinode<'_>, local: i64, size: i64) {
    let deployer = multinode.deployer;
    let start_rank = match multinode.role {
        Role::Leader => "0".to_owned(),
        Role::Worker => format!("$(( {local} * {} ))", deployer.shell_node_rank()),
    };
    let flags = flags_to_add(
        [
            ("--data-parallel-hybrid-lb", None),
            ("--data-parallel-size", Some(size.to_string())),
            ("--data-parallel-size-local", Some(local.to_string())),
            ("--data-parallel-start-rank", Some(start_rank)),
            ("--data-parallel-address", Some(deployer.leader_host())),
            (
                "--data-parallel-rpc-port",
                Some(DATA_PARALLEL_RPC_PORT.to_string()),
            ),
        ],
        &command_line_words(container),
    );
    let needs_shell =
        multinode.role == Role::Worker && flags.iter().any(|f| f == "--data-parallel-start-rank");
    inject_flags(container, &flags, needs_shell, "vllm");
}

#[cfg(test)]
#[path = "vllm_tests.rs"]
mod tests;
