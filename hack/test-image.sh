#!/usr/bin/env bash
# The proof that the image `make image` built works (the last step of `make test`;
# docs/image.md). Without a container engine: umoci unpacks the image, runc runs it.
#
#   hack/test-image.sh      (after hack/build-image.sh; needs root, umoci, skopeo, runc)
#
# 1. The artifacts: `skopeo inspect` reads the oci-archive and the layout and reports the
#    digest `make image` printed; the config has the entrypoint, user 65532:65532,
#    SSL_CERT_FILE and the org.opencontainers.image.* labels (version = Cargo.toml,
#    revision = HEAD); the layer holds exactly the binary, the libraries ldd names for it,
#    the CA bundle, /etc/passwd and /etc/group, all owned 0:0 with the commit's time and no
#    setuid bit; the SBOM lists the crates; the Dockerfile stages the same files with the
#    same script into FROM scratch, with the same user, entrypoint, environment, version.
# 2. Reproducible: the image assembled again, into a scratch directory, from the binary it
#    contains gives the same manifest digest, oci-archive and SBOM. (In CI that is what a
#    second `make image` does: cargo finds the binary up to date. That cargo itself
#    rebuilds the same binary is checked by hand: docs/image.md.)
# 3. runc runs the image unpacked from the oci-archive with a read-only root, no
#    capabilities, noNewPrivileges, user 65532:65532, the host's network namespace and only
#    /proc and a /dev tmpfs mounted:
#    - `connect-operator --version` prints the Cargo.toml version;
#    - `connect-operator crd` prints exactly the committed crds/;
#    - `connect-operator run` against a real kube-apiserver + etcd (hack/control-plane.sh)
#      and the Connect simulator, with a kubeconfig bind-mounted read-only: /readyz
#      answers, the process runs as 65532 without capabilities on a read-only root, one
#      ConnectInstance becomes Ready with one CreateInstance, and SIGTERM stops it.
#
# Exits non-zero, with the logs, when anything is missing or wrong; prints what it proved.
# IMAGE_TEST_KEEP=1 keeps the scratch directory.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=lib.sh
source "$root/hack/lib.sh"
# shellcheck source=control-plane.sh
source "$root/hack/control-plane.sh"

started=$SECONDS
die() { echo "[test-image] FAILED: $*" >&2; exit 1; }
proved=()
proved() { proved+=("$*"); note "ok: $*"; }

[[ $(id -u) -eq 0 ]] || die "runc runs the image as root here; run as root (or run \`make cargo-test\` for the rest of the suite)"
for tool in umoci skopeo runc python3 curl tar cargo git ldd; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (.ci/run installs umoci, skopeo and runc from Debian)"
done

target_dir=$(cargo_target_dir)
image=$target_dir/image
archive=$image/connect-operator.oci.tar
[[ -f $image/digest && -f $archive && -f $image/oci/index.json && -f $image/sbom.cdx.json ]] \
  || die "no image under $image: run \`make image\` first"
digest=$(<"$image/digest")
version=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "connect-operator"))')
revision=$(git rev-parse HEAD)

