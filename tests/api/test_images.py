"""BatchGetImage, DescribeImages, ListImages, BatchDeleteImage."""

from __future__ import annotations

import base64
import json

import pytest
from support import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    image_manifest,
    index_manifest,
    new_blobs,
    push_image,
    sha256,
    snapshot,
    tags_of,
    upload_image_blobs,
)


def test_batch_get_image_by_tag_and_digest_with_failures(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    other = push_image(ecr, repo, tag="v2")
    result = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[
            {"imageTag": "v1"},
            {"imageDigest": other.digest},
            {"imageTag": "nope"},
            {"imageDigest": sha256(b"missing")},
            {"imageDigest": "bogus"},
            {},
            {"imageTag": "v1", "imageDigest": other.digest},
        ],
    )
    got = {(i["imageId"]["imageDigest"], i["imageId"].get("imageTag")): i["imageManifest"] for i in result["images"]}
    assert got == {(pushed.digest, "v1"): pushed.manifest, (other.digest, None): other.manifest}
    codes = sorted(f["failureCode"] for f in result["failures"])
    assert codes == [
        "ImageNotFound",
        "ImageNotFound",
        "ImageTagDoesNotMatchDigest",
        "InvalidImageDigest",
        "MissingDigestAndTag",
    ]


def test_batch_get_image_accepted_media_types(ecr, repo):
    push_image(ecr, repo, tag="docker")
    push_image(ecr, repo, tag="oci", oci=True)
    result = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "docker"}, {"imageTag": "oci"}], acceptedMediaTypes=[OCI_MANIFEST]
    )
    assert [i["imageManifestMediaType"] for i in result["images"]] == [OCI_MANIFEST]
    assert [f["imageId"] for f in result["failures"]] == [{"imageTag": "docker"}]
    both = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageTag": "docker"}, {"imageTag": "oci"}],
        acceptedMediaTypes=[OCI_MANIFEST, DOCKER_MANIFEST],
    )
    assert len(both["images"]) == 2 and both["failures"] == []


def test_describe_images_one_entry_per_digest(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1", layers=3)
    ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag="latest")
    untagged = push_image(ecr, repo)
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert set(details) == {pushed.digest, untagged.digest}
    tagged = details[pushed.digest]
    assert tagged["imageTags"] == ["latest", "v1"]
    assert tagged["imageSizeInBytes"] == pushed.size
    assert tagged["imageManifestMediaType"] == DOCKER_MANIFEST
    assert tagged["artifactMediaType"] == "application/vnd.docker.container.image.v1+json"
    assert tagged["imageStatus"] == "ACTIVE"
    assert "imageTags" not in details[untagged.digest]

    def only(status):
        return [
            d["imageDigest"]
            for d in ecr.describe_images(repositoryName=repo, filter={"tagStatus": status})["imageDetails"]
        ]

    assert only("TAGGED") == [pushed.digest]
    assert only("UNTAGGED") == [untagged.digest]
    assert sorted(only("ANY")) == sorted([pushed.digest, untagged.digest])


def test_describe_images_by_id(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    by_tag = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageDigest": pushed.digest}])
    assert [d["imageDigest"] for d in by_tag["imageDetails"]] == [pushed.digest]
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageTag": "missing"}])
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}], maxResults=10)


def test_describe_and_list_images_paginate(ecr, repo):
    digests = set()
    for i in range(5):
        pushed = push_image(ecr, repo, tag=f"t{i}")
        digests.add(pushed.digest)
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=f"u{i}")
    described, pages = [], 0
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 2}):
        pages += 1
        described.extend(d["imageDigest"] for d in page["imageDetails"])
    assert sorted(described) == sorted(digests) and pages == 3
    listed = []
    for page in ecr.get_paginator("list_images").paginate(repositoryName=repo, PaginationConfig={"PageSize": 3}):
        assert len(page["imageIds"]) <= 3
        listed.extend((i["imageDigest"], i["imageTag"]) for i in page["imageIds"])
    assert len(listed) == len(set(listed)) == 10
    assert {t for _, t in listed} == {f"{p}{i}" for p in "tu" for i in range(5)}


