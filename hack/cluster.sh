#!/usr/bin/env bash
# A real, container-less Kubernetes control plane for e2e tests and demos:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake
# kubelet: fake GPU Nodes, pods become Running/Ready with IPs from the pod CIDR,
# Job pods Succeeded) and the LeaderWorkerSet controller (lws-manager), all inside a
# network namespace of their own.
#
#   hack/cluster.sh up      start (prints timings; fails cleanly, leaving nothing running)
#   hack/cluster.sh down    stop exactly the processes `up` started, delete its netns (idempotent)
#   hack/cluster.sh env     print `export KUBECONFIG=... DYNAMO_E2E_*=...` (eval it)
#   hack/cluster.sh exec CMD...   run CMD inside the cluster netns with that env
#   hack/cluster.sh restart COMPONENT   crash-restart one control-plane process (SIGKILL, then
#                           the same command line again; waits until it answers): etcd,
#                           kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
#                           lws-manager (fault injection: hack/chaos.sh)
#
# Network: every component runs in a netns that has only `lo`, with
# 10.250.0.1/32 (advertise/node IP) and two local routes making the whole
# Service CIDR and pod CIDR local. kube-apiserver (--enable-aggregator-routing)
# calls webhooks at <kwok pod IP>:<targetPort>, which is answered by any process
# in the netns listening on 0.0.0.0:<targetPort> (e.g. the real operator). There
# is no default route, so nothing can leave the machine.
#  * Interactive/demo (default): `up` creates a named netns `dynamo-<name>` and
#    starts everything with `ip netns exec`; join it with
#    `ip netns exec dynamo-<name> CMD` or `hack/cluster.sh exec CMD`.
#  * CI: wrap the whole run in an anonymous netns and tell us so; the script
#    then configures the current netns instead of creating one:
#      unshare -n env DYNAMO_E2E_IN_NETNS=1 bash -c 'hack/cluster.sh up && ...'
#
# Env:
#   DYNAMO_E2E_CLUSTER   cluster name (default dynamo); [a-z0-9-], <= 20 chars
#   DYNAMO_E2E_STATE     state dir (default /tmp/dynamo-e2e-<name>): pki, logs, kubeconfig, pids
#   DYNAMO_E2E_BIN       bin dir (default: output of hack/k8s-bins.sh, which may build)
#   DYNAMO_E2E_IN_NETNS  set (non-empty) when already inside a dedicated netns (CI)
#   DYNAMO_E2E_PORT_BASE first of 8 consecutive ports, 6 without LWS (default derived from the name)
#   DYNAMO_E2E_KCM_CONTROLLERS  kube-controller-manager --controllers (default '*')
#   DYNAMO_E2E_NODE_GRACE  kube-controller-manager --node-monitor-grace-period (default: its
#                        own, 50s). kwok's nodes miss heartbeats while the API server or etcd
#                        restarts; the node controller then marks their pods not Ready, and kwok,
#                        unlike a kubelet, never reports them Ready again. A run that restarts
#                        the control plane on purpose (hack/chaos.sh) sets a longer grace.
#   DYNAMO_E2E_NODES     number of fake nodes kwok-node-0..N-1 (default 4, 1..100)
#   DYNAMO_E2E_GPUS_PER_NODE  nvidia.com/gpu of each node (default 8, 1..64)
#   DYNAMO_E2E_AUDIT     set (non-empty): the API server writes an audit log of every request
#                        (Metadata level, JSON, one line per completed request) to
#                        $state/logs/audit.log: who made which verb on which resource
#   DYNAMO_E2E_LWS       0: no LeaderWorkerSet controller (default 1: lws-manager runs, see below)
#   DYNAMO_E2E_GROVE     1: install Grove's CRDs (default 0: none; see below)
#   DYNAMO_E2E_RUNTIME   the Dynamo runtime (output of hack/dynamo-runtime.sh); when set, pods
#                        in namespaces whose name contains "serving" that run
#                        `python3 -m dynamo.frontend` or `python3 -m dynamo.mocker` are run for
#                        real by the node agent (e2e/node-agent/src/runtime.rs), not by kwok
#
# Nodes: each has the labels GPU feature discovery sets on a real GPU node
# (nvidia.com/gpu.present, .product NVIDIA-H100-80GB-HBM3, .count, .memory, .family)
# and DYNAMO_E2E_GPUS_PER_NODE nvidia.com/gpu. Pods of our own images are run by
# the node agent, which serves kwok-node-0 only; so every node after the first
# carries the taint nvidia.com/gpu=present:NoSchedule (as GPU node pools often do),
# and the API server's ExtendedResourceToleration admission plugin gives every pod
# that requests nvidia.com/gpu the matching toleration. GPU pods spread over all
# nodes; every other pod lands on kwok-node-0, as with a single node.
#
# LeaderWorkerSet: the real controller, sigs.k8s.io/lws (LWS_VERSION in versions.env;
# lws-manager and lws-crd.yaml from hack/k8s-bins.sh), turns LeaderWorkerSets into
# StatefulSets, whose pods kwok makes Ready. `up` applies its CRD (server-side: it is too
# big for client-side apply), gives it a serving cert from the cluster CA (SAN 127.0.0.1)
# and $state/lws-config.yaml (no leader election, no cert management, webhook on port
# base+6, health on base+7, no metrics), and registers its four webhooks (LWS defaulting and
# validation; pod labels group-index/worker-index and env LWS_LEADER_ADDRESS etc., without
# which no LWS ever becomes Available) at https://127.0.0.1:<port> once they answer. As
# upstream, they fail closed: while lws-manager is down, LWS and LWS pod creation fail.
# Log: $state/logs/lws-manager.log.
#
# Grove (DYNAMO_E2E_GROVE=1): only its CRDs, grove.io/v1alpha1 PodCliqueSet, PodClique and
# PodCliqueScalingGroup, from github.com/ai-dynamo/grove/operator/api (GROVE_API_VERSION in
# versions.env; grove-crds/*.yaml from hack/k8s-bins.sh), applied server-side after the API
# server is ready; `up` waits until they are Established. Grove's operator does not run:
# nothing acts on these objects unless a test runs a stand-in. Off by default, since an
# operator that finds the grove.io API group takes the Grove pathway for multinode graphs.
#
# Storage: kube-controller-manager's host-path provisioner (a directory under
# /tmp/hostpath_pv per volume, a path built into it; nothing mounts it, kwok
# starts no containers) behind the default StorageClass `standard`, binding
# Immediate; it provisions ReadWriteOnce and ReadWriteMany claims alike.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$hack/versions.env"

