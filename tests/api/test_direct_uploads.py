"""Direct layer uploads (docs/how-it-works.md#direct-layer-uploads): the extension
GetLayerPartUploadUrls through raw SigV4-signed requests, parts PUT straight to the presigned S3
URLs, and ECR's own CompleteLayerUpload, which hashes the bytes before the layer is usable."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError
from support import call_extension, client_of, error_code, image_manifest, put_part, sha256

OPERATION = "GetLayerPartUploadUrls"
MiB = 1024 * 1024


def urls_for(registry, repo: str, upload_id: str, size: int, **extra):
    return call_extension(
        registry.endpoint, OPERATION, {"repositoryName": repo, "uploadId": upload_id, "layerSize": size, **extra}
    )


def direct_upload(ecr, registry, repo: str, data: bytes) -> tuple[str, dict]:
    """Initiate, ask for URLs, PUT every part: (upload id, the extension's answer)."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    status, answer = urls_for(registry, repo, upload_id, len(data))
    assert status == 200, answer
    size = answer["partSize"]
    for number, url in answer["partUrls"].items():
        first = (int(number) - 1) * size
        put_part(url, data[first : first + size])
    return upload_id, answer


def missing(ecr, repo: str, digest: str) -> bool:
    found = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest])
    return [f["failureCode"] for f in found["failures"]] == ["MissingLayerDigest"]


def test_a_layer_uploaded_straight_to_s3_makes_an_image(ecr, registry, repo):
    layer, config = os.urandom(200_000), json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    digests = []
    for blob in (config, layer):
        upload_id, answer = direct_upload(ecr, registry, repo, blob)
        assert answer["receivedParts"] == [] and list(answer["partUrls"]) == ["1"]
        done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(blob)])
        digests.append(done["layerDigest"])
    assert digests == [sha256(config), sha256(layer)]
    manifest = image_manifest(config, [layer])
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="direct")
    found = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[sha256(layer)])
    assert found["layers"][0]["layerSize"] == len(layer)


def test_a_resumed_client_is_told_which_parts_s3_holds(ecr, registry, repo):
    data = os.urandom(1000)
    upload_id, _ = direct_upload(ecr, registry, repo, data)
    status, again = urls_for(registry, repo, upload_id, len(data))
    assert status == 200 and again["receivedParts"] == [{"partNumber": 1, "size": len(data)}]
    assert ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(data)])


def test_a_wrong_digest_is_refused_and_the_layer_is_not_usable(ecr, registry, repo):
    data = os.urandom(5000)
    upload_id, _ = direct_upload(ecr, registry, repo, data)
    wrong = sha256(b"other bytes")
    with pytest.raises(ClientError) as refused:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[wrong])
    assert error_code(refused) == "InvalidLayerException"
    assert missing(ecr, repo, wrong) and missing(ecr, repo, sha256(data))


def test_a_part_replaced_after_the_listing_is_what_gets_hashed(ecr, registry, repo):
    data = os.urandom(3000)
    upload_id, answer = direct_upload(ecr, registry, repo, data)
    put_part(answer["partUrls"]["1"], os.urandom(3000))  # same size, other bytes
    with pytest.raises(ClientError) as refused:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(data)])
    assert error_code(refused) == "InvalidLayerException"
    assert missing(ecr, repo, sha256(data))


def test_parts_that_do_not_make_the_announced_size_are_refused_unread(ecr, registry, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    _, answer = urls_for(registry, repo, upload_id, 100)
    data = os.urandom(101)  # more than announced: nothing beyond the announced size is ever hashed
    put_part(answer["partUrls"]["1"], data)
    with pytest.raises(ClientError) as refused:
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(data)])
    assert error_code(refused) == "InvalidLayerException"


