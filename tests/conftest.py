"""Shared fixtures: the registry under test and real boto3 ECR clients pointed at it.

By default the whole local stack starts once per session (DynamoDB Local, moto for S3/KMS, the
gateway and its worker processes). With REGISTRY_ENDPOINT set, the same API tests run against that
endpoint instead (the deployed stack); tests marked `local_only` are skipped there.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lambdas"))

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
        return boto3.client("ecr", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test", **config)


@pytest.fixture(scope="session")
def backends():
    if EXTERNAL_ENDPOINT:
        pytest.skip("the local stand-ins are not used against an external endpoint")
    from local.registry import Backends

    started = Backends.start()
    yield started
    started.stop()


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


NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def ecr(registry):
    """A boto3 ECR client as users have it, but without retries: one call is one request."""
    return registry.ecr(config=NO_RETRIES)


def unique_name(prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40] or "repo"
    return f"test/{slug}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def repo(ecr, request):
    """A fresh MUTABLE repository, named after the test."""
    name = unique_name(request.node.name)
    ecr.create_repository(repositoryName=name)
    return name
