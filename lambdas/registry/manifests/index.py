"""Manifest lists: Docker manifest list and OCI image index."""

from __future__ import annotations

from typing import Any

from .common import Manifest, check_annotations, descriptor, invalid, optional_media_type, optional_subject


def parse_index(document: dict[str, Any], media_type: str) -> Manifest:
    if "config" in document or "layers" in document:
        raise invalid(f"a {media_type} has no config or layers")
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise invalid("manifests must be a list")
    children = tuple(descriptor(entry, f"manifests[{i}]") for i, entry in enumerate(entries))
    for i, entry in enumerate(entries):
        platform = entry.get("platform")
        if platform is not None and not (
            isinstance(platform, dict)
            and isinstance(platform.get("architecture"), str)
            and isinstance(platform.get("os"), str)
        ):
            raise invalid(f"manifests[{i}].platform needs architecture and os strings")
    check_annotations(document)
    return Manifest(
        media_type=media_type,
        children=children,
        artifact_media_type=optional_media_type(document, "artifactType"),
        subject_digest=optional_subject(document),
    )
