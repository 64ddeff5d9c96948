"""Building blocks for black-box tests: push blobs and images exactly as a client does."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})  # one call is one request


def ecr_client(endpoint: str, access_key_id: str, secret: str, **kwargs):
    """A boto3 ECR client signing with that key, without retries (one call is one request)."""
    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=NO_RETRIES,
        **kwargs,
    )


def client_of(endpoint: str, key) -> object:
    """A boto3 ECR client signing with an issued key (an AccessKey with its secret)."""
    return ecr_client(endpoint, key.access_key_id, key.secret)


def unique_name(prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40] or "repo"
    return f"test/{slug}-{uuid.uuid4().hex[:10]}"


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_blob(ecr, repo: str, data: bytes, part_size: int | None = None) -> str:
    """InitiateLayerUpload, UploadLayerPart (in the part size the registry asks for), Complete."""
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    size = part_size or upload["partSize"]
    for first in range(0, len(data), size):
        chunk = data[first : first + size]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    digest = sha256(data)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload["uploadId"], layerDigests=[digest])
    return digest


def upload_image_blobs(ecr, repo: str, config: bytes, layers: list[bytes]) -> list[str]:
    """Upload an image's config and layers, as a client does before PutImage; their digests."""
    return [upload_blob(ecr, repo, blob) for blob in (config, *layers)]


@dataclass
class Pushed:
    manifest: str
    digest: str
    media_type: str
    size: int  # sum of the layer sizes


def image_manifest(
    config: bytes, layers: list[bytes], oci: bool = False, extra: dict | None = None, foreign: list[dict] | None = None
) -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config), "digest": sha256(config)},
        "layers": [
            {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(layer), "digest": sha256(layer)}
            for layer in layers
        ]
        + (foreign or []),
    }
    document.update(extra or {})
    return json.dumps(document, indent=3)


def new_blobs(count: int, size: int = 64) -> tuple[bytes, list[bytes]]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    return config, [os.urandom(size) for _ in range(count)]


def push_image(
    ecr, repo: str, tag: str | None = None, layers: int = 1, oci: bool = False, layer_size: int = 64
) -> Pushed:
    config, blobs = new_blobs(layers, layer_size)
    upload_image_blobs(ecr, repo, config, blobs)
    manifest = image_manifest(config, blobs, oci=oci)
    kwargs = {"imageTag": tag} if tag is not None else {}
    result = ecr.put_image(repositoryName=repo, imageManifest=manifest, **kwargs)
    return Pushed(
        manifest,
        result["image"]["imageId"]["imageDigest"],
        OCI_MANIFEST if oci else DOCKER_MANIFEST,
        sum(len(b) for b in blobs),
    )


def index_manifest(children: list[Pushed], oci: bool = True, extra: dict | None = None) -> str:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX if oci else DOCKER_LIST,
        "manifests": [
            {
                "mediaType": c.media_type,
                "size": len(c.manifest.encode()),
                "digest": c.digest,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for c, arch in zip(children, ["amd64", "arm64", "ppc64le", "s390x", "386"] * 40, strict=False)
        ],
    }
    document.update(extra or {})
    return json.dumps(document)


def snapshot(ecr, repo: str) -> dict:
    """Everything the API shows about a repository's images: compare before and after an error."""
    details = []
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
        details.extend(page["imageDetails"])
    listed = []
    for page in ecr.get_paginator("list_images").paginate(repositoryName=repo):
        listed.extend(page["imageIds"])
    images = sorted(
        (
            d["imageDigest"],
            tuple(sorted(d.get("imageTags", []))),
            d["imageSizeInBytes"],
            d["imagePushedAt"],
            d["imageManifestMediaType"],
        )
        for d in details
    )
    ids = sorted((i["imageDigest"], i.get("imageTag", "")) for i in listed)
    return {"images": images, "ids": ids}


def tags_of(ecr, repo: str, digest: str) -> list[str]:
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]
    return sorted(detail.get("imageTags", []))


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


AWS_CLI = str(Path(sys.executable).parent / "aws")


def aws(registry, *args: str) -> dict:
    """`aws ecr <args> --endpoint-url <the registry>`, as a user types it; its JSON output.
    AssertionError with the CLI's stderr when it fails."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [AWS_CLI, "ecr", *args, "--endpoint-url", registry.endpoint, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"aws ecr {args[0]} failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


EXTENSION_TARGET = "ServerlessRegistry_20261130."


def call_extension(endpoint: str, operation: str, params: dict, key_id: str = "test", secret: str = "test"):
    """A request to one of the registry's own (not ECR's) operations, SigV4-signed as any AWS SDK
    signs: (HTTP status, decoded JSON body)."""
    import json
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = json.dumps(params).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": EXTENSION_TARGET + operation}
    request = AWSRequest(method="POST", url=endpoint.rstrip("/") + "/", data=data, headers=headers)
    SigV4Auth(Credentials(key_id, secret), "ecr", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(request.url, data=data, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(prepared) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def put_part(url: str, data: bytes) -> str:
    """PUT one part to a presigned S3 UploadPart URL, as a client does; its ETag."""
    import urllib.request

    # urllib's default Content-Type (a form) would have the body read as query parameters
    headers = {"Content-Type": "application/octet-stream"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT", headers=headers)) as response:
        return response.headers["ETag"]
