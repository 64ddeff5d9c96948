"""One blob into the registry with the ECR API: InitiateLayerUpload, UploadLayerPart in the
`partSize` the registry answered, CompleteLayerUpload.

The blob is a stream of known or unknown size (`BlobStream`), opened at a byte offset: a file or a
tar member reopens anywhere, a registry blob with a Range request, a one-pass stream (the proxy's
request body, later) only where it already is. The upload id and the last acknowledged byte are kept
in the resume state after every part, so a killed push run again goes on from there; where the
registry holds more or less than recorded, its InvalidLayerPartException says where
(`lastValidByteReceived`), and the stream is reopened there.

Where the registry offers direct uploads (its GetLayerPartUploadUrls), a blob of known digest and
size goes straight to S3 instead, several parts at once, through the URLs it presigns; a resumed
upload asks again and sends only the parts S3 does not hold. A registry without it (Amazon ECR
among them) answers UnknownOperationException once per run, and the parts go through UploadLayerPart.

`LayerParts` is the calls themselves, for one repository: the proxy (imagectl/proxy) sends
its clients' request bodies through it part by part.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from .ecr import call_extension, error_code, put_presigned, translated_errors
from .errors import DigestMismatch, SourceError
from .resume import PendingUpload, ResumeState


class Progress(Protocol):
    live: bool  # told of a direct part's bytes as they go (progress.Reporter)

    def advance(self, key: str, nbytes: int) -> None: ...


@dataclass(frozen=True)
class BlobStream:
    digest: str | None  # None: computed while the bytes go up (then it never resumes)
    size: int | None  # None: read until the stream ends
    open: Callable[[int], BinaryIO]  # the bytes from that offset on


@dataclass(frozen=True)
class Uploaded:
    digest: str
    sent: int  # bytes this run sent
    resumed_from: int  # the first byte this run sent (0: all of it)
    direct: bool = False  # its parts went straight to S3


@dataclass(frozen=True)
class _Sent:
    digest: str
    count: int
    first: int  # the first byte sent (the blob's size when the registry had it all)
    direct: bool = False


@dataclass(frozen=True)
class DirectPlan:
    """What GetLayerPartUploadUrls answered: presigned S3 URLs by part number, and the parts S3 holds."""

    part_size: int
    urls: dict[int, str]
    received: dict[int, int] = field(default_factory=dict)  # part number -> its size in S3


PARALLEL_PARTS = 4  # parts of one layer in flight at once (a direct part streams from its source)
NOBODYS = "00000000-0000-4000-8000-000000000000"  # an upload id of the right form that no upload has
# Endpoints that answered UnknownOperationException this run: asked once only
_WITHOUT_DIRECT: set[str] = set()


@dataclass
class UploadCursor:
    upload_id: str
    part_size: int
    next_byte: int


class LayerParts:
    """InitiateLayerUpload, UploadLayerPart and CompleteLayerUpload for one repository. botocore's
    ClientError goes through, but for what the calls mean: a part the registry acknowledged
    elsewhere is `PartMoved`, a layer it already has is done."""

    def __init__(self, client: Any, registry_id: str | None, repository: str):
        self.client, self.repository = client, repository
        self.where: dict[str, str] = {"repositoryName": repository}
        if registry_id is not None:  # else the caller's own registry
            self.where["registryId"] = registry_id

    def initiate(self) -> UploadCursor:
        answer = self.client.initiate_layer_upload(**self.where)
        return UploadCursor(answer["uploadId"], int(answer["partSize"]), 0)

    def upload_part(self, cursor: UploadCursor, part: bytes) -> int:
        """The part at cursor.next_byte; the registry's last byte after it."""
        try:
            answer = self.client.upload_layer_part(
                **self.where,
                uploadId=cursor.upload_id,
                partFirstByte=cursor.next_byte,
                partLastByte=cursor.next_byte + len(part) - 1,
                layerPartBlob=part,
            )
        except ClientError as error:
            if error_code(error) == "InvalidLayerPartException":
                raise PartMoved(int(error.response["lastValidByteReceived"])) from None
            raise
        return int(answer["lastByteReceived"])

    def probe_direct(self) -> bool:
        """Whether the registry offers direct uploads, asked once with an upload that is nobody's: a
        registry without them answers UnknownOperationException, one with them another error."""
        try:
            call_extension(self.client, "GetLayerPartUploadUrls", {**self.where, "uploadId": NOBODYS, "layerSize": 1})
        except ClientError as error:
            if error_code(error) == "UnknownOperationException":
                _WITHOUT_DIRECT.add(self.client.meta.endpoint_url)
        except BotoCoreError:  # not reached now: the first upload asks again
            pass
        return self.offers_direct()

    def offers_direct(self) -> bool:
        """Whether to ask for direct uploads: not where the registry answered it lacks them."""
        return self.client.meta.endpoint_url not in _WITHOUT_DIRECT

    def direct_plan(self, upload_id: str, size: int) -> DirectPlan | None:
        """URLs to upload the layer's parts straight to S3, or None: upload it with UploadLayerPart
        (the registry lacks the extension, the layer is over its limit, or the upload has parts)."""
        endpoint = self.client.meta.endpoint_url
        if not self.offers_direct():
            return None
        params = {**self.where, "uploadId": upload_id, "layerSize": size}
        try:
            answer = call_extension(self.client, "GetLayerPartUploadUrls", params)
        except ClientError as error:
            code = error_code(error)
            if code == "UnknownOperationException":
                _WITHOUT_DIRECT.add(endpoint)
                return None
            if code in ("LimitExceededException", "InvalidLayerPartException"):
                return None
            raise
        return DirectPlan(
            int(answer["partSize"]),
            {int(n): url for n, url in answer["partUrls"].items()},
            {int(p["partNumber"]): int(p["size"]) for p in answer.get("receivedParts", [])},
        )

    def complete(self, upload_id: str, digest: str) -> None:
        try:
            self.client.complete_layer_upload(**self.where, uploadId=upload_id, layerDigests=[digest])
        except ClientError as error:
            if error_code(error) != "LayerAlreadyExistsException":  # a concurrent push, or a retried Complete, won
                raise


