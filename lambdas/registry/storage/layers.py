"""Per-repository layer availability and the per-registry blob index.

item                    condition (why)
blobs/<scope>/<digest>  attribute_not_exists: bytes are stored once per registry and key;
                        used_at stamped (blob_key unchanged) by every layer created on it
layers/<repo>/<digest>  attribute_not_exists (LayerExists) in one transaction with the
                        upload marked completed, the repository still live and the blobs
                        entry still naming the object (the sweep removes entries no layer uses)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..records import Layer, Repository, Upload, repository_partition
from . import codec
from .backend import Action, Backend, Cancelled, ConditionFailed, Item, action, sse_arguments
from .errors import ConcurrentUpdate, LayerExists, PartsChanged, UploadGone
from .repositories import RepositoryStore, with_policy
from .schema import BLOBS_PREFIX, blob_scope
from .uploads import UploadStore

SIZE = {"#size": "size"}  # a reserved word of DynamoDB's expressions
NEVER_REFERENCED = "attribute_not_exists(referenced) OR referenced = :no"
# A push claims layers that do not fit its transaction before it commits (storage/images.py): no
# sweep may take a layer claimed within its grace period.
NOT_CLAIMED_SINCE = "attribute_not_exists(claimed_at) OR claimed_at < :cutoff"


def layer_from_item(item: Item) -> Layer:
    return Layer(
        digest=item["digest"], size=item["size"], object_key=item["blob_key"], referenced=item.get("referenced", False)
    )


@dataclass(frozen=True)
class LayerEntry:
    """A layer item as the sweep judges it."""

    repository_partition: str
    digest: str
    object_key: str
    created_at: float | None  # None: written before the sweep existed (stamped at its first run)
    claimed_at: float | None = None  # last claimed by a push too big for one transaction
    claimants: frozenset[str] = frozenset()  # the images those pushes were creating


@dataclass(frozen=True)
class BlobEntry:
    """An entry of the blob index: the one object holding a digest's bytes for a registry and key."""

    scope: str
    digest: str
    object_key: str
    used_at: float | None  # last time a layer was created on it (None: from before the sweep)


class LayerStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore, uploads: UploadStore):
        self.backend = backend
        self.repositories = repositories
        self.uploads = uploads

    # --- availability -----------------------------------------------------------------------------

    def get(self, repo: Repository, digests: list[str]) -> dict[str, Layer]:
        if not digests:
            return {}
        keys = [self.backend.item_key("layers", repo.partition, d) for d in dict.fromkeys(digests)]
        return {i["digest"]: layer_from_item(i) for i in self.backend.batch_get({"layers": {"Keys": keys}})["layers"]}

    def find(self, registry_id: str, name: str, digest: str) -> tuple[Repository | None, Layer | None, str | None]:
        """The live repository, its layer `digest` and its policy's text, in one read (a pull asks
        this for every blob)."""
        found = self.backend.batch_get(
            {
                "repositories": {"Keys": self.repositories.keys_with_policy(registry_id, name)},
                "layers": {"Keys": [self.backend.item_key("layers", repository_partition(registry_id, name), digest)]},
            }
        )
        layers = found["layers"]
        repo, policy_text = with_policy(found["repositories"], name)
        return repo, layer_from_item(layers[0]) if layers else None, policy_text

    def download_url(self, layer: Layer, head: bool = False) -> str:
        """A presigned URL of the layer's bytes: for GET, or (`head`) for HEAD."""
        method = "head_object" if head else "get_object"
        return self.backend.presigned_get(layer.object_key, self.backend.settings.download_url_seconds, method)

    def purge(self, repo: Repository) -> None:
        keys = [
            self.backend.item_key("layers", repo.partition, i["digest"])
            for i in self.backend.query("layers", repo.partition, projection="digest")
        ]
        self.backend.batch_delete("layers", keys)

    # --- CompleteLayerUpload ----------------------------------------------------------------------

    def complete(self, repo: Repository, upload: Upload, digest: str, now: float) -> Layer:
        """Make the verified bytes of `upload` available in `repo` as layer `digest`.

        The transaction also stamps `used_at` on the `blobs` entry, on the condition that the entry
        still names the object the layer will use: the sweep deletes an entry only if no layer
        uses it AND its used_at is older than the sweep's grace period, so a layer can never be
        created on an entry (and object) the sweep is removing."""
        scope = blob_scope(repo.registry_id, upload.encryption.scope)
        size = upload.last_byte + 1 if upload.direct_size is None else upload.direct_size
        existing = self.backend.get("blobs", scope, digest)
        if existing:  # the registry has these bytes already: keep one copy (ours goes afterwards)
            object_key = existing["blob_key"]
        else:
            if upload.direct_size is None:  # a direct upload's object is complete (and hashed) already
                self._finish_object(upload)
            object_key = self._register_blob(scope, digest, upload.object_key, size, now)
        layer = Layer(digest=digest, size=size, object_key=object_key)
        try:
            self.backend.transact(
                [
                    self._new_layer(repo, layer, now),
                    action(
                        "upload",
                        "Update",
                        self.backend.table("uploads"),
                        key=self.backend.item_key("uploads", upload.upload_id),
                        update="SET completed_digest = :d REMOVE hash_state",
                        condition="last_byte = :last AND attribute_not_exists(completed_digest)",
                        values=codec.values(d=digest, last=upload.last_byte),
                    ),
                    self.repositories.guard(repo),
                    self._blob_used(scope, layer, now),
                ]
            )
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            if cancelled.reason("layer"):
                raise LayerExists() from None
            if cancelled.reason("upload"):
                raise UploadGone() from None
            raise ConcurrentUpdate() from None  # the repository or the blob entry changed: read again
        if object_key != upload.object_key:
            # Only now: had the transaction failed, the retry might have needed our own bytes.
            self.uploads.discard(upload.tail_object_key, upload.multipart_id, upload.object_key)
            self._discard_object(upload.object_key)  # a multipart upload an earlier attempt completed
        else:
            self.uploads.discard(upload.tail_object_key, None, None)
        return layer

    def _finish_object(self, upload: Upload) -> None:
        """Turn the staged parts into the blob object at upload.object_key."""
        bucket = self.backend.settings.bucket
        if upload.multipart_id is None:  # smaller than one S3 part: the tail is the whole blob
            self.backend.s3_call(
                "copy_object",
                Key=upload.object_key,
                CopySource={"Bucket": bucket, "Key": upload.tail_object_key},
                **sse_arguments(upload.encryption),
            )
            return
        parts = [{"PartNumber": n, "ETag": e} for n, e in upload.s3_parts]
        try:
            if upload.tail_object_key:  # the last part may be smaller than 5 MiB; copied inside S3
                number = len(parts) + 1
                copied = self.backend.s3_call(
                    "upload_part_copy",
                    Key=upload.object_key,
                    UploadId=upload.multipart_id,
                    PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": upload.tail_object_key},
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self.backend.s3_call(
                "complete_multipart_upload",
                Key=upload.object_key,
                UploadId=upload.multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("InvalidPart", "InvalidPartOrder"):  # a part was overwritten by a racing request
                raise PartsChanged() from None
            # An earlier attempt may have completed the multipart upload (its response was lost, or
            # it stopped before registering the object): S3 answers NoSuchUpload (moto: a 500).
            # Then the object is there with every byte: its key belongs to this upload alone.
            if not self._completed_before(upload):
                raise

    def _completed_before(self, upload: Upload) -> bool:
        try:
            head = self.backend.s3_call("head_object", Key=upload.object_key)
        except ClientError:
            return False
        return bool(head.get("ContentLength") == upload.last_byte + 1)

    def _register_blob(self, scope: str, digest: str, object_key: str, size: int, now: float) -> str:
        try:
            self.backend.write(
                "put_item",
                "blobs",
                Item=codec.item(scope=scope, digest=digest, blob_key=object_key, size=size, used_at=now),
                ConditionExpression="attribute_not_exists(digest)",
            )
            return object_key
        except ConditionFailed:
            winner = self.backend.get("blobs", scope, digest)
            if winner is None:  # registered and already swept again: read again, decide again
                raise ConcurrentUpdate() from None
            if winner["blob_key"] != object_key:
                self._discard_object(object_key)
            winning_key: str = winner["blob_key"]
            return winning_key

    def _discard_object(self, object_key: str) -> None:
        try:
            self.backend.delete_object(object_key)
        except Exception:  # noqa: BLE001 - best effort: the sweep reclaims objects nothing names
            pass

    # --- cross-repository mount (the `/v2` API) ---------------------------------------------------

    def mount(self, repo: Repository, source: Layer, now: float) -> Layer:
        """Make a layer of another repository of the registry available in `repo`, on the same
        bytes: no upload. LayerExists if `repo` has it already; ConcurrentUpdate if the bytes'
        entry changed (read again). Only within one encryption scope: the blob entry must be the
        one `repo`'s uploads would use."""
        scope = blob_scope(repo.registry_id, repo.encryption.scope)
        try:
            self.backend.transact(
                [self._new_layer(repo, source, now), self.repositories.guard(repo), self._blob_used(scope, source, now)]
            )
        except Cancelled as cancelled:
            if not cancelled.conflict and cancelled.reason("layer"):
                raise LayerExists() from None
            raise ConcurrentUpdate() from None
        return Layer(digest=source.digest, size=source.size, object_key=source.object_key)

    def _new_layer(self, repo: Repository, layer: Layer, now: float) -> Action:
        """The repository's entry for a layer it did not have."""
        item = codec.item(
            repository=repo.partition, digest=layer.digest, size=layer.size, blob_key=layer.object_key, created_at=now
        )
        return action("layer", "Put", self.backend.table("layers"), item=item, condition="attribute_not_exists(digest)")

    def _blob_used(self, scope: str, layer: Layer, now: float) -> Action:
        """Stamp the stored bytes as used now, if they are still the object the layer names."""
        return action(
            "blob",
            "Update",
            self.backend.table("blobs"),
            key=self.backend.item_key("blobs", scope, layer.digest),
            update="SET used_at = :now",
            condition="blob_key = :key",
            values=codec.values(now=now, key=layer.object_key),
        )

    # --- for the sweep ----------------------------------------------------------------------------

    def never_referenced(self) -> Iterator[LayerEntry]:
        """Layers of every repository that no image has referenced."""
        for item in self.backend.scan("layers", NEVER_REFERENCED, codec.values(no=False)):
            yield _layer_entry(item)

    def entries(self) -> Iterator[LayerEntry]:
        """Every layer of every repository (its key and object only)."""
        for item in self.backend.scan("layers", projection="repository, digest, blob_key"):
            yield _layer_entry(item)

    def stamp_created(self, layer: LayerEntry, now: float) -> None:
        """Give a layer from before the sweep existed the creation time it is judged by."""
        self._stamp(
            "layers", self.backend.item_key("layers", layer.repository_partition, layer.digest), "created_at", now
        )

    def delete_never_referenced(self, layer: LayerEntry, cutoff: float) -> bool:
        """Delete the layer if it is still unreferenced, created before `cutoff` and not claimed since;
        False if not."""
        return self._delete_if(
            "layers",
            self.backend.item_key("layers", layer.repository_partition, layer.digest),
            f"({NEVER_REFERENCED}) AND created_at < :cutoff AND ({NOT_CLAIMED_SINCE})",
            codec.values(no=False, cutoff=cutoff),
        )

    def mark_referenced(self, layer: LayerEntry) -> None:
        """Finish what a push left undone: its image exists, and uses this layer."""
        try:
            self.backend.write(
                "update_item",
                "layers",
                Key=self.backend.item_key("layers", layer.repository_partition, layer.digest),
                UpdateExpression="SET referenced = :yes REMOVE claimed_at, claimants",
                ConditionExpression="attribute_exists(digest)",
                ExpressionAttributeValues=codec.values(yes=True),
            )
        except ConditionFailed:
            pass  # gone meanwhile (its repository deleted)

    def blob_entries(self) -> Iterator[BlobEntry]:
        for item in self.backend.scan("blobs"):
            yield BlobEntry(item["scope"], item["digest"], item["blob_key"], item.get("used_at"))

    def stamp_blob_used(self, blob: BlobEntry, now: float) -> None:
        self._stamp("blobs", self.backend.item_key("blobs", blob.scope, blob.digest), "used_at", now)

    def delete_unused_blob(self, blob: BlobEntry, cutoff: float) -> bool:
        """Delete the entry if last used before `cutoff` and still naming its object; False if not.
        Its object is the caller's to delete (it judged that no layer names it)."""
        return self._delete_if(
            "blobs",
            self.backend.item_key("blobs", blob.scope, blob.digest),
            "used_at < :cutoff AND blob_key = :key",
            codec.values(cutoff=cutoff, key=blob.object_key),
        )

    # --- usage (the sweep reports it) ------------------------------------------------------------

    def stored_bytes(self, repo: Repository) -> int:
        """The bytes of every layer available in `repo`: what it stores as if alone (a layer whose
        bytes other repositories of the registry share counts in each of them)."""
        return sum(i["size"] for i in self.backend.query("layers", repo.partition, projection="#size", names=SIZE))

    def registry_stored_bytes(self, registry_id: str, encryption_scopes: Iterable[str]) -> int:
        """The bytes the registry stores under these encryption scopes: each blob object once (the
        blob index has one entry per object), however many repositories' layers use it."""
        return sum(
            i["size"]
            for scope in encryption_scopes
            for i in self.backend.query("blobs", blob_scope(registry_id, scope), projection="#size", names=SIZE)
        )

    def blob_objects(self) -> Iterator[tuple[str, float]]:
        """(object key, last modified) of every blob object."""
        return self.backend.objects(BLOBS_PREFIX)

    def delete_object(self, object_key: str) -> None:
        self.backend.delete_object(object_key)

    def _stamp(self, logical: str, key: dict[str, Any], attribute: str, now: float) -> None:
        try:
            self.backend.write(
                "update_item",
                logical,
                Key=key,
                UpdateExpression="SET #a = :now",
                ConditionExpression="attribute_exists(#k) AND attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": attribute, "#k": next(iter(key))},
                ExpressionAttributeValues=codec.values(now=now),
            )
        except ConditionFailed:
            pass  # gone, or stamped meanwhile

    def _delete_if(self, logical: str, key: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
        try:
            self.backend.write(
                "delete_item", logical, Key=key, ConditionExpression=condition, ExpressionAttributeValues=values
            )
        except ConditionFailed:
            return False  # it changed since it was judged: it stays
        return True


def _layer_entry(item: Item) -> LayerEntry:
    return LayerEntry(
        item["repository"],
        item["digest"],
        item["blob_key"],
        item.get("created_at"),
        item.get("claimed_at"),
        frozenset(item.get("claimants") or ()),
    )
