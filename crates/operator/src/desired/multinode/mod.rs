//! Multinode services: one replica of a service spans several nodes, a leader pod and
//! `nodes - 1` worker pods. The pod builder builds each role's pod as for a single node; then
//! [`rewrite`] changes the `main` container (and the pod's volumes) so that the nodes of a group
//! find each other, per backend, as upstream's operator does (its backends' `UpdateContainer`
//! and `UpdatePodSpec` at the platform 0.9.0 baseline):
//!
//! - SGLang ([`sglang`]): `--dist-init-addr <leader>:29500 --nnodes N --node-rank R` on the
//!   `python … dynamo.sglang` command line.
//! - vLLM ([`vllm`]): a Ray cluster when one node has fewer GPUs (`limits.gpu`) than TP×PP;
//!   data-parallel flags when it has fewer than TP×PP×DP; else the command line is left alone.
//! - TRT-LLM ([`trtllm`]): the leader runs the command line under `mpirun` over SSH; the
//!   workers run sshd.
//!
//! Workers lose the probes of the serving process they may no longer run (TRT-LLM workers probe
//! sshd instead); leaders keep theirs.
//!
//! The orchestrator that runs the groups ([`Deployer`]) decides how a node names the leader,
//! its own rank and its peers, from the environment variables Grove or LeaderWorkerSet inject.
//!
//! Deliberate differences from upstream, each fixing a command line that breaks upstream:
//!
//! 1. LeaderWorkerSet names the leader `$(LWS_LEADER_ADDRESS)` and the rank
//!    `$(LWS_WORKER_INDEX)` (no shell needed), as upstream later did: the kubelet expands these
//!    references in exec-form argv and shell scripts alike, so an exec-form python leader no
//!    longer receives the literal text `$LWS_LEADER_ADDRESS`.
//! 2. When exec-form argv is folded into one shell string, each user token that holds a shell
//!    metacharacter is single-quoted ([`shell_word`]); upstream joins them bare, so a JSON
//!    argument or one with spaces is re-split by the shell.
//! 3. "The original command line" (vLLM Ray leader, TRT-LLM leader) is read one way
//!    ([`command_line_text`]): upstream prepends a `/bin/sh -c` command unquoted for vLLM (the
//!    shell then runs only `python3`) and drops a non-python exec command for TRT-LLM.
//! 4. A flag the user already passes (`--flag value` or `--flag=value`) is not added again;
//!    upstream only skips vLLM's `--data-parallel-size`, and a flag given twice makes the
//!    backend's argument parser fail or silently take one of them.
//! 5. The vLLM data-parallel worker under LeaderWorkerSet computes its start rank from the
//!    shell variable `$LWS_WORKER_INDEX`: the kubelet does not expand a `$(VAR)` nested inside
//!    `$(( … ))` (it reads `$((…` up to the first `)` as one unknown name), so the shell would
//!    run `LWS_WORKER_INDEX` as a command. See [`Deployer::shell_node_rank`].
//! 6. The SSH key volume and mount of TRT-LLM are added only when the pod has none of that name
//!    or path, and `OMPI_MCA_orte_keep_fqdn_hostnames` is set in place when the user already
//!    sets it: upstream appends duplicates, which the API server (or server-side apply) refuses.

mod sglang;
mod trtllm;
mod vllm;

use std::borrow::Cow;

use dynamo_api::v1alpha1::{BackendFramework, Resources};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::BuildError;
use super::naming::MAIN_CONTAINER;

/// The role of a pod in its multinode group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The pod that serves (and, for TRT-LLM, launches the ranks on the others).
    Leader,
    /// One of the `nodes - 1` other pods of the group.
    Worker,
}

/// Which orchestrator runs the groups; decides the leader's address, a node's rank and host names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployer<'a> {
    /// One LeaderWorkerSet per replica: LWS injects `LWS_LEADER_ADDRESS` and `LWS_WORKER_INDEX`.
    LeaderWorkerSet,
    /// A Grove PodCliqueScalingGroup per service; `service` is the graph's service key (the
    /// clique names use it lowercased). Grove injects `GROVE_PCSG_NAME`, `GROVE_PCSG_INDEX`,
    /// `GROVE_HEADLESS_SERVICE` and `GROVE_PCLQ_POD_INDEX`.
    Grove { service: &'a str },
}

