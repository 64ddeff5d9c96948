"""KMS-encrypted repositories and faults injected at the storage boundary.

moto's KMS ignores key state, so a KMS failure is injected into the handler's own S3 client
(local/faults.py) exactly where S3 would report it; the same hooks make DynamoDB fail for the
ServerException cases.
"""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError
from support import (
    error_code,
    image_manifest,
    new_blobs,
    push_image,
    snapshot,
    unique_name,
    upload_blob,
    upload_image_blobs,
)

pytestmark = pytest.mark.local_only
MiB = 1024 * 1024


REGISTRY_TAG = "ecr-registry:registry-id"  # registry.config.KMS_KEY_REGISTRY_TAG, as an operator types it


def registry_key(backends, registry_id: str | None = "000000000000", **extra) -> str:
    """A customer KMS key, tagged (as the operator does) for the registry that may use it."""
    tags = [{"TagKey": REGISTRY_TAG, "TagValue": registry_id}] if registry_id else []
    return backends.client("kms").create_key(Description="registry test key", Tags=tags, **extra)["KeyMetadata"]["Arn"]


@pytest.fixture
def kms_key(backends):
    return registry_key(backends)


# --- which keys a registry may use (a tenant never borrows another's, nor the registry's own) --------


@pytest.mark.parametrize("case", ["another-registry", "untagged", "access-key-secrets", "unknown-alias", "unknown-key"])
def test_a_registry_uses_only_kms_keys_assigned_to_it(ecr, backends, case):
    if case == "another-registry":
        key = registry_key(backends, "111111111111")
    elif case == "untagged":
        key = registry_key(backends, None)
    elif case == "access-key-secrets":
        key = backends.access_keys_kms_key
    elif case == "unknown-alias":
        key = "alias/does-not-exist"
    else:
        key = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000"
    repo = unique_name("foreign-key")
    with pytest.raises(ecr.exceptions.KmsException) as refused:
        ecr.create_repository(repositoryName=repo, encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key})
    error = refused.value.response["Error"]
    # One answer whether the key is someone else's or does not exist: nothing to probe with.
    assert error["Message"] == f"The KMS key '{key}' is not assigned to registry 000000000000", error
    assert refused.value.response.get("kmsError") == "NotFoundException"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo])


def test_a_key_assigned_to_the_registry_may_be_named_by_alias(ecr, backends):
    key = registry_key(backends)
    backends.client("kms").create_alias(AliasName="alias/team-key", TargetKeyId=key)
    created = ecr.create_repository(
        repositoryName=unique_name("alias-key"),
        encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/team-key"},
    )["repository"]
    assert created["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}


def stored_objects(backends, repo):
    """S3 keys of the repository's blobs, read from the layers table."""
    dynamodb = backends.client("dynamodb")
    items = dynamodb.query(
        TableName=backends.tables["layers"],
        KeyConditionExpression="repository = :r",
        ExpressionAttributeValues={":r": {"S": f"000000000000/{repo}"}},
    )["Items"]
    return [item["blob_key"]["S"] for item in items]


def test_kms_repository_keeps_objects_under_its_key(ecr, backends, kms_key):
    repo = unique_name("kms")
    created = ecr.create_repository(
        repositoryName=repo, encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms_key}
    )["repository"]
    assert created["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": kms_key}
    config, _blobs = new_blobs(0)
    big, small = os.urandom(6 * MiB), os.urandom(100)
    for blob in (config, big, small):
        upload_blob(ecr, repo, blob)
    document = json.loads(image_manifest(config, [big, small]))
    document["annotations"] = {"filler": "x" * 100_000}  # too big for an item: stored in S3
    ecr.put_image(repositoryName=repo, imageManifest=json.dumps(document), imageTag="v1")
    s3 = backends.client("s3")
    keys = stored_objects(backends, repo)
    keys += [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=backends.bucket, Prefix="manifests/")["Contents"]
        if "kms-" in o["Key"]
    ]
    assert len(keys) >= 4
    for key in keys:
        head = s3.head_object(Bucket=backends.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == kms_key, key
    # The same bytes pushed to an AES256 repository are stored apart (another key, another copy).
    plain = unique_name("plain")
    ecr.create_repository(repositoryName=plain)
    upload_blob(ecr, plain, small)
    (plain_key,) = stored_objects(backends, plain)
    assert plain_key not in keys
    assert s3.head_object(Bucket=backends.bucket, Key=plain_key)["ServerSideEncryption"] == "AES256"


def test_unknown_kms_key_is_a_kms_error(ecr):
    repo = unique_name("kms-missing")
    with pytest.raises(ecr.exceptions.KmsException) as excinfo:
        ecr.create_repository(
            repositoryName=repo,
            encryptionConfiguration={
                "encryptionType": "KMS",
                "kmsKey": "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000",
            },
        )
    assert excinfo.value.response["kmsError"] == "NotFoundException"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo])