def test_list_images_filters(ecr, repo):
    tagged = push_image(ecr, repo, tag="a")
    ecr.put_image(repositoryName=repo, imageManifest=tagged.manifest, imageTag="b")
    untagged = push_image(ecr, repo)

    def ids(**f):
        return sorted(
            (i["imageDigest"], i.get("imageTag")) for i in ecr.list_images(repositoryName=repo, **f)["imageIds"]
        )

    assert ids() == sorted([(tagged.digest, "a"), (tagged.digest, "b"), (untagged.digest, None)])
    assert ids(filter={"tagStatus": "TAGGED"}) == [(tagged.digest, "a"), (tagged.digest, "b")]
    assert ids(filter={"tagStatus": "UNTAGGED"}) == [(untagged.digest, None)]
    assert ids(filter={"imageStatus": "ARCHIVED"}) == []


def test_batch_delete_by_tag_keeps_the_image_until_its_last_tag(ecr, repo):
    pushed = push_image(ecr, repo, tag="a")
    ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag="b")
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "a"}])
    assert result == {
        "imageIds": [{"imageDigest": pushed.digest, "imageTag": "a"}],
        "failures": [],
        "ResponseMetadata": result["ResponseMetadata"],
    }
    assert tags_of(ecr, repo, pushed.digest) == ["b"]
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "b"}])
    assert snapshot(ecr, repo) == {"images": [], "ids": []}


def test_batch_delete_by_digest_removes_every_tag(ecr, repo):
    pushed = push_image(ecr, repo, tag="a")
    ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag="b")
    keep = push_image(ecr, repo, tag="c")
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": pushed.digest}])
    assert sorted(i.get("imageTag") for i in result["imageIds"]) == ["a", "b"]
    assert [d["imageDigest"] for d in ecr.describe_images(repositoryName=repo)["imageDetails"]] == [keep.digest]
    # The tags are free again, even under IMMUTABLE.
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    push_image(ecr, repo, tag="a")


def test_batch_delete_of_an_image_with_more_tags_than_one_transaction_holds(ecr, repo):
    """Deleted in several transactions (each at most 100 actions): 150 tags, all gone."""
    pushed = push_image(ecr, repo, tag="t0")
    for i in range(1, 150):
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=f"t{i}")
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": pushed.digest}])
    assert len(result["imageIds"]) == 150 and result["failures"] == []
    assert snapshot(ecr, repo) == {"images": [], "ids": []}
    push_image(ecr, repo, tag="t7")  # the tags are free again


def test_batch_delete_failures(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    before = snapshot(ecr, repo)
    result = ecr.batch_delete_image(
        repositoryName=repo,
        imageIds=[
            {"imageTag": "missing"},
            {"imageDigest": sha256(b"nothing")},
            {"imageDigest": "bad"},
            {},
            {"imageTag": "v1", "imageDigest": sha256(b"other")},
        ],
    )
    assert result["imageIds"] == []
    assert sorted(f["failureCode"] for f in result["failures"]) == [
        "ImageNotFound",
        "ImageNotFound",
        "ImageTagDoesNotMatchDigest",
        "InvalidImageDigest",
        "MissingDigestAndTag",
    ]
    assert snapshot(ecr, repo) == before
    assert result["failures"][0]["failureReason"] == "Requested image not found"
    assert tags_of(ecr, repo, pushed.digest) == ["v1"]


def test_images_referenced_by_a_manifest_list_cannot_be_deleted(ecr, repo):
    children = [push_image(ecr, repo, tag=f"arch{i}") for i in range(2)]
    index = index_manifest(children)
    index_digest = ecr.put_image(repositoryName=repo, imageManifest=index, imageTag="multi")["image"]["imageId"][
        "imageDigest"
    ]
    before = snapshot(ecr, repo)
    result = ecr.batch_delete_image(
        repositoryName=repo, imageIds=[{"imageDigest": children[0].digest}, {"imageTag": "arch1"}]
    )
    assert [f["failureCode"] for f in result["failures"]] == ["ImageReferencedByManifestList"] * 2
    assert snapshot(ecr, repo) == before
    # Once the list is gone, its images can go too.
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": index_digest}])
    result = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": c.digest} for c in children])
    assert result["failures"] == []
    assert snapshot(ecr, repo)["images"] == []


def test_image_operations_on_a_missing_repository(ecr):
    name = "no/such-repository"
    for call in (
        lambda: ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "a"}]),
        lambda: ecr.describe_images(repositoryName=name),
        lambda: ecr.list_images(repositoryName=name),
        lambda: ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "a"}]),
    ):
        with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
            call()