work=$(mktemp -d "${TMPDIR:-/tmp}/connect-operator-image-test.XXXXXX")
runc_root=$work/runc-state
containers=()
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  local id
  for id in "${containers[@]}"; do
    runc --root "$runc_root" kill "$id" KILL >/dev/null 2>&1
    runc --root "$runc_root" delete --force "$id" >/dev/null 2>&1
  done
  local stop=()
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop+=("${pids[i]}"); done
  [[ -n ${APISERVER_PID:-} ]] && stop+=("$APISERVER_PID")
  [[ -n ${ETCD_PID:-} ]] && stop+=("$ETCD_PID")
  if [[ ${#stop[@]} -gt 0 ]]; then
    disown -a 2>/dev/null
    stop_processes "${stop[@]}"
    wait 2>/dev/null
  fi
  if [[ $status -ne 0 ]]; then
    echo "[test-image] failed (exit $status) after $((SECONDS - started)) s; logs:" >&2
    show_logs "$work"
    show_logs "$work/control-plane"
  fi
  if [[ ${IMAGE_TEST_KEEP:-0} == 1 ]]; then
    echo "[test-image] kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------
step "the artifacts of make image ($image)"
skopeo inspect "oci-archive:$archive" >"$work/inspect-archive.json" || die "skopeo cannot read the oci-archive"
skopeo inspect "oci:$image/oci:$version" >"$work/inspect-layout.json" || die "skopeo cannot read the layout with tag $version"
skopeo inspect --config "oci-archive:$archive" >"$work/config.json" || die "skopeo cannot read the image config"
python3 - "$work" "$digest" "$version" "$revision" "$image" <<'EOF' || die "the image's manifest or config is wrong"
import json, sys
work, digest, version, revision, image = sys.argv[1:]
for name in ("inspect-archive", "inspect-layout"):
    inspected = json.load(open(f"{work}/{name}.json"))
    assert inspected["Digest"] == digest, f"{name}: digest {inspected['Digest']} != {digest}"
    assert len(inspected["Layers"]) == 1, inspected["Layers"]
config = json.load(open(f"{work}/config.json"))
c = config["config"]
assert config["os"] == "linux", config["os"]
assert c["User"] == "65532:65532", c["User"]
assert c["Entrypoint"] == ["/usr/local/bin/connect-operator"], c["Entrypoint"]
assert c["Cmd"] == ["run"], c["Cmd"]
assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in c["Env"], c["Env"]
labels = c["Labels"]
expected = {
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.revision": revision,
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.title": "connect-operator",
}
for key, value in expected.items():
    assert labels.get(key) == value, f"label {key}={labels.get(key)!r}, want {value!r}"
assert labels.get("org.opencontainers.image.source", "").startswith("https://"), labels
sbom = json.load(open(f"{image}/sbom.cdx.json"))
assert sbom["bomFormat"] == "CycloneDX", sbom["bomFormat"]
assert sbom["metadata"]["component"]["version"] == digest, sbom["metadata"]["component"]
crates = [c for c in sbom["components"] if c["purl"].startswith("pkg:cargo/")]
names = {c["name"] for c in crates}
for needed in ("kube", "aws-sdk-connect", "tokio"):
    assert needed in names, f"{needed} missing from the SBOM"
from urllib.parse import quote
for crate in crates:
    purl = f"pkg:cargo/{crate['name']}@{quote(crate['version'], safe='')}"
    assert crate["purl"] == purl, f"{crate['purl']} != {purl}"
print(f"    config: user {c['User']}, entrypoint {c['Entrypoint']} {c['Cmd']}, "
      f"version {version}, revision {revision[:12]}; SBOM: {len(crates)} crates")
EOF
proved "skopeo reads the oci-archive and the layout (tag $version): manifest $digest, one layer"
proved "config: entrypoint /usr/local/bin/connect-operator, user 65532:65532, SSL_CERT_FILE, OCI labels (version $version, revision ${revision:0:12}, Apache-2.0)"

# The Dockerfile builds the same image with an engine (not available here): the same
# staging script into FROM scratch, and the same user, entrypoint, environment, version.
python3 - "$work/config.json" "$version" <<'EOF' || die "the Dockerfile no longer builds what make image builds"
import json, re, sys
c = json.load(open(sys.argv[1]))["config"]
version = sys.argv[2]
dockerfile = open("Dockerfile").read()
final = dockerfile.split("\nFROM ")[-1]
assert final.startswith("scratch"), "the last stage is not FROM scratch"
assert "RUN hack/image-rootfs.sh /out/connect-operator /rootfs" in dockerfile, "the rootfs is not staged by hack/image-rootfs.sh"
assert "COPY --from=build /rootfs/ /" in final, "the final stage does not copy the staged rootfs"
assert len(re.findall(r"^(COPY|ADD|RUN)\b", final, re.M)) == 1, "the final stage adds more than the staged rootfs"
assert f"USER {c['User']}" in final, "USER differs"
assert "ENTRYPOINT " + json.dumps(c["Entrypoint"]) in final, "ENTRYPOINT differs"
assert "CMD " + json.dumps(c["Cmd"]) in final, "CMD differs"
for env in c["Env"]:
    name, value = env.split("=", 1)
    assert re.search(rf"\b{name}={re.escape(value)}(\s|$)", final), f"ENV {name} differs"
assert f"ARG VERSION={version}\n" in final, f"ARG VERSION is not {version}"
assert "!hack/image-rootfs.sh" in open(".dockerignore").read(), ".dockerignore leaves out hack/image-rootfs.sh"
EOF
proved "the Dockerfile stages the same files with hack/image-rootfs.sh into FROM scratch, with the same user, entrypoint, environment and version"

# The image exactly as a registry receives it: unpack the oci-archive, then the image.
mkdir -p "$work/layout" "$work/bundle"
tar -xf "$archive" -C "$work/layout"
umoci raw unpack --image "$work/layout:$version" "$work/bundle/rootfs" >"$work/umoci.log" 2>&1 \
  || die "umoci raw unpack failed: $(cat "$work/umoci.log")"
rootfs=$work/bundle/rootfs
layer=$work/layout/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Layers"][0].split(":")[1])' "$work/inspect-archive.json")
# What ldd resolves for the binary in the image, with the dynamic loader.
mapfile -t linked < <(ldd "$rootfs/usr/local/bin/connect-operator" \
  | awk '$2 == "=>" && $3 ~ /^\// { print substr($3, 2) } $1 ~ /^\// { print substr($1, 2) }' | LC_ALL=C sort -u)
[[ ${#linked[@]} -gt 0 ]] || die "ldd found no libraries for the image's binary"
python3 - "$layer" "${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}" "${linked[@]}" <<'EOF' || die "the layer holds something it should not"
import stat, sys, tarfile
layer, epoch, libraries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
expected = {"usr/local/bin/connect-operator", "etc/ssl/certs/ca-certificates.crt",
            "etc/passwd", "etc/group", *libraries}
files, directories = set(), set()
with tarfile.open(layer, "r:gz") as tar:
    for entry in tar:
        name = entry.name.rstrip("/")
        assert (entry.uid, entry.gid) == (0, 0), f"{name} owned by {entry.uid}:{entry.gid}"
        assert entry.mtime == epoch, f"{name} has mtime {entry.mtime}, not {epoch}"
        assert not entry.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), f"{name} mode {entry.mode:o}"
        if entry.isdir():
            assert entry.mode == 0o755, f"{name}/ mode {entry.mode:o}"
            directories.add(name)
        elif entry.isfile():
            want = 0o644 if name.startswith("etc/") else 0o755
            assert entry.mode == want, f"{name} mode {entry.mode:o}, want {want:o}"
            files.add(name)
        else:
            raise AssertionError(f"{name}: neither a file nor a directory")
assert files == expected, f"unexpected: {sorted(files - expected)}, missing: {sorted(expected - files)}"
parents = {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
assert directories <= parents, f"stray directories: {sorted(directories - parents)}"
print("    layer: " + ", ".join(sorted(files)))
EOF
grep -qx 'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' "$rootfs/etc/passwd" || die "no nonroot 65532 in /etc/passwd"
grep -qx 'nonroot:x:65532:' "$rootfs/etc/group" || die "no nonroot 65532 in /etc/group"
cmp -s "$rootfs/etc/ssl/certs/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt || die "the CA bundle differs from the build machine's"
proved "the layer holds only the binary, its ${#linked[@]} libraries as ldd resolves them (${linked[*]}), the CA bundle, passwd and group (nonroot 65532); 0:0, mtime = commit time, no setuid"

# ---------------------------------------------------------------------------------------
step "reproducible: the image assembled a second time"
rebuild_started=$SECONDS
second=$(IMAGE_OUT="$work/rebuild" IMAGE_BINARY="$rootfs/usr/local/bin/connect-operator" \
  hack/build-image.sh 2>"$work/rebuild.log" | tail -n 1) \
  || die "the second build failed: $(tail -n 20 "$work/rebuild.log")"
note "first  $digest"
note "second $second ($((SECONDS - rebuild_started)) s)"
[[ $second == "$digest" ]] || die "the same binary assembled twice gave different digests (or HEAD moved in between)"
cmp -s "$archive" "$work/rebuild/connect-operator.oci.tar" || die "the two oci-archives differ"
cmp -s "$image/sbom.cdx.json" "$work/rebuild/sbom.cdx.json" || die "the two SBOMs differ"
rm -rf "$work/rebuild"
proved "assembled twice from one binary and commit: the same manifest digest, byte-identical oci-archive and SBOM"

# ---------------------------------------------------------------------------------------
# runc_config ARGS_JSON EXTRA_ENV_JSON MOUNTS_JSON: writes the bundle's config.json for the
# image's entrypoint + ARGS, from the image config (user, env, working directory).
runc_config() {
  python3 - "$work/config.json" "$work/bundle/config.json" "$@" <<'EOF'
import json, sys
image_config, out, args, extra_env, extra_mounts = sys.argv[1:]
c = json.load(open(image_config))["config"]
uid, gid = (int(part) for part in c["User"].split(":"))
no_caps = {kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")}
spec = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": uid, "gid": gid},
        "args": c["Entrypoint"] + json.loads(args),
        "env": c["Env"] + json.loads(extra_env),
        "cwd": c.get("WorkingDir") or "/",
        "capabilities": no_caps,
        "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "connect-operator-image-test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    ] + json.loads(extra_mounts),
    "linux": {
        # No network namespace: the host's, so loopback reaches the API server and the
        # simulator.
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}
json.dump(spec, open(out, "w"), indent=2)
EOF
}

container_seq=0
# run_container ARGS_JSON [EXTRA_ENV_JSON]: runs the image in the foreground; its stdout
# is this function's stdout.
run_container() {
  container_seq=$((container_seq + 1))
  local id=connect-operator-image-test-$$-$container_seq
  runc_config "$1" "${2:-[]}" '[]'
  containers+=("$id")
  runc --root "$runc_root" run --bundle "$work/bundle" "$id" </dev/null
}

step "runc: connect-operator --version, connect-operator crd"
printed=$(run_container '["--version"]' 2>"$work/version.log") || die "--version failed: $(cat "$work/version.log")"
note "$printed"
[[ $printed == "connect-operator $version" ]] || die "--version printed '$printed', not 'connect-operator $version'"
proved "runc (read-only root, no capabilities, noNewPrivileges, 65532:65532): --version prints 'connect-operator $version'"

run_container '["crd"]' >"$work/crd.yaml" 2>"$work/crd.log" || die "crd failed: $(cat "$work/crd.log")"
# `connect-operator crd` prints the CRD that crds/ holds (the src/api.rs unit test checks
# the file against the generator); several CRDs would be one YAML stream.
python3 - "$root/crds" "$work/crds-expected.yaml" <<'EOF'
import pathlib, sys
files = sorted(pathlib.Path(sys.argv[1]).glob("*.yaml"))
assert files, "no CRDs in crds/"
pathlib.Path(sys.argv[2]).write_text("---\n".join(f.read_text() for f in files))
EOF
if ! cmp -s "$work/crd.yaml" "$work/crds-expected.yaml"; then
  diff -u "$work/crds-expected.yaml" "$work/crd.yaml" | head -n 40 >&2 || true
  die "the image's \`connect-operator crd\` differs from crds/"
fi
proved "runc: crd prints exactly crds/ ($(wc -l <"$work/crd.yaml") lines, $(find crds -maxdepth 1 -name '*.yaml' | wc -l) file(s))"

# ---------------------------------------------------------------------------------------
step "runc: connect-operator run against a real kube-apiserver and the Connect simulator"
find_kube_binaries
kubectl() { "$KUBECTL_BIN" "$@"; }
cargo build --quiet --package connect-sim --bin connect-sim
export KUBECONFIG=$work/control-plane/kubeconfig
start_control_plane "$work/control-plane" "$KUBEBUILDER_ASSETS"
install_crds
install_default_account
kubectl create namespace image-test >/dev/null
note "API server $SERVER"
start_simulator "$target_dir/debug/connect-sim" "$work/sim.log" --creation-delay 1s \
  --rate-limit CreateInstance=5 --rate-limit DeleteInstance=5 || { pids+=("$SIM_PID"); exit 1; }
pids+=("$SIM_PID")
note "simulator $SIM_URL"

# The container's kubeconfig: the same admin credentials with the CA inlined (the host
# kubeconfig names a file the container cannot see), bind-mounted read-only.
kubectl config view --raw --flatten --minify >"$work/kubeconfig.container"
chmod 0644 "$work/kubeconfig.container"
metrics_port=$(free_port)
run_id=connect-operator-image-test-$$-run
runc_config "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' run --namespace image-test \
    --region us-east-1 --aws-endpoint-url "$SIM_URL" --metrics-addr "127.0.0.1:$metrics_port" \
    --creation-poll-interval 300ms --create-delete-rate 5)" \
  '["KUBECONFIG=/etc/connect-operator/kubeconfig", "AWS_ACCESS_KEY_ID=AKIAIMAGETEST", "AWS_SECRET_ACCESS_KEY=image-test-secret", "AWS_EC2_METADATA_DISABLED=true", "RUST_LOG=info", "NO_COLOR=1"]' \
  "[{\"destination\": \"/etc/connect-operator/kubeconfig\", \"type\": \"bind\", \"source\": \"$work/kubeconfig.container\", \"options\": [\"bind\", \"ro\", \"nosuid\", \"nodev\", \"noexec\"]}]"
containers+=("$run_id")
runc --root "$runc_root" run --bundle "$work/bundle" "$run_id" </dev/null >"$work/operator.log" 2>&1 &
runc_pid=$!
ready_started=$SECONDS
wait_for_readyz "$metrics_port" 60 "$runc_pid" || die "the operator in the container did not become ready"
proved "runc: run (kubeconfig bind-mounted read-only, host network) answers /readyz after $((SECONDS - ready_started)) s"

# The container's process, seen from the host.
pid=$(runc --root "$runc_root" state "$run_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
status=$(<"/proc/$pid/status")
grep -Eq '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || die "not running as uid 65532: $(grep ^Uid <<<"$status")"
grep -Eq '^Gid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || die "not running as gid 65532: $(grep ^Gid <<<"$status")"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
  grep -Eq "^$cap:\s+0+$" <<<"$status" || die "$cap is not empty: $(grep "^$cap" <<<"$status")"
done
grep -Eq '^NoNewPrivs:\s+1$' <<<"$status" || die "NoNewPrivs is not set"
[[ $(readlink "/proc/$pid/ns/net") == "$(readlink /proc/self/ns/net)" ]] || die "the container has its own network namespace"
[[ $(readlink "/proc/$pid/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]] || die "the container shares the host's mount namespace"
# mountinfo: mount ID, parent, major:minor, root, mount point, options...
awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | grep -Eq '(^|,)ro(,|$)' || die "the root filesystem is not read-only"
[[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == "/usr/local/bin/connect-operator run "* ]] || die "unexpected command line"
proved "the container's process (pid $pid on the host): uid/gid 65532, no capabilities in any set, NoNewPrivs, root mounted ro, the host's network namespace"

kubectl apply -n image-test -f - >/dev/null <<'EOF'
apiVersion: connect.operators.dev/v1alpha1
kind: ConnectInstance
metadata:
  name: image-test
spec:
  identityManagementType: CONNECT_MANAGED
  instanceAlias: image-test-instance
  inboundCallsEnabled: true
  outboundCallsEnabled: false
  attributes:
    contactflowLogs: true
  tags:
    proof: image
EOF
ready_started=$SECONDS
kubectl wait -n image-test --for=condition=Ready connectinstance/image-test --timeout=120s >/dev/null \
  || { kubectl get -n image-test connectinstance image-test -o yaml >&2 || true; die "the ConnectInstance did not become Ready"; }
instance_id=$(kubectl get -n image-test connectinstance image-test -o jsonpath='{.status.instanceId}')
[[ -n $instance_id ]] || die "Ready without an instanceId"
curl -fsS "$SIM_URL/_sim/calls" >"$work/calls.json"
curl -fsS "$SIM_URL/_sim/instances" >"$work/instances.json"
python3 - "$work/calls.json" "$work/instances.json" "$instance_id" <<'EOF' || die "the simulator's record is wrong"
import collections, json, sys
calls = collections.Counter(call["operation"] for call in json.load(open(sys.argv[1])))
instances = json.load(open(sys.argv[2]))
assert calls["CreateInstance"] == 1, calls
assert [i["id"] for i in instances] == [sys.argv[3]], instances
assert instances[0]["status"] == "ACTIVE", instances
print("    Connect calls:", dict(sorted(calls.items())))
EOF
proved "a ConnectInstance became Ready in $((SECONDS - ready_started)) s (instance $instance_id, one CreateInstance; HTTPS to the API server)"

stop_started=$SECONDS
runc --root "$runc_root" kill "$run_id" TERM
rc=0
for _ in $(seq 150); do kill -0 "$runc_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$runc_pid" 2>/dev/null && die "the operator (PID 1 in its container) ignored SIGTERM for 15 s"
wait "$runc_pid" || rc=$?
[[ $rc -eq 0 ]] || die "the operator exited with $rc after SIGTERM"
proved "SIGTERM to the container's PID 1: the operator exited 0 in $((SECONDS - stop_started)) s"

step "the image is proven ($((SECONDS - started)) s)"
for line in "${proved[@]}"; do note "- $line"; done
