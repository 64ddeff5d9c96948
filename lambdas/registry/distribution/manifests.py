"""Manifests: GET and HEAD by tag or digest (BatchGetImage), PUT (PutImage: one function for the
rules, whichever API called it), DELETE (BatchDeleteImage)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .. import errors, manifests
from ..manifests.common import is_digest
from ..operations import images
from ..records import is_tag
from . import http
from .exchange import Exchange

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def _image_id(reference: str) -> dict[str, str]:
    if is_digest(reference):
        return {"imageDigest": reference}
    if is_tag(reference):
        return {"imageTag": reference}
    raise http.OciError("TAG_INVALID", f"Invalid tag or digest {reference[:300]!r}", 400)


def _accepted(accept: str | None) -> list[str] | None:
    """The media types an Accept header names (BatchGetImage's acceptedMediaTypes); None: any."""
    if not accept:
        return None
    types = [part.split(";", 1)[0].strip() for part in accept.split(",")]
    if "*/*" in types:
        return None
    named = list(dict.fromkeys(t for t in types if _MEDIA_TYPE.fullmatch(t)))
    return named[:100] or None


def _fetch(x: Exchange) -> dict[str, Any]:
    params: dict[str, Any] = {"repositoryName": x.name, "imageIds": [_image_id(x.route.reference)]}
    accepted = _accepted(",".join(x.request.header_values.get("accept", [])))  # docker sends one header per type
    if accepted:
        params["acceptedMediaTypes"] = accepted
    found = x.call("BatchGetImage", images.batch_get_image, params)
    if not found["images"]:
        reason = found["failures"][0]["failureReason"] if found["failures"] else "Requested image not found"
        raise http.OciError("MANIFEST_UNKNOWN", reason, 404)
    image: dict[str, Any] = found["images"][0]
    return image


def get_manifest(x: Exchange) -> http.Reply:
    image = _fetch(x)
    body = image["imageManifest"].encode("utf-8")
    headers = {
        "Content-Type": image["imageManifestMediaType"],
        "Docker-Content-Digest": image["imageId"]["imageDigest"],
        "Content-Length": str(len(body)),
    }
    return http.Reply(200, headers, body)


def head_manifest(x: Exchange) -> http.Reply:
    """The manifest's type and size, without Docker-Content-Digest: behind API Gateway a HEAD's
    Content-Length arrives as 0 (the gateway recomputes it for the empty body), and a client that
    has the digest would trust that size (ctr fails: "content size of zero"); without it, docker,
    containerd and skopeo fetch the manifest with GET, whose size is right."""
    image = _fetch(x)
    headers = {
        "Content-Type": image["imageManifestMediaType"],
        "Content-Length": str(len(image["imageManifest"].encode())),
    }
    return http.Reply(200, headers)


def put_manifest(x: Exchange) -> http.Reply:
    try:
        text = x.request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise http.OciError("MANIFEST_INVALID", "A manifest is JSON: UTF-8 text", 400) from None
    if not text:
        raise http.OciError("MANIFEST_INVALID", "The manifest is empty", 400)
    params: dict[str, Any] = {"repositoryName": x.name, "imageManifest": text}
    content_type = (x.request.header("content-type") or "").split(";", 1)[0].strip()
    if content_type in manifests.PARSERS:
        params["imageManifestMediaType"] = content_type
    image_id = _image_id(x.route.reference)
    params.update(image_id)  # imageTag, or imageDigest: the digest the bytes must have
    digest = "sha256:" + hashlib.sha256(x.request.body).hexdigest()
    try:
        x.call("PutImage", images.put_image, params)
    except errors.ImageAlreadyExistsException:
        pass  # the same manifest (and tag) again: done, as a registry answers a repeated push
    headers = {"Location": x.url(f"manifests/{digest}"), "Docker-Content-Digest": digest, "Content-Length": "0"}
    subject = manifests.parse(text, params.get("imageManifestMediaType")).subject_digest
    if subject:
        headers["OCI-Subject"] = subject
    return http.Reply(201, headers)


def delete_manifest(x: Exchange) -> http.Reply:
    deleted = x.call(
        "BatchDeleteImage",
        images.batch_delete_image,
        {"repositoryName": x.name, "imageIds": [_image_id(x.route.reference)]},
    )
    if deleted["failures"]:
        failure = deleted["failures"][0]
        if failure["failureCode"] == "ImageReferencedByManifestList":
            raise http.OciError("DENIED", failure["failureReason"], 403)
        raise http.OciError("MANIFEST_UNKNOWN", failure["failureReason"], 404)
    return http.Reply(202, {"Content-Length": "0"})
