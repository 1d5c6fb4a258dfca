# Quire: the two commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO       ?= cargo
QUIRE_HOME  ?= $(CURDIR)/.quire
VENV        ?= $(CURDIR)/.venv
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
QUIRE       := $(TARGET_DIR)/release/quire

REDIS_PORT  ?= 6391
export QUIRE_HOME
export QUIRE_LAKE ?= $(QUIRE_HOME)/lake
export QUIRE_REDIS ?= redis://127.0.0.1:$(REDIS_PORT)/0
export REDIS_PORT
export VENV
# LightGBM's build needs cmake >= 3.28 and `ort` loads ONNX Runtime at run time: both come
# from the tool venv that `make setup` fills (scripts/setup.sh).
export CMAKE ?= $(VENV)/bin/cmake
export ORT_DYLIB_PATH ?= $(VENV)/libonnxruntime.so

.PHONY: help setup build run stop test lint fmt bench clean

help:
	@echo "make run    set up, build, and run the main job end to end (simulate, ingest, KPIs, features,"
	@echo "            train, register, export ONNX, publish recommendations to Redis)"
	@echo "            and leave the live dashboard running (its URL is printed)"
	@echo "make stop   stop the Redis, the ranking service and the live service make run started"
	@echo "make test   formatting, lints and every test"
	@echo "make bench  benchmarks against the peers named in the issues (large data; slow)"

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release -p quire

# Redis on a project-owned port (scripts/services.sh), then the main job; the models go to the
# registry under models/ (the default), the recommendations to that Redis.
run: build
	QUIRE=$(QUIRE) scripts/services.sh redis
	$(QUIRE) pipeline run --work $(QUIRE_HOME) --lake $(QUIRE_LAKE) --redis $(QUIRE_REDIS)
	QUIRE=$(QUIRE) scripts/services.sh ranking
	QUIRE=$(QUIRE) scripts/services.sh sample
	QUIRE=$(QUIRE) scripts/services.sh live

stop:
	scripts/services.sh stop

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# cargo-nextest when the machine has it (one summary line at the end), else cargo test.
# Building every target of the workspace first gives the end-to-end tests their `quire`
# binary, with the same feature set as the tests (so Polars is compiled once, not twice).
# nextest does not run doctests: they run after it.
test: setup lint
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  echo "$(CARGO) nextest run --workspace"; $(CARGO) nextest run --workspace && \
	  echo "$(CARGO) test --workspace --doc" && $(CARGO) test --workspace --doc; \
	else \
	  echo "$(CARGO) test --workspace"; $(CARGO) test --workspace; \
	fi

bench: setup
	$(CARGO) build --release -p quire
	$(CARGO) bench -p quire-benches
	scripts/bench.sh
	scripts/bench-ltr.sh
	scripts/bench-cf.sh
	scripts/bench-recs.sh
	scripts/bench-ranking.sh
	scripts/bench-live.sh
	QUIRE=$(QUIRE) scripts/bench-registry.sh
	scripts/bench-analyze.sh
	scripts/bench-causal.sh

clean:
	rm -rf $(QUIRE_HOME)
