# Quire: the two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO       ?= cargo
QUIRE_HOME  ?= $(CURDIR)/.quire
VENV        ?= $(CURDIR)/.venv
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
QUIRE       := $(TARGET_DIR)/release/quire

export QUIRE_LAKE ?= $(QUIRE_HOME)/lake

.PHONY: help setup build run test lint fmt bench clean

help:
	@echo "make run    set up, build, and run the main job end to end (simulate, ingest, dims, KPIs)"
	@echo "make test   formatting, lints and every test"
	@echo "make bench  benchmarks against the peers named in the issues (large data; slow)"

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release -p quire

run: build
	$(QUIRE) pipeline run --work $(QUIRE_HOME) --lake $(QUIRE_LAKE)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo-nextest when the machine has it (one summary line at the end), else cargo test.
# Building every target of the workspace first gives the end-to-end tests their `quire`
# binary, with the same feature set as the tests (so Polars is compiled once, not twice).
test: setup lint
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  echo "$(CARGO) nextest run --workspace"; $(CARGO) nextest run --workspace; \
	else \
	  echo "$(CARGO) test --workspace"; $(CARGO) test --workspace; \
	fi

bench: setup
	$(CARGO) build --release -p quire
	$(CARGO) bench -p quire-benches
	scripts/bench.sh

clean:
	rm -rf $(QUIRE_HOME)