name=${DYNAMO_E2E_CLUSTER:-dynamo}
[[ $name =~ ^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$ ]] ||
  { echo "cluster.sh: invalid DYNAMO_E2E_CLUSTER '$name' ([a-z0-9-], max 20)" >&2; exit 2; }
state=${DYNAMO_E2E_STATE:-/tmp/dynamo-e2e-$name}
kc="$state/kubeconfig"
# The node the node agent serves (and the only untainted one).
node_name=kwok-node-0
# Where the host-path provisioner puts volumes (fixed in kube-controller-manager).
hostpath_root=/tmp/hostpath_pv
# The LeaderWorkerSet controller (header): 1 = run it, 0 = not.
lws=${DYNAMO_E2E_LWS:-1}
# Grove's CRDs (header): 1 = install them, 0 = not.
grove=${DYNAMO_E2E_GROVE:-0}

log() { printf '[cluster %s %s] %s\n' "$name" "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10)); }

# count_from <variable> <default> <max>: a whole number 1..max from the environment, or exit
# naming the variable.
count_from() {
  local var=$1 value=${!1:-$2} max=$3
  if [[ $value =~ ^[1-9][0-9]{0,5}$ ]] && ((value <= max)); then echo "$value"; return; fi
  die "$var must be a whole number from 1 to $max, not '$value'"
}

# Run a command in the cluster's netns (directly when we are already inside it).
nsexec() {
  if [[ -n ${netns:-} ]]; then ip netns exec "$netns" "$@"; else "$@"; fi
}

# ---------------------------------------------------------------- down ------

# /proc/<pid>/stat fields after "(comm) ": $1 = state, $20 = start time.
# The start time guards against killing a recycled PID; zombies count as dead.
stat_field() { awk -v f="$2" '{sub(/^.*\) /, ""); print $f}' "/proc/$1/stat" 2>/dev/null || true; }
starttime() { stat_field "$1" 20; }
alive() { local s; s=$(stat_field "$1" 1); [[ -n $s && $s != Z ]]; }

ours() { # ours <pid> <starttime>: is this still (alive) the process we started?
  alive "$1" && [[ $(starttime "$1") == "$2" ]]
}

stop_one() { # stop_one <component> <pid> <starttime>: TERM, wait up to 15 s, then KILL
  local comp=$1 pid=$2 st=$3 i
  ours "$pid" "$st" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do ours "$pid" "$st" || return 0; sleep 0.1; done
  log "$comp (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

remove_volume_dirs() { # the host-path provisioner's directories of this cluster's volumes
  local kubectl paths p in_netns=()
  kubectl=${bin:-$(sed -n 's/^export DYNAMO_E2E_BIN=//p' "$state/env" 2>/dev/null)}/kubectl
  [[ -x $kubectl && -f $kc ]] || return 0
  [[ -f $state/netns ]] && in_netns=(ip netns exec "$(<"$state/netns")")
  paths=$("${in_netns[@]}" timeout 5 "$kubectl" --kubeconfig "$kc" --request-timeout=3s get pv \
    -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null) || return 0
  for p in $paths; do
    # rmdir: only the empty directories the provisioner made (kwok pods write nothing).
    [[ $p == "$hostpath_root"/* ]] && { rmdir "$p" 2>/dev/null || true; }
  done
}

do_down() {
  local comp pid st l
  remove_volume_dirs
  if [[ -f $state/pids ]]; then
    # One at a time, in reverse start order: clients, then kube-apiserver, then
    # etcd last (an apiserver whose etcd is gone hangs in its graceful shutdown).
    mapfile -t lines < <(tac "$state/pids")
    for l in "${lines[@]}"; do
      read -r comp pid st <<<"$l"
      stop_one "$comp" "$pid" "$st"
    done
    rm -f "$state/pids"
  fi
  # Pods of the node agent: normally stopped by the agent itself on SIGTERM; processes and
  # network namespaces a killed agent left behind are removed here.
  local f pid pns
  for f in "$state"/agent/pids/*; do
    [[ -f $f ]] || continue
    pid=$(<"$f")
    grep -qa dynamo- "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$f"
  done
  if [[ -f $state/agent/netns ]]; then
    while read -r pns; do
      [[ -n $pns && -e /run/netns/$pns ]] && { ip netns del "$pns" 2>/dev/null || rm -f "/run/netns/$pns"; }
    done <"$state/agent/netns"
    rm -f "$state/agent/netns"
  fi
  if [[ -f $state/netns ]]; then
    local ns; ns=$(<"$state/netns")
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      local left; left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
      [[ -n $left ]] && log "WARNING: processes not started by cluster.sh still in netns $ns (pids: $left); the netns lives on until they exit"
      ip netns del "$ns" || log "WARNING: could not delete netns $ns"
    fi
    rm -f "$state/netns"
  fi
  rm -rf "$state/etcd-data"   # keep logs/pki for post-mortems; `up` wipes the dir anyway
}

# ------------------------------------------------------------------ up ------

started=()      # "component pid" of everything started by this `up`
up_ok=0

on_exit() {  # any failure or interrupt during `up`: stop everything already started
  local rc=$?
  if ((up_ok == 0)); then
    log "up failed (exit $rc); stopping what was started"
    do_down
  fi
}

fail() { # fail <component> <message>: report with log tail, then the EXIT trap cleans up
  local comp=$1 msg=$2 lf="$state/logs/$1.log"
  log "ERROR: $comp: $msg"
  if [[ -f $lf ]]; then
    log "$comp log: $lf (last 30 lines):"
    tail -n 30 "$lf" | sed 's/^/    /' >&2
  fi
  exit 1
}

start() { # start <component> <binary or absolute path> args...: background it inside the netns, record PID
  local comp=$1 exe=$2; shift 2
  [[ $exe == /* ]] || exe="$bin/$exe"
  [[ -x $exe ]] || fail "$comp" "binary missing or not executable: $exe"
  # setsid: own session, so a Ctrl-C/SIGHUP in the caller's terminal does not
  # reach the cluster; all fds redirected so `$(cluster.sh up)` returns.
  # PID is preserved: setsid (no fork, not a group leader) -> ip netns exec -> exec.
  if [[ -n ${netns:-} ]]; then
    setsid ip netns exec "$netns" "$exe" "$@" </dev/null >"$state/logs/$comp.log" 2>&1 &
  else
    setsid "$exe" "$@" </dev/null >"$state/logs/$comp.log" 2>&1 &
  fi
  local pid=$!
  sleep 0.05
  local st; st=$(starttime "$pid")
  if [[ -z $st ]]; then
    # A restart tries again (its port may still be held a moment); `up` gives up.
    [[ -n ${soft_start:-} ]] && return 1
    fail "$comp" "exited immediately"
  fi
  echo "$comp $pid $st" >>"$state/pids"
  started+=("$comp $pid")
  # The command line, for `restart` (NUL-separated: arguments may hold spaces).
  mkdir -p "$state/cmd"
  printf '%s\0' "$exe" "$@" >"$state/cmd/$comp"
}

check_alive() { # fail naming the first started component that has died
  local l comp pid
  for l in "${started[@]}"; do
    read -r comp pid <<<"$l"
    if ! alive "$pid"; then
      local rc=0
      wait "$pid" 2>/dev/null || rc=$?
      fail "$comp" "process $pid died during start-up (exit status $rc)"
    fi
  done
}

wait_for() { # wait_for <component> <timeout s> <what> <cmd...>: poll cmd, checking for deaths
  local comp=$1 timeout=$2 what=$3 t0; shift 3
  t0=$(now_ms)
  until "$@" >/dev/null 2>&1; do
    check_alive
    (($(now_ms) - t0 > timeout * 1000)) && fail "$comp" "not $what after ${timeout}s"
    sleep 0.2
  done
  log "$comp $what (+$(secs_since "$t0")s, total $(secs_since "$T0")s)"
}

port_free() { # port_free <port>: nothing listens on it in the netns
  [[ -z $(nsexec ss -Hltn "sport = :$1") ]]
}

gen_pki() {
  local d="$state/pki"
  mkdir -p "$d"
  (
    cd "$d"
    exec 2>>"$state/logs/pki.log" >&2
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
    ca() { # ca <name> <CN>
      key "$1"
      openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" -out "$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -addext subjectKeyIdentifier=hash
    }
    leaf() { # leaf <name> <ca> <subject> <extensions...>
      local n=$1 c=$2 subj=$3; shift 3
      key "$n"
      openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr"
      printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment \
        subjectKeyIdentifier=hash authorityKeyIdentifier=keyid,issuer "$@" >"$n.ext"
      openssl x509 -req -in "$n.csr" -CA "$c.crt" -CAkey "$c.key" -CAcreateserial -sha256 -days 3650 \
        -extfile "$n.ext" -out "$n.crt"
      rm -f "$n.csr" "$n.ext"
    }
    ca ca "dynamo-e2e-$name-ca"
    leaf apiserver ca /CN=kube-apiserver extendedKeyUsage=serverAuth \
      "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$ADVERTISE_ADDRESS,IP:$SERVICE_IP"
    leaf admin ca "/O=system:masters/CN=dynamo-e2e-admin" extendedKeyUsage=clientAuth
    leaf kcm ca /CN=system:kube-controller-manager extendedKeyUsage=clientAuth
    leaf scheduler ca /CN=system:kube-scheduler extendedKeyUsage=clientAuth
    leaf apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" extendedKeyUsage=clientAuth
    if ((lws)); then
      # lws-manager: its webhook serving cert (the API server calls 127.0.0.1), and a client
      # cert of its own name (admin rights, like upstream's ClusterRole and more; the audit
      # log tells its requests apart).
      leaf lws-webhook ca /CN=lws-webhook extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost
      leaf lws ca "/O=system:masters/CN=lws-controller-manager" extendedKeyUsage=clientAuth
      mkdir -p "$state/lws-certs"
      cp lws-webhook.crt "$state/lws-certs/tls.crt"
      cp lws-webhook.key "$state/lws-certs/tls.key"
    fi
    # Aggregation layer (front proxy) has its own CA, so client certs cannot impersonate.
    ca front-proxy-ca front-proxy-ca
    leaf front-proxy-client front-proxy-ca /CN=front-proxy-client extendedKeyUsage=clientAuth
    # Service-account token signing key (RS256, like kubeadm).
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) || fail pki "openssl failed (see $state/logs/pki.log)"
}

write_kubeconfig() { # write_kubeconfig <file> <cert name>
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: https://127.0.0.1:$P_API
    certificate-authority-data: $($b64 "$state/pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 "$state/pki/$2.crt")
    client-key-data: $($b64 "$state/pki/$2.key")
contexts:
- name: $name
  context: {cluster: $name, user: $2}
current-context: $name
EOF
  chmod 600 "$1"
}

setup_netns_links() { # inside the target netns: lo, advertise address, local routes
  nsexec ip link set lo up
  nsexec ip addr replace "$ADVERTISE_ADDRESS/32" dev lo
  nsexec ip route replace local "$SERVICE_CIDR" dev lo
  nsexec ip route replace local "$POD_CIDR" dev lo
}

# The GPU feature discovery labels of an 8 x H100 node, with the configured count.
gpu_product=NVIDIA-H100-80GB-HBM3
gpu_memory_mib=81559
gpu_family=hopper

cluster_objects() { # the fake nodes, then the default StorageClass, as one YAML stream
  local i node taints
  for ((i = 0; i < nodes; i++)); do
    node=kwok-node-$i
    taints=""
    ((i == 0)) || taints='
spec:
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}'
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $node
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $gpu_product
    nvidia.com/gpu.count: "$gpus_per_node"
    nvidia.com/gpu.memory: "$gpu_memory_mib"
    nvidia.com/gpu.family: $gpu_family$taints
status:
  allocatable: {cpu: "224", memory: 2Ti, ephemeral-storage: 2Ti, pods: "110", nvidia.com/gpu: "$gpus_per_node", rdma/ib: "8"}
  capacity: {cpu: "224", memory: 2Ti, ephemeral-storage: 2Ti, pods: "110", nvidia.com/gpu: "$gpus_per_node", rdma/ib: "8"}
---
EOF
  done
  cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
}

# nodes_match ready|schedulable: all $nodes fake nodes exist and are Ready, or carry no taint
# but their own (none on kwok-node-0, nvidia.com/gpu on the others).
nodes_match() {
  local want=$1 listing
  listing=$(kctl get nodes -l type=kwok -o 'jsonpath={range .items[*]}{.metadata.name}|{.status.conditions[?(@.type=="Ready")].status}|{.spec.taints[*].key}{"\n"}{end}') || return 1
  awk -F'|' -v want="$want" -v n="$nodes" -v first="$node_name" '
    NF == 0 { next }
    { seen++ }
    want == "ready" && $2 != "True" { bad++ }
    want == "schedulable" && $3 != ($1 == first ? "" : "nvidia.com/gpu") { bad++ }
    END { exit !(seen == n && bad == 0) }' <<<"$listing"
}

# --- Grove's CRDs (see the header): the ones Dynamo creates or reads; k8s-bins/grove.sh copies
# exactly these (grove-crds/grove.io_<plural>.yaml).
grove_crds=(podcliquesets.grove.io podcliques.grove.io podcliquescalinggroups.grove.io)

# --- LeaderWorkerSet controller (see the header)

lws_crd=leaderworkersets.leaderworkerset.x-k8s.io

crd_established() { # crd_established <name>...: every one of them
  local c
  for c in "$@"; do
    [[ $(kctl get crd "$c" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}') == True ]] || return 1
  done
}

lws_config() { # lws-manager's Configuration (decoded strictly: no unknown fields)
  cat <<EOF
apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
health:
  healthProbeBindAddress: 127.0.0.1:$P_LWS_HEALTH
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: $P_LWS_WEBHOOK
  certDir: $state/lws-certs
EOF
}

lws_webhooks() { # upstream's four webhooks (chart templates/webhook), by URL instead of Service
  local url="https://127.0.0.1:$P_LWS_WEBHOOK" ca lws_rules pod_selector
  ca=$(base64 -w0 "$state/pki/ca.crt")
  lws_rules='[{apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [leaderworkersets]}]'
  pod_selector='{matchExpressions: [{key: leaderworkerset.sigs.k8s.io/name, operator: Exists}]}'
  cat <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: lws-mutating-webhook-configuration}
webhooks:
- name: mleaderworkerset.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$url/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: $lws_rules
- name: mpod.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$url/mutate--v1-pod", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  objectSelector: $pod_selector
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: lws-validating-webhook-configuration}
webhooks:
- name: vleaderworkerset.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$url/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: $lws_rules
- name: vpod.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$url/validate--v1-pod", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  objectSelector: $pod_selector
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}]
EOF
}

lws_probe() { # lws_probe <size> [kubectl args...]: server-side dry run of a LeaderWorkerSet
  local size=$1; shift
  kctl create --dry-run=server "$@" -f - <<EOF
{"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
 "metadata": {"name": "cluster-sh-probe", "namespace": "default"},
 "spec": {"leaderWorkerTemplate": {"size": $size,
   "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "probe.invalid/c"}]}}}}}
EOF
}

# Both webhook configurations are in effect in the API server (it loads them from a watch,
# shortly after they are created): a LeaderWorkerSet is defaulted by the mutating webhook,
# and one of size 0 is rejected by the validating webhook. The first such write takes ~2 s
# (the API server builds the write path of this big schema then), so no test pays it.
lws_webhooks_active() {
  local out
  out=$(lws_probe 1 -o 'jsonpath={.spec.rolloutStrategy.type}') && [[ $out == RollingUpdate ]] || return 1
  out=$(lws_probe 0 2>&1) && return 1
  [[ $out == *vleaderworkerset.kb.io* ]]
}

do_up() {
  T0=$(now_ms)
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"
  ((EUID == 0)) || die "must run as root (network namespaces)"
  nodes=$(count_from DYNAMO_E2E_NODES 4 100) || exit 2
  gpus_per_node=$(count_from DYNAMO_E2E_GPUS_PER_NODE 8 64) || exit 2
  [[ $lws == [01] ]] || die "DYNAMO_E2E_LWS must be 0 or 1, not '$lws'"
  [[ $grove == [01] ]] || die "DYNAMO_E2E_GROVE must be 0 or 1, not '$grove'"

  if [[ -f $state/pids ]]; then
    local l comp pid st
    while read -r comp pid st; do
      ours "$pid" "$st" && die "cluster '$name' is already running ($comp pid $pid); run: hack/cluster.sh down"
    done <"$state/pids"
    log "stale state from a previous run; cleaning up"
    do_down
  fi

  # Binaries: explicit, or build-or-reuse (fast when cached; builds need the Go proxy,
  # so run hack/k8s-bins.sh before entering an offline netns).
  bin=${DYNAMO_E2E_BIN:-}
  if [[ -z $bin ]]; then bin=$("$hack/k8s-bins.sh" | tail -1) || die "hack/k8s-bins.sh failed"; fi
  [[ -d $bin ]] || die "DYNAMO_E2E_BIN=$bin is not a directory"
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
    [[ -x $bin/$b ]] || die "$b: binary missing or not executable: $bin/$b (run hack/k8s-bins.sh)"
  done
  compgen -G "$bin/kwok-stages/*.yaml" >/dev/null || die "kwok: no stage files in $bin/kwok-stages"
  if ((lws)); then
    [[ -x $bin/lws-manager && -f $bin/lws-crd.yaml ]] ||
      die "lws-manager or lws-crd.yaml missing in $bin (run hack/k8s-bins.sh, or set DYNAMO_E2E_LWS=0)"
  fi
  if ((grove)); then
    for b in "${grove_crds[@]}"; do
      [[ -s $bin/grove-crds/grove.io_${b%%.*}.yaml ]] ||
        die "Grove CRD $b missing: no $bin/grove-crds/grove.io_${b%%.*}.yaml (run hack/k8s-bins.sh, or unset DYNAMO_E2E_GROVE)"
    done
  fi

  rm -rf "$state"
  mkdir -p "$state/logs" "$state/apiserver"
  up_ok=0
  trap on_exit EXIT
  trap 'exit 130' INT TERM

  # --- network namespace
  if [[ -n ${DYNAMO_E2E_IN_NETNS:-} ]]; then
    netns=""
    # Refuse to touch the host's lo/routes if the caller forgot `unshare -n`:
    # a dedicated netns has no link but lo. (Comparing with /proc/1/ns/net does
    # not work here: PID 1's namespace links are not readable.)
    local links
    links=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}' | tr '\n' ' ')
    [[ -z $links ]] ||
      die "DYNAMO_E2E_IN_NETNS is set but this netns has links other than lo ($links): not a dedicated netns (use unshare -n)"
  else
    netns="dynamo-$name"
    if ip netns list | awk '{print $1}' | grep -qx "$netns"; then
      [[ -z $(ip netns pids "$netns") ]] || die "netns $netns exists and has processes; run: hack/cluster.sh down (or ip netns pids $netns)"
      log "reusing empty netns $netns"
    else
      ip netns add "$netns"
    fi
    echo "$netns" >"$state/netns"
  fi
  setup_netns_links || fail netns "could not configure lo/addresses/routes"

  # --- ports: 8 consecutive (6 without LWS), derived from the name so that clusters
  # sharing one netns (CI) do not collide (the base is a multiple of 10); separate
  # named netns cannot collide anyway. They must lie below the ephemeral range
  # (32768+): otherwise a component's own outgoing connection (apiserver -> etcd)
  # can take the port before its listener starts.
  local base=${DYNAMO_E2E_PORT_BASE:-$((20000 + $(cksum <<<"$name" | cut -d' ' -f1) % 1270 * 10))}
  local eph_lo eph_hi last=$((base + 5 + 2 * lws))
  read -r eph_lo eph_hi < <(nsexec cat /proc/sys/net/ipv4/ip_local_port_range)
  ((last < eph_lo || base > eph_hi)) ||
    fail netns "ports $base-$last overlap the ephemeral port range $eph_lo-$eph_hi (DYNAMO_E2E_PORT_BASE)"
  P_ETCD=$base P_PEER=$((base + 1)) P_API=$((base + 2)) P_KCM=$((base + 3)) P_SCHED=$((base + 4)) P_KWOK=$((base + 5))
  P_LWS_WEBHOOK=$((base + 6)) P_LWS_HEALTH=$((base + 7))
  local comp p lws_ports=()
  ((lws)) && lws_ports=("lws-manager:$P_LWS_WEBHOOK" "lws-manager:$P_LWS_HEALTH")
  for comp in etcd:$P_ETCD etcd:$P_PEER kube-apiserver:$P_API kube-controller-manager:$P_KCM kube-scheduler:$P_SCHED kwok:$P_KWOK "${lws_ports[@]}"; do
    p=${comp#*:}
    port_free "$p" || fail "${comp%%:*}" "port $p already in use in ${netns:-this netns} (set DYNAMO_E2E_PORT_BASE or DYNAMO_E2E_CLUSTER)"
  done

  gen_pki
  write_kubeconfig "$kc" admin
  write_kubeconfig "$state/kcm.kubeconfig" kcm
  write_kubeconfig "$state/scheduler.kubeconfig" scheduler
  ((lws)) && write_kubeconfig "$state/lws.kubeconfig" lws
  log "pki + kubeconfigs ready (+$(secs_since "$T0")s)"

  local pki="$state/pki"
  curl_api() { nsexec curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$P_API$1"; }
  kctl() { nsexec "$bin/kubectl" --kubeconfig "$kc" "$@"; }

  # --- etcd (single member, loopback only, no fsync: test data is disposable)
  start etcd etcd --name "$name" --data-dir "$state/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$P_ETCD" --advertise-client-urls "http://127.0.0.1:$P_ETCD" \
    --listen-peer-urls "http://127.0.0.1:$P_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$P_PEER" \
    --initial-cluster "$name=http://127.0.0.1:$P_PEER" --unsafe-no-fsync --log-level=warn
  wait_for etcd 30 ready nsexec curl -fsS "http://127.0.0.1:$P_ETCD/readyz"

  # --- kube-apiserver (binds all netns addresses: lo, 10.250.0.1, the local CIDRs)
  local audit=()
  if [[ -n ${DYNAMO_E2E_AUDIT:-} ]]; then
    printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived]' \
      'rules:' '- level: Metadata' >"$state/audit-policy.yaml"
    audit=(--audit-policy-file="$state/audit-policy.yaml" --audit-log-path="$state/logs/audit.log"
           --audit-log-format=json --audit-log-maxsize=0 --audit-log-mode=blocking)
  fi
  start kube-apiserver kube-apiserver "${audit[@]}" \
    --etcd-servers="http://127.0.0.1:$P_ETCD" \
    --bind-address=0.0.0.0 --secure-port="$P_API" --advertise-address="$ADVERTISE_ADDRESS" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" --cert-dir="$state/apiserver" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=RBAC,Node \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota,ExtendedResourceToleration \
    --allow-privileged=true \
    --enable-aggregator-routing=true \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --requestheader-allowed-names=front-proxy-client --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group --requestheader-extra-headers-prefix=X-Remote-Extra-
  wait_for kube-apiserver 90 ready curl_api /readyz

  # The LeaderWorkerSet CRD (1.2 MB) is applied while the components below start.
  local lws_crd_pid
  if ((lws)); then
    kctl apply --server-side -f "$bin/lws-crd.yaml" </dev/null >"$state/lws-crd.out" 2>&1 &
    lws_crd_pid=$!
  fi
  # Grove's CRDs (1.4 MB) likewise.
  local grove_crd_pid
  if ((grove)); then
    kctl apply --server-side -f "$bin/grove-crds/" </dev/null >"$state/grove-crds.out" 2>&1 &
    grove_crd_pid=$!
  fi

  # --- controllers, scheduler, kwok (start together; they wait for each other)
  start kube-controller-manager kube-controller-manager \
    --kubeconfig="$state/kcm.kubeconfig" \
    --authentication-kubeconfig="$state/kcm.kubeconfig" --authorization-kubeconfig="$state/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$P_KCM" --leader-elect=false \
    --controllers="${DYNAMO_E2E_KCM_CONTROLLERS:-*}" --use-service-account-credentials=true \
    ${DYNAMO_E2E_NODE_GRACE:+--node-monitor-grace-period="$DYNAMO_E2E_NODE_GRACE"} \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --enable-hostpath-provisioner=true \
    --kube-api-qps=300 --kube-api-burst=600 --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10
  # The default client rate limits (20 qps) make a few hundred Deployments take minutes; a
  # test cluster on loopback can take far more.
  start kube-scheduler kube-scheduler \
    --kubeconfig="$state/scheduler.kubeconfig" \
    --authentication-kubeconfig="$state/scheduler.kubeconfig" --authorization-kubeconfig="$state/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$P_SCHED" --leader-elect=false \
    --kube-api-qps=300 --kube-api-burst=600

  # kwok config: the default "fast" stages shipped with kwok (copied by k8s-bins.sh). Pods
  # of our own images (ghcr.io/dynamo-rs/dynamo-{operator,webhook,certgen}) are left to the
  # node agent (e2e/node-agent, binary node-agent), which runs them as real processes: every pod
  # stage gets one more selector expression that skips them.
  # With the Dynamo runtime, pods that run it (the node agent's rule, runtime.rs
  # KWOK_SKIP_EXPRESSION; a unit test keeps the two equal) are skipped as well.
  local runtime_pods='(.metadata.namespace | contains("serving")) and (.spec.containers.[0] | [(.command // [])[], (.args // [])[]] | join(" ") | test("(^|[ /])python[0-9.]* +-m +dynamo[.](frontend|mocker)( |$)"))'
  local f first=1
  for f in "$bin"/kwok-stages/*.yaml; do
    ((first)) || echo '---'
    first=0
    case $(basename "$f") in
      pod-*)
        awk -v runtime="${DYNAMO_E2E_RUNTIME:-}" -v skip="$runtime_pods" '{ print }
             /^    matchExpressions:$/ {
               print "    - key: '\''.spec.containers.[0].image | split(\":\") | .[0]'\''"
               print "      operator: '\''NotIn'\''"
               print "      values: ['\''ghcr.io/dynamo-rs/dynamo-operator'\'', '\''ghcr.io/dynamo-rs/dynamo-webhook'\'', '\''ghcr.io/dynamo-rs/dynamo-certgen'\'']"
               if (runtime != "") {
                 print "    - key: '\''" skip "'\''"
                 print "      operator: '\''NotIn'\''"
                 print "      values: ['\''true'\'']"
               }
             }' "$f" ;;
      *) cat "$f" ;;
    esac
  done >"$state/kwok.yaml"
  start kwok kwok --kubeconfig="$kc" --config="$state/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$POD_CIDR" --node-ip="$ADVERTISE_ADDRESS" --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:$P_KWOK"

  # The fake nodes (see the header for the taint on all but the first) and the default
  # StorageClass, in one apply.
  cluster_objects | kctl apply -f - >/dev/null || fail kube-apiserver "could not create the nodes and the StorageClass"

  # LeaderWorkerSet controller: CRD first (it fails to start without it); it then starts
  # while the nodes come up. Its webhooks are registered below, once they answer.
  if ((lws)); then
    wait "$lws_crd_pid" || fail kube-apiserver "could not apply the LeaderWorkerSet CRD: $(<"$state/lws-crd.out")"
    wait_for kube-apiserver 30 "established: CRD $lws_crd" crd_established "$lws_crd"
    lws_config >"$state/lws-config.yaml"
    start lws-manager lws-manager --kubeconfig="$state/lws.kubeconfig" --config="$state/lws-config.yaml" \
      --zap-devel=false --zap-log-level=info
  fi

  if ((grove)); then
    wait "$grove_crd_pid" || fail kube-apiserver "could not apply the Grove CRDs: $(<"$state/grove-crds.out")"
    wait_for kube-apiserver 30 "established: Grove CRDs (grove.io $GROVE_API_VERSION)" crd_established "${grove_crds[@]}"
  fi

  # kcm/scheduler serve self-signed certs; -k is fine for a loopback health probe.
  wait_for kube-scheduler 60 healthy nsexec curl -fsSk "https://127.0.0.1:$P_SCHED/healthz"
  wait_for kube-controller-manager 60 healthy nsexec curl -fsSk "https://127.0.0.1:$P_KCM/healthz"
  wait_for kwok 60 healthy nsexec curl -fsS "http://127.0.0.1:$P_KWOK/healthz"
  wait_for kwok 60 "Ready: $nodes nodes" nodes_match ready
  # TaintNodesByCondition adds not-ready:NoSchedule at creation; kcm's node
  # lifecycle controller removes it once Ready. Until then nothing schedules.
  wait_for kube-controller-manager 60 "schedulable: $nodes nodes" nodes_match schedulable
  wait_for kube-controller-manager 60 "created: serviceaccount default/default" kctl -n default get sa default
  if ((lws)); then
    # Any HTTP answer over TLS with our cert will do (no -f: / is a 404).
    wait_for lws-manager 30 "serving webhooks on :$P_LWS_WEBHOOK" \
      nsexec curl -sS -o /dev/null --cacert "$pki/ca.crt" "https://127.0.0.1:$P_LWS_WEBHOOK/"
    lws_webhooks | kctl apply -f - >/dev/null || fail kube-apiserver "could not register the LeaderWorkerSet webhooks"
    wait_for lws-manager 30 "webhooks active (LeaderWorkerSet $LWS_VERSION)" lws_webhooks_active
  fi

  # The node agent runs the pods of our images as real processes (built by cargo; without it
  # such pods stay Pending, everything else works as before).
  local agent=${DYNAMO_E2E_NODE_AGENT:-$hack/../target/debug/node-agent}
  if [[ -x $agent ]]; then
    agent=$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")
    start node-agent /usr/bin/env KUBECONFIG="$kc" DYNAMO_E2E_NODE="$node_name" DYNAMO_E2E_STATE="$state" \
      DYNAMO_AGENT_BINARIES="$(dirname "$agent")" DYNAMO_AGENT_API_HOST="$ADVERTISE_ADDRESS" \
      DYNAMO_AGENT_API_PORT="$P_API" DYNAMO_AGENT_RUNTIME="${DYNAMO_E2E_RUNTIME:-}" \
      RUST_LOG=info,kube=warn "$agent"
  else
    log "no node agent at $agent (cargo build -p dynamo-node-agent): pods of our images will stay Pending"
  fi

  cat >"$state/env" <<EOF
export KUBECONFIG=$kc
export DYNAMO_E2E_CLUSTER=$name
export DYNAMO_E2E_STATE=$state
export DYNAMO_E2E_BIN=$bin
export DYNAMO_E2E_NETNS=$netns
export DYNAMO_E2E_NODE=$node_name
export DYNAMO_E2E_NODES=$nodes
export DYNAMO_E2E_GPUS_PER_NODE=$gpus_per_node
export DYNAMO_E2E_APISERVER=https://127.0.0.1:$P_API
export DYNAMO_E2E_LWS=$lws
export DYNAMO_E2E_GROVE=$grove
export DYNAMO_E2E_RUNTIME=${DYNAMO_E2E_RUNTIME:-}
EOF
  up_ok=1
  local rss=0 l comp pid
  for l in "${started[@]}"; do
    read -r comp pid <<<"$l"
    rss=$((rss + $(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")))
  done
  log "cluster up in $(secs_since "$T0")s (control-plane RSS $((rss / 1024)) MiB); state: $state"
  if [[ -n $netns ]]; then
    log "join the netns: ip netns exec $netns CMD   (or: hack/cluster.sh exec CMD)"
  fi
  log "env: eval \"\$(hack/cluster.sh env)\""
}

# ------------------------------------------------------------- restart ------

# The probe that tells a component answers again after a restart.
answers() { # answers <component>
  local pki="$state/pki" port
  # The API server's port is the kubeconfig's; etcd's is two below it (P_ETCD = base, P_API = base + 2).
  port=$(awk -F'[:/]' '/server: https/ {print $NF}' "$kc")
  case $1 in
    etcd) nsexec curl -fsS "http://127.0.0.1:$((port - 2))/readyz" ;;
    kube-apiserver) nsexec curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "https://127.0.0.1:$port/readyz" ;;
    *) true ;;
  esac
}

do_restart() { # do_restart <component>: SIGKILL it, start the same command line, wait until it answers
  local comp=$1 line pid st args t0 attempt
  [[ -f $state/env && -f $state/pids ]] || die "cluster '$name' is not up (no $state/env)"
  [[ -f $state/cmd/$comp ]] || die "no component '$comp' was started by this cluster (see $state/cmd)"
  line=$(grep "^$comp " "$state/pids" | tail -n 1) || die "no running '$comp' recorded in $state/pids"
  read -r _ pid st <<<"$line"
  T0=$(now_ms)
  if ours "$pid" "$st"; then
    kill -KILL "$pid" 2>/dev/null || true
    # A process blocked in the kernel (disk I/O) dies only when that returns.
    for ((i = 0; i < 600; i++)); do ours "$pid" "$st" || break; sleep 0.05; done
    ours "$pid" "$st" && die "$comp (pid $pid) still alive 30 s after SIGKILL"
  fi
  netns=$(sed -n 's/^export DYNAMO_E2E_NETNS=//p' "$state/env")
  mapfile -d '' -t args <"$state/cmd/$comp"
  grep -v "^$comp " "$state/pids" >"$state/pids.new" || true
  mv "$state/pids.new" "$state/pids"
  mv "$state/logs/$comp.log" "$state/logs/$comp.log.$(date +%s%N)" 2>/dev/null || true
  # The killed process's listening ports can take a moment to be free again: a start that
  # dies at once is tried again.
  for ((attempt = 1; ; attempt++)); do
    started=()
    if soft_start=1 start "$comp" "${args[@]}"; then
      t0=$(now_ms)
      until answers "$comp" >/dev/null 2>&1; do
        alive "${started[0]##* }" || break
        (($(now_ms) - t0 > 60000)) && die "$comp does not answer 60 s after the restart"
        sleep 0.1
      done
      alive "${started[0]##* }" && break
    fi
    grep -v "^$comp " "$state/pids" >"$state/pids.new" || true
    mv "$state/pids.new" "$state/pids"
    ((attempt < 10)) || die "$comp died after the restart, 10 times (see $state/logs/$comp.log)"
    log "$comp died at start (attempt $attempt): $(tail -n 1 "$state/logs/$comp.log" | cut -c1-200)"
    sleep 1
  done
  log "$comp restarted and answering in $(secs_since "$T0")s"
}

# ---------------------------------------------------------------- main ------

case ${1:-} in
  up) do_up ;;
  down)
    [[ -d $state ]] || exit 0
    do_down
    log "down" ;;
  env)
    [[ -f $state/env && -f $state/pids ]] || die "cluster '$name' is not up (no $state/env)"
    cat "$state/env" ;;
  restart)
    (($# == 2)) || die "usage: cluster.sh restart COMPONENT"
    do_restart "$2" ;;
  exec)
    shift
    (($# > 0)) || die "usage: cluster.sh exec CMD [ARGS...]"
    [[ -f $state/env ]] || die "cluster '$name' is not up (no $state/env)"
    # shellcheck disable=SC1091
    source "$state/env"
    netns=$DYNAMO_E2E_NETNS
    if [[ -n $netns ]]; then exec ip netns exec "$netns" "$@"; else exec "$@"; fi ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2 ;;
esac
