#!/usr/bin/env bash
# Regenerate go.mod/go.sum of this wrapper module and of ./tools, ./lws and ./grove from
# hack/versions.env.
# Run only when a pin changes; the result (go.mod, go.sum) is committed.
# Why a wrapper: k8s.io/kubernetes requires its staging modules at v0.0.0 and
# replaces them with ./staging paths, so `go install ...@v1.x` is refused. We
# replace every staging module with its published tag, generating the list from
# upstream's own go.mod so it is always complete for the pinned version.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../versions.env
source "$here/../versions.env"
export GOTOOLCHAIN GOFLAGS=-mod=mod CGO_ENABLED=0
cd "$here"

# ./grove has Go source: without its own go.mod it would be part of this module (tidy would
# then pull Grove in). It is committed; this only covers a first run.
[[ -f grove/go.mod ]] || echo "module e2e.invalid/k8sbins/grove" >grove/go.mod

rm -f go.mod go.sum
go mod init e2e.invalid/k8sbins   # never published; any path works

upstream=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')

# Same go/godebug lines as upstream: only the main module's lines take effect,
# so this keeps the binaries' GODEBUG defaults identical to upstream builds.
go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$upstream")"
while read -r gd; do go mod edit -godebug="$gd"; done < <(awk '$1=="godebug" && $2!="("{print $2}' "$upstream")

# One replace per staging module, at STAGING_VERSION.
grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream" | awk '{print $1}' | sort -u |
  while read -r m; do go mod edit -replace "$m=$m@$STAGING_VERSION"; done

# Pinned requirement + tool directives (never a bare `go get`: it means @upgrade).
# helm and kwok are NOT in this module on purpose: with them, MVS raises shared
# deps of kube-apiserver/etcd (grpc 1.79->1.82, otel, x/net, x/crypto, ...), so
# the control plane would no longer be built with upstream's tested dependency
# set. They live in ./tools (their own graph) at the cost of compiling client-go
# a second time.
go mod edit -require="k8s.io/kubernetes@$K8S_VERSION" \
  -tool=k8s.io/kubernetes/cmd/kube-apiserver \
  -tool=k8s.io/kubernetes/cmd/kube-controller-manager \
  -tool=k8s.io/kubernetes/cmd/kube-scheduler \
  -tool=k8s.io/kubernetes/cmd/kubectl

# tidy resolves etcdmain (cmd/etcd) at the etcd version k8s already selects.
go mod tidy
go list -m k8s.io/kubernetes k8s.io/client-go go.etcd.io/etcd/server/v3

# Check: every dependency shared with upstream's go.mod is at upstream's version.
drift=$(awk 'NR==FNR { if ($1 ~ /\./ && $2 ~ /^v/ && $2 != "v0.0.0") up[$1]=$2; next }
             ($1 in up) && up[$1] != $2 { print "  " $1, up[$1], "->", $2 }' \
          "$upstream" <(go list -m -f '{{.Path}} {{.Version}}' all))
if [[ -n $drift ]]; then echo "WARNING: deps differ from k8s.io/kubernetes@$K8S_VERSION:" >&2; echo "$drift" >&2; fi

# helm + kwok: their own small module, pinned exactly, compiled together.
cd "$here/tools"
rm -f go.mod go.sum
go mod init e2e.invalid/k8sbins/tools
# `go` line = the highest of helm's and kwok's own (not this machine's patch
# release), so any Go >= that builds it with GOTOOLCHAIN=local.
gover=$(for m in "helm.sh/helm/v3@$HELM_VERSION" "sigs.k8s.io/kwok@$KWOK_VERSION"; do
          f=$(go mod download -json "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
          awk '$1=="go"{print $2; exit}' "$f"
        done | sort -V | tail -1)
go mod edit -go="$gover"
go mod edit -require="helm.sh/helm/v3@$HELM_VERSION" -require="sigs.k8s.io/kwok@$KWOK_VERSION" \
  -tool=helm.sh/helm/v3/cmd/helm -tool=sigs.k8s.io/kwok/cmd/kwok
go mod tidy
go list -m helm.sh/helm/v3 sigs.k8s.io/kwok k8s.io/client-go

# The LeaderWorkerSet controller (lws-manager): a module of its own as well. Its
# controller-runtime v0.20 does not compile against the control plane's client-go v0.36
# (and would raise shared deps there), so it keeps upstream's dependency set.
cd "$here/lws"
rm -f go.mod go.sum
go mod init e2e.invalid/k8sbins/lws
upstream=$(go mod download -json "sigs.k8s.io/lws@$LWS_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
# lws's own `go` line (as for ./tools); its go.mod has no godebug or replace lines.
go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$upstream")"
go mod edit -require="sigs.k8s.io/lws@$LWS_VERSION" -tool=sigs.k8s.io/lws/cmd
go mod tidy
go list -m sigs.k8s.io/lws sigs.k8s.io/controller-runtime k8s.io/client-go
drift=$(awk 'NR==FNR { if ($1 ~ /\./ && $2 ~ /^v/) up[$1]=$2; next }
             ($1 in up) && up[$1] != $2 { print "  " $1, up[$1], "->", $2 }' \
          "$upstream" <(go list -m -f '{{.Path}} {{.Version}}' all))
if [[ -n $drift ]]; then echo "WARNING: deps differ from sigs.k8s.io/lws@$LWS_VERSION:" >&2; echo "$drift" >&2; fi
# The listings above (-mod=mod) add go.sum lines for every go.mod in the graph; tidy again
# so the committed go.sum is exactly tidy's (`go mod tidy -diff` stays clean).
go mod tidy

# Grove's CRDs (k8s-bins/grove.sh copies them out of the module; nothing is compiled). crds.go
# imports the package that embeds them, so tidy keeps the requirement. go.mod is overwritten,
# never removed first (see the top: crds.go must never become part of the parent module).
cd "$here/grove"
echo "module e2e.invalid/k8sbins/grove" >go.mod
rm -f go.sum
upstream=$(go mod download -json "github.com/ai-dynamo/grove/operator/api@$GROVE_API_VERSION" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$upstream")"
go mod edit -require="github.com/ai-dynamo/grove/operator/api@$GROVE_API_VERSION"
go mod tidy
go list -m github.com/ai-dynamo/grove/operator/api
go mod tidy   # as for ./lws: the listing must not leave extra go.sum lines
