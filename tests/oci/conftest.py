"""Real container tools for the Docker/OCI `/v2` tests: docker (a private dockerd), containerd's ctr,
skopeo, an image built offline, and Debian's Distribution as a peer registry (tests/tools/engines.py).

Every test that uses one of them is marked `docker` (select with -m docker, deselect with -m 'not docker').
"""

from __future__ import annotations

import pytest
from tools.engines import (  # noqa: F401 - the fixtures, made visible to the tests of this folder
    FIXTURES,
    TIMINGS,
    busybox_image,
    ctr,
    distribution_registry,
    docker_engine,
    skopeo,
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if set(FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("container tools: seconds per step")
        for label, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.2f}  {label}")
