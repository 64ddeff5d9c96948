"""CreateRepository, DescribeRepositories, DeleteRepository, PutImageTagMutability."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from support import error_code, push_image, unique_name


def test_create_returns_the_repository(ecr, request):
    name = unique_name(request.node.name)
    repo = ecr.create_repository(
        repositoryName=name,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        imageScanningConfiguration={"scanOnPush": True},
        tags=[{"Key": "team", "Value": "platform"}],
    )["repository"]
    assert repo["repositoryName"] == name
    assert repo["registryId"] == "000000000000" or len(repo["registryId"]) == 12
    assert repo["repositoryArn"] == f"arn:aws:ecr:us-east-1:{repo['registryId']}:repository/{name}"
    assert repo["repositoryUri"] == f"{repo['registryId']}.dkr.ecr.us-east-1.amazonaws.com/{name}"
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    described = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert described == [repo]


def test_duplicate_repository(ecr, repo):
    with pytest.raises(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repo)


@pytest.mark.parametrize("name", ["ab/", "UPPER", "trailing-", "double//slash", "x" * 257, "-lead"])
def test_invalid_repository_names(ecr, name):
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName=name)


@pytest.mark.parametrize(
    "mutability,filters",
    [
        ("IMMUTABLE_WITH_EXCLUSION", None),  # exclusions need filters
        ("MUTABLE", [{"filterType": "WILDCARD", "filter": "latest"}]),  # filters need an exclusion mode
        ("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": "bad tag"}]),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "REGEX", "filter": "latest"}]),
        ("IMMUTABLE_WITH_EXCLUSION", [{"filterType": "WILDCARD", "filter": f"t{i}"} for i in range(6)]),
        ("SOMETIMES", None),
    ],
)
def test_invalid_mutability_settings(ecr, request, mutability, filters):
    name = unique_name(request.node.name)
    kwargs = {"imageTagMutabilityExclusionFilters": filters} if filters else {}
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.create_repository(repositoryName=name, imageTagMutability=mutability, **kwargs)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[name])


@pytest.mark.parametrize(
    "tags,code",
    [
        ([{"Key": f"k{i}", "Value": "v"} for i in range(51)], "TooManyTagsException"),
        ([{"Key": "aws:reserved", "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "k" * 129, "Value": "v"}], "InvalidTagParameterException"),
        ([{"Key": "k", "Value": "v" * 257}], "InvalidTagParameterException"),
        ([{"Key": "k", "Value": "a"}, {"Key": "k", "Value": "b"}], "InvalidTagParameterException"),
    ],
)
def test_invalid_resource_tags(ecr, request, tags, code):
    name = unique_name(request.node.name)
    with pytest.raises(ClientError) as excinfo:
        ecr.create_repository(repositoryName=name, tags=tags)
    assert error_code(excinfo) == code


def test_describe_repositories_pages_through_everything(ecr, registry):
    prefix = unique_name("pages")
    names = [f"{prefix}/r{i:02d}" for i in range(7)]
    for name in names:
        ecr.create_repository(repositoryName=name)
    seen, pages = [], 0
    for page in ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 3}):
        pages += 1
        assert len(page["repositories"]) <= 3
        seen.extend(r["repositoryName"] for r in page["repositories"])
    assert len(seen) == len(set(seen))
    assert set(names) <= set(seen)
    assert pages >= 3


def test_describe_repositories_errors(ecr, repo):
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo, repo + "-missing"])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(repositoryNames=[repo], maxResults=5)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(maxResults=1001)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_repositories(nextToken="garbage!")


def test_delete_empty_repository(ecr, repo):
    deleted = ecr.delete_repository(repositoryName=repo)["repository"]
    assert deleted["repositoryName"] == repo
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repo])
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.delete_repository(repositoryName=repo)


def test_delete_needs_force_when_images_exist(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=repo)
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageDigest"] == pushed.digest
    ecr.delete_repository(repositoryName=repo, force=True)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_images(repositoryName=repo)
    # The name can be used again, and nothing of the old repository shows through.
    ecr.create_repository(repositoryName=repo)
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[pushed.digest])["layers"] == []


def test_put_image_tag_mutability(ecr, repo):
    result = ecr.put_image_tag_mutability(
        repositoryName=repo,
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "release-*"}],
    )
    assert result["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    assert result["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "release-*"}]
    described = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION"
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.put_image_tag_mutability(repositoryName=repo + "-missing", imageTagMutability="MUTABLE")
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE_WITH_EXCLUSION")
    assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0] == described


@pytest.mark.local_only
def test_repositories_per_registry_quota(start_registry, backends):
    from support import NO_RETRIES

    existing = backends.client("dynamodb").get_item(
        TableName=backends.tables["repositories"],
        Key={"registry_id": {"S": "000000000000"}, "name": {"S": "#registry"}},
    )["Item"]["repository_count"]["N"]
    ecr = start_registry(REGISTRY_MAX_REPOSITORIES=str(int(existing) + 1)).ecr(config=NO_RETRIES)
    ecr.create_repository(repositoryName=unique_name("quota-a"))
    name = unique_name("quota-b")
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.create_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[name])
