#!/usr/bin/env bash
# The local demo: a real Kubernetes control plane on this machine (no containers, no
# internet), our CRDs installed with helm, the example graphs applied and validated by the
# API server, and the webhook certificate minted by dynamo-certgen.
#
#   hack/demo.sh          start (or reuse) the demo cluster and run the steps
#   hack/demo.sh down     stop the demo cluster
set -euo pipefail
cd "$(dirname "$0")/.."
export DYNAMO_E2E_CLUSTER=demo

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ ${1:-} == down ]]; then
  exec hack/cluster.sh down
fi

step "Kubernetes tools (built from pinned Go modules on first use, then cached)"
bin=$(hack/k8s-bins.sh | tail -n 1)
export DYNAMO_E2E_BIN=$bin

step "Building the platform"
cargo build --locked --workspace --bins

# The pinned kubectl and helm first on PATH, inside the cluster network namespace.
in_cluster() { hack/cluster.sh exec env PATH="$bin:$PATH" "$@"; }

if in_cluster kubectl get --raw /readyz >/dev/null 2>&1; then
  step "Reusing the running control plane 'demo'"
else
  step "Starting the local control plane 'demo' (network namespace dynamo-demo)"
  hack/cluster.sh up
fi

step "Installing the dynamo-crds chart with helm"
in_cluster helm upgrade --install dynamo-crds ./charts/crds --namespace default --wait
in_cluster kubectl get crd -o custom-columns=NAME:.metadata.name,SHORT:.spec.names.shortNames

step "Applying the example graphs and model"
in_cluster kubectl create namespace dynamo-demo --dry-run=client -o yaml | in_cluster kubectl apply -f -
in_cluster kubectl apply --namespace dynamo-demo -f examples/
in_cluster kubectl get dgd,dm --namespace dynamo-demo

step "The API server rejects an invalid graph and names the field"
if printf '%s\n' 'apiVersion: nvidia.com/v1alpha1' 'kind: DynamoGraphDeployment' \
  'metadata: {name: broken}' 'spec: {backendFramework: tensorflow}' |
  in_cluster kubectl apply --namespace dynamo-demo -f -; then
  echo "unexpected: the invalid graph was accepted" >&2
  exit 1
fi

step "Minting the webhook certificate with dynamo-certgen (run twice: the second run keeps it)"
for _ in 1 2; do
  in_cluster env RUST_LOG=info ./target/debug/dynamo-certgen \
    --namespace dynamo-demo --service-name dynamo-webhook
done
in_cluster kubectl get secret webhook-server-cert --namespace dynamo-demo

cat >&2 <<MSG

The demo cluster keeps running. Explore it with:
  DYNAMO_E2E_CLUSTER=demo hack/cluster.sh exec kubectl get dgd -A
Stop it with:
  hack/demo.sh down
MSG
