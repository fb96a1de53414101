#!/usr/bin/env bash
# Stages the container image's root filesystem from a release binary: the binary, the
# shared libraries it links (as ldd resolves them, with the dynamic loader), the CA bundle,
# and /etc/passwd + /etc/group naming the non-root user and group 65532 (`nonroot`).
# Nothing else: no shell, no package manager, no /tmp.
#
#   hack/image-rootfs.sh BINARY ROOTFS
#
# Used by `make image` (hack/build-image.sh) and by the Dockerfile's build stage, so both
# produce the same files. Needs only bash, coreutils and ldd (libc-bin). ROOTFS is
# replaced. Modes are fixed (directories and executables 0755, data 0644); ownership and
# timestamps are the archiver's job (hack/build-image.sh writes 0:0 and SOURCE_DATE_EPOCH).
set -euo pipefail

die() { echo "[image-rootfs] error: $*" >&2; exit 1; }
[[ $# -eq 2 ]] || die "usage: $0 BINARY ROOTFS"
binary=$1
rootfs=$2
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

[[ -x $binary ]] || die "$binary is not an executable file"
[[ -f $ca_bundle ]] || die "no CA bundle at $ca_bundle (Debian package ca-certificates)"
command -v ldd >/dev/null 2>&1 || die "ldd is missing (Debian package libc-bin)"

rm -rf "$rootfs"
mkdir -p "$rootfs"
umask 022

install -D -m 0755 "$binary" "$rootfs/usr/local/bin/connect-operator"

# ldd prints `name => /path (address)` for a library and `/path (address)` for the dynamic
# loader (the binary's PT_INTERP); linux-vdso has no file. A library that is `not found`
# would fail at run time, so it fails here.
linked=$(ldd "$binary") || die "ldd $binary failed (a static binary needs no libraries; this one is expected to be dynamic)"
if grep -q 'not found' <<<"$linked"; then
  die "unresolved libraries:"$'\n'"$(grep 'not found' <<<"$linked")"
fi
mapfile -t libraries < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$linked" | sort -u)
[[ ${#libraries[@]} -gt 0 ]] || die "ldd found no libraries for $binary"
grep -q '^/lib64/ld-linux\|^/lib/ld-linux' < <(printf '%s\n' "${libraries[@]}") \
  || die "no dynamic loader in the ldd output of $binary"
for library in "${libraries[@]}"; do
  # The file itself at the path the loader looks up (symlinks resolved: the image holds
  # regular files only).
  install -D -m 0755 "$(readlink -f "$library")" "$rootfs$library"
done

install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
  'nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$rootfs/etc/group"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
find "$rootfs" -type d -exec chmod 0755 {} +

printf '[image-rootfs] %s\n' "staged $rootfs:" >&2
(cd "$rootfs" && find . -type f | LC_ALL=C sort | sed 's|^\.|    |') >&2
