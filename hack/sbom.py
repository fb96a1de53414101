#!/usr/bin/env python3
"""Writes a CycloneDX 1.5 SBOM (JSON) of the connect-operator image.

    cargo metadata --format-version 1 --locked --filter-platform HOST >metadata.json
    hack/sbom.py --metadata metadata.json --lock Cargo.lock --package connect-operator \
        --image-digest sha256:... --epoch SOURCE_DATE_EPOCH --debs debs.txt --out sbom.cdx.json

Components:
- every crate the binary is built from: the package's normal (not dev, not build-script)
  dependencies, transitively, for the host platform, each with name, version,
  purl pkg:cargo/NAME@VERSION, its SPDX license expression where the crate gives one and
  its SHA-256 from Cargo.lock where there is one;
- the Debian packages the image's shared libraries and CA bundle come from (debs.txt:
  `package version architecture` per line), purl pkg:deb/debian/NAME@VERSION?arch=ARCH;
- the dependency graph between the crates.

Only the standard library; the output is deterministic (sorted, fixed timestamp, a serial
number derived from the image digest).
"""

import argparse
import datetime
import json
import sys
import urllib.parse
import uuid

try:
    import tomllib
except ImportError:  # Python < 3.11: no hashes, everything else stays.
    tomllib = None


def cargo_purl(name, version):
    return "pkg:cargo/%s@%s" % (name, urllib.parse.quote(version, safe=""))


def spdx(expression):
    """Older crates write `MIT/Apache-2.0`; SPDX spells that `MIT OR Apache-2.0`."""
    if not expression:
        return None
    return " OR ".join(part.strip() for part in expression.split("/"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("metadata", "lock", "package", "image-digest", "epoch", "debs", "out"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()

    with open(args.metadata, encoding="utf-8") as file:
        metadata = json.load(file)
    packages = {package["id"]: package for package in metadata["packages"]}
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    roots = [package["id"] for package in metadata["packages"]
             if package["name"] == args.package and package["id"] in metadata["workspace_members"]]
    if len(roots) != 1:
        sys.exit("sbom: package %s is not a workspace member" % args.package)
    root = roots[0]

    checksums = {}
    if tomllib is not None:
        with open(args.lock, "rb") as file:
            for entry in tomllib.load(file).get("package", []):
                if "checksum" in entry:
                    checksums[(entry["name"], entry["version"])] = entry["checksum"]

    # Normal dependency edges only: what is compiled into the binary (proc macros included,
    # they generate its code); dev-dependencies and build scripts' dependencies are not.
    def normal_deps(package_id):
        return sorted({dep["pkg"] for dep in nodes[package_id]["deps"]
                       if any(kind["kind"] is None for kind in dep["dep_kinds"])})

    reachable, queue = set(), [root]
    while queue:
        package_id = queue.pop()
        if package_id in reachable:
            continue
        reachable.add(package_id)
        queue.extend(normal_deps(package_id))

    def ref(package_id):
        package = packages[package_id]
        return cargo_purl(package["name"], package["version"])

    def crate_component(package_id, kind):
        package = packages[package_id]
        component = {
            "type": kind,
            "bom-ref": ref(package_id),
            "name": package["name"],
            "version": package["version"],
            "purl": ref(package_id),
            "scope": "required",
        }
        if package.get("description"):
            component["description"] = " ".join(package["description"].split())
        license_expression = spdx(package.get("license"))
        if license_expression:
            component["licenses"] = [{"expression": license_expression}]
        checksum = checksums.get((package["name"], package["version"]))
        if checksum:
            component["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        if package.get("repository"):
            component["externalReferences"] = [{"type": "vcs", "url": package["repository"]}]
        return component

    components = [crate_component(package_id, "library")
                  for package_id in sorted(reachable - {root}, key=ref)]

    with open(args.debs, encoding="utf-8") as file:
        debs = sorted({tuple(line.split()) for line in file if line.strip()})
    for name, version, arch in debs:
        purl = "pkg:deb/debian/%s@%s?arch=%s" % (
            name, urllib.parse.quote(version, safe=""), arch)
        components.append({
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "scope": "required",
        })

    application = crate_component(root, "application")
    digest = args.image_digest
    image_ref = "pkg:oci/connect-operator@%s" % urllib.parse.quote(digest, safe="")
    timestamp = datetime.datetime.fromtimestamp(int(args.epoch), datetime.timezone.utc)
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:%s" % uuid.uuid5(uuid.NAMESPACE_URL, image_ref),
        "version": 1,
        "metadata": {
            "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "hack/sbom.py"}]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": "connect-operator",
                "version": digest,
                "purl": image_ref,
                "components": [application],
            },
        },
        "components": components,
        "dependencies": [
            {"ref": image_ref, "dependsOn": [application["bom-ref"]]
             + [deb["bom-ref"] for deb in components if deb["purl"].startswith("pkg:deb/")]},
        ] + [
            {"ref": ref(package_id), "dependsOn": sorted({ref(dep) for dep in normal_deps(package_id)})}
            for package_id in sorted(reachable, key=ref)
        ],
    }
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(bom, file, indent=2, sort_keys=True)
        file.write("\n")
    print("sbom: %d crates, %d Debian packages -> %s" % (len(reachable) - 1, len(debs), args.out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
