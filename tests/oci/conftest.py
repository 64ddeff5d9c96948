"""Real container tools for the Docker/OCI `/v2` tests: docker (a private dockerd), containerd's ctr,
skopeo, an image built offline, and Debian's Distribution as a peer registry (tests/tools/engines.py).

Every test that uses one of them is marked `docker` (select with -m docker, deselect with -m 'not docker').
"""

from __future__ import annotations

from tools.engines import (  # noqa: F401 - the fixtures, made visible to the tests of this folder
    TIMINGS,
    busybox_image,
    ctr,
    distribution_registry,
    docker_engine,
    mark_docker_tests,
    skopeo,
)


def pytest_collection_modifyitems(config, items):
    mark_docker_tests(items)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("container tools: seconds per step")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.2f}  {label}")
