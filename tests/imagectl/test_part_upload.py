"""A direct part's PUT to its presigned S3 URL (imagectl.ecr.put_presigned), against a small HTTP
server that answers as S3 may: the part streams from its source, a 5xx is retried with the part read
afresh, a 4xx is not, and a source shorter than the part fails rather than leaving S3 waiting."""

from __future__ import annotations

import io
import os

import pytest
from tool_support import LoopbackServer, QuietHandler

from imagectl import ecr
from imagectl.errors import RegistryError, SourceError


class PartServer(LoopbackServer):
    def __init__(self, statuses: list[int]):
        super().__init__(PartHandler)
        self.statuses = statuses  # answered in turn; 200 once they run out
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/bucket/key?partNumber=1&uploadId=u"


class PartHandler(QuietHandler):
    server: PartServer

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        code = {200: "", 403: "AccessDenied"}.get(status, "SlowDown")
        self.answer(status, f"<Error><Code>{code}</Code></Error>".encode() if code else b"")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(ecr, "PART_RETRY_BASE_SECONDS", 0.0)


class Source:
    """A part's bytes, counting how often it was opened and the largest read asked of it."""

    def __init__(self, data: bytes):
        self.data, self.opened, self.largest_read = data, 0, 0

    def open(self) -> io.BytesIO:
        self.opened += 1
        source = self

        class Counted(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                asked = len(source.data) if size is None or size < 0 else size
                source.largest_read = max(source.largest_read, asked)
                return super().read(size)

        return Counted(self.data)


def test_a_part_streams_in_blocks_with_exactly_its_bytes(serve):
    server, part = serve(PartServer([])), Source(os.urandom(3 * ecr.SEND_BLOCK + 5))
    moved: list[int] = []
    ecr.put_presigned(server.url, part.open, len(part.data), moved.append)
    assert server.bodies == [part.data]
    assert part.largest_read == ecr.SEND_BLOCK  # never the whole part at once
    assert moved == [ecr.SEND_BLOCK] * 3 + [5]


def test_a_5xx_is_retried_with_the_part_read_afresh(serve):
    server, part = serve(PartServer([503, 500])), Source(os.urandom(ecr.SEND_BLOCK + 1))
    moved: list[int] = []
    ecr.put_presigned(server.url, part.open, len(part.data), moved.append)
    assert server.bodies == [part.data] * 3
    assert part.opened == 3
    # progress counts each block as it goes and takes a failed attempt's back: the part, once
    assert sum(moved) == len(part.data) and moved.count(-len(part.data)) == 2


def test_a_4xx_is_not_retried_and_says_what_s3_answered(serve):
    server, part = serve(PartServer([403])), Source(b"layer bytes")
    with pytest.raises(RegistryError, match="HTTP 403 AccessDenied"):
        ecr.put_presigned(server.url, part.open, len(part.data))
    assert len(server.bodies) == 1


def test_a_5xx_every_time_fails_after_the_last_attempt(serve):
    server, part = serve(PartServer([503] * ecr.PART_ATTEMPTS)), Source(b"layer bytes")
    with pytest.raises(RegistryError, match="HTTP 503"):
        ecr.put_presigned(server.url, part.open, len(part.data))
    assert len(server.bodies) == ecr.PART_ATTEMPTS


def test_a_source_shorter_than_the_part_fails_without_waiting_for_s3(serve):
    server, part = serve(PartServer([])), Source(b"short")
    with pytest.raises(SourceError, match="ended 5 bytes before"):
        ecr.put_presigned(server.url, part.open, len(part.data) + 5)
