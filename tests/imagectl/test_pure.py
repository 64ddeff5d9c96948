"""imagectl's pure parts: how sources, destinations and references are read, and how workers stop."""

from __future__ import annotations

import threading

import pytest

from imagectl.sources import split_transport
from imagectl.v2 import ImageName, split_reference
from imagectl.workers import Stopped, Workers


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("oci:layout", ("oci", "layout", None)),
        ("oci:/tmp/layout:v1", ("oci", "/tmp/layout", "v1")),
        ("docker-archive:saved.tar:local/busybox:test", ("docker-archive", "saved.tar", "local/busybox:test")),
        ("docker-daemon:local/busybox:test", ("docker-daemon", "local/busybox:test", None)),
        ("./saved.tar", (None, "./saved.tar", None)),
        ("c:odd/path", (None, "c:odd/path", None)),
    ],
)
def test_sources_are_spelled_as_skopeo_spells_them(spec, expected):
    assert split_transport(spec) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("team/app", ("team/app", "latest")),
        ("team/app:v1", ("team/app", "v1")),
        ("team/app@sha256:" + "a" * 64, ("team/app", "sha256:" + "a" * 64)),
        ("127.0.0.1:5000/app", ("127.0.0.1:5000/app", "latest")),
    ],
)
def test_references(text, expected):
    assert split_reference(text) == expected


def test_a_loopback_registry_is_plain_http_and_any_other_https():
    assert ImageName.parse("127.0.0.1:5000/library/busybox:1") == ImageName(
        "http://127.0.0.1:5000", "library/busybox", "1"
    )
    assert ImageName.parse("registry.example.com/app").base_url == "https://registry.example.com"
    assert ImageName.parse("http://registry.example.com/app:v2").base_url == "http://registry.example.com"
    with pytest.raises(ValueError, match="registry's host"):
        ImageName.parse("library/busybox:1")


def test_a_failing_worker_stops_the_others_at_their_next_check():
    workers = Workers(2)
    running = threading.Event()
    outcomes: list[str] = []

    def work(item: str) -> str:
        if item == "fails":
            running.wait(10)
            raise ValueError("the first failure")
        running.set()
        workers.stopping.wait(10)
        try:
            workers.check()
        except Stopped:
            outcomes.append("stopped")
            raise
        outcomes.append("went on")
        return item

    with pytest.raises(ValueError, match="the first failure"):
        workers.map(work, ["fails", "keeps going"])
    assert outcomes == ["stopped"]
