"""imagectl as a user runs it (`python -m imagectl`), against the local registry, with the real
container tools of tests/tools/engines.py around it (a private dockerd, its containerd's ctr, skopeo,
Distribution).

Every test that uses a container tool is marked `docker`, as in tests/oci."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import unique_name
from tool_support import Ran, docker_logged_in, saved_busybox, serve, user_environment  # noqa: F401 - fixtures
from tools.engines import (  # noqa: F401 - the fixtures, made visible to the tests of this folder
    busybox_image,
    ctr,
    distribution_registry,
    docker_engine,
    mark_docker_tests,
    skopeo,
)


def pytest_collection_modifyitems(config, items):
    mark_docker_tests(items)


@pytest.fixture
def user_env(registry, tmp_path, request) -> dict[str, str]:
    engine = request.getfixturevalue("docker_engine") if "docker_engine" in request.fixturenames else None
    return user_environment(registry, tmp_path / "cache", engine)


@pytest.fixture
def imagectl(user_env) -> Callable[..., Ran]:
    """imagectl(*args, env=...) → Ran; never raises on a non-zero exit (the tests check codes)."""

    def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 180) -> Ran:
        done = subprocess.run(
            [sys.executable, "-m", "imagectl", *map(str, args)],
            env=env or user_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def repository(ecr, request) -> str:
    """A fresh repository's name (not created: the tests push with --create or create it)."""
    return unique_name(request.node.name)


@pytest.fixture(autouse=True)
def leave_the_engine_as_found(request):
    """Remove what a test tagged in the engine: references to a registry on loopback (this one, or
    Distribution), the big images it built."""
    yield
    if "docker_engine" not in request.fixturenames:
        return
    engine = request.getfixturevalue("docker_engine")
    listed = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    ours = [ref for ref in listed if ref.startswith(("127.0.0.1:", "local/big"))]
    if ours:
        engine.run("rmi", *ours, check=False)