/// A node's rank as its command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRank {
    /// The rank's text in a `--node-rank` style flag.
    pub value: &'static str,
    /// Whether only a shell computes it (kubelet `$(VAR)` references need none).
    pub needs_shell: bool,
}

/// The kubelet reference to the leader's address under LeaderWorkerSet (difference 1).
const LWS_LEADER_ADDRESS: &str = "$(LWS_LEADER_ADDRESS)";
/// Grove's clique name suffixes of the leader and worker cliques.
const GROVE_LEADER_SUFFIX: &str = "ldr";
const GROVE_WORKER_SUFFIX: &str = "wkr";

impl Deployer<'_> {
    /// The leader's host name, as the other nodes' command lines reach it.
    pub fn leader_host(&self) -> String {
        match self {
            Self::LeaderWorkerSet => LWS_LEADER_ADDRESS.to_owned(),
            Self::Grove { service } => grove_host(service, GROVE_LEADER_SUFFIX, 0),
        }
    }

    /// The host names of all nodes of a group, the leader first (TRT-LLM's `mpirun -H`).
    pub fn host_names(&self, nodes: i32) -> Vec<String> {
        let workers = (1..nodes.max(1)).map(|i| match self {
            // LWS worker pods are named `<leader pod>-<i>`: insert `-<i>` before the first dot
            // of the leader's address. Shell command substitution (the kubelet leaves it alone,
            // as `echo …` is no variable name); it runs inside the leader's `/bin/sh -c`.
            Self::LeaderWorkerSet => {
                format!(r#"$(echo "$LWS_LEADER_ADDRESS" | sed 's/\./-{i}\./')"#)
            }
            Self::Grove { service } => grove_host(service, GROVE_WORKER_SUFFIX, i - 1),
        });
        std::iter::once(self.leader_host()).chain(workers).collect()
    }

    /// A worker's node rank (the leader's is 0).
    pub fn node_rank(&self) -> NodeRank {
        match self {
            // Kubelet reference: no shell needed (difference 1).
            Self::LeaderWorkerSet => NodeRank {
                value: "$(LWS_WORKER_INDEX)",
                needs_shell: false,
            },
            // The worker clique's pod index counts from 0; the leader is rank 0.
            Self::Grove { .. } => NodeRank {
                value: "$((GROVE_PCLQ_POD_INDEX + 1))",
                needs_shell: true,
            },
        }
    }

    /// A worker's node rank as shell code that may sit inside `$(( … ))`. The kubelet reads
    /// `$((` up to the first `)` as one (unknown) variable name, so a `$(VAR)` nested in
    /// arithmetic reaches the shell unexpanded, which runs `VAR` as a command: LeaderWorkerSet
    /// gives the shell variable instead (difference 5).
    pub fn shell_node_rank(&self) -> &'static str {
        match self {
            Self::LeaderWorkerSet => "$LWS_WORKER_INDEX",
            Self::Grove { .. } => self.node_rank().value,
        }
    }

    /// Whether the leader waits for the workers' DNS names before launching on them: LWS starts
    /// all pods at once and their names may not resolve yet; Grove starts the TRT-LLM leader
    /// clique after the workers.
    pub fn needs_dns_wait(&self) -> bool {
        matches!(self, Self::LeaderWorkerSet)
    }
}

/// `$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-<lower(service)>-<suffix>-<index>.$(GROVE_HEADLESS_SERVICE)`:
/// a pod's name in Grove's headless Service, from the variables Grove injects.
fn grove_host(service: &str, suffix: &str, index: i32) -> String {
    format!(
        "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-{}-{suffix}-{index}.$(GROVE_HEADLESS_SERVICE)",
        service.to_lowercase()
    )
}

/// One multinode group as seen by the pod of one role.
#[derive(Clone, Copy, Debug)]
pub struct Multinode<'a> {
    /// `multinode.nodeCount`: pods per group, leader included.
    pub nodes: i32,
    pub role: Role,
    pub deployer: Deployer<'a>,
    /// Name of the Secret with the SSH key pair (`private.key`, `private.key.pub`) that
    /// TRT-LLM's mpirun uses; unused by the other backends.
    pub mpi_ssh_secret: &'a str,
}

