# syntax=docker/dockerfile:1
#
# connect-operator image: a release build on Debian bookworm, copied onto distroless/cc
# (glibc, libgcc and CA certificates only; no shell, no package manager), run as the
# distroless non-root user 65532.
#
#   docker build -t ghcr.io/connect-operator/connect-operator:0.1.0 .
#
# The two stages use the same Debian release, so the binary's glibc matches the runtime's.
# For multi-arch images, build on each architecture (or with buildx and emulation).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# cmake: aws-lc-sys (the AWS SDK's TLS crypto) builds its C sources with it when present.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# Cache mounts keep the crate registry and the target directory between builds; the binary
# is copied out of the cached target directory so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin connect-operator \
    && install -D -m 0755 target/release/connect-operator /out/connect-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="connect-operator" \
      org.opencontainers.image.description="Kubernetes operator for Amazon Connect instances" \
      org.opencontainers.image.source="https://github.com/connect-operator/connect-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/connect-operator /usr/local/bin/connect-operator
USER 65532:65532
# Metrics, /livez and /readyz (CONNECT_OPERATOR_METRICS_ADDR).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/connect-operator"]
CMD ["run"]
