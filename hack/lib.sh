# shellcheck shell=bash
# Library (source it) of what the demo (hack/demo.sh) and the image proof
# (hack/test-image.sh) share: output helpers, the binaries, the simulator, readiness, the
# CRDs and stopping processes. The control plane itself is hack/control-plane.sh.
#
#   source hack/lib.sh

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The cargo target directory (CARGO_TARGET_DIR or the workspace's target/).
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# find_kube_binaries: builds or finds etcd, kube-apiserver and kubectl
# (hack/build-binaries.sh); sets KUBEBUILDER_ASSETS and KUBECTL_BIN.
find_kube_binaries() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  eval "$(BUILD_ONLY=k8s "$here/build-binaries.sh")"
  KUBECTL_BIN=$KUBEBUILDER_ASSETS/kubectl
  [[ -x $KUBECTL_BIN ]] || KUBECTL_BIN=$(command -v kubectl)
}

# start_simulator BINARY LOG [ARGS...]: starts connect-sim on a free loopback port (in the
# background, a child of the calling shell); sets SIM_PID and SIM_URL (read from its first
# line, `connect-sim listening on URL`).
start_simulator() {
  local binary=$1 log=$2
  shift 2
  "$binary" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  SIM_PID=$!
  SIM_URL=
  local _
  for _ in $(seq 100); do
    SIM_URL=$(sed -n 's/^connect-sim listening on //p' "$log" | head -n 1)
    [[ -n $SIM_URL ]] && return 0
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the simulator did not start; see $log" >&2
  return 1
}

# wait_for_readyz PORT [SECONDS] [PID]: waits until http://127.0.0.1:PORT/readyz answers
# 2xx; fails after SECONDS (default 30) or as soon as PID (when given) has exited.
wait_for_readyz() {
  local port=$1 seconds=${2:-30} pid=${3:-} _
  for _ in $(seq $((seconds * 10))); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "the process $pid exited before /readyz answered" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "/readyz on port $port did not answer within $seconds s" >&2
  return 1
}

# install_crds: applies crds/ (server-side) and waits until they are Established. Uses the
# caller's `kubectl` (a function or the program) and KUBECONFIG.
install_crds() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  kubectl apply --server-side -f "$root/crds/" >/dev/null
  kubectl wait --for=condition=Established --timeout=60s -f "$root/crds/" >/dev/null
}

# install_default_account: ConnectAccount/default (the operator's own credentials, every
# namespace), as the chart creates it. Needs the CRDs.
install_default_account() {
  local manifest
  manifest=$(mktemp)
  cat >"$manifest" <<'ACCOUNT'
apiVersion: connect.operators.dev/v1alpha1
kind: ConnectAccount
metadata:
  name: default
spec:
  namespaceSelector: {}
ACCOUNT
  # A file, not stdin: callers may run kubectl as a background job (no stdin).
  kubectl apply -f "$manifest" >/dev/null
  rm -f "$manifest"
}

# stop_processes PID...: SIGTERM to each in turn, SIGKILL after 5 s. Never fails.
stop_processes() {
  local pid _
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# show_logs DIR: the last 20 lines of every DIR/*.log, on stderr.
show_logs() {
  local log
  for log in "$1"/*.log; do
    [[ -f $log ]] || continue
    echo "--- $log (last 20 lines)" >&2
    tail -n 20 "$log" >&2
  done
}
