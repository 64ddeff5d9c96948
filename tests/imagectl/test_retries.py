"""What imagectl's ECR client retries, against a small server answering as ECR may: throttling
is retried (boto3's standard mode), a quota's LimitExceededException is not (no retry frees it;
botocore's eight attempts took a minute to say so), on the ECR API and on the extension alike."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from tool_support import LoopbackServer, QuietHandler

from imagectl.ecr import ATTEMPTS, Connection, call_extension, ecr_client


class EcrServer(LoopbackServer):
    def __init__(self, error: str):
        super().__init__(EcrHandler)
        self.error, self.targets = error, []


class EcrHandler(QuietHandler):
    server: EcrServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.targets.append(self.headers["X-Amz-Target"])
        answer = json.dumps({"__type": self.server.error, "message": "answered by the test"}).encode()
        self.answer(400, answer, "application/x-amz-json-1.1")


@pytest.fixture
def answering(monkeypatch, serve) -> Callable[[str], EcrServer]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda *_: 0)
    return lambda error: serve(EcrServer(error))


def put_image(server: EcrServer) -> ClientError:
    client = ecr_client(Connection(endpoint_url=server.base_url), jobs=1)
    with pytest.raises(ClientError) as raised:
        client.put_image(repositoryName="team/app", imageManifest="{}", imageTag="v1")
    return raised.value


def test_a_quota_is_said_at_once(answering):
    server = answering("LimitExceededException")
    assert put_image(server).response["Error"]["Code"] == "LimitExceededException"
    assert server.targets == ["AmazonEC2ContainerRegistry_V20150921.PutImage"]


def test_throttling_is_retried(answering):
    server = answering("ThrottlingException")
    assert put_image(server).response["Error"]["Code"] == "ThrottlingException"
    assert len(server.targets) == ATTEMPTS


def test_the_extension_says_a_quota_at_once_too(answering):
    server = answering("LimitExceededException")
    client = ecr_client(Connection(endpoint_url=server.base_url), jobs=1)
    params = {"repositoryName": "team/app", "uploadId": "00000000-0000-4000-8000-000000000000", "layerSize": 1}
    with pytest.raises(ClientError) as raised:
        call_extension(client, "GetLayerPartUploadUrls", params)
    assert raised.value.response["Error"]["Code"] == "LimitExceededException"
    assert server.targets == ["ServerlessRegistry_20261130.GetLayerPartUploadUrls"]
