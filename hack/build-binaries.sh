#!/usr/bin/env bash
# Builds the test environment's binaries from the Go module proxy:
#   kube-apiserver and kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3),
#   helm (helm.sh/helm/v3), promtool (github.com/prometheus/prometheus/cmd/promtool); and
#   copies the prometheus-operator CRDs out of its module (not built: YAML files).
# Nothing is downloaded from anywhere but the Go module proxy.
#
# Output: $CACHE/k8s-<version>/{kube-apiserver,kubectl,etcd} (the KUBEBUILDER_ASSETS layout) and
# $CACHE/helm-<version>/helm, $CACHE/prometheus-<version>/promtool and
# $CACHE/prometheus-operator-<version>/*.yaml, where CACHE defaults to ~/.cache/connect-operator.
# Builds are keyed by version and reused; pass --force to rebuild. Each binary has a
# `<name>.stamp` beside it recording what it was built from; a different stamp rebuilds it
# (a relink only, when the Go build cache is warm).
# When KUBEBUILDER_ASSETS names a directory that already holds kube-apiserver and etcd,
# those are used and nothing is built for them.
# BUILD_ONLY=k8s|helm|promtool|monitoring-crds|all (default all) limits what is built.
#
# Prints, as its last lines, the export statements a caller can eval:
#   KUBEBUILDER_ASSETS=..., HELM_BIN=..., PROMTOOL_BIN=... and MONITORING_CRDS=...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

force=0
[[ "${1:-}" == "--force" ]] && force=1

cache=${CONNECT_OPERATOR_CACHE:-$HOME/.cache/connect-operator}
log() { echo "[build-binaries] $*" >&2; }
die() { echo "[build-binaries] error: $*" >&2; exit 1; }

# One build at a time per cache: `make test`, the test harness and a developer may all call
# this script; a second caller waits and then finds the binaries cached.
mkdir -p "$cache"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  if ! flock -n 9; then
    log "another build-binaries.sh is running; waiting for it"
    flock 9
  fi
fi

export GOFLAGS=${GOFLAGS:--mod=mod}
export CGO_ENABLED=0

need_go() {
  command -v go >/dev/null 2>&1 \
    || die "Go is not installed (needed to build kube-apiserver, kubectl, etcd and helm from the Go module proxy)."
}

# Checks that the module proxy answers before starting a long build, so a closed network
# fails in seconds with a message instead of deep inside `go get`.
check_proxy() {
  local module=$1
  if ! go list -m -json "$module" >/dev/null 2>&1; then
    die "the Go module proxy ($(go env GOPROXY)) did not serve $module; check the network or GOPROXY."
  fi
}

# Creates a throwaway module in $1 that requires "$2@$3" and, for k8s.io/kubernetes, replaces
# every staging module (declared as ./staging/... in its go.mod) with the matching v0.X.Y.
make_module() {
  local dir=$1 module=$2 version=$3
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init connect-operator.local/build >/dev/null 2>&1
    echo "package tools" >tools.go
    go mod edit -require="${module}@${version}"
    if [[ "$module" == "k8s.io/kubernetes" ]]; then
      local gomod staging_version
      gomod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
      [[ -f "$gomod" ]] || die "could not read the go.mod of k8s.io/kubernetes@${version}"
      staging_version="v0.${version#v1.}"
      # Lines such as `k8s.io/api => ./staging/src/k8s.io/api` in the replace block.
      grep -oE '^\s*(replace\s+)?k8s\.io/[a-z0-9-]+\s+=>\s+\./staging/' "$gomod" \
        | sed -E 's/^\s*(replace\s+)?(k8s\.io\/[a-z0-9-]+).*/\2/' | sort -u \
        | while read -r staging; do
            go mod edit -replace="${staging}=${staging}@${staging_version}"
          done
    fi
  )
}

# is_cached <binary> <stamp>: the binary exists and was built from <stamp>.
is_cached() {
  [[ $force -eq 0 && -x "$1" && -f "$1.stamp" && "$(cat "$1.stamp")" == "$2" ]]
}

