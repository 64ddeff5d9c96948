"""A pull through `/v2`: the manifest (and an index's children), every blob verified against its
digest as it streams in, written into a temporary folder beside the destination, which becomes the
destination only at the end (a rename): an OCI image layout (a directory, or a tar with
oci-archive:), or a `docker save` archive that `docker load` takes, of one platform."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DigestMismatch, NotFound, UsageError
from .oci import REF_NAME, Descriptor, Manifest, digest_hex, platform_name, unique_blobs, walk
from .progress import Reporter
from .sources import split_transport
from .v2 import DistributionClient
from .workers import Workers

CHUNK = 1 << 20
MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


def destination_kind(spec: str) -> tuple[str, Path]:
    transport, location, _ = split_transport(spec)
    kind = transport or ("docker-archive" if location.endswith(".tar") else "oci")
    if kind not in ("oci", "oci-archive", "docker-archive"):
        raise UsageError(f"{spec}: a pull writes oci:DIR, oci-archive:FILE or docker-archive:FILE")
    path = Path(location)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{location} exists: a pull writes a new destination, never over one")
    return kind, path


def host_platform() -> str:
    return f"linux/{MACHINES.get(platform.machine(), platform.machine())}"


def pull(
    client: DistributionClient,
    repository: str,
    reference: str,
    destination: str,
    *,
    platform_wanted: str | None,
    name: str,
    jobs: int,
    reporter: Reporter,
) -> dict[str, Any]:
    kind, path = destination_kind(destination)
    root = client.manifest(repository, reference)
    if kind == "docker-archive" and root.is_index:
        root = _one_platform(client, repository, root, platform_wanted or host_platform())
    manifests = walk(root, lambda d: client.manifest(repository, d.digest))
    blobs = unique_blobs(manifests)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (work / "blobs" / "sha256").mkdir(parents=True)
        reporter.begin("pull", len(blobs), sum(b.size for b in blobs))
        workers = Workers(jobs)
        workers.map(lambda blob: _download(client, repository, blob, work, reporter, workers.check), blobs)
        for manifest in manifests:
            (work / _blob_path(manifest.digest)).write_bytes(manifest.data)
        tag = None if reference.startswith("sha256:") else reference
        if kind == "docker-archive":
            _write_docker_archive(work, root, f"{name}:{tag}" if tag else None, path)
        else:
            _write_layout(work, root, tag)
            if kind == "oci-archive":
                _tar_into(work, path)
            else:
                os.rename(work, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "repository": repository,
        "reference": reference,
        "digest": root.digest,
        "mediaType": root.media_type,
        "destination": str(path),
        "format": kind,
        "blobs": len(blobs),
        "bytesDownloaded": sum(b.size for b in blobs),
    }


def _one_platform(client: DistributionClient, repository: str, index: Manifest, wanted: str) -> Manifest:
    children = index.children()
    for child in children:
        if platform_name(child.platform) == wanted or platform_name(child.platform).startswith(wanted + "/"):
            return client.manifest(repository, child.digest)
    offered = ", ".join(platform_name(c.platform) for c in children)
    raise NotFound(f"the index {index.digest} has no {wanted} image (it has {offered}); choose one with --platform")


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _download(
    client: DistributionClient,
    repository: str,
    blob: Descriptor,
    work: Path,
    reporter: Reporter,
    between_chunks: Callable[[], None],
) -> None:
    reporter.start(blob.digest, blob.size)
    hasher, size = hashlib.sha256(), 0
    partial = work / f"{_blob_path(blob.digest)}.partial"
    stream = client.open_blob(repository, blob.digest)
    try:
        with partial.open("wb") as out:
            while chunk := stream.read(CHUNK):
                between_chunks()
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
                reporter.advance(blob.digest, len(chunk))
    finally:
        stream.close()
    got = "sha256:" + hasher.hexdigest()
    if got != blob.digest or size != blob.size:
        raise DigestMismatch(f"blob {blob.digest} ({blob.size} bytes) arrived as {got} ({size} bytes)")
    partial.rename(work / _blob_path(blob.digest))
    reporter.finish(blob.digest, "verified")


def _write_layout(work: Path, root: Manifest, tag: str | None) -> None:
    annotations = {REF_NAME: tag} if tag else {}
    index = {"schemaVersion": 2, "manifests": [root.descriptor(annotations=annotations).as_json()]}
    (work / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (work / "index.json").write_text(json.dumps(index, indent=2))


def _write_docker_archive(work: Path, image: Manifest, repo_tag: str | None, path: Path) -> None:
    """docker save's layout: manifest.json naming the config and the layer files (as stored: `docker
    load` decompresses what is compressed), inside one tar written beside `path`, then renamed."""
    config, *layers = image.blobs()
    entry = {
        "Config": _blob_path(config.digest),
        "RepoTags": [repo_tag] if repo_tag else [],
        "Layers": [_blob_path(layer.digest) for layer in layers],
    }
    (work / "manifest.json").write_text(json.dumps([entry]))
    _tar_into(work, path)


def _tar_into(work: Path, path: Path) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for item in sorted(work.iterdir()):
                archive.add(item, arcname=item.name)
        os.rename(partial, path)
    finally:
        partial.unlink(missing_ok=True)
