"""imagectl's test helpers: how a user runs it (Ran, user_environment) and the fixtures that need the
container tools (here, not in conftest.py, whose imports of the tools' fixtures their parameters would shadow)."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REGION = "us-east-1"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        """`--output json`'s events, one JSON object a line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    @property
    def result(self) -> dict:
        (result,) = [e for e in self.events if e["event"] == "result"]
        return result


def user_environment(registry, cache: Path, docker_engine=None) -> dict[str, str]:
    """What a user's shell has: the registry's key, Region and endpoint, a cache dir of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_"))}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_ECR=registry.endpoint,
        AWS_CONFIG_FILE=str(cache / "aws-config"),  # none: no profile of the machine's user leaks in
        AWS_SHARED_CREDENTIALS_FILE=str(cache / "aws-credentials"),
        XDG_CACHE_HOME=str(cache),
    )
    if docker_engine is not None:
        env["DOCKER_HOST"] = docker_engine.env["DOCKER_HOST"]
    return env


def host_of(registry) -> str:
    return urlsplit(registry.endpoint).netloc


@pytest.fixture
def docker_logged_in(docker_engine, registry, ecr):
    """docker logged in to the registry with GetAuthorizationToken's password."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    docker_engine.run("login", "-u", "AWS", "--password-stdin", host_of(registry), input=password)
    return host_of(registry)


@pytest.fixture
def saved_busybox(docker_engine, busybox_image, tmp_path) -> Path:
    """`docker save` of the busybox image alone."""
    busybox_image.restore()
    archive = tmp_path / "busybox.tar"
    docker_engine.run("save", "-o", archive, busybox_image.ref)
    return archive