# build <output> <stamp> <work dir> <module> <version> <package> <ldflags>
build() {
  local output=$1 stamp=$2 work=$3 module=$4 version=$5 package=$6 ldflags=$7
  local name
  name=$(basename "$output")
  if is_cached "$output" "$stamp"; then
    log "$name ($stamp): cached in $(dirname "$output")"
    return
  fi
  need_go
  check_proxy "${module}@${version}"
  log "building $name ($stamp); the first build takes minutes on two cores"
  local started=$SECONDS
  make_module "$work" "$module" "$version"
  mkdir -p "$(dirname "$output")"
  (
    cd "$work"
    go get "${package}@${version}" >/dev/null 2>&1 || go get "${package}@${version}"
    go build -trimpath -ldflags="-s -w ${ldflags}" -o "$output.tmp" "$package"
  )
  mv "$output.tmp" "$output"
  echo "$stamp" >"$output.stamp"
  log "$name built in $((SECONDS - started)) s: $output"
}

# The version variables Kubernetes' own release build sets (hack/lib/version.sh), so that
# /version, `kubectl version` and Helm's Capabilities see a real v1.X.Y instead of v0.0.0.
kube_version_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local flags="" package key value
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion gitMajor gitMinor gitTreeState buildDate; do
      case $key in
        gitVersion) value=$KUBERNETES_VERSION ;;
        gitMajor) value=1 ;;
        gitMinor) value=$minor ;;
        gitTreeState) value=clean ;;
        buildDate) value=1970-01-01T00:00:00Z ;;
      esac
      flags+=" -X ${package}.${key}=${value}"
    done
  done
  echo "$flags"
}

k8s_dir="$cache/k8s-${KUBERNETES_VERSION}"

build_kube_apiserver() {
  build "$k8s_dir/kube-apiserver" "kube-apiserver ${KUBERNETES_VERSION}" \
    "$cache/work/kubernetes-${KUBERNETES_VERSION}" k8s.io/kubernetes "$KUBERNETES_VERSION" \
    k8s.io/kubernetes/cmd/kube-apiserver "$(kube_version_ldflags)"
}

# kubectl at the same version as the API server: the machine's own kubectl (if any) may be
# several minor versions away, outside the supported skew. Same module as kube-apiserver,
# so the Go build cache makes it cheap afterwards.
build_kubectl() {
  build "$k8s_dir/kubectl" "kubectl ${KUBERNETES_VERSION}" \
    "$cache/work/kubernetes-${KUBERNETES_VERSION}" k8s.io/kubernetes "$KUBERNETES_VERSION" \
    k8s.io/kubernetes/cmd/kubectl "$(kube_version_ldflags)"
}

# etcd lives beside kube-apiserver (the KUBEBUILDER_ASSETS layout); its own version is in the
# stamp so a changed ETCD_VERSION rebuilds it.
build_etcd() {
  build "$k8s_dir/etcd" "etcd ${ETCD_VERSION}" "$cache/work/etcd-${ETCD_VERSION}" \
    go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ""
}

