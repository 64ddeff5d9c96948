"""The only package that talks to DynamoDB and S3. Operations see domain records, and what
happened to the data as `storage.errors` (they make the ECR errors).

`RegistryStore` groups one store per kind of record; all share the clients of one `Backend`.
The key schema and the bucket's layout are in `schema.py`; the conditions that guard each item
are documented at the top of the module that writes it.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .access_keys import AccessKeyStore
from .backend import Backend, ClientFactory
from .errors import (
    BackendBusy,
    ConcurrentUpdate,
    DirectSizeMismatch,
    EncryptionKeyNotAssigned,
    EncryptionKeyUnusable,
    ImageChanged,
    ImagesRemoved,
    LayerExists,
    LifecyclePolicyChanged,
    OtherUploadMode,
    PartOutOfOrder,
    PartsChanged,
    PreviewInProgress,
    PreviewSuperseded,
    QuotaReached,
    ReferencedByManifestList,
    RepositoryExists,
    RepositoryGone,
    RepositoryNotEmpty,
    StorageError,
    TooBigToExpire,
    UploadGone,
)
from .images import ImageCommit, ImageStore, LifecycleView, ManifestPlace, PushView, StoredManifest
from .layers import BlobEntry, LayerEntry, LayerStore
from .lifecycle import LifecycleStore
from .repositories import RepositoryStore
from .signing import TokenKey
from .uploads import UploadStore

__all__ = [
    "BackendBusy",
    "BlobEntry",
    "ConcurrentUpdate",
    "DirectSizeMismatch",
    "EncryptionKeyNotAssigned",
    "EncryptionKeyUnusable",
    "ImageChanged",
    "ImageCommit",
    "ImagesRemoved",
    "LayerEntry",
    "LayerExists",
    "LifecyclePolicyChanged",
    "LifecycleView",
    "ManifestPlace",
    "OtherUploadMode",
    "PartOutOfOrder",
    "PartsChanged",
    "PreviewInProgress",
    "PreviewSuperseded",
    "PushView",
    "QuotaReached",
    "ReferencedByManifestList",
    "RegistryStore",
    "RepositoryExists",
    "RepositoryGone",
    "RepositoryNotEmpty",
    "StorageError",
    "StoredManifest",
    "TooBigToExpire",
    "UploadGone",
]


class RegistryStore:
    def __init__(self, settings: Settings, clients: ClientFactory | None = None):
        self.settings = settings
        self.backend = Backend(settings, clients)
        self.repositories = RepositoryStore(self.backend)
        self.images = ImageStore(self.backend, self.repositories)
        self.uploads = UploadStore(self.backend, self.repositories)
        self.layers = LayerStore(self.backend, self.repositories, self.uploads)
        self.lifecycle = LifecycleStore(self.backend, self.repositories)
        self.access_keys = AccessKeyStore(self.backend, settings.access_keys_kms_key)
        self.token_key = TokenKey(self.backend, settings.token_kms_key)

    def clients(self) -> list[Any]:
        """The boto3 clients in use, e.g. for the local runner's fault injection hooks."""
        return self.backend.clients()