def test_kms_key_disabled_while_pushing(faults, kms_key):
    ecr = faults.ecr
    repo = unique_name("kms-fault")
    ecr.create_repository(repositoryName=repo, encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms_key})
    kms_down = [
        {
            "service": "s3",
            "operation": op,
            "code": "KMS.DisabledException",
            "status": 400,
            "message": f"{kms_key} is disabled.",
            "match": {"SSEKMSKeyId": kms_key},
        }
        for op in ("PutObject", "CreateMultipartUpload", "CopyObject")
    ]
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    faults.set(*kms_down)
    with pytest.raises(ecr.exceptions.KmsException) as excinfo:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc"
        )
    assert excinfo.value.response["kmsError"] == "DisabledException"
    # Nothing was received: once KMS is back, the upload continues from byte 0.
    faults.set()
    upload = ecr.upload_layer_part(
        repositoryName=repo, uploadId=upload_id, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc"
    )
    assert upload["lastByteReceived"] == 2
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, repo, config, blobs)
    document = json.loads(image_manifest(config, blobs))
    document["annotations"] = {"filler": "y" * 100_000}
    before = snapshot(ecr, repo)
    faults.set(*kms_down)
    with pytest.raises(ecr.exceptions.KmsException):
        ecr.put_image(repositoryName=repo, imageManifest=json.dumps(document), imageTag="v1")
    assert snapshot(ecr, repo) == before
    faults.set()
    ecr.put_image(repositoryName=repo, imageManifest=json.dumps(document), imageTag="v1")


def test_storage_fault_is_a_server_exception_with_nothing_partial(faults):
    ecr = faults.ecr
    repo = unique_name("fault")
    ecr.create_repository(repositoryName=repo)
    old = push_image(ecr, repo, tag="latest")
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, repo, config, blobs)
    manifest = image_manifest(config, blobs)
    before = snapshot(ecr, repo)
    faults.set(
        {
            "service": "dynamodb",
            "operation": "TransactWriteItems",
            "code": "InternalServerError",
            "status": 500,
            "times": 1,
        }
    )
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="latest")
    assert error_code(excinfo) == "ServerException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert snapshot(ecr, repo) == before
    # The retry a client makes succeeds, and the tag moves as if the fault never happened.
    new = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="latest")["image"]["imageId"]
    tags = {d["imageDigest"]: d.get("imageTags", []) for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert tags == {old.digest: [], new["imageDigest"]: ["latest"]}


def test_lost_response_then_retry_sees_image_already_exists(faults):
    ecr = faults.ecr
    repo = unique_name("lost")
    ecr.create_repository(repositoryName=repo)
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, repo, config, blobs)
    manifest = image_manifest(config, blobs)
    faults.set(
        {
            "service": "dynamodb",
            "operation": "TransactWriteItems",
            "when": "after",
            "code": "RequestTimeout",
            "status": 500,
            "times": 1,
        }
    )
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")
    assert error_code(excinfo) == "ServerException"
    with pytest.raises(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")
    assert [d.get("imageTags") for d in ecr.describe_images(repositoryName=repo)["imageDetails"]] == [["v1"]]