def test_an_upload_takes_one_mode(ecr, registry, repo):
    parts = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(repositoryName=repo, uploadId=parts, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc")
    status, answer = urls_for(registry, repo, parts, 3)
    assert (status, answer["__type"]) == (400, "InvalidLayerPartException")

    direct = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    assert urls_for(registry, repo, direct, 3)[0] == 200
    with pytest.raises(ClientError) as refused:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=direct, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc"
        )
    assert error_code(refused) == "InvalidLayerPartException"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"layerSize": 0}, "InvalidParameterException"),
        ({"layerSize": None}, "InvalidParameterException"),
        ({"repositoryName": "Not/Valid"}, "InvalidParameterException"),
        ({"uploadId": "0f6b3c8e-0000-4000-8000-000000000000"}, "UploadNotFoundException"),
        ({"repositoryName": "no-such-repository-here"}, "RepositoryNotFoundException"),
        ({"layerSize": 2 * 1024 * MiB + 1}, "LimitExceededException"),  # over the limit: UploadLayerPart
    ],
)
def test_bad_input_is_refused_as_ecr_would(ecr, registry, repo, change, expected):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    params = {"repositoryName": repo, "uploadId": upload_id, "layerSize": 10, **change}
    status, answer = call_extension(registry.endpoint, OPERATION, {k: v for k, v in params.items() if v is not None})
    assert (status, answer["__type"]) == (400, expected)
    # Nothing changed: the upload still takes UploadLayerPart's parts
    ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=0, layerPartBlob=b"x")


def test_a_pull_key_may_not_ask_for_urls(ecr, registry, repo, issue_key):
    key = issue_key("000000000000", (["pull"], ["*"]))
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    params = {"repositoryName": repo, "uploadId": upload_id, "layerSize": 10}
    status, answer = call_extension(registry.endpoint, OPERATION, params, key.access_key_id, key.secret)
    assert (status, answer["__type"]) == (400, "AccessDeniedException")


def test_another_registrys_upload_is_not_found(ecr, registry, repo, issue_key):
    key = issue_key("111111111111", (["push", "ecr:CreateRepository"], ["*"]))
    other = client_of(registry.endpoint, key)
    other.create_repository(repositoryName=repo)  # the same name, in the other registry
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    params = {"repositoryName": repo, "uploadId": upload_id, "layerSize": 10}
    status, answer = call_extension(registry.endpoint, OPERATION, params, key.access_key_id, key.secret)
    assert (status, answer["__type"]) == (400, "UploadNotFoundException")


def test_a_repository_policy_that_denies_uploadlayerpart_denies_the_urls(ecr, registry, repo):
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "NoParts", "Effect": "Deny", "Principal": "*", "Action": "ecr:UploadLayerPart"}],
    }
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps(deny))
    status, answer = urls_for(registry, repo, upload_id, 10)
    assert (status, answer["__type"]) == (400, "AccessDeniedException")


def test_a_registry_without_the_extension_does_not_know_it(ecr, repo, start_registry):
    disabled = start_registry(REGISTRY_DIRECT_UPLOAD_MAX_BYTES="0")
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    status, answer = urls_for(disabled, repo, upload_id, 10)
    assert (status, answer["__type"]) == (400, "UnknownOperationException")


@pytest.mark.local_only
def test_a_part_replaced_between_listing_and_completion_fails_the_completion(
    backends, ecr, registry, repo, monkeypatch
):
    """The race made deterministic at the storage boundary: Complete's listing taken, then a part
    replaced through its URL, then the completion with the listed ETags: S3 refuses it, and no
    object is made of bytes other than those listed."""
    from registry.config import Settings
    from registry.storage import PartsChanged, RegistryStore

    for name, value in backends.environment().items():  # the function's own settings
        monkeypatch.setenv(name, value)
    store = RegistryStore(Settings.from_environment(), backends.client)
    data = os.urandom(3000)
    upload_id, answer = direct_upload(ecr, registry, repo, data)
    upload = store.uploads.get(upload_id)
    listed = store.uploads.direct_parts(upload)
    put_part(answer["partUrls"]["1"], os.urandom(3000))
    monkeypatch.setattr(store.uploads, "direct_parts", lambda _upload: listed)
    with pytest.raises(PartsChanged):
        store.uploads.assemble_direct(upload)
