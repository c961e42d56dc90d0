#!/usr/bin/env bash
# Builds the real test parts from their Go modules at pinned versions and caches
# each binary on disk under a directory keyed by its version, so a tool is
# rebuilt only when its version here changes. Prints progress; on failure says
# which part failed and why, and exits non-zero.
#
#   SKEIN_CACHE (default /var/cache/skein) holds tools/<name>-<version>/ and
#   bin/, whose symlinks point at the versions pinned below.
set -euo pipefail

ETCD_VERSION=v3.6.16
K8S_VERSION=v1.37.2          # kube-apiserver and kubectl
CSI_TEST_VERSION=v5.4.0      # csi-sanity
HELM_VERSION=v3.22.0
CNI_VERSION=v1.3.0           # cnitool

CACHE=${SKEIN_CACHE:-/var/cache/skein}
TOOLS=$CACHE/tools
BIN=$CACHE/bin
mkdir -p "$TOOLS" "$BIN"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
command -v go >/dev/null || { echo "build-tools: FAILED: no 'go' on PATH; Go 1.26 is needed to build the test parts" >&2; exit 1; }

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { printf '[build-tools] FAILED building %s: %s\n' "$1" "$2" >&2; exit 1; }

# cached NAME VERSION BINARY...: true when every binary is already built.
cached() {
  local dir=$TOOLS/$1-$2; shift 2
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

# link NAME VERSION BINARY...: point bin/BINARY at the pinned version.
link() {
  local dir=$TOOLS/$1-$2; shift 2
  for b in "$@"; do ln -sfn "$dir/$b" "$BIN/$b"; done
}

# with_workdir: a scratch module directory removed on return.
scratch() { mktemp -d "${TMPDIR:-/tmp}/skein-build.XXXXXX"; }

build_etcd() {
  local out=$TOOLS/etcd-$ETCD_VERSION w
  cached etcd "$ETCD_VERSION" etcd || {
    log "etcd $ETCD_VERSION: building (go.etcd.io/etcd/server/v3)"
    w=$(scratch)
    ( cd "$w" && go mod init local/etcdbin >/dev/null 2>&1 \
      && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
      && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 ) \
      >"$w.log" 2>&1 || { tail -30 "$w.log" >&2; fail "etcd $ETCD_VERSION" "go build failed (log above)"; }
    mv "$out.tmp" "$out"; rm -rf "$w" "$w.log"
  }
  link etcd "$ETCD_VERSION" etcd
  log "etcd $ETCD_VERSION: ready"
}

# k8s.io/kubernetes cannot be `go install`ed: its go.mod points every staging
# module at ./staging, which is not in the module zip. A wrapper module requires
# it and replaces each staging module with its published v0.Y.Z twin.
build_kubernetes() {
  local out=$TOOLS/kubernetes-$K8S_VERSION w kmod staging minor ldf kv
  cached kubernetes "$K8S_VERSION" kube-apiserver kubectl || {
    log "kubernetes $K8S_VERSION: resolving k8s.io/kubernetes and its staging modules"
    w=$(scratch)
    staging=v0.${K8S_VERSION#v1.}
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    (
      set -e
      cd "$w"
      go mod init local/k8sbins >/dev/null 2>&1
      kmod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
      [ -f "$kmod" ] || { echo "could not download the go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
      for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$kmod"); do
        go mod edit -replace="$m=$m@$staging"
      done
      go get "k8s.io/kubernetes@$K8S_VERSION"
    ) >"$w.log" 2>&1 || { tail -30 "$w.log" >&2; fail "kubernetes $K8S_VERSION" "module resolution failed (log above)"; }
    ldf="-s -w"
    # Stamp the real version so /version is honest (helm and kubectl read it).
    for kv in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
              "gitCommit=0000000000000000000000000000000000000000" "buildDate=1970-01-01T00:00:00Z"; do
      ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
    done
    log "kubernetes $K8S_VERSION: compiling kube-apiserver and kubectl (a cold build takes many minutes)"
    ( cd "$w" && go build -trimpath -ldflags "$ldf" -o "$out.tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl ) >>"$w.log" 2>&1 \
      || { tail -30 "$w.log" >&2; fail "kubernetes $K8S_VERSION" "go build failed (log above)"; }
    mv "$out.tmp" "$out"; rm -rf "$w" "$w.log"
  }
  link kubernetes "$K8S_VERSION" kube-apiserver kubectl
  log "kube-apiserver, kubectl $K8S_VERSION: ready"
}

# go_install NAME VERSION PACKAGE@VERSION BINARY [LDFLAGS]
go_install() {
  local name=$1 version=$2 pkg=$3 binary=$4 ldflags=${5:-} out=$TOOLS/$1-$2 log
  cached "$name" "$version" "$binary" || {
    log "$name $version: building ($pkg)"
    log=$(mktemp)
    GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w $ldflags" "$pkg" >"$log" 2>&1 \
      || { tail -30 "$log" >&2; fail "$name $version" "go install $pkg failed (log above)"; }
    mv "$out.tmp" "$out"; rm -f "$log"
  }
  link "$name" "$version" "$binary"
  log "$name $version: ready"
}

want=${*:-etcd kubernetes csi-sanity helm cnitool}
for t in $want; do
  case "$t" in
    etcd) build_etcd ;;
    kubernetes) build_kubernetes ;;
    csi-sanity) go_install csi-sanity "$CSI_TEST_VERSION" \
      "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_TEST_VERSION" csi-sanity "-X main.VERSION=$CSI_TEST_VERSION" ;;
    helm) go_install helm "$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm \
      "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" ;;
    cnitool) go_install cnitool "$CNI_VERSION" "github.com/containernetworking/cni/cnitool@$CNI_VERSION" cnitool ;;
    *) echo "build-tools: unknown tool '$t' (known: etcd kubernetes csi-sanity helm cnitool)" >&2; exit 2 ;;
  esac
done
log "all tools ready in $BIN"
