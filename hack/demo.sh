#!/usr/bin/env bash
# The demo (`make demo`): a real kube-apiserver + etcd, the Connect simulator and the
# operator, all local processes; applies examples/, shows the objects reaching Ready,
# deletes them (one Delete, one Retain policy) and stops everything.
#
#   hack/demo.sh            run the demo and clean up
#   DEMO_PAUSE=1 hack/demo.sh   stop before cleaning up, so you can look around with the
#                               printed KUBECONFIG (press Enter to finish)
#
# Builds what is missing first (hack/build-binaries.sh, cargo build). Everything it starts
# is stopped on exit, also on Ctrl-C or an error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# step, note, free_port, find_kube_binaries, start_simulator, wait_for_readyz,
# install_crds, stop_processes, show_logs (shared with hack/test-image.sh).
# shellcheck source=lib.sh
source "$root/hack/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/connect-operator-demo.XXXXXX")
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # Clean-up must run to the end whatever fails in it (a process that already exited).
  set +e
  if [[ -n ${kubectl_pid:-} ]]; then kill -TERM "$kubectl_pid" 2>/dev/null; fi
  if [[ -n ${watcher:-} ]]; then kill -TERM "$watcher" 2>/dev/null; fi
  # The operator first, etcd last.
  local stop=()
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop+=("${pids[i]}"); done
  stop+=(${APISERVER_PID:-} ${ETCD_PID:-})
  if [[ ${#stop[@]} -gt 0 ]]; then
    step "stopping the operator, the simulator, kube-apiserver and etcd"
    disown -a 2>/dev/null || true
    stop_processes "${stop[@]}"
    wait 2>/dev/null || true
  fi
  if [[ $status -ne 0 && $status -ne 130 ]]; then
    echo "demo failed (exit $status); logs:" >&2
    show_logs "$work"
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_instances() {
  curl -fsS "$sim_url/_sim/instances" | python3 -c '
import json, sys
for i in json.load(sys.stdin):
    print("    %s  %-24s %-8s tags=%s" % (i["id"], i["alias"], i["status"], i["tags"]))'
}

show_calls() {
  curl -fsS "$sim_url/_sim/calls" | python3 -c '
import collections, json, sys
calls = collections.Counter(c["operation"] for c in json.load(sys.stdin))
print("    Connect API calls the operator made:", dict(sorted(calls.items())))'
}

step "building what is missing"
find_kube_binaries
kubectl_bin=$KUBECTL_BIN
cargo build --quiet --package connect-operator --package connect-sim --bins
target_dir=$(cargo_target_dir)
operator_bin=$target_dir/debug/connect-operator
sim_bin=$target_dir/debug/connect-sim

step "starting etcd and kube-apiserver (real ones, on loopback ports)"
export KUBECONFIG=$work/kubeconfig
# shellcheck source=control-plane.sh
source "$root/hack/control-plane.sh"
start_control_plane "$work" "$KUBEBUILDER_ASSETS"
# kubectl in the background + `wait`: a signal then interrupts the demo at once (bash runs
# traps only between foreground commands, and `kubectl wait` can take a while).
kubectl_pid=
kubectl() {
  local rc=0
  "$kubectl_bin" "$@" &
  kubectl_pid=$!
  wait "$kubectl_pid" || rc=$?
  kubectl_pid=
  return "$rc"
}
note "API server $SERVER ready; KUBECONFIG=$KUBECONFIG"

step "installing the CRDs"
install_crds
kubectl get crd connectinstances.connect.operators.dev connectaccounts.connect.operators.dev
kubectl create namespace demo >/dev/null

step "creating ConnectAccount/default (the operator's own credentials, every namespace), as the chart does"
install_default_account

step "starting the Connect simulator"
# Creation takes a few seconds, like the real service (which takes minutes).
start_simulator "$sim_bin" "$work/sim.log" --creation-delay 4s --deletion-delay 2s \
  --rate-limit CreateInstance=2 --rate-limit DeleteInstance=2 || { pids+=("$SIM_PID"); exit 1; }
pids+=("$SIM_PID")
sim_url=$SIM_URL
note "simulator at $sim_url"

step "starting the operator (watching namespace demo)"
metrics_port=$(free_port)
AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true NO_COLOR=1 \
  "$operator_bin" run --namespace demo --region us-east-1 --aws-endpoint-url "$sim_url" \
  --metrics-addr "127.0.0.1:$metrics_port" --creation-poll-interval 1s \
  --create-delete-rate 1 >"$work/operator.log" 2>&1 &
pids+=($!)
wait_for_readyz "$metrics_port" 30 "$!" || { echo "the operator is not ready" >&2; exit 1; }
note "operator ready (metrics on http://127.0.0.1:$metrics_port/metrics)"
kubectl wait --for=condition=Ready connectaccount/default --timeout=30s >/dev/null
kubectl get connectaccounts

step "kubectl apply -f examples/"
kubectl apply -n demo -f examples/
kubectl get connectinstances -n demo

step "waiting for Ready (kubectl wait --for=condition=Ready)"
"$kubectl_bin" get connectinstances -n demo --watch-only &
watcher=$!
kubectl wait -n demo --for=condition=Ready connectinstances --all --timeout=120s >/dev/null
sleep 0.5
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
echo
kubectl get connectinstances -n demo -o wide

step "what the (simulated) AWS account holds now"
show_instances

step "kubectl delete connectinstance support-center (deletionPolicy: Delete)"
note "the finalizer holds the object until DeleteInstance has finished in AWS"
kubectl delete -n demo connectinstance support-center --timeout=120s
kubectl get connectinstances -n demo

step "kubectl delete connectinstance sales-center (deletionPolicy: Retain)"
kubectl delete -n demo connectinstance sales-center --timeout=60s
kubectl get connectinstances -n demo 2>&1 | sed 's/^/    /'

step "the account afterwards: the retained instance is still there"
show_instances
show_calls

step "events"
kubectl get events -n demo --sort-by=.metadata.creationTimestamp \
  -o custom-columns=TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message

if [[ ${DEMO_PAUSE:-0} == 1 ]]; then
  step "paused: KUBECONFIG=$KUBECONFIG, simulator $sim_url; press Enter to stop"
  read -r _
fi
step "done"
