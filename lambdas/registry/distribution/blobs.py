"""Blobs: HEAD and GET (a redirect to S3: S3 moves the bytes, not the function), and uploads in
every mode of the spec -- POST then one streamed PATCH then PUT (docker, skopeo), monolithic PUT
(containerd, oras), monolithic POST, chunks with Content-Range, status, cancel, cross-repository
mount -- all on the ECR API's own upload machinery (InitiateLayerUpload, UploadLayerPart,
CompleteLayerUpload): parts hashed as they arrive, the digest checked once at the end.

A request body reaches the function only up to ~4.4 MiB (Lambda's 6 MB invoke payload; API Gateway
base64-encodes binary bodies): a larger one is refused before it arrives (413, SIZE_INVALID).
"""

from __future__ import annotations

import re

from .. import errors
from ..manifests.common import is_digest
from ..operations import layers
from ..service_model import ecr_model
from . import http
from .exchange import Exchange
from .routes import is_repository_name

# What one request may carry (advertised as OCI-Chunk-Max-Length): under what reaches the function
# (about 4.4 MiB: http.SIZE_INVALID_MESSAGE).
MAX_CHUNK = 4 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?")


def layer_digest(value: str | None) -> str:
    pattern = ecr_model().shape_for("LayerDigest").metadata["pattern"]
    if not value or not is_digest(value) or re.fullmatch(pattern, value) is None:
        raise http.OciError("DIGEST_INVALID", f"Invalid digest {str(value)[:100]!r}", 400)
    return value


def head_blob(x: Exchange) -> http.Reply:
    """A redirect to a HEAD of the S3 object, whose Content-Length is the blob's size: API Gateway
    answers a HEAD with its own Content-Length (0), and docker takes a pushed config's size from it."""
    digest = layer_digest(x.route.reference)
    try:
        found = x.call(
            "BatchCheckLayerAvailability",
            layers.get_blob_location,
            {"repositoryName": x.name, "layerDigest": digest, "head": True},
            check_input=False,
        )
    except errors.LayersNotFoundException:
        raise http.OciError("BLOB_UNKNOWN", f"Blob {digest} is not in repository {x.name}", 404) from None
    return http.Reply(307, {"Location": found["downloadUrl"], "Docker-Content-Digest": digest, "Content-Length": "0"})


def get_blob(x: Exchange) -> http.Reply:
    digest = layer_digest(x.route.reference)
    try:
        found = x.call(
            "GetDownloadUrlForLayer", layers.get_blob_location, {"repositoryName": x.name, "layerDigest": digest}
        )
    except errors.LayersNotFoundException as missing:
        raise http.OciError("BLOB_UNKNOWN", missing.message, 404) from None
    return http.Reply(307, {"Location": found["downloadUrl"], "Docker-Content-Digest": digest, "Content-Length": "0"})


def delete_blob(x: Exchange) -> http.Reply:
    raise http.OciError("UNSUPPORTED", "Blobs are deleted with the images that use them (BatchDeleteImage)", 405)


# --- uploads ----------------------------------------------------------------------------------------


def start_upload(x: Exchange) -> http.Reply:
    mount, source, digest = x.query("mount"), x.query("from"), x.query("digest")
    if mount and source and is_repository_name(source) and x.may("GetDownloadUrlForLayer", source):
        # Another repository of the registry has the blob, and the key may read it: no upload.
        mounted = x.call(
            "CompleteLayerUpload",
            layers.mount_layer,
            {"repositoryName": x.name, "sourceRepositoryName": source, "layerDigest": layer_digest(mount)},
            check_input=False,
        )
        if mounted["mounted"]:
            return _created(x, mount)
    whole_blob = layer_digest(digest) if digest is not None else None  # refused before anything is written
    upload_id = x.call("InitiateLayerUpload", layers.initiate_layer_upload, {"repositoryName": x.name})["uploadId"]
    if whole_blob is not None:  # the whole blob in this one request
        try:
            return _finish(x, upload_id, whole_blob, first=0)
        except (errors.EcrError, http.OciError) as refused:  # the client never saw this upload: it goes too
            if refused.status < 500:
                _cancel(x, upload_id)
            raise
    return http.Reply(202, {**_upload_headers(x, upload_id, -1), "OCI-Chunk-Max-Length": str(MAX_CHUNK)})