# Helm stamps its own version and the Kubernetes version `helm template` and `helm lint`
# assume (that of its client-go), as its Makefile does; without them it says v3.X and v1.20.
build_helm() {
  local output="$cache/helm-${HELM_VERSION}/helm" stamp="helm ${HELM_VERSION}"
  if is_cached "$output" "$stamp"; then
    log "helm ($stamp): cached in $(dirname "$output")"
    return
  fi
  need_go
  local work="$cache/work/helm-${HELM_VERSION}" client_go minor flags=""
  make_module "$work" helm.sh/helm/v3 "$HELM_VERSION"
  client_go=$(cd "$work" && go get "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >/dev/null 2>&1 \
    && go list -m -f '{{.Version}}' k8s.io/client-go)
  minor=${client_go#v0.}
  minor=${minor%%.*}
  flags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X ${package}.k8sVersionMajor=1 -X ${package}.k8sVersionMinor=${minor}"
  done
  build "$output" "$stamp" "$work" helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$flags"
}

# promtool, with the version Prometheus' own release build stamps (v0.X.Y is 3.X.Y), so that
# `promtool --version` names a real release.
promtool_dir="$cache/prometheus-${PROMETHEUS_MODULE_VERSION}"
build_promtool() {
  # v0.316.0: minor 316 is 3.16, patch 0.
  local minor_patch=${PROMETHEUS_MODULE_VERSION#v0.}
  local minor=${minor_patch%%.*} patch=${minor_patch#*.}
  local release="3.$((minor - 300)).${patch}"
  build "$promtool_dir/promtool" "promtool ${PROMETHEUS_MODULE_VERSION}" \
    "$cache/work/prometheus-${PROMETHEUS_MODULE_VERSION}" github.com/prometheus/prometheus \
    "$PROMETHEUS_MODULE_VERSION" github.com/prometheus/prometheus/cmd/promtool \
    "-X github.com/prometheus/common/version.Version=${release}"
}

# The ServiceMonitor and PrometheusRule CRDs, as prometheus-operator publishes them in its
# module (example/prometheus-operator-crd/).
crds_dir="$cache/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}"
fetch_monitoring_crds() {
  local stamp="prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}"
  if [[ $force -eq 0 && -f "$crds_dir/crds.stamp" && "$(cat "$crds_dir/crds.stamp")" == "$stamp" ]]; then
    log "monitoring CRDs ($stamp): cached in $crds_dir"
    return
  fi
  need_go
  local module=github.com/prometheus-operator/prometheus-operator source
  check_proxy "${module}@${PROMETHEUS_OPERATOR_VERSION}"
  local download
  download=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "${module}@${PROMETHEUS_OPERATOR_VERSION}") \
    || die "the Go module proxy did not serve ${module}@${PROMETHEUS_OPERATOR_VERSION}: ${download:-}"
  source=$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' <<<"$download")
  [[ -d "$source/example/prometheus-operator-crd" ]] || die "no CRDs in ${module}@${PROMETHEUS_OPERATOR_VERSION}"
  mkdir -p "$crds_dir"
  local kind
  for kind in servicemonitors prometheusrules; do
    # The module cache is read-only; the copies are not.
    install -m 0644 "$source/example/prometheus-operator-crd/monitoring.coreos.com_${kind}.yaml" "$crds_dir/${kind}.yaml"
  done
  echo "$stamp" >"$crds_dir/crds.stamp"
  log "monitoring CRDs ($stamp): $crds_dir"
}

what=${BUILD_ONLY:-all}
case $what in
  all | k8s | helm | promtool | monitoring-crds) ;;
  *) die "BUILD_ONLY must be all, k8s, helm, promtool or monitoring-crds (got $what)" ;;
esac
assets=""
if [[ "$what" == all || "$what" == k8s ]]; then
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
    log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
    assets=$KUBEBUILDER_ASSETS
  else
    build_etcd
    build_kube_apiserver
    build_kubectl
    assets=$k8s_dir
  fi
fi
if [[ "$what" == all || "$what" == helm ]]; then
  build_helm
fi
if [[ "$what" == all || "$what" == promtool ]]; then
  build_promtool
fi
if [[ "$what" == all || "$what" == monitoring-crds ]]; then
  fetch_monitoring_crds
fi
if [[ -n "$assets" ]]; then echo "export KUBEBUILDER_ASSETS=$assets"; fi
if [[ "$what" == all || "$what" == helm ]]; then
  echo "export HELM_BIN=$cache/helm-${HELM_VERSION}/helm"
fi
if [[ "$what" == all || "$what" == promtool ]]; then
  echo "export PROMTOOL_BIN=$promtool_dir/promtool"
fi
if [[ "$what" == all || "$what" == monitoring-crds ]]; then
  echo "export MONITORING_CRDS=$crds_dir"
fi
