"""Per-key grants: roles pull / push / admin and explicit ecr:<Operation> names on repository
patterns. A refused action is AccessDeniedException (HTTP 400) naming the principal, the action
and the repository's ARN, and changes nothing."""

from __future__ import annotations

import json

import pytest
from auth_support import new_registry_id, repository_names
from botocore.exceptions import ClientError
from support import client_of, image_manifest, new_blobs, push_image, snapshot, upload_blob

pytestmark = pytest.mark.local_only  # keys are issued into the local stack's keys table

REGION = "us-east-1"


@pytest.fixture
def tenant(registry, issue_key):
    """A fresh registry with an admin key, repositories app/web and tools/ci, one image in each."""
    registry_id = new_registry_id()
    admin = client_of(registry.endpoint, issue_key(registry_id, (("admin",), ("*",)), name="admin"))
    for name in ("app/web", "tools/ci"):
        admin.create_repository(repositoryName=name)
        push_image(admin, name, tag="v1")
    return registry_id, admin


def denied(
    excinfo, registry_id: str, key_name: str, operation: str, repository: str, resource_registry: str | None = None
) -> None:
    error = excinfo.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDeniedException", 400)
    assert error["Error"]["Message"] == (
        f"User: arn:aws:iam::{registry_id}:user/{key_name} is not authorized to perform: ecr:{operation} "
        f"on resource: arn:aws:ecr:{REGION}:{resource_registry or registry_id}:repository/{repository}"
    )


def test_pull_only_key_cannot_put_image_and_nothing_changes(registry, tenant, issue_key):
    registry_id, admin = tenant
    puller = client_of(registry.endpoint, issue_key(registry_id, (("pull",), ("*",)), name="puller"))
    before = snapshot(admin, "app/web")
    config, blobs = new_blobs(1)
    with pytest.raises(ClientError) as excinfo:
        puller.put_image(repositoryName="app/web", imageTag="v2", imageManifest=image_manifest(config, blobs))
    denied(excinfo, registry_id, "puller", "PutImage", "app/web")
    for operation, params in (
        ("initiate_layer_upload", {}),
        ("batch_delete_image", {"imageIds": [{"imageTag": "v1"}]}),
        ("delete_repository", {"force": True}),
        ("put_image_tag_mutability", {"imageTagMutability": "IMMUTABLE"}),
    ):
        with pytest.raises(ClientError) as excinfo:
            getattr(puller, operation)(repositoryName="app/web", **params)
        assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException", operation
    assert snapshot(admin, "app/web") == before
    assert (
        admin.describe_repositories(repositoryNames=["app/web"])["repositories"][0]["imageTagMutability"] == "MUTABLE"
    )


def test_pull_only_key_pulls(registry, tenant, issue_key):
    registry_id, _ = tenant
    puller = client_of(registry.endpoint, issue_key(registry_id, (("pull",), ("app/*",)), name="puller"))
    image = puller.batch_get_image(repositoryName="app/web", imageIds=[{"imageTag": "v1"}])["images"][0]
    manifest = json.loads(image["imageManifest"])
    digests = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    available = puller.batch_check_layer_availability(repositoryName="app/web", layerDigests=digests)
    assert [layer["layerAvailability"] for layer in available["layers"]] == ["AVAILABLE"] * len(digests)
    assert puller.get_download_url_for_layer(repositoryName="app/web", layerDigest=digests[-1])["downloadUrl"]
    assert puller.list_images(repositoryName="app/web")["imageIds"] == [image["imageId"]]
    assert puller.describe_images(repositoryName="app/web")["imageDetails"][0]["imageTags"] == ["v1"]
    assert repository_names(puller) == ["app/web"]


