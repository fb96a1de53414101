# connect-operator: the two commands the README names are `make demo` and `make test`.
#
#   make demo     local kube-apiserver + etcd, the Connect simulator and the operator;
#                 applies examples/, shows them Ready, deletes them, stops everything
#   make test     fmt, clippy, unit tests, the end-to-end suite (and the Go tests), then
#                 the image: built and run with runc (make image-test)
#   make image    the container image, without a container engine: target/image/
#                 (OCI layout, oci-archive, SBOM; docs/image.md)
#   make binaries build (or find cached) kube-apiserver, kubectl, etcd, helm and promtool
#   make e2e-aws  opt-in smoke test against REAL Amazon Connect (CONNECT_OPERATOR_E2E_AWS=1,
#                 AWS credentials and AWS_REGION; hack/e2e-aws.sh); never part of make test
#
# Binaries are cached in ~/.cache/connect-operator (hack/build-binaries.sh); point
# KUBEBUILDER_ASSETS at a directory with kube-apiserver, etcd (and kubectl) to use yours.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
GO ?= go
CACHE ?= $(HOME)/.cache/connect-operator
# Used only when the python3 on PATH cannot import boto3 and pip may not install into it.
VENV ?= $(CACHE)/venv
# Extra directories with a go.mod whose `go test ./...` is part of `make test`. The GitOps
# checks in gitops-tests/ already run inside `cargo test` (tests/integration/argocd_health.rs).
GO_TESTS ?=

.PHONY: help bench demo test fmt-check clippy binaries python-deps cargo-test go-test \
	image image-test

help:
	@echo "make demo   - run the operator against a local API server and the Connect simulator"
	@echo "make test   - fmt, clippy, unit tests, end-to-end suite, image proof"
	@echo "make image  - build the container image (OCI layout + archive + SBOM in target/image/)"
	@echo "make bench  - scale benchmark (release build): throughput, steady state, memory"
	@echo "make binaries - build kube-apiserver, kubectl, etcd, helm, promtool (cached)"
	@echo "make e2e-aws - opt-in: create, update, delete one REAL Connect instance (CONNECT_OPERATOR_E2E_AWS=1)"

demo:
	hack/demo.sh

# Opt-in, against real AWS (costs 2 of the account's ~100 create/delete attempts per 30
# days): refuses to run without CONNECT_OPERATOR_E2E_AWS=1; asks for confirmation unless
# E2E_AWS_ARGS=--yes (or CONNECT_OPERATOR_E2E_AWS_YES=1). Not a prerequisite of `test`.
.PHONY: e2e-aws
e2e-aws:
	hack/e2e-aws.sh $(E2E_AWS_ARGS)

binaries:
	hack/build-binaries.sh

# Prints figures against the operator's targets (docs/benchmarks.md); not part of `make test`.
bench:
	@eval "$$(hack/build-binaries.sh)"; export KUBEBUILDER_ASSETS HELM_BIN; \
	$(CARGO) build --release --package connect-sim --bins; \
	$(CARGO) bench --bench scale

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# boto3 is the simulator's independent client (tests/sim_boto3_check.py).
python-deps:
	@if python3 -c 'import boto3' 2>/dev/null || { [[ -x $(VENV)/bin/python3 ]] && $(VENV)/bin/python3 -c 'import boto3' 2>/dev/null; }; then \
	  echo "boto3: present"; \
	elif python3 -m pip install --quiet -r tests/requirements.txt 2>/dev/null && python3 -c 'import boto3'; then \
	  echo "boto3: installed with pip"; \
	else \
	  echo "boto3: installing into $(VENV)"; \
	  python3 -m venv $(VENV); \
	  $(VENV)/bin/python3 -m pip install --quiet -r tests/requirements.txt; \
	fi

# The venv (if one was needed) goes first on PATH so the tests' `python3` finds boto3.
cargo-test: python-deps
	@eval "$$(hack/build-binaries.sh)"; \
	export KUBEBUILDER_ASSETS HELM_BIN PROMTOOL_BIN MONITORING_CRDS; \
	if [[ -x $(VENV)/bin/python3 ]] && ! python3 -c 'import boto3' 2>/dev/null; then export PATH="$(VENV)/bin:$$PATH"; fi; \
	echo "KUBEBUILDER_ASSETS=$$KUBEBUILDER_ASSETS HELM_BIN=$$HELM_BIN PROMTOOL_BIN=$$PROMTOOL_BIN"; \
	$(CARGO) build --package connect-sim --bins; \
	$(CARGO) test --workspace --lib --bins --tests

go-test:
	@for dir in $(GO_TESTS); do \
	  echo "go test $$dir"; \
	  (cd "$$dir" && $(GO) test ./...); \
	done

# The image: a release build assembled into an OCI image without a container engine or a
# base image; prints its manifest digest (docs/image.md).
image:
	hack/build-image.sh

# Proves the image: unpacked with umoci and run with runc (read-only root, no capabilities,
# user 65532) for --version, crd and run against the control plane and the simulator.
# Needs root and umoci, skopeo, runc (.ci/run installs them).
image-test: image
	hack/test-image.sh

test: fmt-check clippy cargo-test go-test image-test