def send_direct_parts(
    blob: BlobStream,
    plan: DirectPlan,
    progress: Progress,
    label: str,
    started: Callable[[int], None] = lambda _: None,
    between_parts: Callable[[], None] = lambda: None,
) -> tuple[int, int]:
    """The parts of `blob` S3 lacks to the plan's URLs, PARALLEL_PARTS at a time, each read from the
    source at its offset; `started` is told the bytes S3 holds already. (bytes sent, bytes held)"""
    size = blob.size or 0

    def length(number: int) -> int:
        return min(plan.part_size, size - (number - 1) * plan.part_size)

    missing = [n for n in sorted(plan.urls) if plan.received.get(n) != length(n)]
    held = size - sum(length(n) for n in missing)
    started(held)

    def send(number: int) -> int:
        between_parts()
        try:
            opened = partial(blob.open, (number - 1) * plan.part_size)
            moved = partial(progress.advance, label) if progress.live else lambda _: None
            put_presigned(plan.urls[number], opened, length(number), moved)
        except SourceError:
            raise SourceError(f"{label}: the source holds fewer bytes than its descriptor says ({size})") from None
        if not progress.live:
            progress.advance(label, length(number))
        return length(number)

    with ThreadPoolExecutor(max_workers=PARALLEL_PARTS) as pool:
        sent = sum(pool.map(send, missing))
    return sent, held


