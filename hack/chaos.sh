#!/usr/bin/env bash
# A chaos run: on a fresh local control plane (its own, in a private network namespace, with
# the API server's audit log on) the platform is installed by helm with two operator replicas
# and two webhook replicas; N graphs of four shapes (aggregated, disaggregated, with a planner,
# with a scaling adapter) are applied while a fault injector runs for SECONDS, picking at
# random every 2-6 s among: SIGKILL of the operator leader, SIGKILL of a webhook pod, SIGSTOP
# of the leader for longer than its renew deadline (then SIGCONT), a crash-restart of
# kube-apiserver or of etcd, a burst of user edits (scale, restart id, adapter scale), and
# deletions of graphs' Deployments and Services by hand. Then it waits for convergence and
# checks the invariants (e2e/chaos/src/main.rs), ending with one line:
#
#   chaos: graphs=N converged=N duplicates=0 lost=0 foreign_deleted=0 two_leaders=0
#          failed_admissions_of_valid=0 seconds_to_converge=X
#
# and exit status 0 only when every graph converged and every other count is 0.
#
# The faults are the control plane's and the platform's, not the nodes': the node controller's
# grace is 10 minutes (DYNAMO_E2E_NODE_GRACE in hack/cluster.sh), since kwok's fake nodes miss
# heartbeats while the API server restarts and, unlike a kubelet, never mark their pods Ready
# again once the node controller has marked them not Ready.
#
#   hack/chaos.sh [N] [SECONDS]     default 200 graphs, 300 s of faults
# Env: CHAOS_SEED (repeat a run's faults; the seed is printed), CHAOS_KEEP=1 (keep the
# cluster's state directory, with every log and the audit log, even when the run passed),
# CHAOS_OPERATOR_LOG (the operators' RUST_LOG, e.g. info,kube_runtime::watcher=debug).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
seconds=${2:-300}
[[ $n =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: hack/chaos.sh [N] [SECONDS]" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*" >&2; }

step "Kubernetes tools (built once, then reused from the cache)"
bin=$(hack/k8s-bins.sh | tail -n 1)

step "Building the platform and the chaos driver"
cargo build --locked --workspace --bins

name="chaos-$$"
state="${TMPDIR:-/tmp}/dynamo-e2e-$name"
step "Control plane '$name' (audit log on), platform by helm, $n graphs, $seconds s of faults"
status=0
unshare --net env DYNAMO_E2E_IN_NETNS=1 DYNAMO_E2E_CLUSTER="$name" DYNAMO_E2E_BIN="$bin" \
  DYNAMO_E2E_STATE="$state" DYNAMO_E2E_AUDIT=1 DYNAMO_E2E_NODE_GRACE=10m PATH="$bin:$PATH" \
  CHAOS_OPERATOR_LOG="${CHAOS_OPERATOR_LOG:-info}" \
  bash -euo pipefail -c '
    trap "hack/cluster.sh down" EXIT
    hack/cluster.sh up
    eval "$(hack/cluster.sh env)"
    # Every pod that is not a GPU worker lands on kwok-node-0: room for all of them.
    kubectl patch node kwok-node-0 --subresource=status --type merge \
      -p "{\"status\":{\"capacity\":{\"pods\":\"20000\"},\"allocatable\":{\"pods\":\"20000\"}}}" >/dev/null
    helm upgrade --install dynamo-crds ./charts/crds --namespace default --wait >/dev/null
    chart=$(hack/chart-offline.sh "$(mktemp -d)")
    kubectl create namespace dynamo-system >/dev/null
    helm install dynamo-platform "$chart" --namespace dynamo-system --wait --timeout 180s \
      --set nats.enabled=false --set etcd.enabled=false \
      --set global.nats.install=false --set global.etcd.install=false \
      --set dynamo-operator.controllerManager.replicas=2 \
      --set-json "dynamo-operator.env=[{\"name\":\"RUST_LOG\",\"value\":\"$CHAOS_OPERATOR_LOG\"}]" \
      >/dev/null
    kubectl get pods --namespace dynamo-system -o wide >&2
    CHAOS_HACK="$PWD/hack" CHAOS_PLATFORM_NAMESPACE=dynamo-system target/debug/chaos "$@"
  ' chaos "$n" "$seconds" || status=$?

if ((status != 0)); then
  echo "chaos: FAILED (exit $status); logs and the audit log are kept in $state/logs" >&2
elif [[ -z ${CHAOS_KEEP:-} ]]; then
  rm -rf "$state"
else
  echo "chaos: logs kept in $state/logs" >&2
fi
exit "$status"
