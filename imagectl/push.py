"""A push (and a copy: the same, from a registry): every manifest of the image, children first; the
blobs the repository lacks (BatchCheckLayerAvailability) uploaded `jobs` at a time; then PutImage for
each child by digest and for the root with the tag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .ecr import ensure_repository, error_code, translated_errors
from .oci import Descriptor, Manifest, unique_blobs, walk
from .progress import Reporter
from .resume import ResumeState
from .sources import ImageSource
from .uploader import BlobStream, BlobUploader, Uploaded
from .workers import Workers

CHECK_BATCH = 100  # BatchCheckLayerAvailability's layerDigests maximum


@dataclass(frozen=True)
class Target:
    client: Any
    repository: str
    tag: str
    create: bool = False


def push(source: ImageSource, target: Target, *, jobs: int, reporter: Reporter, state: ResumeState) -> dict[str, Any]:
    root = source.root()
    manifests = walk(root, source.manifest)
    blobs = unique_blobs(manifests)
    registry_id = ensure_repository(target.client, target.repository, target.create)
    missing = _missing(target, registry_id, [b.digest for b in blobs])
    uploads = [b for b in blobs if b.digest in missing]
    reporter.begin("push", len(uploads), sum(b.size for b in uploads))
    workers = Workers(jobs)
    uploader = BlobUploader(
        target.client, target.client.meta.endpoint_url, registry_id, target.repository, state, workers.check
    )
    for present in (b for b in blobs if b.digest not in missing):  # another push completed it meanwhile
        state.forget(uploader.state_key(present.digest))
    done = workers.map(lambda blob: _upload(uploader, source, blob, reporter, state), uploads)
    for manifest in manifests:
        _put(target, registry_id, manifest, target.tag if manifest is root else None)
    return {
        "repository": target.repository,
        "tag": target.tag,
        "digest": root.digest,
        "mediaType": root.media_type,
        "manifests": len(manifests),
        "blobsUploaded": len(done),
        "blobsSkipped": len(blobs) - len(done),
        "bytesUploaded": sum(u.sent for u in done),
        "blobsUploadedDirect": sum(u.direct for u in done),
        "resumed": {u.digest: u.resumed_from for u in done if u.resumed_from},
    }


def _missing(target: Target, registry_id: str, digests: list[str]) -> set[str]:
    missing: set[str] = set()
    with translated_errors(target.repository):
        for first in range(0, len(digests), CHECK_BATCH):
            answer = target.client.batch_check_layer_availability(
                registryId=registry_id,
                repositoryName=target.repository,
                layerDigests=digests[first : first + CHECK_BATCH],
            )
            missing.update(f["layerDigest"] for f in answer.get("failures", []))
            missing.update(
                layer["layerDigest"]
                for layer in answer.get("layers", [])
                if layer.get("layerAvailability") != "AVAILABLE"
            )
    return missing


def _upload(
    uploader: BlobUploader, source: ImageSource, blob: Descriptor, reporter: Reporter, state: ResumeState
) -> Uploaded:
    stream = BlobStream(blob.digest, blob.size, lambda offset: source.open_blob(blob, offset))
    uploaded = uploader.upload(stream, reporter, blob.digest, lambda held: reporter.start(blob.digest, blob.size, held))
    reporter.finish(blob.digest, "pushed")
    return uploaded


def _put(target: Target, registry_id: str, manifest: Manifest, tag: str | None) -> None:
    kwargs: dict[str, Any] = {"imageTag": tag} if tag else {"imageDigest": manifest.digest}
    with translated_errors(target.repository):
        try:
            target.client.put_image(
                registryId=registry_id,
                repositoryName=target.repository,
                imageManifest=manifest.data.decode(),
                imageManifestMediaType=manifest.media_type,
                **kwargs,
            )
        except ClientError as error:
            if error_code(error) != "ImageAlreadyExistsException":  # the same image, already there: done
                raise
