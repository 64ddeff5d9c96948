"""Concurrent pushes: the conditional writes, not luck, decide who wins.

Each test pre-uploads the blobs, then releases its threads together through a barrier; the
local gateway runs every request in its own worker process against DynamoDB Local.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError
from support import NO_RETRIES, image_manifest, new_blobs, upload_blob, upload_image_blobs

CONCURRENCY = 16


def prepared_manifests(ecr, repo, count):
    _shared_config, shared_layers = new_blobs(1)
    upload_blob(ecr, repo, shared_layers[0])
    manifests = []
    for _ in range(count):
        config, _ = new_blobs(0)
        upload_blob(ecr, repo, config)
        manifests.append(image_manifest(config, shared_layers))
    return manifests


def push_together(registry, repo, manifests, tag):
    clients = [registry.ecr(config=NO_RETRIES) for _ in manifests]
    barrier = threading.Barrier(len(manifests))
    outcomes = [None] * len(manifests)

    def push(i):
        barrier.wait()
        try:
            kwargs = {"imageTag": tag} if tag else {}
            result = clients[i].put_image(repositoryName=repo, imageManifest=manifests[i], **kwargs)
            outcomes[i] = ("OK", result["image"]["imageId"]["imageDigest"])
        except ClientError as error:
            outcomes[i] = (error.response["Error"]["Code"], None)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(manifests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def images_by_tagging(ecr, repo):
    details = []
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
        details.extend(page["imageDetails"])
    return {d["imageDigest"]: d.get("imageTags", []) for d in details}


def test_immutable_tag_has_exactly_one_winner(registry, ecr, repo):
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    outcomes = push_together(registry, repo, prepared_manifests(ecr, repo, CONCURRENCY), "release")
    assert Counter(code for code, _ in outcomes) == {"OK": 1, "ImageTagAlreadyExistsException": CONCURRENCY - 1}
    winner = next(digest for code, digest in outcomes if code == "OK")
    assert images_by_tagging(ecr, repo) == {winner: ["release"]}
    tags = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert tags == [{"imageDigest": winner, "imageTag": "release"}]


def test_mutable_tag_ends_on_exactly_one_image(registry, ecr, repo):
    outcomes = push_together(registry, repo, prepared_manifests(ecr, repo, CONCURRENCY), "latest")
    assert Counter(code for code, _ in outcomes) == {"OK": CONCURRENCY}
    images = images_by_tagging(ecr, repo)
    assert len(images) == CONCURRENCY
    holders = [digest for digest, tags in images.items() if tags]
    assert len(holders) == 1 and images[holders[0]] == ["latest"]
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"}, maxResults=100)["imageIds"]
    assert len(untagged) == CONCURRENCY - 1
    pulled = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}])["images"]
    assert pulled[0]["imageId"]["imageDigest"] == holders[0]


@pytest.mark.local_only
def test_images_per_repository_quota_admits_exactly_the_room_left(start_registry):
    limit, room = 10, 4
    local = start_registry(REGISTRY_MAX_IMAGES_PER_REPOSITORY=str(limit))
    ecr = local.ecr(config=NO_RETRIES)
    repo = "race/quota"
    ecr.create_repository(repositoryName=repo)
    manifests = prepared_manifests(ecr, repo, limit - room + 12)
    for manifest in manifests[: limit - room]:
        ecr.put_image(repositoryName=repo, imageManifest=manifest)
    outcomes = push_together(local, repo, manifests[limit - room :], None)
    assert Counter(code for code, _ in outcomes) == {"OK": room, "LimitExceededException": 12 - room}
    assert len(images_by_tagging(ecr, repo)) == limit


# --- a refused push leaves nothing behind ----------------------------------------------------------

BIG = 100  # layers: with the config, more references than fit the commit's transaction


def _big_manifests(ecr, repo, count):
    """Images of BIG distinct layers each (and their configs), uploaded: (manifest, its blob digests)."""
    prepared = []
    for _ in range(count):
        config, layers = new_blobs(BIG, size=8)
        digests = upload_image_blobs(ecr, repo, config, layers)
        prepared.append((image_manifest(config, layers), digests))
    return prepared


def _downloadable(ecr, repo, digests):
    """Which of these layers GetDownloadUrlForLayer serves (it serves only layers an image uses)."""
    served = set()
    for digest in digests:
        try:
            ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
            served.add(digest)
        except ecr.exceptions.LayerInaccessibleException:
            pass
    return served


def test_pushes_that_lose_a_race_leave_their_layers_unreferenced(registry, ecr, repo):
    """Four pushes of different 101-blob images to one immutable tag: one wins, and only the
    winner's layers are marked as used by an image (a loser's stay reclaimable, not downloadable)."""
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    prepared = _big_manifests(ecr, repo, 4)
    outcomes = push_together(registry, repo, [manifest for manifest, _ in prepared], "release")
    assert Counter(code for code, _ in outcomes) == {"OK": 1, "ImageTagAlreadyExistsException": 3}
    for (code, _), (_, digests) in zip(outcomes, prepared, strict=True):
        assert _downloadable(ecr, repo, digests) == (set(digests) if code == "OK" else set()), code


@pytest.mark.local_only
def test_a_push_refused_by_the_quota_leaves_its_layers_unreferenced(start_registry):
    local = start_registry(REGISTRY_MAX_IMAGES_PER_REPOSITORY="1")
    ecr = local.ecr(config=NO_RETRIES)
    repo = "race/quota-big"
    ecr.create_repository(repositoryName=repo)
    ((first, _), (second, digests)) = _big_manifests(ecr, repo, 2)
    ecr.put_image(repositoryName=repo, imageManifest=first)
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.put_image(repositoryName=repo, imageManifest=second)
    assert _downloadable(ecr, repo, digests) == set()