/// Rewrites `pod` (its container named "main", its volumes) for `role`. nodes <= 1 → no change.
///
/// `resources` are the service's (its GPU count per node decides vLLM's launch mode and
/// TRT-LLM's rank count). A pod without a `main` container is left alone (the pod builder
/// always makes one).
pub fn rewrite(
    pod: &mut PodSpec,
    backend: BackendFramework,
    resources: Option<&Resources>,
    multinode: &Multinode<'_>,
) -> Result<(), BuildError> {
    if multinode.nodes <= 1 {
        return Ok(());
    }
    let PodSpec {
        containers,
        volumes,
        ..
    } = pod;
    let Some(main) = containers.iter_mut().find(|c| c.name == MAIN_CONTAINER) else {
        return Ok(());
    };
    match backend {
        BackendFramework::Sglang => sglang::rewrite(main, multinode),
        BackendFramework::Vllm => vllm::rewrite(main, resources, multinode),
        BackendFramework::Trtllm => trtllm::rewrite(main, volumes, resources, multinode)?,
    }
    Ok(())
}

/// Whether `cmd` runs a python interpreter, as upstream's `isPythonCommand`: `python`, with an
/// optional version (`python3`, `python3.12.1`) and an optional directory (`/usr/bin/python3.8`).
pub fn is_python_command(cmd: &str) -> bool {
    // Upstream: `^(.*/)?(python\d*(\.\d+)*)$`, where `.` does not match a newline.
    let (directory, name) = match cmd.rfind('/') {
        Some(slash) => cmd.split_at(slash + 1),
        None => ("", cmd),
    };
    let Some(version) = name.strip_prefix("python") else {
        return false;
    };
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    !directory.contains('\n')
        && major.bytes().all(|b| b.is_ascii_digit())
        && parts.all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the three probes: a worker may not run the serving process they check (SGLang and
/// vLLM workers, as upstream, whatever their command line).
fn remove_probes(container: &mut Container) {
    container.liveness_probe = None;
    container.readiness_probe = None;
    container.startup_probe = None;
}

/// `token` as one shell word (difference 2): unchanged when it holds only characters no shell
/// treats specially (so upstream's strings for plain tokens stay as they are), else in single
/// quotes. A kubelet `$(VAR)` reference inside still works: the kubelet substitutes it before
/// the shell runs.
fn shell_word(token: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_./:=,+@%-".contains(&b);
    if !token.is_empty() && token.bytes().all(plain) {
        Cow::Borrowed(token)
    } else {
        Cow::Owned(format!("'{}'", escape_single_quotes(token)))
    }
}

/// `text` ready to sit between single quotes: each `'` becomes `'\''` (close, escaped quote,
/// reopen).
fn escape_single_quotes(text: &str) -> String {
    text.replace('\'', r"'\''")
}

/// Exec-form argv as one shell command line, each token a [`shell_word`].
fn shell_words<'s>(tokens: impl IntoIterator<Item = &'s String>) -> String {
    tokens
        .into_iter()
        .map(|t| shell_word(t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `command` is a shell running a script: `sh -c`, `/bin/bash -c`, … (a shell binary,
/// any directory, followed by `-c`).
fn is_shell_script(command: &[String]) -> bool {
    match command {
        [shell, flag, ..] => {
            let name = shell.rsplit('/').next().unwrap_or_default();
            matches!(name, "sh" | "bash") && flag == "-c"
        }
        _ => false,
    }
}

/// The command line the container runs, as shell text (difference 3): for a shell `-c` form
/// the script (what follows `-c` in `command`, then `args`, joined with spaces); without a
/// command, `args` joined (the pod builder's default command is `/bin/sh -c`, so `args` are
/// shell text); for any exec form (a python interpreter or another program) the quoted argv.
fn command_line_text(command: &[String], args: &[String]) -> String {
    if command.is_empty() {
        args.join(" ")
    } else if is_shell_script(command) {
        let script: Vec<&str> = command[2..]
            .iter()
            .chain(args)
            .map(String::as_str)
            .collect();
        script.join(" ")
    } else {
        shell_words(command.iter().chain(args))
    }
}

/// The words of the container's `command` and `args`, each element split on whitespace (so a
/// shell script in `args` yields its words): where a user may already pass a backend flag.
fn command_line_words(container: &Container) -> Vec<&str> {
    let command = container.command.iter().flatten();
    let args = container.args.iter().flatten();
    command
        .chain(args)
        .flat_map(|part| part.split_whitespace())
        .collect()
}

/// Whether `words` pass `flag`, as `--flag value` or `--flag=value` (a word in a shell script
/// may carry quotes: `"--flag=value"`).
fn passes_flag(words: &[&str], flag: &str) -> bool {
    words.iter().any(|word| {
        let word = word.trim_matches(['\'', '"']);
        word.strip_prefix(flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
    })
}

/// The backend flags (name, value or none for a switch) the user does not already pass, as
/// argv tokens in the given order (difference 4).
fn flags_to_add<const N: usize>(
    flags: [(&str, Option<String>); N],
    user_words: &[&str],
) -> Vec<String> {
    flags
        .into_iter()
        .filter(|(flag, _)| !passes_flag(user_words, flag))
        .flat_map(|(flag, value)| std::iter::once(flag.to_owned()).chain(value))
        .collect()
}

/// Adds backend `flags` (argv tokens) to the container's python command line, as upstream's
/// `injectFlagsIntoContainerCommand`:
///
/// - Exec form (`command[0]` is python): appended to `args`; when a flag value needs a shell,
///   the whole argv becomes `sh -c "exec <argv> <flags>"` (`exec` keeps python as PID 1, so it
///   gets the pod's signals).
/// - Otherwise (a `sh -c` script in `args`): inserted into the first `args` element that runs
///   `python … <framework>` (see [`insert_after_framework`]); `command` is never touched, and a
///   command line with no such element is left alone.
fn inject_flags(container: &mut Container, flags: &[String], needs_shell: bool, framework: &str) {
    if flags.is_empty() {
        return;
    }
    let command = container.command.as_deref().unwrap_or_default();
    if command.first().is_some_and(|c| is_python_command(c)) {
        if needs_shell {
            let argv = shell_words(command.iter().chain(container.args.iter().flatten()));
            container.command = Some(vec!["sh".to_owned(), "-c".to_owned()]);
            container.args = Some(vec![format!("exec {argv} {}", flags.join(" "))]);
        } else {
            container
                .args
                .get_or_insert_default()
                .extend(flags.iter().cloned());
        }
        return;
    }
    let flags = flags.join(" ");
    for arg in container.args.iter_mut().flatten() {
        if let Some(rewritten) = insert_after_framework(arg, framework, &flags) {
            *arg = rewritten;
            return;
        }
    }
}

/// `script` with ` <flags>` inserted after every python command that runs `framework`, or
/// `None` when there is none. Upstream replaces every match of the regex
/// `(python[0-9.]*\s+[^|&;]*<framework>[^|&;]*?)(\s|$|[|&;])` by `$1 <flags>$2`; the `regex`
/// crate is no dependency of this crate, so [`framework_command_end`] matches it by hand.
fn insert_after_framework(script: &str, framework: &str, flags: &str) -> Option<String> {
    let mut rewritten = String::with_capacity(script.len() + flags.len() + 1);
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = script[search..].find("python") {
        let start = search + found;
        match framework_command_end(script, start, framework) {
            Some(insert_at) => {
                rewritten.push_str(&script[copied..insert_at]);
                rewritten.push(' ');
                rewritten.push_str(flags);
                copied = insert_at;
                // The regex match ends after the character that follows group 1 (its group 2).
                search = (insert_at + 1).min(script.len());
            }
            None => search = start + 1,
        }
    }
    (copied > 0).then(|| {
        rewritten.push_str(&script[copied..]);
        rewritten
    })
}

/// Where group 1 of upstream's regex ends for a match starting at `start` (an occurrence of
/// `python`), or `None` when no match starts there:
///
/// - `python[0-9.]*\s+`: `python`, its version digits and dots, at least one whitespace;
/// - `[^|&;]*<framework>`: the greedy class makes it the *last* `framework` before the next
///   `|`, `&` or `;` (or the end);
/// - `[^|&;]*?(\s|$|[|&;])`: then up to the first whitespace, separator or the end.
///
/// Whitespace is Go's `\s`, ASCII `[\t\n\f\r ]`.
fn framework_command_end(script: &str, start: usize, framework: &str) -> Option<usize> {
    let is_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let rest = &script[start + "python".len()..];
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let words = rest.trim_start_matches(is_space);
    if words.len() == rest.len() {
        return None;
    }
    let words_at = script.len() - words.len();
    let command_end = words.find(['|', '&', ';']).unwrap_or(words.len());
    let framework_end = words[..command_end].rfind(framework)? + framework.len();
    let token_end = words[framework_end..command_end]
        .find(is_space)
        .map_or(command_end, |at| framework_end + at);
    Some(words_at + token_end)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
