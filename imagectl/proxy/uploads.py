"""Blob uploads through the proxy: each client upload is one ECR API upload. Whatever way the client
sends the bytes -- one chunked PATCH of the whole layer (docker, skopeo), a monolithic PUT
(containerd), PATCHes with Content-Range -- they go one of two ways:

- Where the registry offers direct layer uploads (docs/how-it-works.md#direct-layer-uploads), the
  bytes are spooled to a temporary file (TMPDIR) as they arrive; the final PUT ?digest= knows the
  size, asks for presigned part URLs, sends the parts straight to S3 several at once from the file,
  and completes the upload. Memory holds a read of the client's body, never a layer.
- Else (Amazon ECR, a registry with the extension turned off, a layer over its limit) they are
  cut into the registry's `partSize` parts as they arrive: at most one part is held per upload,
  each full part goes up as UploadLayerPart, and the final PUT sends the rest.

Either way CompleteLayerUpload carries the client's digest: the registry hashes the bytes and says
whether they are that blob.

The ECR API's errors reach the client as the registry's /v2 would answer them (`OCI_CODES`: the
same codes and statuses as lambdas/registry/distribution/http.py, the registry's message kept).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from ..ecr import REJECTED_CREDENTIALS, error_code
from ..errors import CredentialsError, ToolError
from ..uploader import BlobStream, LayerParts, PartMoved, UploadCursor, send_direct_parts
from .bodies import Body

READ_SIZE = 1 << 20  # bytes read from the client at a time
IDLE_SESSION = 3600.0  # seconds after which an abandoned upload's buffer is dropped

# ECR API error → the /v2 code and status the registry answers for it.
OCI_CODES: dict[str, tuple[str, int]] = {
    "RepositoryNotFoundException": ("NAME_UNKNOWN", 404),
    "InvalidLayerException": ("DIGEST_INVALID", 400),
    "UploadNotFoundException": ("BLOB_UPLOAD_UNKNOWN", 404),
    "InvalidLayerPartException": ("BLOB_UPLOAD_INVALID", 416),
    "EmptyUploadException": ("BLOB_UPLOAD_INVALID", 400),
    "LayerPartTooSmallException": ("BLOB_UPLOAD_INVALID", 400),
    "InvalidParameterException": ("BLOB_UPLOAD_INVALID", 400),
    "LimitExceededException": ("DENIED", 403),
    "KmsException": ("DENIED", 403),
    "ServerException": ("UNKNOWN", 500),
}


class OciError(Exception):
    """An answer in the spec's error format: {"errors": [{"code", "message"}]}."""

    def __init__(self, code: str, message: str, status: int, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.headers = code, message, status, headers or {}


@contextlib.contextmanager
def as_oci_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise oci_error(error) from None
    except CredentialsError as error:  # a new login failed
        raise OciError("UNAUTHORIZED", f"the proxy's AWS credentials: {error}", 401) from None
    except ToolError as error:  # S3 refused a part, or could not be reached, after retries
        raise OciError("UNKNOWN", f"the proxy could not send the upload on: {error}", 502) from None
    except BotoCoreError as error:
        raise OciError("UNKNOWN", f"the proxy cannot reach the registry: {error}", 502) from None


def oci_error(error: ClientError) -> OciError:
    code = error_code(error)
    message = error.response.get("Error", {}).get("Message", "") or str(error)
    if code in REJECTED_CREDENTIALS:
        return OciError("DENIED", f"the registry refused the proxy's AWS credentials ({code}): {message}", 403)
    oci_code, status = OCI_CODES.get(code, ("UNKNOWN", 502))
    return OciError(oci_code, message, status)


@dataclass
class UploadSession:
    parts: LayerParts
    cursor: UploadCursor  # next_byte: the first byte not yet acknowledged by the registry
    buffer: bytearray = field(default_factory=bytearray)  # received, not yet sent: less than one part
    spool: BinaryIO | None = None  # direct uploads: every byte received, until the final PUT
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request of an upload at a time
    touched: float = field(default_factory=time.monotonic)

    @property
    def upload_id(self) -> str:
        return self.cursor.upload_id

    @property
    def repository(self) -> str:
        return self.parts.repository

    @property
    def received(self) -> int:
        if self.spool is not None:
            return self.spool.tell()
        return self.cursor.next_byte + len(self.buffer)

    def append(self, body: Body) -> None:
        """The body's bytes: into the spool, or each full part sent on as soon as it is there."""
        self.touched = time.monotonic()
        while piece := body.read(READ_SIZE):
            if self.spool is not None:
                with _spool_errors():
                    self.spool.write(piece)
                continue
            self.buffer += piece
            while len(self.buffer) >= self.cursor.part_size:
                self._send(bytes(self.buffer[: self.cursor.part_size]))
                del self.buffer[: self.cursor.part_size]

    def finish(self, digest: str) -> str:
        """The rest, then CompleteLayerUpload: the registry checks the bytes against `digest`.
        How the bytes went, for the log."""
        way = "through UploadLayerPart"
        if self.spool is not None:
            way = self._send_spooled(digest)
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        with as_oci_errors():
            self.parts.complete(self.upload_id, digest)
        return way

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()  # an anonymous file: its disk space goes with it

    def _send_spooled(self, digest: str) -> str:
        """The spooled bytes straight to S3; or, where the registry will not take this layer that
        way, through UploadLayerPart, read back a part at a time."""
        assert self.spool is not None
        with _spool_errors():
            self.spool.flush()
        size, descriptor = self.spool.tell(), self.spool.fileno()
        blob = BlobStream(digest, size, lambda offset: cast(BinaryIO, _SpoolReader(descriptor, offset)))
        with as_oci_errors():
            plan = self.parts.direct_plan(self.upload_id, size) if size else None
            if plan is not None:
                send_direct_parts(blob, plan, _NO_PROGRESS, digest)
                return f"straight to S3 in {len(plan.urls)} parts"
        reader = _SpoolReader(descriptor, 0)
        while part := reader.read(self.cursor.part_size):
            self._send(part)
        return "through UploadLayerPart (spooled)"

    def _send(self, part: bytes) -> None:
        with as_oci_errors():
            try:
                last = self.parts.upload_part(self.cursor, part)
            except PartMoved as moved:  # it has this very part (botocore resent it): acknowledged
                last = moved.last_valid
        if last != self.cursor.next_byte + len(part) - 1:  # the bytes it lacks are gone from here
            raise OciError(
                "BLOB_UPLOAD_INVALID",
                f"the registry holds this upload up to byte {last}, the proxy sent up to "
                f"{self.cursor.next_byte + len(part) - 1}: start the upload again",
                416,
            )
        self.cursor.next_byte = last + 1


class _SpoolReader:
    """The spool's bytes from an offset, for one reader of several at once (pread: no shared position)."""

    def __init__(self, descriptor: int, offset: int):
        self.descriptor, self.offset = descriptor, offset

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self.descriptor, size if size >= 0 else 1 << 30, self.offset)
        self.offset += len(data)
        return data

    def close(self) -> None:
        pass


