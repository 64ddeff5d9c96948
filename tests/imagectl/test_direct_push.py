"""imagectl push through the registry's direct layer uploads (docs/how-it-works.md#direct-layer-uploads):
parts straight to S3, several at once; a registry without the extension gets UploadLayerPart."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import call_extension, put_part, sha256
from tool_support import image_layout

MiB = 1024 * 1024
PART = 16 * MiB  # the registry's direct part size (REGISTRY_DIRECT_PART_SIZE's default)


def config_size(layout: Path) -> int:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_text())
    return int(manifest["config"]["size"])


def test_a_push_sends_its_layers_straight_to_s3_and_pulls_back_the_same(imagectl, repository, tmp_path):
    layer = os.urandom(PART + 3 * MiB)  # two parts, sent at once
    image_layout(tmp_path / "layout", [layer])
    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1", "--create")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["blobsUploadedDirect"] == pushed.result["blobsUploaded"] == 2
    assert pushed.result["bytesUploaded"] == len(layer) + config_size(tmp_path / "layout")
    # A pull checks every blob's digest: the registry made the layer of exactly these bytes
    assert imagectl("pull", f"{repository}:v1", f"oci:{tmp_path / 'back'}").returncode == 0


def test_a_resumed_direct_upload_sends_only_the_parts_s3_lacks(imagectl, user_env, registry, repository, ecr, tmp_path):
    from imagectl.resume import PendingUpload, ResumeState

    layer = os.urandom(PART + MiB)
    image_layout(tmp_path / "layout", [layer])
    ecr.create_repository(repositoryName=repository)
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    params = {"repositoryName": repository, "uploadId": upload, "layerSize": len(layer)}
    status, answer = call_extension(registry.endpoint, "GetLayerPartUploadUrls", params)
    assert status == 200, answer
    put_part(answer["partUrls"]["1"], layer[:PART])  # a killed run sent part 1 only
    state = ResumeState(Path(user_env["XDG_CACHE_HOME"]) / "imagectl" / "uploads.json")
    key = ResumeState.key(registry.endpoint, "000000000000", repository, sha256(layer))
    state.record(key, PendingUpload(upload, PART, -1, direct=True))

    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["resumed"] == {sha256(layer): PART}
    assert pushed.result["bytesUploaded"] == MiB + config_size(tmp_path / "layout")


def test_a_registry_without_direct_uploads_gets_parts(imagectl, user_env, start_registry, repository, tmp_path):
    without = start_registry(REGISTRY_DIRECT_UPLOAD_MAX_BYTES="0")
    image_layout(tmp_path / "layout", [os.urandom(MiB)])
    env = {**user_env, "AWS_ENDPOINT_URL_ECR": without.endpoint}
    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1", "--create", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["blobsUploaded"] == 2 and pushed.result["blobsUploadedDirect"] == 0


def test_a_direct_upload_resumed_where_its_layer_is_over_the_limit_starts_afresh_with_parts(
    imagectl, user_env, start_registry, repository, ecr, tmp_path
):
    from imagectl.resume import PendingUpload, ResumeState

    layer = os.urandom(MiB)
    image_layout(tmp_path / "layout", [layer])
    ecr.create_repository(repositoryName=repository)
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    params = {"repositoryName": repository, "uploadId": upload, "layerSize": len(layer)}
    smaller = start_registry(REGISTRY_DIRECT_UPLOAD_MAX_BYTES=str(MiB - 1))  # its limit lowered since
    assert call_extension(ecr.meta.endpoint_url, "GetLayerPartUploadUrls", params)[0] == 200
    state = ResumeState(Path(user_env["XDG_CACHE_HOME"]) / "imagectl" / "uploads.json")
    key = ResumeState.key(smaller.endpoint, "000000000000", repository, sha256(layer))
    state.record(key, PendingUpload(upload, PART, -1, direct=True))

    env = {**user_env, "AWS_ENDPOINT_URL_ECR": smaller.endpoint}
    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["bytesUploaded"] == len(layer) + config_size(tmp_path / "layout")
    assert pushed.result["blobsUploadedDirect"] == 1  # the config, small enough still


def test_the_extension_goes_through_botocore_with_the_ecr_clients_credentials(
    user_env, registry, repository, monkeypatch
):
    """imagectl calls GetLayerPartUploadUrls with a botocore client made from the registry's own
    description of it (registry.service_model): signed with the ECR client's credentials, its
    answer and its modeled errors parsed as botocore parses ECR's."""
    import pytest
    from botocore.exceptions import ClientError

    from imagectl.ecr import Connection, call_extension, ecr_client

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, user_env[name])
    client = ecr_client(Connection(endpoint_url=registry.endpoint), jobs=1)
    client.create_repository(repositoryName=repository)
    upload = client.initiate_layer_upload(repositoryName=repository)["uploadId"]
    where = {"repositoryName": repository, "uploadId": upload}
    answer = call_extension(client, "GetLayerPartUploadUrls", {**where, "layerSize": PART + 1})
    assert answer["partSize"] == PART and sorted(answer["partUrls"]) == ["1", "2"]
    assert answer["receivedParts"] == []
    with pytest.raises(ClientError) as gone:
        call_extension(
            client,
            "GetLayerPartUploadUrls",
            {**where, "uploadId": "00000000-0000-4000-8000-000000000000", "layerSize": 1},
        )
    assert gone.value.response["Error"]["Code"] == "UploadNotFoundException"

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    stranger = ecr_client(Connection(endpoint_url=registry.endpoint), jobs=1)
    with pytest.raises(ClientError) as refused:
        call_extension(stranger, "GetLayerPartUploadUrls", {**where, "layerSize": 1})
    assert refused.value.response["Error"]["Code"] in ("InvalidSignatureException", "UnrecognizedClientException")
