# syntax=docker/dockerfile:1
#
# connect-operator image, for when a container engine is at hand. It holds the same files
# as `make image` (hack/build-image.sh, docs/image.md), staged by the same script,
# hack/image-rootfs.sh: the release binary, the shared libraries it links (as ldd
# resolves them, with the dynamic loader), the CA bundle, and /etc/passwd + /etc/group with
# the user and group 65532 (nonroot). Nothing else: the final stage is FROM scratch (no
# base image, no shell, no package manager). Entrypoint, user, environment, port and labels
# are the ones hack/image-layout.py writes. hack/test-image.sh checks that this file keeps
# saying so.
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t registry.example.com/connect-operator:0.1.0 .
#
# The digest differs from `make image`'s: an engine writes its own config and history.
# `make image` is the reproducible path, and the image `make test` runs with runc.
# The two stages use one Debian release, so the libraries copied match the binary's glibc.
# For multi-arch images, build on each architecture (or with buildx and emulation).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# cmake: aws-lc-sys (the AWS SDK's TLS crypto) builds its C sources with it when present.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# Cache mounts keep the crate registry and the target directory between builds; the binary
# is copied out of the cached target directory so the next steps can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package connect-operator --bin connect-operator \
    && install -D -m 0755 target/release/connect-operator /out/connect-operator
RUN hack/image-rootfs.sh /out/connect-operator /rootfs

FROM scratch
# Keep VERSION equal to Cargo.toml's package version (hack/test-image.sh checks it).
ARG VERSION=0.1.0
ARG REVISION=unknown
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /
LABEL org.opencontainers.image.title="connect-operator" \
      org.opencontainers.image.description="Kubernetes operator that manages Amazon Connect instances from ConnectInstance resources" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/connect-operator/connect-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# Metrics, /livez and /readyz (CONNECT_OPERATOR_METRICS_ADDR).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/connect-operator"]
CMD ["run"]