class _Quiet:
    live = False

    def advance(self, key: str, nbytes: int) -> None:
        pass


_NO_PROGRESS = _Quiet()


@contextlib.contextmanager
def _spool_errors() -> Iterator[None]:
    try:
        yield
    except OSError as error:  # the disk is full, most likely: the client may try again later
        raise OciError("UNKNOWN", f"the proxy cannot spool the upload (TMPDIR): {error}", 503) from None


class Uploads:
    """The uploads in progress, by upload id (the ECR API's, which the client sees in its Location)."""

    def __init__(self, client: Any):
        self.client = client
        self.sessions: dict[str, UploadSession] = {}
        self.lock = threading.Lock()
        # Asked once at start, so that every upload goes the registry's way from the first
        self.direct = LayerParts(client, None, "imagectl/probe").probe_direct()

    def start(self, repository: str) -> UploadSession:
        parts = LayerParts(self.client, None, repository)
        with as_oci_errors():
            started = UploadSession(parts, parts.initiate())
        if parts.offers_direct():
            with _spool_errors():
                started.spool = tempfile.TemporaryFile(prefix="imagectl-proxy-")  # noqa: SIM115 - closed by end()
        with self.lock:
            self._forget_idle()
            self.sessions[started.upload_id] = started
        return started

    def get(self, repository: str, upload_id: str) -> UploadSession:
        with self.lock:
            found = self.sessions.get(upload_id)
        if found is None or found.repository != repository:
            raise OciError("BLOB_UPLOAD_UNKNOWN", f"No upload {upload_id[:100]!r} in repository {repository}", 404)
        return found

    def end(self, upload_id: str) -> None:
        with self.lock:
            ended = self.sessions.pop(upload_id, None)
        if ended is not None:
            ended.close()

    def _forget_idle(self) -> None:
        """Uploads a client gave up on: their buffers go (the registry lets its own expire)."""
        now = time.monotonic()
        for upload_id in [i for i, s in self.sessions.items() if now - s.touched > IDLE_SESSION]:
            self.sessions.pop(upload_id).close()
