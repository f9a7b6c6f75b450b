//! SGLang: every node runs the same `python -m dynamo.sglang`, told the leader's address (torch
//! distributed init on port 29500), the node count and its own rank.

use k8s_openapi::api::core::v1::Container;

use super::{Multinode, NodeRank, Role, command_line_words, flags_to_add, inject_flags};

/// Port of SGLang's `--dist-init-addr` on the leader.
const DIST_INIT_PORT: u16 = 29500;

/// The multinode rewrite of an SGLang main container.
pub(super) fn rewrite(container: &mut Container, multinode: &Multinode<'_>) {
    let leader = multinode.deployer.leader_host();
    let rank = multinode.deployer.node_rank();
    launch(container, multinode.nodes, multinode.role, &leader, rank);
}

/// Workers lose their probes; every node gets the multinode flags. Takes the deployer's
/// answers rather than the deployer, so tests can give upstream's mock deployers' answers.
fn launch(container: &mut Container, nodes: i32, role: Role, leader: &str, worker_rank: NodeRank) {
    if role == Role::Worker {
        super::remove_probes(container);
    }
    let user_words = command_line_words(container);
    let (flags, needs_shell) = multinode_flags(nodes, role, leader, worker_rank, &user_words);
    inject_flags(container, &flags, needs_shell, "sglang");
}

/// `--dist-init-addr <leader>:29500 --nnodes <nodes> --node-rank <rank>` without the flags the
/// user already passes, and whether they need a shell (a worker rank that only a shell
/// computes). The leader is rank 0.
fn multinode_flags(
    nodes: i32,
    role: Role,
    leader: &str,
    worker_rank: NodeRank,
    user_words: &[&str],
) -> (Vec<String>, bool) {
    let rank = match role {
        Role::Leader => NodeRank {
            value: "0",
            needs_shell: false,
        },
        Role::Worker => worker_rank,
    };
    let flags = flags_to_add(
        [
            (
                "--dist-init-addr",
                Some(format!("{leader}:{DIST_INIT_PORT}")),
            ),
            ("--nnodes", Some(nodes.to_string())),
            ("--node-rank", Some(rank.value.to_owned())),
        ],
        user_words,
    );
    let needs_shell = rank.needs_shell && flags.iter().any(|f| f == "--node-rank");
    (flags, needs_shell)
}

#[cfg(test)]
#[path = "sglang_tests.rs"]
mod tests;