def test_grants_are_limited_to_their_repository_patterns(registry, tenant, issue_key):
    registry_id, _ = tenant
    puller = client_of(registry.endpoint, issue_key(registry_id, (("pull",), ("app/*",)), name="app-reader"))
    with pytest.raises(ClientError) as excinfo:
        puller.list_images(repositoryName="tools/ci")
    denied(excinfo, registry_id, "app-reader", "ListImages", "tools/ci")
    with pytest.raises(ClientError) as excinfo:
        puller.describe_repositories(repositoryNames=["app/web", "tools/ci"])
    denied(excinfo, registry_id, "app-reader", "DescribeRepositories", "tools/ci")


def test_describe_repositories_lists_only_what_the_key_may_describe(registry, tenant, issue_key):
    registry_id, admin = tenant
    for name in ("app/api", "app/jobs", "docs"):
        admin.create_repository(repositoryName=name)
    reader = client_of(registry.endpoint, issue_key(registry_id, (("pull",), ("app/*", "docs")), name="reader"))
    assert repository_names(reader) == ["app/api", "app/jobs", "app/web", "docs"]
    # pages of one still walk the filtered list to its end
    pages = list(reader.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 1}))
    assert [r["repositoryName"] for p in pages for r in p["repositories"]] == ["app/api", "app/jobs", "app/web", "docs"]
    assert repository_names(admin) == ["app/api", "app/jobs", "app/web", "docs", "tools/ci"]
    nothing = client_of(registry.endpoint, issue_key(registry_id, (("ecr:ListImages",), ("*",)), name="lister"))
    with pytest.raises(ClientError) as excinfo:
        nothing.describe_repositories()
    denied(excinfo, registry_id, "lister", "DescribeRepositories", "*")


def test_push_key_pushes_but_cannot_delete_or_create(registry, tenant, issue_key):
    registry_id, admin = tenant
    pusher = client_of(registry.endpoint, issue_key(registry_id, (("push",), ("app/*",)), name="ci"))
    pushed = push_image(pusher, "app/web", tag="v2", layers=2)
    assert (
        pusher.describe_images(repositoryName="app/web", imageIds=[{"imageTag": "v2"}])["imageDetails"][0][
            "imageDigest"
        ]
        == pushed.digest
    )
    before = snapshot(admin, "app/web")
    for operation, params, repository in (
        ("delete_repository", {"repositoryName": "app/web", "force": True}, "app/web"),
        ("create_repository", {"repositoryName": "app/new"}, "app/new"),
        ("batch_delete_image", {"repositoryName": "app/web", "imageIds": [{"imageTag": "v1"}]}, "app/web"),
        ("put_image_tag_mutability", {"repositoryName": "app/web", "imageTagMutability": "IMMUTABLE"}, "app/web"),
    ):
        with pytest.raises(ClientError) as excinfo:
            getattr(pusher, operation)(**params)
        denied(excinfo, registry_id, "ci", "".join(w.title() for w in operation.split("_")), repository)
    assert snapshot(admin, "app/web") == before
    assert "app/new" not in repository_names(admin)
    with pytest.raises(ClientError) as excinfo:  # outside its pattern, even the upload is refused
        upload_blob(pusher, "tools/ci", b"layer")
    denied(excinfo, registry_id, "ci", "InitiateLayerUpload", "tools/ci")


def test_explicit_action_names(registry, tenant, issue_key):
    registry_id, admin = tenant
    key = issue_key(
        registry_id,
        (("ecr:CreateRepository", "ecr:DeleteRepository"), ("scratch/*",)),
        (("ecr:Describe*",), ("*",)),
        name="janitor",
    )
    janitor = client_of(registry.endpoint, key)
    janitor.create_repository(repositoryName="scratch/one")
    assert "scratch/one" in repository_names(janitor)
    assert janitor.describe_images(repositoryName="tools/ci")["imageDetails"]
    with pytest.raises(ClientError) as excinfo:
        janitor.list_images(repositoryName="tools/ci")
    denied(excinfo, registry_id, "janitor", "ListImages", "tools/ci")
    janitor.delete_repository(repositoryName="scratch/one")
    assert "scratch/one" not in repository_names(admin)


