"""Request bodies, read as they arrive: by Content-Length, or decoded chunk by chunk from
`Transfer-Encoding: chunked` (docker's PATCH of a whole layer) -- never held whole.

http.server hands the handler the raw socket stream and decodes no body itself."""

from __future__ import annotations

from email.message import Message
from typing import Protocol

MAX_CHUNK_LINE = 1024  # a chunk-size line (hex size and extensions)


class Stream(Protocol):
    """The connection's buffered reader."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class BadBody(Exception):
    """The body ended early or its chunked framing is broken."""


class Body(Protocol):
    def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end."""
        ...

    @property
    def exhausted(self) -> bool:
        """Every byte of it was read (else the connection cannot carry another request)."""
        ...


class SizedBody:
    def __init__(self, stream: Stream, length: int):
        self.stream, self.left = stream, length

    def read(self, size: int) -> bytes:
        if not self.left:
            return b""
        data = self.stream.read(min(size, self.left))
        if not data:
            raise BadBody(f"the body ended {self.left} bytes short of its Content-Length")
        self.left -= len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self.left == 0


class ChunkedBody:
    def __init__(self, stream: Stream):
        self.stream = stream
        self.left_in_chunk = 0
        self.ended = False

    def read(self, size: int) -> bytes:
        if self.ended:
            return b""
        if not self.left_in_chunk:
            self.left_in_chunk = self._next_chunk_size()
            if not self.left_in_chunk:
                self._skip_trailers()
                self.ended = True
                return b""
        data = self.stream.read(min(size, self.left_in_chunk))
        if not data:
            raise BadBody("the chunked body ended inside a chunk")
        self.left_in_chunk -= len(data)
        if not self.left_in_chunk:
            self._line()  # the CRLF after the chunk's data
        return data

    @property
    def exhausted(self) -> bool:
        return self.ended

    def _next_chunk_size(self) -> int:
        line = self._line()
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadBody(f"not a chunk size: {line[:40]!r}") from None

    def _skip_trailers(self) -> None:
        while self._line().strip():
            pass

    def _line(self) -> bytes:
        line = self.stream.readline(MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            raise BadBody("the chunked body's framing is broken")
        return line


def body_of(headers: Message, stream: Stream) -> Body:
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return ChunkedBody(stream)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BadBody(f"Content-Length {headers.get('Content-Length')!r} is not a number") from None
    return SizedBody(stream, length)


def read_all(body: Body, limit: int) -> bytes | None:
    """The whole body, when it is at most `limit` bytes; None when it is longer (or b"" for none)."""
    data = bytearray()
    while piece := body.read(min(1 << 20, limit + 1 - len(data))):
        data += piece
        if len(data) > limit:
            return None
    return bytes(data)
