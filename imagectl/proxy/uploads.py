"""Blob uploads through the proxy: each client upload is one ECR API upload. Whatever way the client
sends the bytes -- one chunked PATCH of the whole layer (docker, skopeo), a monolithic PUT
(containerd), PATCHes with Content-Range -- they are cut into the registry's `partSize` parts as
they arrive: at most one part is held per upload, each full part goes up as UploadLayerPart, and
the final PUT ?digest= sends the rest and CompleteLayerUpload with the client's digest (the
registry hashes the bytes and says whether they are that blob).

The ECR API's errors reach the client as the registry's /v2 would answer them (`OCI_CODES`: the
same codes and statuses as lambdas/registry/distribution/http.py, the registry's message kept).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..ecr import REJECTED_CREDENTIALS, error_code
from ..errors import ToolError
from ..uploader import LayerParts, PartMoved, UploadCursor
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
    except ToolError as error:  # a new login failed
        raise OciError("UNAUTHORIZED", f"the proxy's AWS credentials: {error}", 401) from None
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
        return self.cursor.next_byte + len(self.buffer)

    def append(self, body: Body) -> None:
        """The body's bytes, each full part sent on as soon as it is there."""
        self.touched = time.monotonic()
        while piece := body.read(READ_SIZE):
            self.buffer += piece
            while len(self.buffer) >= self.cursor.part_size:
                self._send(bytes(self.buffer[: self.cursor.part_size]))
                del self.buffer[: self.cursor.part_size]

    def finish(self, digest: str) -> None:
        """The rest, then CompleteLayerUpload: the registry checks the bytes against `digest`."""
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        with as_oci_errors():
            self.parts.complete(self.upload_id, digest)

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


class Uploads:
    """The uploads in progress, by upload id (the ECR API's, which the client sees in its Location)."""

    def __init__(self, client: Any):
        self.client = client
        self.sessions: dict[str, UploadSession] = {}
        self.lock = threading.Lock()

    def start(self, repository: str) -> UploadSession:
        parts = LayerParts(self.client, None, repository)
        with as_oci_errors():
            started = UploadSession(parts, parts.initiate())
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
            self.sessions.pop(upload_id, None)

    def _forget_idle(self) -> None:
        """Uploads a client gave up on: their buffers go (the registry lets its own expire)."""
        now = time.monotonic()
        for upload_id in [i for i, s in self.sessions.items() if now - s.touched > IDLE_SESSION]:
            del self.sessions[upload_id]