def test_a_key_cannot_name_another_registry(registry, tenant):
    registry_id, admin = tenant
    other = new_registry_id()
    with pytest.raises(ClientError) as excinfo:
        admin.describe_repositories(registryId=other)
    denied(excinfo, registry_id, "admin", "DescribeRepositories", "*", resource_registry=other)
    with pytest.raises(ClientError) as excinfo:
        admin.create_repository(registryId=other, repositoryName="app/web")
    denied(excinfo, registry_id, "admin", "CreateRepository", "app/web", resource_registry=other)
    assert admin.describe_repositories(registryId=registry_id, repositoryNames=["app/web"])["repositories"]


def test_lifecycle_policies_are_read_by_pull_and_push_and_changed_by_admin_only(registry, tenant, issue_key):
    """As AWS's managed policies have it: ReadOnly and PowerUser read lifecycle policies and their
    previews; only FullAccess puts, deletes or starts a preview."""
    registry_id, admin = tenant
    text = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    admin.put_lifecycle_policy(repositoryName="app/web", lifecyclePolicyText=text)
    admin.start_lifecycle_policy_preview(repositoryName="app/web")
    for role in ("pull", "push"):
        key = client_of(registry.endpoint, issue_key(registry_id, ((role,), ("*",)), name=role))
        assert key.get_lifecycle_policy(repositoryName="app/web")["lifecyclePolicyText"] == text
        assert key.get_lifecycle_policy_preview(repositoryName="app/web")["status"] == "COMPLETE"
        for operation, method, params in (
            ("PutLifecyclePolicy", key.put_lifecycle_policy, {"lifecyclePolicyText": text}),
            ("DeleteLifecyclePolicy", key.delete_lifecycle_policy, {}),
            ("StartLifecyclePolicyPreview", key.start_lifecycle_policy_preview, {}),
        ):
            with pytest.raises(ClientError) as excinfo:
                method(repositoryName="app/web", **params)
            denied(excinfo, registry_id, role, operation, "app/web")
    assert admin.get_lifecycle_policy(repositoryName="app/web")["lifecyclePolicyText"] == text


def test_resource_tags_are_listed_by_pull_and_push_and_changed_by_admin_only(registry, tenant, issue_key):
    """As AWS's managed policies have it: ReadOnly and PowerUser list a repository's tags; only
    FullAccess tags, untags, changes scanning settings or describes the registry. The repository is
    the one the ARN names, so a grant's pattern applies to it."""
    registry_id, admin = tenant
    arn = f"arn:aws:ecr:{REGION}:{registry_id}:repository/app/web"
    admin.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "web"}])
    for role in ("pull", "push"):
        key = client_of(registry.endpoint, issue_key(registry_id, ((role,), ("app/*",)), name=role))
        assert key.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "web"}]
        for operation, method, params in (
            ("TagResource", key.tag_resource, {"resourceArn": arn, "tags": [{"Key": "team", "Value": role}]}),
            ("UntagResource", key.untag_resource, {"resourceArn": arn, "tagKeys": ["team"]}),
            (
                "PutImageScanningConfiguration",
                key.put_image_scanning_configuration,
                {"repositoryName": "app/web", "imageScanningConfiguration": {"scanOnPush": True}},
            ),
        ):
            with pytest.raises(ClientError) as excinfo:
                method(**params)
            denied(excinfo, registry_id, role, operation, "app/web")
        with pytest.raises(ClientError) as excinfo:
            key.describe_registry()
        denied(excinfo, registry_id, role, "DescribeRegistry", "*")
        with pytest.raises(ClientError) as excinfo:  # outside the grant's pattern
            key.list_tags_for_resource(resourceArn=arn.replace("app/web", "tools/ci"))
        denied(excinfo, registry_id, role, "ListTagsForResource", "tools/ci")
    assert admin.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "web"}]
    assert admin.describe_registry()["registryId"] == registry_id
