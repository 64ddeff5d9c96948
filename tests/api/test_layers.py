"""Layer uploads through the ECR API: parts, digests, availability, download URLs."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import pytest
from botocore.exceptions import ClientError
from support import error_code, push_image, sha256, upload_blob

MiB = 1024 * 1024


def availability(ecr, repo, digests):
    result = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=digests)
    return {layer["layerDigest"]: layer["layerSize"] for layer in result["layers"]}, {
        f["layerDigest"]: f["failureCode"] for f in result["failures"]
    }


def test_initiate_returns_an_upload_id_and_a_part_size_that_fits_lambda(ecr, repo):
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    assert len(upload["uploadId"]) == 36
    # base64 in JSON must stay under Lambda's 6 MB request: 4 MiB -> ~5.6 MB on the wire
    assert 1 * MiB <= upload["partSize"] <= 4 * MiB


@pytest.mark.parametrize(
    "size", [1, 5 * MiB - 1, 5 * MiB, 9 * MiB + 123], ids=["1B", "just-under-5MiB", "5MiB", "9MiB"]
)
def test_upload_round_trips_through_the_download_url(ecr, repo, size):
    data = os.urandom(size)
    digest = upload_blob(ecr, repo, data)
    assert availability(ecr, repo, [digest]) == ({digest: size}, {})
    # Download URLs exist only for layers an image references.
    with pytest.raises(ecr.exceptions.LayerInaccessibleException):
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = upload_blob(ecr, repo, config)
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{len(config)},"digest":"{config_digest}"}},'
        f'"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{size},"digest":"{digest}"}}]}}'
    )
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
    assert url["layerDigest"] == digest
    body = urllib.request.urlopen(url["downloadUrl"]).read()
    assert hashlib.sha256(body).hexdigest() == digest.split(":")[1]


def test_smaller_parts_than_asked_are_accepted(ecr, repo):
    data = os.urandom(3 * MiB + 7)
    digest = upload_blob(ecr, repo, data, part_size=700 * 1024)
    assert availability(ecr, repo, [digest])[0] == {digest: len(data)}


def test_parts_must_be_contiguous(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as excinfo:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=1, partLastByte=3, layerPartBlob=b"abc"
        )
    assert excinfo.value.response["lastValidByteReceived"] == -1
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc"
    )
    for first, last, blob in [(5, 7, b"def"), (0, 2, b"abc"), (3, 9, b"def")]:  # gap, repeat, wrong length
        with pytest.raises(ecr.exceptions.InvalidLayerPartException) as excinfo:
            ecr.upload_layer_part(
                repositoryName=repo, uploadId=upload_id, partFirstByte=first, partLastByte=last, layerPartBlob=blob
            )
        assert excinfo.value.response["lastValidByteReceived"] == 2
        assert excinfo.value.response["uploadId"] == upload_id
    result = ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=3, partLastByte=5, layerPartBlob=b"def"
    )
    assert result["lastByteReceived"] == 5
    done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"abcdef")])
    assert done["layerDigest"] == sha256(b"abcdef")


def test_unknown_upload(ecr, repo):
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=missing, partFirstByte=0, partLastByte=0, layerPartBlob=b"a"
        )
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=missing, layerDigests=[sha256(b"a")])


def test_upload_belongs_to_its_repository(ecr, repo):
    other = repo + "-other"
    ecr.create_repository(repositoryName=other)
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(
            repositoryName=other, uploadId=upload_id, partFirstByte=0, partLastByte=0, layerPartBlob=b"a"
        )


def test_complete_without_parts(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ecr.exceptions.EmptyUploadException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"")])


def test_wrong_digest_makes_nothing_available(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=4, layerPartBlob=b"hello"
    )
    wrong = sha256(b"world")
    with pytest.raises(ecr.exceptions.InvalidLayerException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[wrong])
    assert availability(ecr, repo, [wrong, sha256(b"hello")]) == (
        {},
        {wrong: "MissingLayerDigest", sha256(b"hello"): "MissingLayerDigest"},
    )
    # The upload is still open: completing with the right digest works.
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"hello")])
    assert availability(ecr, repo, [sha256(b"hello")])[0] == {sha256(b"hello"): 5}


def test_layer_already_in_the_repository(ecr, repo):
    digest = upload_blob(ecr, repo, b"same bytes")
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=9, layerPartBlob=b"same bytes"
    )
    with pytest.raises(ecr.exceptions.LayerAlreadyExistsException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest])
    assert availability(ecr, repo, [digest])[0] == {digest: 10}


def test_a_repeated_complete_says_the_layer_exists(ecr, repo):
    """A retry of a Complete whose response was lost is told the layer is there."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=2, layerPartBlob=b"xyz"
    )
    ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"xyz")])
    with pytest.raises(ecr.exceptions.LayerAlreadyExistsException):
        ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"xyz")])
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=3, partLastByte=3, layerPartBlob=b"!"
        )


def test_batch_check_layer_availability_failures(ecr, repo):
    digest = upload_blob(ecr, repo, b"present")
    missing = sha256(b"absent")
    found, failures = availability(ecr, repo, [digest, missing, "not-a-digest", ""])
    assert found == {digest: 7}
    assert failures == {missing: "MissingLayerDigest", "not-a-digest": "InvalidLayerDigest", "": "InvalidLayerDigest"}


def test_download_url_for_an_absent_layer(ecr, repo):
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=sha256(b"nothing"))


def test_layer_operations_on_a_missing_repository(ecr):
    for call in (
        lambda: ecr.initiate_layer_upload(repositoryName="no/such-repo"),
        lambda: ecr.batch_check_layer_availability(repositoryName="no/such-repo", layerDigests=[sha256(b"")]),
        lambda: ecr.get_download_url_for_layer(repositoryName="no/such-repo", layerDigest=sha256(b"")),
        lambda: ecr.upload_layer_part(
            repositoryName="no/such-repo",
            uploadId="00000000-0000-0000-0000-000000000000",
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"a",
        ),
    ):
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
            call()


@pytest.mark.local_only  # the emulator's API Gateway applies no payload limit; AWS's does
def test_parts_too_big_for_lambda_are_refused_by_the_gateway(ecr, repo):
    """A 5 MiB part (ECR's own minimum) is ~7 MB as base64 JSON: above Lambda's 6 MB request."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=5 * MiB - 1,
            layerPartBlob=os.urandom(5 * MiB),
        )
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


@pytest.mark.local_only
def test_layer_parts_quota(start_registry):
    from support import NO_RETRIES

    ecr = start_registry(REGISTRY_MAX_LAYER_PARTS="3").ecr(config=NO_RETRIES)
    repo = "quota/parts"
    ecr.create_repository(repositoryName=repo)
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for first in range(3):
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=first, partLastByte=first, layerPartBlob=b"x"
        )
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=3, partLastByte=3, layerPartBlob=b"x"
        )
    assert error_code(excinfo) == "LimitExceededException"
    assert ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[sha256(b"xxx")])[
        "layerDigest"
    ] == sha256(b"xxx")


def test_image_layers_become_downloadable_only_once_referenced(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1", layers=2)
    import json

    for layer in json.loads(pushed.manifest)["layers"]:
        url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer["digest"])["downloadUrl"]
        assert sha256(urllib.request.urlopen(url).read()) == layer["digest"]
