#!/usr/bin/env python3
"""Writes the OCI image layout of connect-operator from one gzipped layer.

    hack/image-layout.py --layer-tar L.tar --layer-gz L.tar.gz --out DIR \
        --version V --revision R --epoch SOURCE_DATE_EPOCH --arch amd64 \
        --source URL --licenses SPDX --description TEXT

DIR becomes an OCI image layout (oci-layout, index.json, blobs/sha256/...) holding one
image: the layer, its config and its manifest, tagged V (org.opencontainers.image.ref.name).
Every JSON document is serialized with sorted keys and no whitespace and every time is
SOURCE_DATE_EPOCH, so the same layer and arguments give the same manifest digest.
Prints the manifest digest (sha256:...) on stdout.

The image config is what the Dockerfile declares as well: entrypoint
/usr/local/bin/connect-operator with the command `run`, user 65532:65532, PATH and
SSL_CERT_FILE, port 8080, the org.opencontainers.image.* labels.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ENTRYPOINT = "/usr/local/bin/connect-operator"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USER = "65532:65532"


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("layer-tar", "layer-gz", "out", "version", "revision", "epoch", "arch",
                 "source", "licenses", "description"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()

    created = datetime.datetime.fromtimestamp(int(args.epoch), datetime.timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": "connect-operator",
        "org.opencontainers.image.description": args.description,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.licenses": args.licenses,
        "org.opencontainers.image.created": created,
    }

    blobs = os.path.join(args.out, "blobs", "sha256")
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(blobs)

    def put(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest[len("sha256:"):]), "wb") as file:
            file.write(data)
        return digest, len(data)

    layer_digest = sha256_file(args.layer_gz)
    shutil.copyfile(args.layer_gz, os.path.join(blobs, layer_digest[len("sha256:"):]))
    layer_size = os.path.getsize(args.layer_gz)

    config = {
        "created": created,
        "architecture": args.arch,
        "os": "linux",
        "config": {
            "User": USER,
            "Env": ["PATH=/usr/local/bin", "SSL_CERT_FILE=" + CA_BUNDLE],
            "Entrypoint": [ENTRYPOINT],
            "Cmd": ["run"],
            "WorkingDir": "/",
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_file(args.layer_tar)]},
        "history": [{
            "created": created,
            "created_by": "hack/build-image.sh: release binary, its shared libraries, "
                          "CA bundle, /etc/passwd and /etc/group",
        }],
    }
    config_digest, config_size = put(canonical(config))

    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": LAYER, "digest": layer_digest, "size": layer_size}],
        "annotations": labels,
    }
    manifest_digest, manifest_size = put(canonical(manifest))

    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{
            "mediaType": MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": args.arch, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": args.version},
        }],
    }
    with open(os.path.join(args.out, "index.json"), "wb") as file:
        file.write(canonical(index))
    with open(os.path.join(args.out, "oci-layout"), "wb") as file:
        file.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(manifest_digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
