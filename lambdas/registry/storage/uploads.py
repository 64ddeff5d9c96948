"""Layer uploads in progress: the `uploads` table and the bytes staged for them in S3.

Bytes flow: UploadLayerPart stages a part as a small "tail" object until at least S3's minimum
part size (5 MiB) is pending, then sends tail + part as one part of an S3 multipart upload whose
key is the blob's final home. The upload item records every S3 part's ETag, so
CompleteMultipartUpload fails if any part was overwritten by a racing request: the object is
exactly the bytes we hashed.

    item          condition (why)
    uploads/<id>  created: attribute_not_exists (a fresh UUID)
                  a part: last_byte = the byte we read, part_count < quota, not completed:
                  parts are contiguous and a racing duplicate part loses
                  made direct (GetLayerPartUploadUrls): last_byte = -1, no multipart_id, not
                  completed -- an upload takes UploadLayerPart's parts or the client's S3 parts,
                  never both; a part: attribute_not_exists(direct_size), for the same reason
                  completed: in the transaction that creates the layer (layers.py)

A direct upload's bytes go from the client to S3 parts of the upload's own object key, through URLs
presigned for UploadPart only (never PutObject: once completed, no URL can change the object).
CompleteLayerUpload completes the multipart upload with exactly the parts S3 lists and hashes the
object it made (If-Match its ETag) before any layer may name it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

from botocore.exceptions import ClientError

from ..records import Encryption, Quota, Repository, Upload
from . import codec
from .backend import Backend, ConditionFailed, Item, sse_arguments
from .errors import DirectSizeMismatch, OtherUploadMode, PartOutOfOrder, PartsChanged, QuotaReached, UploadGone
from .repositories import RepositoryStore
from .schema import (
    BLOBS_PREFIX,
    STAGED_PARTS_PREFIX,
    blob_object_key,
    staged_part_prefix,
)

S3_MIN_PART = 5 * 1024 * 1024
CANCELLED = "cancelled"  # the completed_digest of an upload ended without a layer
HASH_CHUNK = 1024 * 1024  # a direct upload's object is hashed as it streams, this much at a time
# What CompleteMultipartUpload answers when the parts are not the ones S3 listed a moment ago
REPLACED_PART_CODES = ("InvalidPart", "InvalidPartOrder", "EntityTooSmall")


@dataclass(frozen=True)
class S3Part:
    """A part of a direct upload that S3 holds."""

    number: int
    etag: str
    size: int


def upload_from_item(item: Item) -> Upload:
    return Upload(
        upload_id=item["upload_id"],
        repository_partition=item["repository"],
        encryption=Encryption(item.get("encryption_type", "AES256"), item.get("kms_key")),
        last_byte=item["last_byte"],
        part_count=item["part_count"],
        hash_state=item.get("hash_state"),
        tail_object_key=item.get("tail_key"),
        tail_size=item.get("tail_size", 0),
        multipart_id=item.get("multipart_id"),
        object_key=item["blob_key"],
        s3_parts=tuple((p["n"], p["etag"]) for p in item.get("s3_parts") or ()),
        completed_digest=item.get("completed_digest"),
        expires_at=item.get("expires_at"),
        direct_size=item.get("direct_size"),
    )


class UploadStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore):
        self.backend = backend
        self.repositories = repositories

    def start(self, repo: Repository, now: float) -> str:
        upload_id = str(uuid.uuid4())
        item = codec.item(
            upload_id=upload_id,
            repository=repo.partition,
            encryption_type=repo.encryption.type,
            kms_key=repo.encryption.kms_key,
            last_byte=-1,
            part_count=0,
            tail_size=0,
            s3_parts=[],
            blob_key=blob_object_key(repo.registry_id, repo.encryption.scope, upload_id),
            created_at=now,
            expires_at=int(now) + self.backend.settings.upload_ttl_seconds,
        )
        try:
            self.backend.write(
                "put_item",
                "uploads",
                Item=item,
                ConditionExpression="attribute_not_exists(upload_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failure:
            # A fresh UUID is taken only by our own first attempt, whose response botocore lost
            # before retrying: the upload is there, as we wrote it.
            old = failure.old or {}
            if old.get("repository") != repo.partition or old.get("created_at") != now:
                raise
        return upload_id

    def get(self, upload_id: str) -> Upload | None:
        item = self.backend.get("uploads", upload_id)
        return upload_from_item(item) if item else None

    def with_policy(self, registry_id: str, name: str, upload_id: str) -> tuple[Upload | None, str | None]:
        """The upload and the text of its repository's policy (None: it has none), in one read:
        every UploadLayerPart's authorization and data."""
        found = self.backend.batch_get(
            {
                "repositories": {"Keys": [self.repositories.policy_key(registry_id, name)]},
                "uploads": {"Keys": [self.backend.item_key("uploads", upload_id)]},
            }
        )
        policies, uploads = found["repositories"], found["uploads"]
        return upload_from_item(uploads[0]) if uploads else None, policies[0]["policy_text"] if policies else None

    def append_part(self, upload: Upload, part: bytes, hash_state: bytes, max_parts: int) -> int:
        """Stage `part` right after the upload's last byte; returns the new last byte."""
        pending = upload.tail_size + len(part)
        multipart_id, parts = upload.multipart_id, list(upload.s3_parts)
        created_multipart = False
        tail_key, tail_size = None, 0
        if pending >= S3_MIN_PART:
            body = self.read_tail(upload) + part
            if multipart_id is None:
                multipart_id = self.backend.s3_call(
                    "create_multipart_upload",
                    Key=upload.object_key,
                    ContentType="application/octet-stream",
                    **sse_arguments(upload.encryption),
                )["UploadId"]
                created_multipart = True
            number = len(parts) + 1
            etag = self.backend.s3_call(
                "upload_part", Key=upload.object_key, UploadId=multipart_id, PartNumber=number, Body=body
            )["ETag"]
            parts.append((number, etag))
        else:
            # A fresh key per state: a racing request can never overwrite the tail we recorded.
            offset = upload.last_byte + 1 - upload.tail_size
            tail_key = f"{staged_part_prefix(upload.upload_id)}{offset}-{uuid.uuid4().hex}"
            self.backend.s3_call(
                "put_object", Key=tail_key, Body=self.read_tail(upload) + part, **sse_arguments(upload.encryption)
            )
            tail_size = pending
        last_byte = upload.last_byte + len(part)
        try:
            self.backend.write(
                "update_item",
                "uploads",
                Key=self.backend.item_key("uploads", upload.upload_id),
                UpdateExpression="SET last_byte = :last, hash_state = :state, tail_size = :tail_size, "
                "s3_parts = :parts, part_count = part_count + :one"
                + (", multipart_id = :mp" if multipart_id else "")
                + (", tail_key = :tail_key" if tail_key else " REMOVE tail_key"),
                ConditionExpression="last_byte = :expected AND part_count < :max "
                "AND attribute_not_exists(completed_digest) AND attribute_not_exists(direct_size)",
                ExpressionAttributeValues=codec.values(
                    last=last_byte,
                    state=hash_state,
                    tail_size=tail_size,
                    one=1,
                    parts=[{"n": n, "etag": e} for n, e in parts],
                    expected=upload.last_byte,
                    max=max_parts,
                    **({"mp": multipart_id} if multipart_id else {}),
                    **({"tail_key": tail_key} if tail_key else {}),
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failure:
            if not _is_our_update(failure.old, last_byte, tail_key, multipart_id, parts):
                self.discard(tail_key, multipart_id if created_multipart else None, upload.object_key)
                raise _refused_part(failure.old, max_parts) from None
            # Our own update landed and botocore, having lost its response, sent it again: the
            # part is in. (Discarding here would delete the tail the upload now records.)
        self.discard(upload.tail_object_key, None, None)
        return last_byte

    def read_tail(self, upload: Upload) -> bytes:
        return self.backend.read_object(upload.tail_object_key) if upload.tail_object_key else b""

    def discard(self, tail_key: str | None, multipart_id: str | None, object_key: str | None) -> None:
        """Best effort: what is left behind expires by the bucket's lifecycle rules (and the sweep)."""
        try:
            if tail_key:
                self.backend.delete_object(tail_key)
            if multipart_id and object_key:
                self.backend.abort_multipart(object_key, multipart_id)
        except Exception:  # noqa: BLE001 - cleanup must never hide the real outcome
            pass

    def cancel(self, upload: Upload) -> None:
        """End an upload before it completes (the `/v2` API's DELETE): it takes no more parts, its
        staged bytes go; its item expires as every upload's does. UploadGone if already ended."""
        try:
            self.backend.write(
                "update_item",
                "uploads",
                Key=self.backend.item_key("uploads", upload.upload_id),
                UpdateExpression="SET completed_digest = :cancelled REMOVE hash_state",
                ConditionExpression="attribute_exists(upload_id) AND attribute_not_exists(completed_digest)",
                ExpressionAttributeValues=codec.values(cancelled=CANCELLED),
            )
        except ConditionFailed:
            raise UploadGone() from None
        self.discard(upload.tail_object_key, upload.multipart_id, upload.object_key)

    # --- direct uploads (the extension GetLayerPartUploadUrls) ------------------------------------

    def open_direct(self, upload: Upload, size: int) -> Upload:
        """Make `upload` direct, for a layer of `size` bytes, with its S3 multipart upload (opened
        once); the upload as it now stands. OtherUploadMode if it took UploadLayerPart bytes,
        UploadGone if it completed or went."""
        if upload.direct_size is not None:
            return upload
        if upload.last_byte >= 0:
            raise OtherUploadMode()
        multipart_id = self.backend.s3_call(
            "create_multipart_upload",
            Key=upload.object_key,
            ContentType="application/octet-stream",
            **sse_arguments(upload.encryption),
        )["UploadId"]
        try:
            self.backend.write(
                "update_item",
                "uploads",
                Key=self.backend.item_key("uploads", upload.upload_id),
                UpdateExpression="SET direct_size = :size, multipart_id = :mp",
                ConditionExpression="attribute_exists(upload_id) AND last_byte = :none "
                "AND attribute_not_exists(multipart_id) AND attribute_not_exists(completed_digest)",
                ExpressionAttributeValues=codec.values(size=size, mp=multipart_id, none=-1),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failure:
            old = failure.old
            if old is not None and old.get("multipart_id") == multipart_id:
                return upload_from_item(old)  # our own write, sent again by botocore
            self.discard(None, multipart_id, upload.object_key)
            if old is None or old.get("completed_digest"):
                raise UploadGone() from None
            if old.get("direct_size") is None:
                raise OtherUploadMode() from None
            return upload_from_item(old)  # a concurrent request made it direct first
        return replace(upload, direct_size=size, multipart_id=multipart_id)

    def part_upload_urls(self, upload: Upload, numbers: range, expires_seconds: int) -> dict[int, str]:
        """Presigned S3 UploadPart URLs of the direct upload's parts `numbers` (no other S3 call)."""
        return {
            n: self.backend.presigned(
                "upload_part", expires_seconds, Key=upload.object_key, UploadId=upload.multipart_id, PartNumber=n
            )
            for n in numbers
        }

    def direct_parts(self, upload: Upload) -> list[S3Part] | None:
        """The parts S3 holds for the direct upload, by number; None once its object is completed."""
        parts: list[S3Part] = []
        try:
            for page in self.backend.s3.get_paginator("list_parts").paginate(
                Bucket=self.backend.settings.bucket, Key=upload.object_key, UploadId=upload.multipart_id
            ):
                parts.extend(S3Part(p["PartNumber"], p["ETag"], p["Size"]) for p in page.get("Parts", []))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return None
            raise
        return sorted(parts, key=lambda p: p.number)

    def assemble_direct(self, upload: Upload) -> str:
        """Complete the direct upload's object from exactly the parts S3 lists, then hash it as it
        streams back (If-Match its ETag): its digest, "sha256:<hex>". DirectSizeMismatch if the
        parts are not 1..n making up the size it was opened for (nothing beyond that is ever read);
        PartsChanged if a part was replaced after the listing."""
        parts = self.direct_parts(upload)
        if parts is None:  # completed by an earlier attempt whose answer was lost
            head = self.backend.s3_call("head_object", Key=upload.object_key)
            if head["ContentLength"] != upload.direct_size:
                raise DirectSizeMismatch(head["ContentLength"])
            return self._object_digest(upload.object_key, head["ETag"])
        size = sum(p.size for p in parts)
        if size != upload.direct_size or [p.number for p in parts] != list(range(1, len(parts) + 1)):
            raise DirectSizeMismatch(size)
        try:
            completed = self.backend.s3_call(
                "complete_multipart_upload",
                Key=upload.object_key,
                UploadId=upload.multipart_id,
                MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in REPLACED_PART_CODES:
                raise PartsChanged() from None
            raise
        return self._object_digest(upload.object_key, completed["ETag"])

    def _object_digest(self, object_key: str, etag: str) -> str:
        body = self.backend.s3_call("get_object", Key=object_key, IfMatch=etag)["Body"]
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(HASH_CHUNK):
            digest.update(chunk)
        return "sha256:" + digest.hexdigest()

    # --- for the sweep ----------------------------------------------------------------------------

    def expired(self, cutoff: float) -> Iterator[Upload]:
        """Uploads of every registry whose expiry is before `cutoff`."""
        for item in self.backend.scan("uploads", "expires_at < :cutoff", codec.values(cutoff=cutoff)):
            yield upload_from_item(item)

    def delete_expired(self, upload_id: str, cutoff: float) -> bool:
        """Delete the upload's item if it still expires before `cutoff`; False if it changed."""
        try:
            self.backend.write(
                "delete_item",
                "uploads",
                Key=self.backend.item_key("uploads", upload_id),
                ConditionExpression="expires_at < :cutoff",
                ExpressionAttributeValues=codec.values(cutoff=cutoff),
            )
        except ConditionFailed:
            return False
        return True

    def staged_parts(self, upload_id: str | None = None) -> Iterator[tuple[str, float]]:
        """(object key, last modified) of staged tails: of one upload, or of all."""
        return self.backend.objects(staged_part_prefix(upload_id) if upload_id else STAGED_PARTS_PREFIX)

    def multipart_uploads(self) -> Iterator[tuple[str, str, float]]:
        """(object key, multipart id, initiated) of the S3 multipart uploads that become blobs."""
        return self.backend.multipart_uploads(BLOBS_PREFIX)

    def delete_object(self, object_key: str) -> None:
        self.backend.delete_object(object_key)

    def abort_multipart(self, object_key: str, multipart_id: str) -> None:
        self.backend.abort_multipart(object_key, multipart_id)


def _is_our_update(
    old: Item | None, last_byte: int, tail_key: str | None, multipart_id: str | None, parts: list[tuple[int, str]]
) -> bool:
    """Whether the upload item is exactly what our update_item wrote (the tail key is unique to
    this request; an S3 part's ETag is the MD5 of its bytes)."""
    return (
        old is not None
        and old.get("last_byte") == last_byte
        and old.get("tail_key") == tail_key
        and old.get("multipart_id") == multipart_id
        and [(p["n"], p["etag"]) for p in old.get("s3_parts") or ()] == list(parts)
    )


def _refused_part(old: Item | None, max_parts: int) -> Exception:
    if old is None or old.get("completed_digest"):
        return UploadGone()
    if old.get("direct_size") is not None:
        return OtherUploadMode()
    if old.get("part_count", 0) >= max_parts:
        return QuotaReached(Quota.LAYER_PARTS, max_parts)
    return PartOutOfOrder(old["last_byte"])
