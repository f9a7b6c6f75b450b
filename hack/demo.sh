#!/usr/bin/env bash
# The demo: the platform installed with helm on a real local control plane and used with
# kubectl. No containers and no internet: the node agent runs our operator, webhook and cert
# generator pods as the binaries built here, and the frontend and mock workers of upstream's
# mocker graph as upstream's own Dynamo runtime (from PyPI); other pods are simulated by kwok.
#
#   hack/demo.sh          start (or reuse) the demo cluster and run the flow
#   hack/demo.sh down     stop the demo cluster
set -euo pipefail
cd "$(dirname "$0")/.."
export DYNAMO_E2E_CLUSTER=demo

if [[ ${1:-} == down ]]; then
  exec hack/cluster.sh down
fi

demo_start=$SECONDS
proved=()
step_start=$SECONDS
step() { step_start=$SECONDS; printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
ok() { # ok <what was shown>: record it with the step's time
  local took=$((SECONDS - step_start))
  proved+=("$(printf '%-72s %4ss' "$1" "$took")")
  printf '    ok: %s (%ss)\n' "$1" "$took" >&2
}
die() { printf '\nDEMO FAILED: %s\n' "$*" >&2; exit 1; }

step "Kubernetes tools (built from pinned Go modules on first use, then cached)"
bin=$(hack/k8s-bins.sh | tail -n 1)
export DYNAMO_E2E_BIN=$bin
ok "pinned kube-apiserver, etcd, kwok, helm, kubectl ready"

step "Upstream Dynamo runtime (ai-dynamo 1.6.1 from PyPI, installed once, then cached)"
DYNAMO_E2E_RUNTIME=$(hack/dynamo-runtime.sh | tail -n 1)
export DYNAMO_E2E_RUNTIME
ok "runtime ready: $DYNAMO_E2E_RUNTIME"

step "Building the platform (operator, webhook, cert generator, node agent)"
cargo build --locked --workspace --bins
ok "cargo build"

# The pinned kubectl and helm first on PATH, inside the cluster's network namespace.
in_cluster() { hack/cluster.sh exec env PATH="$bin:$PATH" "$@"; }

step "Local control plane 'demo'"
if in_cluster kubectl get --raw /readyz >/dev/null 2>&1 &&
    grep -q "^export DYNAMO_E2E_RUNTIME=$DYNAMO_E2E_RUNTIME\$" <(hack/cluster.sh env 2>/dev/null); then
  echo "    reusing the running cluster" >&2
else
  hack/cluster.sh down >/dev/null 2>&1 || true
  hack/cluster.sh up
fi
ok "control plane up (etcd, kube-apiserver, controller-manager, scheduler, kwok, node agent)"

step "helm install dynamo-crds"
in_cluster helm upgrade --install dynamo-crds ./charts/crds --namespace default --wait >/dev/null
in_cluster kubectl get crd -o custom-columns=NAME:.metadata.name,SHORT:.spec.names.shortNames | grep -E 'NAME|nvidia'
ok "CRDs installed by helm and Established"

step "helm install dynamo-platform (webhook on; no NATS or etcd: their charts are not reachable offline)"
chart=$(hack/chart-offline.sh "$(mktemp -d)")
# The bundled NATS and etcd are not installed, and the operator gives pods no address of them.
offline=(--set nats.enabled=false --set etcd.enabled=false --set global.nats.install=false
         --set global.etcd.install=false)
in_cluster kubectl create namespace dynamo-system --dry-run=client -o yaml | in_cluster kubectl apply -f - >/dev/null
in_cluster helm upgrade --install dynamo-platform "$chart" --namespace dynamo-system --wait --timeout 180s \
  "${offline[@]}" >/dev/null
in_cluster kubectl get pods --namespace dynamo-system -o wide
ok "operator and webhook Running and Ready as real processes"
bundles=$(in_cluster kubectl get validatingwebhookconfiguration dynamo-platform-dynamo-operator-validating \
  -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{"\n"}{end}' | grep -c .) || true
[[ $bundles == 3 ]] || die "expected 3 webhooks with a caBundle, found $bundles"
ca_secret=$(in_cluster kubectl get secret webhook-server-cert --namespace dynamo-system \
  -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by}')
[[ $ca_secret == dynamo-certgen ]] || die "webhook-server-cert was not written by dynamo-certgen"
ok "cert-gen hook Jobs ran dynamo-certgen: Secret written, 3 webhooks carry the CA"

step "kubectl apply of valid graphs: admitted, then reconciled to Ready"
in_cluster kubectl create namespace dynamo-demo --dry-run=client -o yaml | in_cluster kubectl apply -f - >/dev/null
in_cluster kubectl apply --namespace dynamo-demo -f examples/vllm-agg.yaml -f examples/sglang-agg.yaml \
  -f examples/dynamomodel-lora.yaml
in_cluster kubectl wait --namespace dynamo-demo --for=condition=Ready --timeout=120s dgd/vllm-agg dgd/sglang-agg >/dev/null
in_cluster kubectl get dgd,dcd --namespace dynamo-demo
ok "vllm-agg and sglang-agg Ready=True (DCDs, Deployments, Services by the operator)"

step "Upstream's mocker graph served by upstream's runtime: a real chat completion"
in_cluster kubectl create namespace dynamo-serving --dry-run=client -o yaml | in_cluster kubectl apply -f - >/dev/null
in_cluster kubectl apply --namespace dynamo-serving -f e2e/fixtures/upstream/mocker-agg.yaml >/dev/null
in_cluster kubectl wait --namespace dynamo-serving --for=condition=Ready --timeout=180s dgd/mocker-agg >/dev/null ||
  die "mocker-agg did not become Ready"
in_cluster kubectl get pods --namespace dynamo-serving -o wide
frontend=$(in_cluster kubectl get pods --namespace dynamo-serving \
  -l nvidia.com/dynamo-graph-deployment-name=mocker-agg,nvidia.com/dynamo-component-type=frontend \
  -o jsonpath='{.items[0].status.podIP}')
model=nvidia/Llama-3.1-8B-Instruct-FP8
for _ in $(seq 1 90); do
  in_cluster curl -fsS "http://$frontend:8000/v1/models" 2>/dev/null | grep -q "\"$model\"" && break
  sleep 1
done
request='{"model":"'$model'","messages":[{"role":"user","content":"Hello, what is Kubernetes?"}],"max_tokens":16}'
answer=$(in_cluster curl -fsS -w '\n%{time_total}' "http://$frontend:8000/v1/chat/completions" \
  -H 'Content-Type: application/json' -d "$request") || die "no chat completion from $frontend"
latency=$(tail -n 1 <<<"$answer")
printf '    POST http://%s:8000/v1/chat/completions\n    %s\n' "$frontend" "$(head -n 1 <<<"$answer" | cut -c1-300)" >&2
grep -q '"content":"[^"]' <<<"$answer" || die "the completion has no text: $answer"
ok "mocker-agg answered a chat completion in ${latency}s (frontend + mock worker, kubernetes discovery)"

step "kubectl apply of invalid manifests: rejected, naming the field"
reject() { # reject <what> <field> : manifest on stdin must be refused with <field> in the message
  local out
  if out=$(in_cluster kubectl apply --namespace dynamo-demo -f - 2>&1); then
    die "$1 was admitted"
  fi
  local refusal
  refusal=$(grep -E 'denied the request|is invalid|Invalid value|Unsupported value|Required value' <<<"$out" || true)
  grep -q -- "$2" <<<"$refusal" || die "$1: the refusal does not name $2: $out"
  printf '    %-28s %s\n' "$1:" "$(grep -o -- "$2.*" <<<"$refusal" | head -n 1 | cut -c1-110)" >&2
}
sed 's/backendFramework: vllm/backendFramework: sglang/' examples/vllm-agg.yaml |
  reject "immutable backendFramework" "spec.backendFramework"
sed 's/^  services:$/  services:\n    Extra: {componentType: worker, replicas: 1}/' examples/vllm-agg.yaml |
  reject "service added on update" "spec.services"
printf '%s\n' 'apiVersion: nvidia.com/v1alpha1' 'kind: DynamoGraphDeployment' 'metadata: {name: empty}' \
  'spec: {backendFramework: vllm, services: {}}' | reject "no services" "spec.services"
printf '%s\n' 'apiVersion: nvidia.com/v1alpha1' 'kind: DynamoModel' 'metadata: {name: no-uri}' \
  'spec: {modelName: m, baseModelName: b, modelType: lora}' | reject "LoRA without a source" "spec.source"
ok "4 invalid manifests refused by the webhook, each message naming the field"

step "helm upgrade: the certificate is kept (no Secret write)"
before=$(in_cluster kubectl get secret webhook-server-cert -n dynamo-system -o jsonpath='{.metadata.resourceVersion}')
in_cluster helm upgrade dynamo-platform "$chart" --namespace dynamo-system --wait --timeout 180s \
  "${offline[@]}" >/dev/null
after=$(in_cluster kubectl get secret webhook-server-cert -n dynamo-system -o jsonpath='{.metadata.resourceVersion}')
[[ $before == "$after" ]] || die "helm upgrade rewrote the certificate Secret ($before -> $after)"
ok "helm upgrade reran the cert generator and it wrote nothing"

step "A second cluster-wide operator is refused while this one runs (helm install --dry-run=server)"
refuse_install() { # refuse_install <what> <helm args...>
  local what=$1 out; shift
  if out=$(in_cluster helm install "$@" "$chart" --dry-run=server "${offline[@]}" 2>&1); then
    die "$what was allowed"
  fi
  printf '    %-28s %s\n' "$what:" "$(grep -o 'a cluster-wide Dynamo operator.*' <<<"$out" | cut -c1-110)" >&2
}
in_cluster kubectl create namespace dynamo-other --dry-run=client -o yaml | in_cluster kubectl apply -f - >/dev/null
refuse_install "second cluster-wide" second --namespace dynamo-other
ok "refused, naming the installed release and the way out (a namespace-restricted one beside it is allowed)"

step "Summary"
printf '%s\n' "${proved[@]}" >&2
cat >&2 <<MSG

Demo done in $((SECONDS - demo_start))s. The cluster keeps running:
  kubeconfig:  $(hack/cluster.sh env | sed -n 's/^export KUBECONFIG=//p')
  explore:     DYNAMO_E2E_CLUSTER=demo hack/cluster.sh exec kubectl get dgd -A
  logs:        $(hack/cluster.sh env | sed -n 's/^export DYNAMO_E2E_STATE=//p')/logs (control plane, node agent, one file per pod we run)
  stop it:     hack/demo.sh down    (or: make demo-down)
MSG