# --- page tokens are the registry's own --------------------------------------------------------------


def _forged(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


@pytest.mark.parametrize(
    "operation, token",
    [
        ("list_images", {"at": "sha256:" + "a" * 64, "skip": "x"}),  # a TypeError once: HTTP 500
        ("list_images", {"at": "", "skip": 0}),  # a DynamoDB ValidationException once: HTTP 500
        ("list_images", {"at": "sha256:" + "a" * 64, "skip": -5}),
        ("describe_images", {"after": "sha256:" + "0" * 64}),  # well-formed, but not one we issued
        ("describe_repositories", {"after": "a"}),
    ],
    ids=["skip-not-a-number", "empty-position", "negative-skip", "describe-images", "describe-repositories"],
)
def test_a_token_the_registry_did_not_issue_is_refused(ecr, repo, operation, token):
    push_image(ecr, repo, tag="v1")
    kwargs = {} if operation == "describe_repositories" else {"repositoryName": repo}
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        getattr(ecr, operation)(nextToken=_forged(token), **kwargs)


def test_a_token_works_only_where_it_was_issued(ecr, repo):
    """A token names the operation, repository and filter it continues: elsewhere it is refused."""
    for i in range(3):
        push_image(ecr, repo, tag=f"t{i}")
    other = repo + "-other"
    ecr.create_repository(repositoryName=other)
    token = ecr.list_images(repositoryName=repo, maxResults=1)["nextToken"]
    assert ecr.list_images(repositoryName=repo, maxResults=1, nextToken=token)["imageIds"]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_images(repositoryName=other, nextToken=token)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.describe_images(repositoryName=repo, nextToken=token)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_images(repositoryName=repo, nextToken=token, filter={"tagStatus": "UNTAGGED"})
    altered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.list_images(repositoryName=repo, nextToken=altered)


# --- what is sent back fits what a function may return -----------------------------------------------


def test_batch_get_image_guards_the_bytes_actually_sent(ecr, repo):
    """Lambda returns at most 6 MB of *serialized proxy response*, in which a manifest is escaped
    twice (as a JSON string in the body, the body as a JSON string in the response). Manifests of
    4.8 MB in all, half of them quotes, make ~12 MB on that wire: ECR's error, not a 502."""
    quoted = '\\"' * 300_000  # 300,000 quotes in the annotation's value (600,000 characters of JSON)
    digests = []
    for i in range(4):
        config, layers = new_blobs(1)
        upload_image_blobs(ecr, repo, config, layers)
        manifest = image_manifest(config, layers, extra={"annotations": {"q": quoted + "x" * 600_000, "n": str(i)}})
        manifest = manifest.replace(json.dumps(quoted + "x" * 600_000)[1:-1], quoted + "x" * 600_000)
        digests.append(ecr.put_image(repositoryName=repo, imageManifest=manifest)["image"]["imageId"]["imageDigest"])
    one = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": digests[0]}])["images"]
    assert len(one) == 1 and one[0]["imageManifest"].count('\\"') == 300_000
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": d} for d in digests])
