"""What happened to the data: the exceptions the stores raise.

They say what a conditional write or a read found, in the data's terms; the operations turn each
into the ECR error a caller sees, with ECR's wording (`registry.errors`). Nothing here is an API
error, and no store raises one.
"""

from __future__ import annotations

from ..records import Quota


class StorageError(Exception):
    """Base of what the stores raise about the data (not faults of the backend itself)."""


class ConcurrentUpdate(StorageError):
    """What we read changed before our conditional write landed: read again and decide again."""


class RepositoryGone(StorageError):
    """The repository does not exist, or is being deleted (it accepts no writer)."""

    def __init__(self, registry_id: str, name: str):
        super().__init__(registry_id, name)
        self.registry_id, self.name = registry_id, name


class RepositoryExists(StorageError):
    """CreateRepository found the name taken."""


class RepositoryNotEmpty(StorageError):
    """A deletion without force found images in the repository."""


class QuotaReached(StorageError):
    """A counter condition failed: the write would pass `limit` of `quota`."""

    def __init__(self, quota: Quota, limit: int):
        super().__init__(quota, limit)
        self.quota, self.limit = quota, limit


class ReferencedByManifestList(StorageError):
    """The image is a child of a manifest list or index in the repository."""


class LayerExists(StorageError):
    """The repository has a layer of this digest already."""


class UploadGone(StorageError):
    """The upload no longer accepts parts: completed, expired or never there."""


class PartOutOfOrder(StorageError):
    """Another request for this upload landed first: the part no longer follows the last byte."""

    def __init__(self, last_valid_byte: int):
        super().__init__(last_valid_byte)
        self.last_valid_byte = last_valid_byte


class PartsChanged(StorageError):
    """An S3 part of the upload was overwritten by a racing request: the bytes are not what we hashed."""


class OtherUploadMode(StorageError):
    """The upload already takes its bytes the other way (UploadLayerPart's parts, or direct S3 parts)."""


class DirectSizeMismatch(StorageError):
    """A direct upload's S3 parts do not make up the size it was opened for: `parts_size` bytes."""

    def __init__(self, parts_size: int):
        super().__init__(parts_size)
        self.parts_size = parts_size


class EncryptionKeyUnusable(StorageError):
    """KMS refused the repository's key (disabled, unknown, not ours to use)."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message)
        self.code, self.message = code, message


class EncryptionKeyNotAssigned(StorageError):
    """The KMS key is not one the registry may use: another registry's, unassigned, or no key at all
    (indistinguishable on purpose: a tenant learns nothing about keys that are not its own)."""


class BackendBusy(StorageError):
    """DynamoDB kept part of a request unprocessed (throttling) past our retries."""


class LifecyclePolicyChanged(StorageError):
    """The lifecycle policy a decision applied was replaced or deleted since it was read."""


class ImagesRemoved(StorageError):
    """An image or a tag left the repository since its images were read (its `removals` count moved):
    what a lifecycle run decided on that reading may no longer hold."""


class ImageChanged(StorageError):
    """The image is not as it was read: its tags changed, a manifest list references it, or it is gone."""


class TooBigToExpire(StorageError):
    """The image has more tags and referenced images than one transaction can delete with its conditions."""


class PreviewInProgress(StorageError):
    """The repository's lifecycle policy preview is still being computed."""


class PreviewSuperseded(StorageError):
    """The preview being computed is no longer the repository's in-progress one (completed by another
    computation, replaced, or its repository deleted)."""