class BlobUploader:
    def __init__(
        self,
        client: Any,
        endpoint: str,
        registry_id: str,
        repository: str,
        state: ResumeState,
        between_parts: Callable[[], None] = lambda: None,
    ):
        self.parts = LayerParts(client, registry_id, repository)
        self.registry_id, self.repository, self.state = registry_id, repository, state
        self.endpoint = endpoint
        self.between_parts = between_parts  # raises to stop the upload (workers.Workers.check)

    def state_key(self, digest: str) -> str:
        return ResumeState.key(self.endpoint, self.registry_id, self.repository, digest)

    def upload(
        self, blob: BlobStream, progress: Progress, label: str, started: Callable[[int], None] = lambda _: None
    ) -> Uploaded:
        """The blob into the registry; `started` is told once where it resumes (bytes already there)."""
        key = self.state_key(blob.digest) if blob.digest else None
        started = _once(started)
        with translated_errors(self.repository):
            resumed = self._resumed(key)
            cursor = resumed or self._initiate(key)
            try:
                sent = self._send_either(blob, cursor, key, progress, label, started)
            except UploadRefusesParts:  # a direct upload, resumed where it may not be (its layer over the limit now)
                cursor = self._initiate(key)
                sent = self._send_either(blob, cursor, key, progress, label, started)
            except ClientError as error:
                if error_code(error) != "UploadNotFoundException" or resumed is None:
                    raise
                cursor = self._initiate(key)  # the registry forgot it (expired): afresh
                sent = self._send_either(blob, cursor, key, progress, label, started)
            self._complete(cursor.upload_id, sent.digest)
        if key:
            self.state.forget(key)
        return Uploaded(sent.digest, sent.count, sent.first, sent.direct)

    def _send_either(
        self,
        blob: BlobStream,
        cursor: UploadCursor,
        key: str | None,
        progress: Progress,
        label: str,
        started: Callable[[int], None],
    ) -> _Sent:
        """Straight to S3 where the registry offers it for this blob, else part by part through it."""
        known = blob.digest is not None and bool(blob.size) and cursor.next_byte == 0
        plan = self.parts.direct_plan(cursor.upload_id, blob.size or 0) if known else None
        if plan is None:
            started(cursor.next_byte)
            return self._send(blob, cursor, key, progress, label)
        if key:
            self.state.record(key, PendingUpload(cursor.upload_id, plan.part_size, -1, direct=True))
        return self._send_direct(blob, plan, progress, label, started)

    def _send_direct(
        self, blob: BlobStream, plan: DirectPlan, progress: Progress, label: str, started: Callable[[int], None]
    ) -> _Sent:
        sent, held = send_direct_parts(blob, plan, progress, label, started, self.between_parts)
        return _Sent(blob.digest or "", sent, held, direct=True)

    def _resumed(self, key: str | None) -> UploadCursor | None:
        pending = self.state.get(key) if key else None
        return UploadCursor(pending.upload_id, pending.part_size, pending.last_byte + 1) if pending else None

    def _initiate(self, key: str | None) -> UploadCursor:
        cursor = self.parts.initiate()
        if key:
            self.state.record(key, PendingUpload(cursor.upload_id, cursor.part_size, -1))
        return cursor

    def _send(self, blob: BlobStream, cursor: UploadCursor, key: str | None, progress: Progress, label: str) -> _Sent:
        """Parts from cursor.next_byte to the end of the stream."""
        hasher = hashlib.sha256() if blob.digest is None else None
        first, sent = None, 0
        stream = blob.open(cursor.next_byte)
        try:
            while part := _read_part(stream, cursor.part_size):
                self.between_parts()
                if hasher is not None:
                    hasher.update(part)
                try:
                    last = self.parts.upload_part(cursor, part)
                    first = cursor.next_byte if first is None else first
                    sent += len(part)
                except PartMoved as moved:
                    if moved.last_valid == cursor.next_byte - 1:  # refused where it stands: it takes no parts
                        raise UploadRefusesParts() from None
                    if moved.last_valid != cursor.next_byte + len(part) - 1:  # the registry is elsewhere: go there
                        if hasher is not None:
                            raise SourceError(f"{label}: the registry lost part of a one-pass stream") from None
                        stream.close()
                        progress.advance(label, moved.last_valid + 1 - cursor.next_byte)
                        cursor.next_byte = moved.last_valid + 1
                        stream = blob.open(cursor.next_byte)
                        continue
                    last = moved.last_valid  # the registry had this very part (a lost answer): not sent again
                if key:  # recorded before it is reported: whoever sees the progress may rely on it
                    self.state.record(key, PendingUpload(cursor.upload_id, cursor.part_size, last))
                progress.advance(label, last + 1 - cursor.next_byte)
                cursor.next_byte = last + 1
        finally:
            stream.close()
        if blob.size is not None and cursor.next_byte != blob.size:
            raise SourceError(f"{label}: the source holds {cursor.next_byte} bytes, its descriptor says {blob.size}")
        digest = blob.digest or "sha256:" + hasher.hexdigest()  # type: ignore[union-attr]
        return _Sent(digest, sent, cursor.next_byte if first is None else first)

    def _complete(self, upload_id: str, digest: str) -> None:
        try:
            self.parts.complete(upload_id, digest)
        except ClientError as error:
            if error_code(error) == "InvalidLayerException":
                raise DigestMismatch(f"{digest}: the source's bytes do not hash to it ({error})") from None
            raise


class UploadRefusesParts(Exception):
    """The registry refused a part at the very byte it holds the upload to: the upload takes none."""


class PartMoved(Exception):
    """The registry refused a part: it holds the upload up to `last_valid`, not up to the part's first byte."""

    def __init__(self, last_valid: int):
        self.last_valid = last_valid


def _once(function: Callable[[int], None]) -> Callable[[int], None]:
    called = threading.Event()

    def first_call_only(value: int) -> None:
        if not called.is_set():
            called.set()
            function(value)

    return first_call_only


def _read_part(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at the end (a socket may answer short reads)."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
