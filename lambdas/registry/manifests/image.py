"""Image manifests: Docker v2 schema 2 and OCI image manifest (OCI 1.1 artifacts included)."""

from __future__ import annotations

from typing import Any

from .common import Manifest, check_annotations, descriptor, invalid, optional_media_type, optional_subject


def parse_image_manifest(document: dict[str, Any], media_type: str) -> Manifest:
    if "manifests" in document:
        raise invalid(f"a {media_type} has no 'manifests' list")
    if "config" not in document:
        raise invalid("config is required")
    config = descriptor(document["config"], "config")
    raw_layers = document.get("layers")
    if not isinstance(raw_layers, list):
        raise invalid("layers must be a list")
    layers = tuple(descriptor(layer, f"layers[{i}]") for i, layer in enumerate(raw_layers))
    check_annotations(document)
    artifact_type = optional_media_type(document, "artifactType")
    return Manifest(
        media_type=media_type,
        blobs=(config, *(layer for layer in layers if not layer.foreign)),
        layers=layers,
        # ECR reports the artifact type, or the config's media type for images.
        artifact_media_type=artifact_type or config.media_type,
        subject_digest=optional_subject(document),
    )
