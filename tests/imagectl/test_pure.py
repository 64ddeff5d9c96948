"""imagectl's pure parts: how sources, destinations and references are read, how workers stop, and
the proxy's: its request bodies, where it may listen, its error codes."""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import threading
from unittest import mock

import boto3
import pytest

from imagectl.ecr import PART_PLACEHOLDER, splice_layer_parts
from imagectl.errors import UsageError
from imagectl.proxy import Listen
from imagectl.proxy.bodies import BadBody, ChunkedBody, SizedBody
from imagectl.proxy.uploads import OCI_CODES
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


def test_chunked_bodies_are_decoded_piece_by_piece():
    framed = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST"
    stream = io.BytesIO(framed)
    body = ChunkedBody(stream)
    pieces = [body.read(3) for _ in range(5)]
    assert pieces == [b"Wik", b"i", b"ped", b"ia", b""] and body.exhausted
    assert stream.read() == b"NEXT REQUEST"  # nothing of the next request was read
    with pytest.raises(BadBody):
        ChunkedBody(io.BytesIO(b"zz\r\n")).read(10)
    short = SizedBody(io.BytesIO(b"short"), 10)
    assert short.read(100) == b"short" and not short.exhausted
    with pytest.raises(BadBody):
        short.read(100)


def test_the_upload_errors_have_the_registrys_own_codes():
    """What the proxy answers for an ECR API error is what the registry's /v2 answers for it."""
    from registry.distribution import http
    from registry.service_model import ecr_model

    own = {error.__name__: answer for error, answer in http.CODES.items()}
    shared = set(OCI_CODES) & set(own)
    assert shared >= {"RepositoryNotFoundException", "InvalidLayerException", "UploadNotFoundException"}
    assert {name: OCI_CODES[name] for name in shared} == {name: own[name] for name in shared}
    assert set(OCI_CODES) <= {shape.name for shape in ecr_model().error_shapes}


@pytest.mark.parametrize(
    "spec, loopback",
    [
        ("127.0.0.1:5000", True),
        ("[::1]:0", True),
        ("localhost:5000", True),
        ("0.0.0.0:5000", False),
        ("192.168.1.10:5000", False),
        ("registry.example:5000", False),
    ],
)
def test_where_the_proxy_listens(spec, loopback):
    assert Listen.parse(spec).is_loopback is loopback


@pytest.mark.parametrize("spec", ["5000", "127.0.0.1", "127.0.0.1:port", ":5000", "127.0.0.1:70000"])
def test_a_listen_address_without_host_and_port_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="HOST:PORT"):
        Listen.parse(spec)


class _Sent(Exception):
    def __init__(self, request):
        self.request = request


def _sent_part(client, part: bytes):
    """The UploadLayerPart request the client would send (captured before it goes)."""

    def capture(request, **kwargs):
        raise _Sent(request)

    client.meta.events.register_first("before-send.ecr.UploadLayerPart", capture)
    with pytest.raises(_Sent) as sent:
        client.upload_layer_part(
            repositoryName="team/app", uploadId="u", partFirstByte=0, partLastByte=len(part) - 1, layerPartBlob=part
        )
    return sent.value.request


@pytest.mark.parametrize("part", [b"\x00", os.urandom(3 * 1024 + 1), PART_PLACEHOLDER * 2])
def test_a_spliced_part_is_the_request_botocore_would_send(part):
    """splice_layer_parts puts the part's base64 in after serialization: the body, its length and
    its signature are what botocore itself makes of the same call."""
    plain, spliced = (
        boto3.client("ecr", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s") for _ in range(2)
    )
    splice_layer_parts(spliced)
    signed_at = datetime.datetime(2026, 11, 30, 9, 0, tzinfo=datetime.UTC)
    with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
        expected, actual = _sent_part(plain, part), _sent_part(spliced, part)
    assert actual.body == expected.body
    assert json.loads(actual.body)["layerPartBlob"] == base64.b64encode(part).decode()
    assert actual.headers["Authorization"] == expected.headers["Authorization"]
    assert actual.headers["Content-Length"] == expected.headers["Content-Length"]
