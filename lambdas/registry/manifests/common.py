"""What every manifest kind shares: descriptors and the parsed result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterException

# OCI image-spec descriptor digest grammar, plus the encoded lengths of the registered algorithms.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
# A digest of an unregistered algorithm has no length of its own: bounded so that it always fits a
# DynamoDB key and item (sha512's digest has 135 characters).
MAX_DIGEST_LENGTH = 255
# The OCI descriptor's size is an int64; beyond it a size is meaningless (and no DynamoDB number).
MAX_SIZE = 2**63 - 1
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def invalid(reason: str) -> InvalidParameterException:
    return InvalidParameterException(f"Invalid parameter at 'ImageManifest' failed to satisfy constraint: '{reason}'")


def is_digest(value: object) -> bool:
    if not isinstance(value, str) or len(value) > MAX_DIGEST_LENGTH or not _DIGEST.fullmatch(value):
        return False
    algorithm, _, encoded = value.partition(":")
    rule = _ENCODED.get(algorithm)
    return rule is None or rule.fullmatch(encoded) is not None


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @property
    def foreign(self) -> bool:
        """Non-distributable layers live elsewhere (`urls`) and are never uploaded to us."""
        return bool(self.urls)


def descriptor(value: object, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise invalid(f"{where}.mediaType must be a media type")
    if not is_digest(digest):
        raise invalid(f"{where}.digest must be a digest")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise invalid(f"{where}.size must be an integer from 0 to 2^63-1")
    urls = value.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise invalid(f"{where}.urls must be a list of strings")
    if "annotations" in value and not _string_map(value["annotations"]):
        raise invalid(f"{where}.annotations must be a map of strings")
    return Descriptor(media_type, str(digest), size, tuple(urls))


def optional_subject(document: dict[str, Any]) -> str | None:
    """OCI 1.1 referrers: a subject need not exist in the repository (the registry accepts it)."""
    if "subject" not in document:
        return None
    return descriptor(document["subject"], "subject").digest


def optional_media_type(document: dict[str, Any], name: str) -> str | None:
    """An optional media type member (`artifactType`): OCI requires RFC 6838 syntax when present."""
    value = document.get(name)
    if value is not None and not (isinstance(value, str) and _MEDIA_TYPE.fullmatch(value)):
        raise invalid(f"{name} must be a media type")
    return value


def check_annotations(document: dict[str, Any]) -> None:
    if "annotations" in document and not _string_map(document["annotations"]):
        raise invalid("annotations must be a map of strings")


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


@dataclass(frozen=True)
class Manifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()  # config and distributable layers: must be in the repository
    layers: tuple[Descriptor, ...] = ()  # every layer, foreign ones included (for the image size)
    children: tuple[Descriptor, ...] = ()  # images a list/index references: must be in the repository
    artifact_media_type: str | None = None
    subject_digest: str | None = None

    @property
    def blob_digests(self) -> list[str]:
        return list(dict.fromkeys(d.digest for d in self.blobs))

    @property
    def child_digests(self) -> list[str]:
        return list(dict.fromkeys(d.digest for d in self.children))
