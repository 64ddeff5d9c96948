"""The only package that talks to DynamoDB and S3. Operations see domain records and ECR errors.

`RegistryStore` groups one store per kind of record; all share the clients of one `Backend`.
The key schema is in `schema.py`; the conditions that guard each item are documented at the top
of the module that writes it.
"""

from __future__ import annotations

from ..config import Settings
from .backend import Backend, ConcurrentUpdate
from .images import ImageCommit, ImageStore, PushView, ReferencedByManifestList
from .keys import KeyStore
from .layers import LayerStore, PartOutOfOrder, UploadGone
from .repositories import RepositoryStore

__all__ = [
    "ConcurrentUpdate",
    "ImageCommit",
    "PartOutOfOrder",
    "PushView",
    "ReferencedByManifestList",
    "RegistryStore",
    "UploadGone",
]


class RegistryStore:
    def __init__(self, settings: Settings, session=None):
        self.settings = settings
        self.backend = Backend(settings, session)
        self.repositories = RepositoryStore(self.backend)
        self.images = ImageStore(self.backend, self.repositories)
        self.layers = LayerStore(self.backend, self.repositories)
        self.keys = KeyStore(
            self.backend.dynamodb, lambda: self.backend.kms, settings.tables["keys"], settings.keys_kms_key
        )

    def clients(self) -> list:
        """The boto3 clients in use, e.g. for the local runner's fault injection hooks."""
        return self.backend.clients()
