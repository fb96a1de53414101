#!/usr/bin/env bash
# `make image`: the connect-operator container image, built and assembled here without a
# container engine and without a base image (docs/image.md).
#
#   hack/build-image.sh
#
# 1. cargo build --release --locked --package connect-operator --bin connect-operator
# 2. hack/image-rootfs.sh stages the root filesystem: the binary, the shared libraries it
#    links (ldd, with the dynamic loader), the CA bundle, /etc/passwd and /etc/group with
#    the user and group 65532 (nonroot). Nothing else.
# 3. One layer: GNU tar with sorted names, owner 0:0, the commit's time on every entry and
#    no atime/ctime, compressed with `gzip -n` (no name, no time).
# 4. hack/image-layout.py writes the OCI layout (config, manifest, index, all times
#    SOURCE_DATE_EPOCH); the layout is archived the same way as the layer.
# 5. hack/sbom.py writes a CycloneDX SBOM of the crates and Debian packages in the image.
#
# Output, under the cargo target directory:
#   image/oci/                      the OCI image layout, tag = the package version
#   image/connect-operator.oci.tar  the same as an oci-archive (skopeo copy oci-archive:...)
#   image/sbom.cdx.json             the SBOM
#   image/digest                    the manifest digest, also printed as the last line
#
# Reproducible: SOURCE_DATE_EPOCH defaults to the commit time of HEAD, so two builds of
# one commit (on the same toolchain and Debian release) give the same manifest digest.
# SOURCE_DATE_EPOCH and IMAGE_REVISION (default `git rev-parse HEAD`) may be set, e.g.
# outside a git checkout. IMAGE_OUT overrides the output directory; IMAGE_BINARY names a
# connect-operator binary to use instead of building one (hack/test-image.sh reassembles
# the image from the binary it contains into a scratch directory and compares digests).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { echo "[build-image] $*" >&2; }
die() { echo "[build-image] error: $*" >&2; exit 1; }

for tool in cargo git python3 tar gzip ldd sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required (--sort=name, --pax-option)"

started=$SECONDS
if [[ -z ${IMAGE_BINARY:-} ]]; then
  log "cargo build --release --locked --package connect-operator --bin connect-operator"
  cargo build --release --locked --package connect-operator --bin connect-operator
fi
build_seconds=$((SECONDS - started))

metadata=$(cargo metadata --format-version 1 --no-deps --locked)
field() { python3 -c "import json,sys; m=json.load(sys.stdin); $1" <<<"$metadata"; }
target_dir=$(field 'print(m["target_directory"])')
version=$(field 'print(next(p["version"] for p in m["packages"] if p["name"] == "connect-operator"))')
licenses=$(field 'print(next(p["license"] for p in m["packages"] if p["name"] == "connect-operator"))')
description=$(field 'print(next(p["description"] for p in m["packages"] if p["name"] == "connect-operator"))')
source_url=${IMAGE_SOURCE:-https://github.com/connect-operator/connect-operator}
revision=${IMAGE_REVISION:-$(git rev-parse HEAD)}
if ! git diff --quiet HEAD -- 2>/dev/null; then
  log "warning: the work tree has uncommitted changes; the image is labelled $revision but is built from them"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac
binary=${IMAGE_BINARY:-$target_dir/release/connect-operator}

out=${IMAGE_OUT:-$target_dir/image}
work=$out/work
rm -rf "$work" "$out/oci" "$out/connect-operator.oci.tar" "$out/sbom.cdx.json" "$out/digest"
mkdir -p "$work"

# The same options for both archives: the result depends only on the files' names,
# contents and the modes image-rootfs.sh fixed.
reproducible_tar() {
  local dir=$1 archive=$2
  shift 2
  LC_ALL=C tar --create --file "$archive" --directory "$dir" \
    --format=posix --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
    --owner=0 --group=0 --numeric-owner --no-acls --no-selinux --no-xattrs \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    "$@"
}

hack/image-rootfs.sh "$binary" "$work/rootfs"
mapfile -t top < <(cd "$work/rootfs" && LC_ALL=C ls -A)
reproducible_tar "$work/rootfs" "$work/layer.tar" "${top[@]}"
gzip -n -9 -c "$work/layer.tar" >"$work/layer.tar.gz"

digest=$(python3 hack/image-layout.py --layer-tar "$work/layer.tar" --layer-gz "$work/layer.tar.gz" \
  --out "$out/oci" --version "$version" --revision "$revision" --epoch "$SOURCE_DATE_EPOCH" \
  --arch "$arch" --source "$source_url" --licenses "$licenses" --description "$description")
reproducible_tar "$out/oci" "$out/connect-operator.oci.tar" oci-layout index.json blobs

# The Debian packages the libraries and the CA bundle come from (dpkg's database lists
# /lib paths; try the resolved /usr/lib path too).
: >"$work/debs.txt"
if command -v dpkg-query >/dev/null 2>&1; then
  while IFS= read -r file; do
    path=/${file#./}
    owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true)
    owner=${owner%%: *}
    if [[ -n $owner ]]; then
      dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' "$owner" >>"$work/debs.txt"
    else
      log "warning: no Debian package owns $path; it is not in the SBOM"
    fi
  done < <(cd "$work/rootfs" && find ./lib* ./usr/lib* -type f 2>/dev/null | LC_ALL=C sort)
  dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' ca-certificates >>"$work/debs.txt" 2>/dev/null || true
else
  log "warning: dpkg-query is missing; the SBOM lists the crates only"
fi
host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --format-version 1 --locked --filter-platform "$host" >"$work/metadata.json"
python3 hack/sbom.py --metadata "$work/metadata.json" --lock Cargo.lock --package connect-operator \
  --image-digest "$digest" --epoch "$SOURCE_DATE_EPOCH" --debs "$work/debs.txt" \
  --out "$out/sbom.cdx.json"

echo "$digest" >"$out/digest"
rm -rf "$work"

layer_bytes=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(l["size"] for l in m["layers"]))' \
  "$out/oci/blobs/sha256/${digest#sha256:}")
log "image connect-operator:$version ($arch), revision $revision, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
log "  layer $((layer_bytes / 1024)) KiB compressed; cargo build ${build_seconds} s, assembly $((SECONDS - started - build_seconds)) s"
log "  $out/oci (tag $version)"
log "  $out/connect-operator.oci.tar"
log "  $out/sbom.cdx.json"
log "push: skopeo copy --preserve-digests oci-archive:$out/connect-operator.oci.tar docker://REGISTRY/connect-operator:$version"
echo "$digest"
