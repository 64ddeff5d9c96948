"""Manifest kinds: one parser per media type behind one interface.

`parse` checks that the bytes are a valid instance of their media type and says what the manifest
references: blobs that must be uploaded to the repository (`blobs`) or images that must already be
in it (`children`). Adding a media type is one parser and one entry in PARSERS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn

from ..errors import InvalidParameterException
from .common import Manifest, invalid
from .image import parse_image_manifest
from .index import parse_index

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

PARSERS: dict[str, Callable[[dict[str, Any], str], Manifest]] = {
    DOCKER_MANIFEST: parse_image_manifest,
    OCI_MANIFEST: parse_image_manifest,
    DOCKER_MANIFEST_LIST: parse_index,
    OCI_INDEX: parse_index,
}

__all__ = ["PARSERS", "Manifest", "parse"]


def parse(text: str, declared_media_type: str | None) -> Manifest:
    """Parse `imageManifest` as sent; the bytes themselves are never re-serialized."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # RecursionError: nesting too deep, still the caller's input
        raise invalid("Invalid JSON syntax") from None
    if not isinstance(document, dict):
        raise invalid("Invalid JSON syntax")
    media_type = _media_type(document, declared_media_type)
    parser = PARSERS.get(media_type)
    if parser is None:
        raise InvalidParameterException(
            f"Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            f"'unsupported manifest media type {media_type!r}'"
        )
    schema_version = document.get("schemaVersion")
    if type(schema_version) is not int or schema_version != 2:  # not True, not 2.0: the integer 2
        raise invalid("schemaVersion must be 2")
    return parser(document, media_type)


def _media_type(document: dict[str, Any], declared: str | None) -> str:
    field = document.get("mediaType")
    if field is not None and not isinstance(field, str):
        raise invalid("mediaType must be a string")
    if declared and field and declared != field:
        raise InvalidParameterException(
            f"Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            f"'{declared} does not match the manifest mediaType {field!r}'"
        )
    media_type = declared or field
    if not media_type:
        raise invalid("the manifest has no mediaType and imageManifestMediaType was not given")
    return media_type


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)
