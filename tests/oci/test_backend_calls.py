"""What a pull costs the backends: each manifest request is one DynamoDB read (BatchGetItem of the
repository, its policy, the tag and the manifest), by tag or by digest, through either API; a blob
request is one read too (the repository, its policy and the layer), its URL signed without a call. Counted from the
handler's own clients (journaled by local/faults.py), after a first request has warmed the
authorizer's and the key cache."""

from __future__ import annotations

import json

import pytest
from distribution import Client, login_header
from harness import IsolatedRegistry
from support import DOCKER_MANIFEST, push_image

pytestmark = pytest.mark.local_only


@pytest.fixture(scope="module")
def stack(backends, tmp_path_factory):
    stack = IsolatedRegistry(backends, workers=1, faults_dir=tmp_path_factory.mktemp("calls"))
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="calls/app")
    stack.pushed = push_image(ecr, "calls/app", tag="v1", layers=2)
    stack.v2 = Client(stack.endpoint, login_header(ecr))
    yield stack
    stack.stop()


def calls(stack, send) -> list[str]:
    send()  # warm: the authorizer's cache, the access key cache
    stack.clear_journal()
    answer = send()
    assert answer.status in (200, 307), answer.body[:300]
    return [c["operation"] for c in stack.journal() if c["ok"]]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_request_is_one_read(stack, method, by):
    reference = "v1" if by == "tag" else stack.pushed.digest
    path = f"/v2/calls/app/manifests/{reference}"
    made = calls(stack, lambda: stack.v2.request(method, path, headers={"Accept": DOCKER_MANIFEST}))
    assert made == ["BatchGetItem"]


def test_batch_get_image_by_tag_is_one_read(stack):
    ecr = stack.ecr()
    send = lambda: ecr.batch_get_image(repositoryName="calls/app", imageIds=[{"imageTag": "v1"}])  # noqa: E731
    send()
    stack.clear_journal()
    assert send()["images"][0]["imageId"]["imageDigest"] == stack.pushed.digest
    assert [c["operation"] for c in stack.journal() if c["ok"]] == ["BatchGetItem"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_blob_request_is_one_read(stack, method):
    layer = json.loads(stack.pushed.manifest)["layers"][0]["digest"]
    made = calls(stack, lambda: stack.v2.request(method, f"/v2/calls/app/blobs/{layer}"))
    assert made == ["BatchGetItem"]  # the repository and the layer; the URL is signed, not fetched
