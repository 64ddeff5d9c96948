"""Manifests and descriptors as the OCI image spec and Docker's schema 2 define them, and the walk
over an image's manifests that push and pull share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import DigestMismatch, SourceError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed, as `docker save` holds layers
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, *INDEX_TYPES)
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or len(hex_part) != 64:
        raise SourceError(f"unsupported digest {digest!r}: only sha256 is")
    return hex_part


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    foreign: bool = False  # `urls` set: the blob lives elsewhere and is never pushed

    @classmethod
    def read(cls, value: Any, where: str) -> Descriptor:
        try:
            return cls(
                media_type=str(value["mediaType"]),
                digest=str(value["digest"]),
                size=int(value["size"]),
                platform=value.get("platform"),
                annotations=dict(value.get("annotations") or {}),
                foreign=bool(value.get("urls")),
            )
        except (KeyError, TypeError, ValueError):
            raise SourceError(f"{where}: malformed descriptor {value!r}") from None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            document["platform"] = self.platform
        if self.annotations:
            document["annotations"] = self.annotations
        return document


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes (its digest is theirs) and its media type."""

    data: bytes
    media_type: str

    @classmethod
    def parse(cls, data: bytes, media_type: str | None, where: str) -> Manifest:
        try:
            document = json.loads(data)
        except ValueError:
            raise SourceError(f"{where}: the manifest is not JSON") from None
        if not isinstance(document, dict):
            raise SourceError(f"{where}: the manifest is not a JSON object")
        declared = document.get("mediaType") or media_type
        kind = declared or (OCI_INDEX if "manifests" in document else OCI_MANIFEST)
        if kind not in MANIFEST_TYPES:
            raise SourceError(f"{where}: unsupported manifest media type {kind!r}")
        return cls(data, kind)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.data)  # type: ignore[no-any-return]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def descriptor(self, **extra: Any) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data), **extra)

    def children(self) -> list[Descriptor]:
        """An index's manifests (an image manifest has none)."""
        if not self.is_index:
            return []
        return [Descriptor.read(m, f"manifest {self.digest}") for m in self.document.get("manifests") or []]

    def blobs(self) -> list[Descriptor]:
        """An image manifest's config and layers that live in the registry (foreign layers do not)."""
        if self.is_index:
            return []
        document = self.document
        where = f"manifest {self.digest}"
        if "config" not in document:
            raise SourceError(f"{where}: no config")
        layers = [Descriptor.read(layer, where) for layer in document.get("layers") or []]
        return [Descriptor.read(document["config"], where), *(layer for layer in layers if not layer.foreign)]


def verified(data: bytes, expected: str, where: str) -> bytes:
    if sha256_digest(data) != expected:
        raise DigestMismatch(f"{where}: the bytes hash to {sha256_digest(data)}, not {expected}")
    return data


def walk(root: Manifest, fetch: Callable[[Descriptor], Manifest]) -> list[Manifest]:
    """Every manifest of the image, children before the index that names them (the push order)."""
    ordered: list[Manifest] = []
    for child in root.children():
        ordered.extend(walk(fetch(child), fetch))
    ordered.append(root)
    return ordered


def unique_blobs(manifests: Iterable[Manifest]) -> list[Descriptor]:
    found: dict[str, Descriptor] = {}
    for manifest in manifests:
        for blob in manifest.blobs():
            found.setdefault(blob.digest, blob)
    return list(found.values())


def platform_name(platform: dict[str, Any] | None) -> str:
    if not platform:
        return "unknown"
    parts = [platform.get("os", "?"), platform.get("architecture", "?"), platform.get("variant")]
    return "/".join(p for p in parts if p)
