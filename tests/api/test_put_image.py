"""PutImage, rule by rule, through a real boto3 ECR client; every error is checked to change nothing."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from support import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    error_code,
    image_manifest,
    index_manifest,
    new_blobs,
    push_image,
    sha256,
    snapshot,
    tags_of,
    upload_blob,
    upload_image_blobs,
)


def refused(ecr, repo, code, **kwargs):
    """PutImage must fail with `code` and leave the repository exactly as it was."""
    before = snapshot(ecr, repo)
    with pytest.raises(ClientError) as excinfo:
        ecr.put_image(repositoryName=repo, **kwargs)
    assert error_code(excinfo) == code, excinfo.value.response["Error"]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert snapshot(ecr, repo) == before
    return excinfo.value


def uploaded_manifest(ecr, repo, layers=1, oci=False, **extra) -> str:
    config, blobs = new_blobs(layers)
    upload_image_blobs(ecr, repo, config, blobs)
    return image_manifest(config, blobs, oci=oci, **extra)


# 1. digest = sha256 of the bytes as sent; stored and returned byte-identical


def test_digest_is_sha256_of_the_manifest_bytes_as_sent(ecr, repo):
    # Odd whitespace, key order and non-ASCII text must all survive: nothing is re-serialized.
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, repo, config, blobs)
    document = json.loads(image_manifest(config, blobs))
    document["annotations"] = {"org.example.note": "caf\u00e9 \u2603 \U0001f433"}
    manifest = "{\n  " + json.dumps(document, ensure_ascii=False, indent=7)[1:]
    result = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")["image"]
    assert result["imageId"] == {"imageDigest": sha256(manifest.encode("utf-8")), "imageTag": "v1"}
    assert result["imageManifest"] == manifest
    assert result["imageManifestMediaType"] == DOCKER_MANIFEST
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"][0]
    assert got["imageManifest"] == manifest
    assert got["imageId"]["imageDigest"] == sha256(manifest.encode("utf-8"))


def test_same_document_reformatted_is_a_different_image(ecr, repo):
    manifest = uploaded_manifest(ecr, repo)
    compact = json.dumps(json.loads(manifest), separators=(",", ":"))
    first = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="a")["image"]["imageId"]
    second = ecr.put_image(repositoryName=repo, imageManifest=compact, imageTag="b")["image"]["imageId"]
    assert first["imageDigest"] != second["imageDigest"] == sha256(compact.encode())
    assert len(snapshot(ecr, repo)["images"]) == 2


def test_large_manifest_up_to_the_model_maximum_round_trips(ecr, repo):
    # 4 MiB (the model's maximum length): far beyond a DynamoDB item, so it lives in S3.
    base = uploaded_manifest(ecr, repo)
    document = json.loads(base)
    filler = 4 * 1024 * 1024 - len(base) - 200
    document["annotations"] = {"filler": "x" * filler}
    manifest = json.dumps(document)
    assert 4_000_000 < len(manifest) <= 4_194_304
    digest = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="big")["image"]["imageId"][
        "imageDigest"
    ]
    assert digest == sha256(manifest.encode())
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": digest}])["images"][0]
    assert got["imageManifest"] == manifest


# 2. imageDigest given and different


def test_image_digest_that_does_not_match(ecr, repo):
    manifest = uploaded_manifest(ecr, repo)
    refused(
        ecr,
        repo,
        "ImageDigestDoesNotMatchException",
        imageManifest=manifest,
        imageTag="v1",
        imageDigest="sha256:" + "0" * 64,
    )


def test_image_digest_that_matches_is_accepted(ecr, repo):
    manifest = uploaded_manifest(ecr, repo)
    digest = sha256(manifest.encode())
    result = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageDigest=digest)
    assert result["image"]["imageId"] == {"imageDigest": digest}


# 3. unknown repository


def test_unknown_repository(ecr, repo):
    manifest = uploaded_manifest(ecr, repo)
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.put_image(repositoryName=repo + "-missing", imageManifest=manifest, imageTag="v1")


# 4. media types


@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci-manifest"])
def test_image_manifest_types_are_accepted(ecr, repo, oci):
    pushed = push_image(ecr, repo, tag="v1", oci=oci)
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert detail["imageManifestMediaType"] == pushed.media_type
    assert detail["imageSizeInBytes"] == pushed.size


@pytest.mark.parametrize("oci", [False, True], ids=["docker-list", "oci-index"])
def test_manifest_lists_are_accepted(ecr, repo, oci):
    children = [push_image(ecr, repo, oci=oci, layer_size=size) for size in (100, 300)]
    manifest = index_manifest(children, oci=oci)
    result = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="multi")["image"]
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "multi"}])["imageDetails"][0]
    assert result["imageManifestMediaType"] == detail["imageManifestMediaType"]
    assert detail["imageSizeInBytes"] == 300  # a list is as big as its biggest image (ECR's rule)


def test_oci_artifact_with_and_without_subject(ecr, repo):
    subject = push_image(ecr, repo, tag="app", oci=True)
    empty = b"{}"
    upload_blob(ecr, repo, empty)
    artifact = upload_blob(ecr, repo, b'{"sbom": true}')
    base = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": sha256(empty)},
        "layers": [{"mediaType": "application/spdx+json", "size": 14, "digest": artifact}],
    }
    with_subject = dict(
        base, subject={"mediaType": OCI_MANIFEST, "size": len(subject.manifest), "digest": subject.digest}
    )
    digest = ecr.put_image(repositoryName=repo, imageManifest=json.dumps(with_subject))["image"]["imageId"][
        "imageDigest"
    ]
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]
    assert detail["artifactMediaType"] == "application/spdx+json"
    assert detail["subjectManifestDigest"] == subject.digest
    # OCI 1.1: a subject that is not (yet) in the repository is accepted.
    dangling = dict(base, subject={"mediaType": OCI_MANIFEST, "size": 10, "digest": "sha256:" + "ab" * 32})
    ecr.put_image(repositoryName=repo, imageManifest=json.dumps(dangling), imageTag="sbom")


def test_media_type_from_the_parameter_when_the_manifest_has_none(ecr, repo):
    document = json.loads(uploaded_manifest(ecr, repo, oci=True))
    del document["mediaType"]
    result = ecr.put_image(
        repositoryName=repo, imageManifest=json.dumps(document), imageManifestMediaType=OCI_MANIFEST, imageTag="v1"
    )
    assert result["image"]["imageManifestMediaType"] == OCI_MANIFEST


@pytest.mark.parametrize(
    "case",
    [
        "no-media-type",
        "mismatch",
        "invalid-json",
        "not-an-object",
        "index-shaped-image",
        "bad-digest",
        "negative-size",
        "size-past-int64",
        "size-past-dynamodb-numbers",
        "unbounded-digest",
        "unbounded-subject-digest",
        "schema-1",
        "unsupported-type",
        "layers-not-a-list",
    ],
)
def test_invalid_manifests(ecr, repo, case):
    document = json.loads(uploaded_manifest(ecr, repo))
    extra = {}
    if case == "no-media-type":
        del document["mediaType"]
    elif case == "mismatch":
        extra["imageManifestMediaType"] = OCI_MANIFEST
    elif case == "index-shaped-image":
        document["manifests"] = []
    elif case == "bad-digest":
        document["layers"][0]["digest"] = "sha256:xyz"
    elif case == "negative-size":
        document["config"]["size"] = -1
    elif case == "size-past-int64":  # a 500 once: DynamoDB's numbers have 38 digits
        document["layers"][0]["size"] = 10**40
    elif case == "size-past-dynamodb-numbers":
        document["layers"][0]["size"] = 10**126
    elif case == "unbounded-digest":  # an unregistered algorithm has no length of its own
        document["layers"].append(
            {
                "mediaType": "application/x-foreign",
                "size": 1,
                "digest": "md5:" + "a" * 500_000,
                "urls": ["https://example.com/blob"],
            }
        )
    elif case == "unbounded-subject-digest":  # a 500 once: the image item grew past 400 KB
        document["subject"] = {"mediaType": OCI_MANIFEST, "size": 1, "digest": "foo:" + "a" * 500_000}
    elif case == "schema-1":
        document["schemaVersion"] = 1
    elif case == "unsupported-type":
        document["mediaType"] = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    elif case == "layers-not-a-list":
        document["layers"] = {}
    manifest = {"invalid-json": '{"schemaVersion": 2,', "not-an-object": "[1, 2]"}.get(case) or json.dumps(document)
    refused(ecr, repo, "InvalidParameterException", imageManifest=manifest, imageTag="v1", **extra)


# 4b. tags: what ECR accepts (up to 300 characters) in the OCI tag alphabet, nothing else


@pytest.mark.parametrize(
    "tag",
    [
        "v1\x00",
        "v1\n",
        "tab\there",
        " ",
        "v1 ",
        "v1@sha256:" + "a" * 64,
        "\u202ev1",
        "-v1",
        ".v1",
        "team/app",
        "v1:2",
        "caf\u00e9",
        "\U0001f433",
    ],
    ids=[
        "nul",
        "newline",
        "tab",
        "space",
        "trailing-space",
        "digest-reference",
        "rtl-override",
        "leading-dash",
        "leading-dot",
        "slash",
        "colon",
        "non-ascii",
        "emoji",
    ],
)
def test_tags_outside_the_tag_grammar_are_refused(ecr, repo, tag):
    manifest = uploaded_manifest(ecr, repo)
    error = refused(ecr, repo, "InvalidParameterException", imageManifest=manifest, imageTag=tag)
    assert "imageTag" in error.response["Error"]["Message"]


@pytest.mark.parametrize("tag", ["v1", "latest", "1.0.0-rc.1_2", "_private", "A" * 300, "9" + "." * 299])
def test_tags_in_the_grammar_are_accepted(ecr, repo, tag):
    manifest = uploaded_manifest(ecr, repo)
    assert (
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=tag)["image"]["imageId"]["imageTag"] == tag
    )
    assert tags_of(ecr, repo, sha256(manifest.encode())) == [tag]


# 5. references


def test_missing_layer_is_named(ecr, repo):
    config, blobs = new_blobs(2)
    upload_blob(ecr, repo, config)
    upload_blob(ecr, repo, blobs[0])
    error = refused(ecr, repo, "LayersNotFoundException", imageManifest=image_manifest(config, blobs), imageTag="v1")
    assert sha256(blobs[1]) in str(error) and sha256(blobs[0]) not in str(error)


def test_missing_config_blob(ecr, repo):
    config, blobs = new_blobs(1)
    upload_blob(ecr, repo, blobs[0])
    error = refused(ecr, repo, "LayersNotFoundException", imageManifest=image_manifest(config, blobs))
    assert sha256(config) in str(error)


def test_layers_must_be_in_this_repository(ecr, repo):
    other = repo + "-other"
    ecr.create_repository(repositoryName=other)
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, other, config, blobs)
    refused(ecr, repo, "LayersNotFoundException", imageManifest=image_manifest(config, blobs), imageTag="v1")
    # Uploaded here as well, the same bytes are accepted (stored once, available in both).
    upload_image_blobs(ecr, repo, config, blobs)
    ecr.put_image(repositoryName=repo, imageManifest=image_manifest(config, blobs), imageTag="v1")


def test_foreign_layers_need_no_upload(ecr, repo):
    config, blobs = new_blobs(1)
    upload_image_blobs(ecr, repo, config, blobs)
    foreign = [
        {
            "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "size": 1000,
            "digest": "sha256:" + "f" * 64,
            "urls": ["https://example.com/layer.tar.gz"],
        }
    ]
    manifest = image_manifest(config, blobs, foreign=foreign)
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="win")
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "win"}])["imageDetails"][0]
    assert detail["imageSizeInBytes"] == len(blobs[0]) + 1000


def test_manifest_list_children_must_be_images_here(ecr, repo):
    child = push_image(ecr, repo)
    other = repo + "-x"
    ecr.create_repository(repositoryName=other)
    foreign_child = push_image(ecr, other)
    error = refused(
        ecr,
        repo,
        "ReferencedImagesNotFoundException",
        imageManifest=index_manifest([child, foreign_child]),
        imageTag="multi",
    )
    assert foreign_child.digest in str(error)


# 6. same digest


def test_same_image_and_tag_again(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    refused(ecr, repo, "ImageAlreadyExistsException", imageManifest=pushed.manifest, imageTag="v1")


def test_same_image_again_without_a_tag(ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    refused(ecr, repo, "ImageAlreadyExistsException", imageManifest=pushed.manifest)
    untagged = push_image(ecr, repo)
    refused(ecr, repo, "ImageAlreadyExistsException", imageManifest=untagged.manifest)


@pytest.mark.parametrize("mutability", ["MUTABLE", "IMMUTABLE"])
def test_same_image_with_a_new_tag_adds_the_tag(ecr, repo, mutability):
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability=mutability)
    pushed = push_image(ecr, repo, tag="v1")
    result = ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag="stable")["image"]
    assert result["imageId"] == {"imageDigest": pushed.digest, "imageTag": "stable"}
    assert tags_of(ecr, repo, pushed.digest) == ["stable", "v1"]
    ids = ecr.list_images(repositoryName=repo)["imageIds"]
    assert sorted(i["imageTag"] for i in ids) == ["stable", "v1"]


# 7. a tag on another image


def test_mutable_tag_moves_and_the_old_image_stays_untagged(ecr, repo):
    old = push_image(ecr, repo, tag="latest")
    new = push_image(ecr, repo, tag="latest")
    assert tags_of(ecr, repo, new.digest) == ["latest"]
    assert tags_of(ecr, repo, old.digest) == []
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": old.digest}]


def test_moved_tag_leaves_the_other_tags_of_the_old_image(ecr, repo):
    old = push_image(ecr, repo, tag="latest")
    ecr.put_image(repositoryName=repo, imageManifest=old.manifest, imageTag="v1")
    new = push_image(ecr, repo, tag="latest")
    assert tags_of(ecr, repo, old.digest) == ["v1"]
    assert tags_of(ecr, repo, new.digest) == ["latest"]


def test_mutable_tag_moves_to_an_existing_image(ecr, repo):
    first = push_image(ecr, repo, tag="latest")
    second = push_image(ecr, repo, tag="v2")
    ecr.put_image(repositoryName=repo, imageManifest=second.manifest, imageTag="latest")
    assert tags_of(ecr, repo, second.digest) == ["latest", "v2"]
    assert tags_of(ecr, repo, first.digest) == []


def test_immutable_tag_cannot_move(ecr, repo):
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    first = push_image(ecr, repo, tag="v1")
    second = uploaded_manifest(ecr, repo)
    refused(ecr, repo, "ImageTagAlreadyExistsException", imageManifest=second, imageTag="v1")
    other = push_image(ecr, repo, tag="v2")
    refused(ecr, repo, "ImageTagAlreadyExistsException", imageManifest=other.manifest, imageTag="v1")
    assert tags_of(ecr, repo, first.digest) == ["v1"]


@pytest.mark.parametrize(
    "mutability,filters,tag,moves",
    [
        ("IMMUTABLE_WITH_EXCLUSION", ["latest"], "latest", True),
        ("IMMUTABLE_WITH_EXCLUSION", ["latest"], "latest-foo", False),  # whole-tag match, not a prefix
        ("IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "dev-123", True),
        ("IMMUTABLE_WITH_EXCLUSION", ["dev-*"], "dev", False),
        ("IMMUTABLE_WITH_EXCLUSION", ["*-snapshot", "nightly"], "1.2-snapshot", True),
        ("IMMUTABLE_WITH_EXCLUSION", ["v1.*"], "v1x0", False),  # '.' is a literal dot
        ("MUTABLE_WITH_EXCLUSION", ["release-*"], "release-1", False),
        ("MUTABLE_WITH_EXCLUSION", ["release-*"], "latest", True),
        ("MUTABLE_WITH_EXCLUSION", ["*"], "anything", False),
    ],
)
def test_exclusion_filters(ecr, repo, mutability, filters, tag, moves):
    ecr.put_image_tag_mutability(
        repositoryName=repo,
        imageTagMutability=mutability,
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": f} for f in filters],
    )
    first = push_image(ecr, repo, tag=tag)
    if moves:
        second = push_image(ecr, repo, tag=tag)
        assert tags_of(ecr, repo, second.digest) == [tag]
        assert tags_of(ecr, repo, first.digest) == []
    else:
        refused(ecr, repo, "ImageTagAlreadyExistsException", imageManifest=uploaded_manifest(ecr, repo), imageTag=tag)


def test_mutability_change_applies_to_later_pushes(ecr, repo):
    push_image(ecr, repo, tag="v1")
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    refused(ecr, repo, "ImageTagAlreadyExistsException", imageManifest=uploaded_manifest(ecr, repo), imageTag="v1")
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
    push_image(ecr, repo, tag="v1")


# 8. quotas (the configured limits reach the handler through REGISTRY_* variables)


@pytest.mark.local_only
def test_images_per_repository_quota(start_registry):
    ecr = start_registry(REGISTRY_MAX_IMAGES_PER_REPOSITORY="2").ecr(config=__import__("support").NO_RETRIES)
    repo = "quota/images"
    ecr.create_repository(repositoryName=repo)
    push_image(ecr, repo, tag="a")
    push_image(ecr, repo)
    error = refused(ecr, repo, "LimitExceededException", imageManifest=uploaded_manifest(ecr, repo), imageTag="c")
    assert "2" in str(error)
    # A new tag on an existing image is not a new image.
    pushed = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "a"}])["imageDetails"][0]
    manifest = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "a"}])["images"][0]["imageManifest"]
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="b")
    # Deleting an image frees its place.
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": pushed["imageDigest"]}])
    push_image(ecr, repo, tag="c")


@pytest.mark.local_only
def test_tags_per_image_quota(start_registry):
    ecr = start_registry(REGISTRY_MAX_TAGS_PER_IMAGE="3").ecr(config=__import__("support").NO_RETRIES)
    repo = "quota/tags"
    ecr.create_repository(repositoryName=repo)
    pushed = push_image(ecr, repo, tag="t1")
    for tag in ("t2", "t3"):
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=tag)
    refused(ecr, repo, "LimitExceededException", imageManifest=pushed.manifest, imageTag="t4")
    assert tags_of(ecr, repo, pushed.digest) == ["t1", "t2", "t3"]


# 10. anything unexpected -> ServerException, nothing partial (see test_faults.py for storage faults)


def test_validation_happens_before_anything_else(ecr, repo):
    manifest = uploaded_manifest(ecr, repo)
    refused(ecr, repo, "InvalidParameterException", imageManifest=manifest, imageTag="x" * 301)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName="UPPER", imageManifest=manifest)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_image(repositoryName=repo, registryId="12345", imageManifest=manifest)
