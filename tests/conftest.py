"""Shared fixtures: the registry under test and real boto3 ECR clients pointed at it.

By default the whole local stack starts once per session (DynamoDB Local, moto for S3/KMS, the
gateway and its worker processes). With REGISTRY_ENDPOINT set, the same API tests run against that
endpoint instead (the deployed stack); tests marked `local_only` are skipped there.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Shared helpers live in support.py: test modules import them from there, never `from conftest`
# (with several conftest.py files, which one `conftest` names depends on collection order).
from support import NO_RETRIES, unique_name  # noqa: E402 - re-exported for older imports

EXTERNAL_ENDPOINT = os.environ.get("REGISTRY_ENDPOINT")
REGION = "us-east-1"


def pytest_collection_modifyitems(config, items):
    if EXTERNAL_ENDPOINT:
        skip = pytest.mark.skip(reason="needs the local stack (REGISTRY_ENDPOINT is set)")
        for item in items:
            if "local_only" in item.keywords:
                item.add_marker(skip)


class ExternalRegistry:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    def ecr(self, **config):
        return boto3.client(
            "ecr",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            **config,
        )


@pytest.fixture(scope="session")
def backends():
    if EXTERNAL_ENDPOINT:
        pytest.skip("the local stand-ins are not used against an external endpoint")
    from local.registry import Backends

    started = Backends.start()
    yield started
    started.stop()


@pytest.fixture
def access_key_store(backends):
    """The local stack's keys table and KMS key, with the operator's (the stand-ins') credentials."""
    return backends.access_key_store()


@pytest.fixture
def issue_key(access_key_store, request):
    """issue_key(registry_id, (actions, patterns), ...) -> AccessKey with its secret, issued
    straight into the keys table as `python -m registryctl keys create` does."""
    import time

    from registry.records import Grant

    def issue(registry_id: str, *grants, name: str | None = None):
        name = name or re.sub(r"[^\w+=,.@-]", "-", request.node.name)[:64]
        return access_key_store.create(
            registry_id, name, tuple(Grant(tuple(a), tuple(p)) for a, p in grants), time.time()
        )

    return issue


@pytest.fixture(scope="session")
def registry(request):
    if EXTERNAL_ENDPOINT:
        yield ExternalRegistry(EXTERNAL_ENDPOINT)
        return
    from local.registry import LocalRegistry

    local = LocalRegistry(request.getfixturevalue("backends"), workers=16)
    yield local
    local.stop()


@pytest.fixture
def start_registry(request):
    """Start another gateway on the same backends with different REGISTRY_* settings."""
    from local.registry import LocalRegistry

    started = []

    def start(**overrides):
        instance = LocalRegistry(request.getfixturevalue("backends"), overrides=overrides, workers=4)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture
def faults(tmp_path, start_registry):
    """A registry whose handler reads fault rules (local/faults.py) from a file the test writes:
    `faults.set(rule, ...)`; `faults.ecr` is a client of it without retries."""
    path = tmp_path / "faults.json"
    path.write_text("[]")
    local = start_registry(REGISTRY_FAULTS_FILE=str(path))

    class Faults:
        ecr = local.ecr(config=NO_RETRIES)

        @staticmethod
        def set(*rules):
            path.write_text(json.dumps(list(rules)))

    return Faults


@pytest.fixture
def ecr(registry):
    """A boto3 ECR client as users have it, but without retries: one call is one request."""
    return registry.ecr(config=NO_RETRIES)


@pytest.fixture
def repo(ecr, request):
    """A fresh MUTABLE repository, named after the test."""
    name = unique_name(request.node.name)
    ecr.create_repository(repositoryName=name)
    return name
