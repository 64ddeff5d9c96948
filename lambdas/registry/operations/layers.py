"""InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, BatchCheckLayerAvailability,
GetDownloadUrlForLayer.

Each part is hashed as it arrives and the SHA-256 state is saved with the upload (a resumable
hasher: `rehashes`), so CompleteLayerUpload only finalizes 32 bytes of state, whatever the layer
size, and never holds a layer in memory.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .. import errors
from ..records import Quota, Upload, repository_partition
from ..service_model import ecr_model
from ..storage import (
    ConcurrentUpdate,
    DirectSizeMismatch,
    LayerExists,
    OtherUploadMode,
    PartOutOfOrder,
    PartsChanged,
    QuotaReached,
    UploadGone,
)
from .common import Context, Params, Result, existing_repository, retrying

DIRECT_ONLY = "The upload takes its bytes as direct S3 parts (GetLayerPartUploadUrls)"


def _hasher(state: bytes | None) -> Any:
    from rehashes import PySha256  # imported by the layer operations only: keeps cold start lean

    return PySha256.deserialize(state) if state else PySha256()


def initiate_layer_upload(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    upload_id = ctx.store.uploads.start(repo, ctx.now())
    return {"uploadId": upload_id, "partSize": ctx.settings.part_size}


def _open_upload(params: Params, ctx: Context) -> tuple[str, Upload | None]:
    return ctx.registry_id, _usable(ctx.store.uploads.get(params["uploadId"]), params, ctx)


def _usable(upload: Upload | None, params: Params, ctx: Context) -> Upload | None:
    """The upload, if it is of the repository named and not expired."""
    if upload is None or upload.repository_partition != repository_partition(ctx.registry_id, params["repositoryName"]):
        return None
    if upload.expires_at is not None and upload.expires_at <= ctx.now():
        # Expired: DynamoDB's TTL deletes the item within days, the sweep (docs/sweep.md) and
        # the bucket's lifecycle rules its staged bytes -- nobody may use it meanwhile.
        return None
    return upload


def _upload_not_found(params: Params, registry_id: str, ctx: Context) -> errors.EcrError:
    if ctx.store.repositories.get(registry_id, params["repositoryName"]) is None:
        return errors.repository_not_found(registry_id, params["repositoryName"])
    return errors.upload_not_found(registry_id, params["repositoryName"], params["uploadId"])


def upload_layer_part(params: Params, ctx: Context) -> Result:
    # One read for the authorization and the data: the repository's policy beside the upload
    registry_id = ctx.registry_id
    found, policy_text = ctx.store.uploads.with_policy(registry_id, params["repositoryName"], params["uploadId"])
    ctx.policy_read(policy_text)
    upload = _usable(found, params, ctx)
    if upload is None or upload.completed_digest:
        raise _upload_not_found(params, registry_id, ctx)
    first, last, part = params["partFirstByte"], params["partLastByte"], params["layerPartBlob"]

    def refuse(reason: str, last_valid: int) -> errors.InvalidLayerPartException:
        return errors.InvalidLayerPartException(
            reason,
            registry_id=registry_id,
            repository_name=params["repositoryName"],
            upload_id=upload.upload_id,
            last_valid_byte_received=last_valid,
        )

    if upload.direct_size is not None:
        raise refuse(DIRECT_ONLY, upload.last_byte)
    if first != upload.last_byte + 1:
        raise refuse(
            f"The part's first byte {first} does not follow the last byte received {upload.last_byte}", upload.last_byte
        )
    if not part or last - first + 1 != len(part):
        raise refuse(
            f"The part carries {len(part)} bytes but its range {first}-{last} needs {last - first + 1}",
            upload.last_byte,
        )
    max_parts = ctx.settings.quotas.max_layer_parts
    if upload.part_count >= max_parts:
        raise errors.limit_exceeded(
            Quota.LAYER_PARTS, max_parts, registry_id=registry_id, name=params["repositoryName"]
        )
    hasher = _hasher(upload.hash_state)
    hasher.update(part)
    try:
        last_byte = ctx.store.uploads.append_part(upload, part, hasher.serialize(), max_parts)
    except PartOutOfOrder as lost:  # another request for this upload landed first
        raise refuse("The part does not follow the last byte received", lost.last_valid_byte) from None
    except OtherUploadMode:  # made direct meanwhile
        raise refuse(DIRECT_ONLY, upload.last_byte) from None
    except UploadGone:
        raise _upload_not_found(params, registry_id, ctx) from None
    except QuotaReached as reached:
        name = params["repositoryName"]
        raise errors.limit_exceeded(reached.quota, reached.limit, registry_id=registry_id, name=name) from None
    return {
        "registryId": registry_id,
        "repositoryName": params["repositoryName"],
        "uploadId": upload.upload_id,
        "lastByteReceived": last_byte,
    }


def complete_layer_upload(params: Params, ctx: Context) -> Result:
    def attempt() -> Result:
        repo = existing_repository(params, ctx)
        _, upload = _open_upload(params, ctx)
        if upload is None:
            raise _upload_not_found(params, repo.registry_id, ctx)
        requested = params["layerDigests"]
        if upload.completed_digest:  # a retry of a Complete whose answer was lost
            if all(d == upload.completed_digest for d in requested):
                raise errors.layer_already_exists(repo.registry_id, repo.name, upload.completed_digest)
            raise _upload_not_found(params, repo.registry_id, ctx)
        digest = _uploaded_digest(upload, ctx)
        wrong = [d for d in requested if d != digest]
        if wrong:
            raise errors.InvalidLayerException(
                f"The layer digest {wrong[0]} does not match the digest {digest} of the uploaded bytes"
            )
        if ctx.store.layers.get(repo, [digest]):
            raise errors.layer_already_exists(repo.registry_id, repo.name, digest)
        try:
            layer = ctx.store.layers.complete(repo, upload, digest, ctx.now())
        except LayerExists:
            raise errors.layer_already_exists(repo.registry_id, repo.name, digest) from None
        except UploadGone:
            raise errors.UploadNotFoundException(
                f"Upload with id '{upload.upload_id}' was not found or is already complete"
            ) from None
        except PartsChanged:
            raise errors.InvalidLayerException(
                "The uploaded parts changed while the upload was in progress; upload the layer again"
            ) from None
        return {
            "registryId": repo.registry_id,
            "repositoryName": repo.name,
            "uploadId": upload.upload_id,
            "layerDigest": layer.digest,
        }

    return retrying(attempt)


def _uploaded_digest(upload: Upload, ctx: Context) -> str:
    """The SHA-256 of the upload's bytes: of the parts hashed as they came, or, for a direct upload,
    of its S3 object, read back and hashed now."""
    if upload.direct_size is None:
        if upload.last_byte < 0:
            raise errors.EmptyUploadException(
                f"The upload with id '{upload.upload_id}' does not contain any layer parts"
            )
        hashed: str = _hasher(upload.hash_state).finalize()
        return "sha256:" + hashed
    try:
        return ctx.store.uploads.assemble_direct(upload)
    except DirectSizeMismatch as mismatch:
        raise errors.InvalidLayerException(
            f"The uploaded parts hold {mismatch.parts_size} bytes, not the layer's {upload.direct_size} "
            "in parts 1 to n; upload the missing parts"
        ) from None
    except PartsChanged:
        raise errors.InvalidLayerException(
            "The uploaded parts changed while the upload was completed; upload the layer again"
        ) from None


def _layer_digest_pattern() -> re.Pattern[str]:
    return re.compile(ecr_model().shape_for("LayerDigest").metadata["pattern"])


def batch_check_layer_availability(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    pattern = _layer_digest_pattern()
    requested = list(dict.fromkeys(params["layerDigests"]))
    valid = [d for d in requested if pattern.fullmatch(d)]
    found = ctx.store.layers.get(repo, valid)
    layers, failures = [], []
    for digest in requested:
        if digest not in valid:
            failures.append(
                {"layerDigest": digest, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"}
            )
        elif digest not in found:
            failures.append(
                {
                    "layerDigest": digest,
                    "failureCode": "MissingLayerDigest",
                    "failureReason": "Requested layer not found",
                }
            )
        else:
            layers.append({"layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": found[digest].size})
    return {"layers": layers, "failures": failures}


def get_download_url_for_layer(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    digest = params["layerDigest"]
    layer = ctx.store.layers.get(repo, [digest]).get(digest)
    if layer is None:
        raise _layer_not_found(repo.registry_id, repo.name, digest)
    if not layer.referenced:
        raise errors.LayerInaccessibleException(
            "The specified layer is not available because it is not associated with an image. "
            "Unassociated image layers may be cleaned up at any time."
        )
    return {"downloadUrl": ctx.store.layers.download_url(layer), "layerDigest": digest}


def _layer_not_found(registry_id: str, name: str, digest: str) -> errors.LayersNotFoundException:
    return errors.LayersNotFoundException(
        f"The layer with digest {digest} does not exist within the repository with name "
        f"'{name}' in the registry with id '{registry_id}'"
    )


# --- what the `/v2` API adds (not operations of the ECR API) ------------------------------------


def upload_status(params: Params, ctx: Context) -> Result:
    """Where an upload stands: the last byte received (-1: none yet)."""
    registry_id, upload = _open_upload(params, ctx)
    if upload is None or upload.completed_digest:
        raise _upload_not_found(params, registry_id, ctx)
    return {"uploadId": upload.upload_id, "lastByteReceived": upload.last_byte}


def cancel_layer_upload(params: Params, ctx: Context) -> Result:
    """End an upload that will not be completed; its staged bytes go."""
    registry_id, upload = _open_upload(params, ctx)
    if upload is None or upload.completed_digest:
        raise _upload_not_found(params, registry_id, ctx)
    try:
        ctx.store.uploads.cancel(upload)
    except UploadGone:
        raise _upload_not_found(params, registry_id, ctx) from None
    return {"uploadId": upload.upload_id}


def mount_layer(params: Params, ctx: Context) -> Result:
    """Make the layer `layerDigest` of `sourceRepositoryName` available in `repositoryName` without
    an upload -- when the source has it and both repositories keep their bytes under the same
    encryption. {"mounted": False} otherwise: the client uploads the layer instead."""
    repo = existing_repository(params, ctx)
    source = ctx.store.repositories.get(ctx.registry_id, params["sourceRepositoryName"])
    digest = params["layerDigest"]
    if source is None or source.encryption.scope != repo.encryption.scope:
        return {"mounted": False}
    layer = ctx.store.layers.get(source, [digest]).get(digest)
    if layer is None:
        return {"mounted": False}
    try:
        ctx.store.layers.mount(repo, layer, ctx.now())
    except LayerExists:
        pass  # there already: as good as mounted
    except ConcurrentUpdate:
        return {"mounted": False}  # its bytes' entry changed meanwhile: upload instead
    return {"mounted": True, "layerDigest": digest, "layerSize": layer.size}


def get_blob_location(params: Params, ctx: Context) -> Result:
    """Where the bytes of a layer of the repository can be fetched (or, `head`, looked at): any layer
    uploaded to it, as PutImage's layer rule counts them (GetDownloadUrlForLayer also wants an image
    to use it)."""
    digest = params["layerDigest"]
    repo, layer, policy_text = ctx.store.layers.find(ctx.registry_id, params["repositoryName"], digest)
    ctx.policy_read(policy_text)
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, params["repositoryName"])
    if layer is None:
        raise _layer_not_found(repo.registry_id, repo.name, digest)
    url = ctx.store.layers.download_url(layer, head=bool(params.get("head")))
    return {"downloadUrl": url, "layerDigest": digest, "layerSize": layer.size}


# --- the registry's extension (service_model.EXTENSION_OPERATIONS): direct layer uploads ---------


S3_MAX_PARTS = 10_000  # of one S3 multipart upload


def get_layer_part_upload_urls(params: Params, ctx: Context) -> Result:
    """Presigned S3 UploadPart URLs for the parts of an upload's layer, so that its bytes go from the
    client straight to S3 (CompleteLayerUpload hashes them before the layer is usable), and the
    parts S3 holds already (a resumed client sends the rest). Authorized as UploadLayerPart."""
    registry_id, name = ctx.registry_id, params["repositoryName"]
    found, policy_text = ctx.store.uploads.with_policy(registry_id, name, params["uploadId"])
    ctx.policy_read(policy_text)
    upload = _usable(found, params, ctx)
    if upload is None or upload.completed_digest:
        raise _upload_not_found(params, registry_id, ctx)
    size, limit = params["layerSize"], ctx.settings.direct_upload_max_bytes
    if size > limit:  # the client takes this as "use UploadLayerPart"
        raise errors.LimitExceededException(
            f"Layers over {limit} bytes are not uploaded directly; upload this one with UploadLayerPart"
        )
    if upload.direct_size not in (None, size):
        raise errors.InvalidParameterException(
            f"Invalid parameter at 'layerSize': the upload was opened for {upload.direct_size} bytes"
        )
    try:
        upload = ctx.store.uploads.open_direct(upload, size)
    except OtherUploadMode:
        raise errors.InvalidLayerPartException(
            "The upload has received parts through UploadLayerPart; continue with UploadLayerPart",
            registry_id=registry_id,
            repository_name=name,
            upload_id=upload.upload_id,
            last_valid_byte_received=upload.last_byte,
        ) from None
    except UploadGone:
        raise _upload_not_found(params, registry_id, ctx) from None
    part_size = max(ctx.settings.direct_part_size, math.ceil(size / S3_MAX_PARTS))
    numbers = range(1, math.ceil(size / part_size) + 1)
    held = ctx.store.uploads.direct_parts(upload) or []
    urls = ctx.store.uploads.part_upload_urls(upload, numbers, ctx.settings.direct_url_seconds)
    return {
        "registryId": registry_id,
        "repositoryName": name,
        "uploadId": upload.upload_id,
        "partSize": part_size,
        "partUrls": {str(n): url for n, url in urls.items()},
        "receivedParts": [{"partNumber": p.number, "size": p.size} for p in held if p.number in numbers],
    }