def patch_upload(x: Exchange) -> http.Reply:
    upload_id = x.route.reference
    last = _append(x, upload_id, _offset(x, upload_id))
    return http.Reply(202, _upload_headers(x, upload_id, last))


def put_upload(x: Exchange) -> http.Reply:
    upload_id = x.route.reference
    digest = layer_digest(x.query("digest"))
    return _finish(x, upload_id, digest, first=_offset(x, upload_id) if x.request.body else None)


def upload_status(x: Exchange) -> http.Reply:
    upload_id = x.route.reference
    last = _status(x, upload_id)
    return http.Reply(204, _upload_headers(x, upload_id, last))


def cancel_upload(x: Exchange) -> http.Reply:
    x.call(
        "UploadLayerPart",
        layers.cancel_layer_upload,
        {"repositoryName": x.name, "uploadId": x.route.reference},
        check_input=False,
    )
    return http.Reply(204, {"Content-Length": "0"})


def _status(x: Exchange, upload_id: str) -> int:
    status = x.call(
        "UploadLayerPart", layers.upload_status, {"repositoryName": x.name, "uploadId": upload_id}, check_input=False
    )
    last: int = status["lastByteReceived"]
    return last


def _offset(x: Exchange, upload_id: str) -> int:
    """Where this request's bytes go: right after what the upload has. A Content-Range must say so."""
    last = _status(x, upload_id)
    content_range = x.request.header("content-range")
    if content_range is not None:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        valid = match and int(match[1]) == last + 1 and int(match[2]) - int(match[1]) + 1 == len(x.request.body)
        if not valid:
            raise http.OciError(
                "BLOB_UPLOAD_INVALID",
                f"Content-Range {content_range[:60]!r} does not follow the {last + 1} bytes received",
                416,
                headers={"Range": f"0-{max(last, 0)}", "Location": _location(x, upload_id)},
            )
    return last + 1


def _append(x: Exchange, upload_id: str, first: int) -> int:
    """Add the request's body to the upload at `first`; the upload's last byte after it."""
    body = x.request.body
    if not body:
        return first - 1
    appended = x.call(
        "UploadLayerPart",
        layers.upload_layer_part,
        {
            "repositoryName": x.name,
            "uploadId": upload_id,
            "partFirstByte": first,
            "partLastByte": first + len(body) - 1,
            "layerPartBlob": body,
        },
        check_input=False,  # layer bytes: no JSON to check (the part's range is checked by the operation)
    )
    last: int = appended["lastByteReceived"]
    return last


def _finish(x: Exchange, upload_id: str, digest: str, first: int | None) -> http.Reply:
    if first is not None:
        _append(x, upload_id, first)
    try:
        x.call(
            "CompleteLayerUpload",
            layers.complete_layer_upload,
            {"repositoryName": x.name, "uploadId": upload_id, "layerDigests": [digest]},
        )
    except errors.LayerAlreadyExistsException:  # the repository has these bytes: done, the upload goes
        _cancel(x, upload_id)
    except errors.EcrError as refused:  # bytes that are not the blob named (as Distribution: the upload ends)
        if refused.status < 500:
            _cancel(x, upload_id)
        raise
    return _created(x, digest)


def _cancel(x: Exchange, upload_id: str) -> None:
    try:
        x.call(
            "UploadLayerPart",
            layers.cancel_layer_upload,
            {"repositoryName": x.name, "uploadId": upload_id},
            check_input=False,
        )
    except errors.UploadNotFoundException:
        pass


def _created(x: Exchange, digest: str) -> http.Reply:
    headers = {"Location": x.url(f"blobs/{digest}"), "Docker-Content-Digest": digest, "Content-Length": "0"}
    return http.Reply(201, headers)


def _location(x: Exchange, upload_id: str) -> str:
    return x.url(f"blobs/uploads/{upload_id}")


def _upload_headers(x: Exchange, upload_id: str, last: int) -> dict[str, str]:
    return {
        "Location": _location(x, upload_id),
        "Range": f"0-{max(last, 0)}",
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }
