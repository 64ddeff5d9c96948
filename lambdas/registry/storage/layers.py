"""Layer uploads, per-repository layer availability and the per-registry blob index.

Bytes flow: UploadLayerPart stages a part as a small "tail" object until at least S3's minimum
part size (5 MiB) is pending, then sends tail + part as one part of an S3 multipart upload whose
key is the blob's final home. The upload item records every S3 part's ETag, so
CompleteMultipartUpload fails if any part was overwritten by a racing request: the object is
exactly the bytes we hashed.

    item                    condition (why)
    uploads/<id>  (part)    last_byte = the byte we read, part_count < quota, not completed:
                            parts are contiguous and a racing duplicate part loses
    blobs/<scope>/<digest>  attribute_not_exists: bytes are stored once per registry and key;
                            used_at stamped (blob_key unchanged) by every layer created on it
    layers/<repo>/<digest>  attribute_not_exists (LayerAlreadyExists) in one transaction with
                            the upload marked completed, the repository still live and the
                            blobs entry still naming the object (registry/sweep.py removes
                            entries no layer uses)
"""

from __future__ import annotations

import uuid

from botocore.exceptions import ClientError

from .. import errors
from ..model import Encryption, Layer, Repository, Upload
from . import codec
from .backend import Action, Backend, Cancelled, ConcurrentUpdate, sse_arguments
from .repositories import RepositoryStore

S3_MIN_PART = 5 * 1024 * 1024


def layer_from_item(item: dict) -> Layer:
    return Layer(
        digest=item["digest"], size=item["size"], blob_key=item["blob_key"], referenced=item.get("referenced", False)
    )


def upload_from_item(item: dict) -> Upload:
    return Upload(
        upload_id=item["upload_id"],
        repository_key=item["repository"],
        encryption=Encryption(item.get("encryption_type", "AES256"), item.get("kms_key")),
        last_byte=item["last_byte"],
        part_count=item["part_count"],
        hash_state=item.get("hash_state"),
        tail_key=item.get("tail_key"),
        tail_size=item.get("tail_size", 0),
        multipart_id=item.get("multipart_id"),
        blob_key=item["blob_key"],
        s3_parts=tuple((p["n"], p["etag"]) for p in item.get("s3_parts") or ()),
        completed_digest=item.get("completed_digest"),
        expires_at=item.get("expires_at"),
    )


class LayerStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore):
        self.backend = backend
        self.repositories = repositories

    # --- availability -----------------------------------------------------------------------------

    def get(self, repo: Repository, digests: list[str]) -> dict[str, Layer]:
        if not digests:
            return {}
        keys = [self.backend.key("layers", repo.key, d) for d in dict.fromkeys(digests)]
        return {i["digest"]: layer_from_item(i) for i in self.backend.batch_get({"layers": {"Keys": keys}})["layers"]}

    def download_url(self, layer: Layer) -> str:
        return self.backend.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.backend.settings.bucket, "Key": layer.blob_key},
            ExpiresIn=self.backend.settings.download_url_seconds,
        )

    def purge(self, repo: Repository) -> None:
        keys = [
            self.backend.key("layers", repo.key, i["digest"])
            for i in self.backend.query("layers", repo.key, projection="digest")
        ]
        self.backend.batch_delete("layers", keys)

    # --- uploads ----------------------------------------------------------------------------------

    def start_upload(self, repo: Repository, now: float) -> str:
        upload_id = str(uuid.uuid4())
        try:
            self.backend.dynamodb.put_item(
                TableName=self.backend.table("uploads"),
                Item=codec.item(
                    upload_id=upload_id,
                    repository=repo.key,
                    encryption_type=repo.encryption.type,
                    kms_key=repo.encryption.kms_key,
                    last_byte=-1,
                    part_count=0,
                    tail_size=0,
                    s3_parts=[],
                    blob_key=f"blobs/{repo.registry_id}/{repo.encryption.scope}/{upload_id}",
                    created_at=now,
                    expires_at=int(now) + self.backend.settings.upload_ttl_seconds,
                ),
                ConditionExpression="attribute_not_exists(upload_id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException as failure:
            # A fresh UUID is taken only by our own first attempt, whose response botocore lost
            # before retrying: the upload is there, as we wrote it.
            old = codec.plain(failure.response.get("Item")) or {}
            if old.get("repository") != repo.key or old.get("created_at") != now:
                raise
        return upload_id

    def get_upload(self, upload_id: str) -> Upload | None:
        item = self.backend.get("uploads", upload_id)
        return upload_from_item(item) if item else None

    def append_part(self, upload: Upload, part: bytes, hash_state: bytes, max_parts: int) -> int:
        """Stage `part` right after the upload's last byte; returns the new last byte."""
        pending = upload.tail_size + len(part)
        multipart_id, parts = upload.multipart_id, list(upload.s3_parts)
        created_multipart = False
        tail_key, tail_size = None, 0
        if pending >= S3_MIN_PART:
            body = self._read_tail(upload) + part
            if multipart_id is None:
                multipart_id = self.backend.s3_call(
                    "create_multipart_upload",
                    Key=upload.blob_key,
                    ContentType="application/octet-stream",
                    **sse_arguments(upload.encryption),
                )["UploadId"]
                created_multipart = True
            number = len(parts) + 1
            etag = self.backend.s3_call(
                "upload_part", Key=upload.blob_key, UploadId=multipart_id, PartNumber=number, Body=body
            )["ETag"]
            parts.append((number, etag))
        else:
            # A fresh key per state: a racing request can never overwrite the tail we recorded.
            tail_key = f"uploads/{upload.upload_id}/{upload.last_byte + 1 - upload.tail_size}-{uuid.uuid4().hex}"
            self.backend.s3_call(
                "put_object", Key=tail_key, Body=self._read_tail(upload) + part, **sse_arguments(upload.encryption)
            )
            tail_size = pending
        last_byte = upload.last_byte + len(part)
        try:
            self.backend.dynamodb.update_item(
                TableName=self.backend.table("uploads"),
                Key=self.backend.key("uploads", upload.upload_id),
                UpdateExpression="SET last_byte = :last, hash_state = :state, tail_size = :tail_size, "
                "s3_parts = :parts, part_count = part_count + :one"
                + (", multipart_id = :mp" if multipart_id else "")
                + (", tail_key = :tail_key" if tail_key else " REMOVE tail_key"),
                ConditionExpression="last_byte = :expected AND part_count < :max "
                "AND attribute_not_exists(completed_digest)",
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
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException as failure:
            old = codec.plain(failure.response.get("Item"))
            if not _is_our_update(old, last_byte, tail_key, multipart_id, parts):
                self._discard(tail_key, multipart_id if created_multipart else None, upload.blob_key)
                raise _refused_part(old, max_parts) from None
            # Our own update landed and botocore, having lost its response, sent it again: the
            # part is in. (Discarding here would delete the tail the upload now records.)
        self._discard(upload.tail_key, None, None)
        return last_byte

    def _read_tail(self, upload: Upload) -> bytes:
        if not upload.tail_key:
            return b""
        return self.backend.s3_call("get_object", Key=upload.tail_key)["Body"].read()

    def _discard(self, tail_key: str | None, multipart_id: str | None, blob_key: str | None) -> None:
        """Best effort: what is left behind expires by the bucket's lifecycle rules."""
        try:
            if tail_key:
                self.backend.s3_call("delete_object", Key=tail_key)
            if multipart_id:
                self.backend.s3_call("abort_multipart_upload", Key=blob_key, UploadId=multipart_id)
        except Exception:  # noqa: BLE001 - cleanup must never hide the real outcome
            pass

    def complete(self, repo: Repository, upload: Upload, digest: str, now: float) -> Layer:
        """Make the verified bytes of `upload` available in `repo` as layer `digest`.

        The transaction also stamps `used_at` on the `blobs` entry, on the condition that the entry
        still names the object the layer will use: the sweep (registry/sweep.py) deletes an entry
        only if no layer uses it AND its used_at is older than the sweep's grace period, so a layer
        can never be created on an entry (and object) the sweep is removing."""
        scope = f"{repo.registry_id}/{upload.encryption.scope}"
        size = upload.last_byte + 1
        existing = self.backend.get("blobs", scope, digest)
        if existing:  # the registry has these bytes already: keep one copy (ours goes afterwards)
            blob_key = existing["blob_key"]
        else:
            self._finish_object(upload)
            blob_key = self._register_blob(scope, digest, upload.blob_key, size, now)
        layer = Layer(digest=digest, size=size, blob_key=blob_key)
        try:
            self.backend.transact(
                [
                    Action(
                        "layer",
                        {
                            "Put": {
                                "TableName": self.backend.table("layers"),
                                "Item": codec.item(
                                    repository=repo.key, digest=digest, size=size, blob_key=blob_key, created_at=now
                                ),
                                "ConditionExpression": "attribute_not_exists(digest)",
                            }
                        },
                    ),
                    Action(
                        "upload",
                        {
                            "Update": {
                                "TableName": self.backend.table("uploads"),
                                "Key": self.backend.key("uploads", upload.upload_id),
                                "UpdateExpression": "SET completed_digest = :d REMOVE hash_state",
                                "ConditionExpression": "last_byte = :last AND attribute_not_exists(completed_digest)",
                                "ExpressionAttributeValues": codec.values(d=digest, last=upload.last_byte),
                            }
                        },
                    ),
                    Action("repository", self.repositories.live_condition(repo)),
                    Action(
                        "blob",
                        {
                            "Update": {
                                "TableName": self.backend.table("blobs"),
                                "Key": self.backend.key("blobs", scope, digest),
                                "UpdateExpression": "SET used_at = :now",
                                "ConditionExpression": "blob_key = :key",
                                "ExpressionAttributeValues": codec.values(now=now, key=blob_key),
                            }
                        },
                    ),
                ]
            )
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            if cancelled.reason("layer"):
                raise errors.LayerAlreadyExistsException(_already_exists(repo, digest)) from None
            if cancelled.reason("upload"):
                raise errors.UploadNotFoundException(
                    f"Upload with id '{upload.upload_id}' was not found or is already complete"
                ) from None
            raise ConcurrentUpdate() from None  # the repository or the blob entry changed: read again
        if blob_key != upload.blob_key:
            # Only now: had the transaction failed, the retry might have needed our own bytes.
            self._discard(upload.tail_key, upload.multipart_id, upload.blob_key)
            self._discard_object(upload.blob_key)  # a multipart upload an earlier attempt completed
        else:
            self._discard(upload.tail_key, None, None)
        return layer

    def finish_abandoned(self, upload: Upload, digest: str | None) -> None:
        """Close an upload whose layer already exists: mark it completed, drop its bytes."""
        try:
            self.backend.dynamodb.update_item(
                TableName=self.backend.table("uploads"),
                Key=self.backend.key("uploads", upload.upload_id),
                UpdateExpression="SET completed_digest = :d REMOVE hash_state",
                ConditionExpression="attribute_not_exists(completed_digest)",
                ExpressionAttributeValues=codec.values(d=digest or "abandoned"),
            )
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException:
            return
        self._discard(upload.tail_key, upload.multipart_id, upload.blob_key)

    def _finish_object(self, upload: Upload) -> None:
        """Turn the staged parts into the blob object at upload.blob_key."""
        if upload.multipart_id is None:  # smaller than one S3 part: the tail is the whole blob
            self.backend.s3_call(
                "copy_object",
                Key=upload.blob_key,
                CopySource={"Bucket": self.backend.settings.bucket, "Key": upload.tail_key},
                **sse_arguments(upload.encryption),
            )
            return
        parts = [{"PartNumber": n, "ETag": e} for n, e in upload.s3_parts]
        try:
            if upload.tail_key:  # the last part may be smaller than 5 MiB; copied inside S3
                number = len(parts) + 1
                copied = self.backend.s3_call(
                    "upload_part_copy",
                    Key=upload.blob_key,
                    UploadId=upload.multipart_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.backend.settings.bucket, "Key": upload.tail_key},
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self.backend.s3_call(
                "complete_multipart_upload",
                Key=upload.blob_key,
                UploadId=upload.multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("InvalidPart", "InvalidPartOrder"):  # a part was overwritten by a racing request
                raise errors.InvalidLayerException(
                    "The uploaded parts changed while the upload was in progress; upload the layer again"
                ) from None
            # An earlier attempt may have completed the multipart upload (its response was lost, or
            # it stopped before registering the object): S3 answers NoSuchUpload (moto: a 500).
            # Then the object is there with every byte: its key belongs to this upload alone.
            if not self._completed_before(upload):
                raise

    def _completed_before(self, upload: Upload) -> bool:
        try:
            head = self.backend.s3_call("head_object", Key=upload.blob_key)
        except ClientError:
            return False
        return head.get("ContentLength") == upload.last_byte + 1

    def _register_blob(self, scope: str, digest: str, blob_key: str, size: int, now: float) -> str:
        try:
            self.backend.dynamodb.put_item(
                TableName=self.backend.table("blobs"),
                Item=codec.item(scope=scope, digest=digest, blob_key=blob_key, size=size, used_at=now),
                ConditionExpression="attribute_not_exists(digest)",
            )
            return blob_key
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException:
            winner = self.backend.get("blobs", scope, digest)
            if winner is None:  # registered and already swept again: read again, decide again
                raise ConcurrentUpdate() from None
            if winner["blob_key"] != blob_key:
                self._discard_object(blob_key)
            return winner["blob_key"]

    def _discard_object(self, key: str) -> None:
        try:
            self.backend.s3_call("delete_object", Key=key)
        except Exception:  # noqa: BLE001
            pass


def _already_exists(repo: Repository, digest: str) -> str:
    return (
        f"The layer with digest '{digest}' already exists in the repository with name "
        f"'{repo.name}' in registry with id '{repo.registry_id}'"
    )


def _is_our_update(
    old: dict | None, last_byte: int, tail_key: str | None, multipart_id: str | None, parts: list[tuple[int, str]]
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


def _refused_part(old: dict | None, max_parts: int) -> Exception:
    if old is None or old.get("completed_digest"):
        return UploadGone()
    if old.get("part_count", 0) >= max_parts:
        return errors.LimitExceededException(f"The upload has reached the limit of {max_parts} layer parts")
    return PartOutOfOrder(old["last_byte"])


class UploadGone(Exception):
    """The upload no longer accepts parts (completed or expired)."""


class PartOutOfOrder(Exception):
    def __init__(self, last_valid_byte: int):
        super().__init__(last_valid_byte)
        self.last_valid_byte = last_valid_byte
