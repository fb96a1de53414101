#!/usr/bin/env bash
# Soak of the control-plane fault scenarios: runs the three end-to-end scenarios of
# tests/integration/operator/control_plane.rs ROUNDS times (default 3) and prints their
# figures, each beside the bound it is held to:
#   - connections that die silently (a proxy stops forwarding, no FIN, no RST): how long
#     until a new object is acted on, and everything converged (bound: 60 s); how long a
#     cut-off operator takes to fail /livez (bound: the watch bound, 60 s by default);
#   - kube-apiserver and etcd SIGKILLed and restarted under churn: after the last restart,
#     a new object acted on (target 10 s) and every pending change converged (target 30 s);
#   - two replicas through outages of twice the lease duration (the leader cut off alone,
#     and kube-apiserver killed): samples with two leaders (bound 0), the old leader's last
#     AWS write after it was cut off (bound: the renew deadline) and the new leader's first.
# The scenarios assert behaviour (no duplicate, no leak, no write after the lease expired);
# the timings are only printed here, never asserted.
#
#   hack/soak-control-plane.sh [ROUNDS]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
rounds=${1:-3}
log_dir=${SOAK_LOG_DIR:-$(mktemp -d -t connect-operator-soak.XXXXXX)}

eval "$(hack/build-binaries.sh)"
export KUBEBUILDER_ASSETS HELM_BIN PROMTOOL_BIN MONITORING_CRDS
cargo build --package connect-sim --bins
cargo test --test integration --no-run

for round in $(seq "$rounds"); do
  echo "[soak] round $round of $rounds"
  if ! cargo test --test integration -- operator::control_plane --nocapture \
    >"$log_dir/round-$round.log" 2>&1; then
    echo "[soak] round $round FAILED; see $log_dir/round-$round.log" >&2
    grep -E "^test .* FAILED|panicked" "$log_dir/round-$round.log" >&2 || true
    exit 1
  fi
done

python3 - "$log_dir" "$rounds" <<'PY'
import glob, json, statistics, sys

log_dir, rounds = sys.argv[1], int(sys.argv[2])
figures = {}
for path in sorted(glob.glob(f"{log_dir}/round-*.log")):
    for line in open(path, errors="replace"):
        if line.startswith("control-plane figures "):
            _, _, scenario, data = line.split(" ", 3)
            figures.setdefault(scenario, []).append(json.loads(data))

def values(scenario, key):
    out = []
    for f in figures.get(scenario, []):
        v = f[key]
        out.extend(v if isinstance(v, list) else [v])
    return out

def row(name, vs, bound, unit="s"):
    if not vs:
        print(f"  {name:<52} (no figure)")
        return
    worst = max(vs)
    ratio = f"{worst / bound:.2f}" if bound else ("0" if worst == 0 else "VIOLATION")
    print(f"  {name:<52} min {min(vs):7.1f}  median {statistics.median(vs):7.1f}  "
          f"max {worst:7.1f} {unit}   bound {bound:g} {unit}   max/bound {ratio}")

print(f"\ncontrol-plane soak: {rounds} rounds ({log_dir})")
print("connections that die silently (production client defaults)")
row("new object acted on after a freeze", values("connection_loss", "picked_up_s"), 60)
row("new object and a spec change converged", values("connection_loss", "converged_s"), 60)
row("/livez failing once cut off", values("connection_loss", "livez_failed_after_cut_off_s"), 60)
row("/livez passing again once restored", values("connection_loss", "live_again_after_restore_s"), 60)
print("kube-apiserver and etcd SIGKILLed and restarted under churn")
row("after the last restart: a new object acted on", values("restarts", "new_object_acted_on_s"), 10)
row("after the last restart: every change converged", values("restarts", "converged_s"), 30)
row("after the last restart: every deletion finished", values("restarts", "deletions_done_s"), 30)
print("two replicas, API-server outages of twice the lease duration")
samples = sum(values("two_leaders", "samples"))
both = sum(values("two_leaders", "two_leader_samples"))
print(f"  samples with two leaders                             {both} of {samples}   bound 0")
deadline_ms = (values("two_leaders", "renew_deadline_ms") or [0])[0]
lease_ms = (values("two_leaders", "lease_duration_ms") or [0])[0]
row("old leader's last write after it was cut off",
    values("two_leaders", "old_leader_last_write_after_cut_ms"), deadline_ms, "ms")
row("new leader's first write after the old one was cut off",
    values("two_leaders", "takeover_first_write_after_cut_ms"), 2 * lease_ms, "ms")
PY
