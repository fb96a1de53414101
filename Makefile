# connect-operator: the two commands the README names are `make demo` and `make test`.
#
#   make demo     local kube-apiserver + etcd, the Connect simulator and the operator;
#                 applies examples/, shows them Ready, deletes them, stops everything
#   make test     fmt, clippy, unit tests, the end-to-end suite (and the Go tests)
#   make binaries build (or find cached) kube-apiserver, kubectl, etcd and helm
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

.PHONY: help bench demo test fmt-check clippy binaries python-deps cargo-test go-test

help:
	@echo "make demo   - run the operator against a local API server and the Connect simulator"
	@echo "make test   - fmt, clippy, unit tests, end-to-end suite"
	@echo "make bench  - scale benchmark (release build): throughput, steady state, memory"
	@echo "make binaries - build kube-apiserver, kubectl, etcd, helm (cached)"

demo:
	hack/demo.sh

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
	export KUBEBUILDER_ASSETS HELM_BIN CONNECT_SIM_REQUIRE_BOTO3=1; \
	if [[ -x $(VENV)/bin/python3 ]] && ! python3 -c 'import boto3' 2>/dev/null; then export PATH="$(VENV)/bin:$$PATH"; fi; \
	echo "KUBEBUILDER_ASSETS=$$KUBEBUILDER_ASSETS HELM_BIN=$$HELM_BIN"; \
	$(CARGO) build --package connect-sim --bins; \
	$(CARGO) test --workspace --lib --bins --tests

go-test:
	@for dir in $(GO_TESTS); do \
	  echo "go test $$dir"; \
	  (cd "$$dir" && $(GO) test ./...); \
	done

test: fmt-check clippy cargo-test go-test
