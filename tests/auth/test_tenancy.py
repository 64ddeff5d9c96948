"""Registries are tenants: a key acts in its own registry only, whatever registryId it sends, and
the same repository name in two registries are two repositories that never meet (metadata,
uploads, layer bytes)."""

from __future__ import annotations

import pytest
from auth_support import new_registry_id, repository_names
from botocore.exceptions import ClientError
from support import client_of, image_manifest, new_blobs, push_image, sha256, snapshot, upload_image_blobs

pytestmark = pytest.mark.local_only  # keys are issued into the local stack's keys table


@pytest.fixture
def two_tenants(registry, issue_key):
    a, b = new_registry_id(), new_registry_id()
    return (
        (a, client_of(registry.endpoint, issue_key(a, (("admin",), ("*",)), name="admin-a"))),
        (b, client_of(registry.endpoint, issue_key(b, (("admin",), ("*",)), name="admin-b"))),
    )


def test_each_registry_sees_only_its_own_repositories(two_tenants, ecr):
    (a, ecr_a), (b, ecr_b) = two_tenants
    ecr_a.create_repository(repositoryName="only-in-a")
    ecr_b.create_repository(repositoryName="only-in-b")
    created = ecr_a.create_repository(repositoryName="shared/name", imageTagMutability="IMMUTABLE")["repository"]
    assert created["registryId"] == a and created["repositoryArn"].endswith(f":{a}:repository/shared/name")
    ecr_b.create_repository(repositoryName="shared/name")  # no RepositoryAlreadyExistsException
    assert repository_names(ecr_a) == ["only-in-a", "shared/name"]
    assert repository_names(ecr_b) == ["only-in-b", "shared/name"]
    with pytest.raises(ecr_a.exceptions.RepositoryNotFoundException):
        ecr_a.describe_repositories(repositoryNames=["only-in-b"])
    described = {
        ecr.describe_repositories(repositoryNames=["shared/name"])["repositories"][0]["registryId"]
        for ecr in (ecr_a, ecr_b)
    }
    assert described == {a, b}
    # the suite's own key (registry 000000000000) sees neither
    assert not {"only-in-a", "only-in-b"} & set(repository_names(ecr))


def test_same_name_does_not_interfere(two_tenants):
    (_a, ecr_a), (_b, ecr_b) = two_tenants
    for client in (ecr_a, ecr_b):
        client.create_repository(repositoryName="app", imageTagMutability="IMMUTABLE")
    image_a = push_image(ecr_a, "app", tag="v1")
    assert snapshot(ecr_b, "app") == {"images": [], "ids": []}
    image_b = push_image(ecr_b, "app", tag="v1")  # the immutable tag v1 of registry a is no obstacle
    assert image_a.digest != image_b.digest
    assert snapshot(ecr_a, "app")["ids"] == [(image_a.digest, "v1")]
    assert snapshot(ecr_b, "app")["ids"] == [(image_b.digest, "v1")]
    # deleting in b leaves a whole
    before = snapshot(ecr_a, "app")
    ecr_b.delete_repository(repositoryName="app", force=True)
    assert snapshot(ecr_a, "app") == before
    assert (
        ecr_a.batch_get_image(repositoryName="app", imageIds=[{"imageTag": "v1"}])["images"][0]["imageManifest"]
        == image_a.manifest
    )


def test_layers_of_one_registry_are_not_available_in_another(two_tenants):
    """Blob bytes are deduplicated per registry only: a digest known in a gives b nothing."""
    (_a, ecr_a), (_b, ecr_b) = two_tenants
    for client in (ecr_a, ecr_b):
        client.create_repository(repositoryName="app")
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr_a, "app", config, blobs)
    manifest = image_manifest(config, blobs)
    ecr_a.put_image(repositoryName="app", imageTag="v1", imageManifest=manifest)
    digests = [sha256(x) for x in (config, *blobs)]
    checked = ecr_b.batch_check_layer_availability(repositoryName="app", layerDigests=digests)
    assert checked["layers"] == [] and {f["failureCode"] for f in checked["failures"]} == {"MissingLayerDigest"}
    with pytest.raises(ecr_b.exceptions.LayersNotFoundException):
        ecr_b.put_image(repositoryName="app", imageTag="v1", imageManifest=manifest)
    with pytest.raises(ecr_b.exceptions.LayersNotFoundException):
        ecr_b.get_download_url_for_layer(repositoryName="app", layerDigest=digests[1])


def test_an_upload_of_one_registry_cannot_be_used_from_another(two_tenants):
    (_a, ecr_a), (_b, ecr_b) = two_tenants
    for client in (ecr_a, ecr_b):
        client.create_repository(repositoryName="app")
    upload_id = ecr_a.initiate_layer_upload(repositoryName="app")["uploadId"]
    with pytest.raises(ecr_b.exceptions.UploadNotFoundException):
        ecr_b.upload_layer_part(
            repositoryName="app", uploadId=upload_id, partFirstByte=0, partLastByte=3, layerPartBlob=b"evil"
        )
    with pytest.raises(ecr_b.exceptions.UploadNotFoundException):
        ecr_b.complete_layer_upload(repositoryName="app", uploadId=upload_id, layerDigests=["sha256:" + "0" * 64])
    # a's upload is untouched: its first part still starts at byte 0
    ecr_a.upload_layer_part(
        repositoryName="app", uploadId=upload_id, partFirstByte=0, partLastByte=3, layerPartBlob=b"good"
    )


@pytest.mark.parametrize(
    "operation, params",
    [
        ("describe_repositories", {}),
        ("describe_images", {"repositoryName": "app"}),
        ("list_images", {"repositoryName": "app"}),
        ("batch_get_image", {"repositoryName": "app", "imageIds": [{"imageTag": "v1"}]}),
        ("initiate_layer_upload", {"repositoryName": "app"}),
        ("put_image", {"repositoryName": "app", "imageManifest": "{}"}),
        ("batch_delete_image", {"repositoryName": "app", "imageIds": [{"imageTag": "v1"}]}),
        ("delete_repository", {"repositoryName": "app", "force": True}),
        ("create_repository", {"repositoryName": "intruder"}),
    ],
)
def test_sending_the_other_registry_id_is_denied(two_tenants, operation, params):
    (a, ecr_a), (b, ecr_b) = two_tenants
    ecr_b.create_repository(repositoryName="app")
    push_image(ecr_b, "app", tag="v1")
    before = (repository_names(ecr_b), snapshot(ecr_b, "app"))
    with pytest.raises(ClientError) as excinfo:
        getattr(ecr_a, operation)(registryId=b, **params)
    error = excinfo.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"].startswith(f"User: arn:aws:iam::{a}:user/admin-a is not authorized")
    assert f":{b}:repository/" in error["Message"]
    assert (repository_names(ecr_b), snapshot(ecr_b, "app")) == before
