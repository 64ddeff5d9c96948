"""What imagectl's ECR client retries, against a small server answering as ECR may: throttling
is retried (boto3's standard mode), a quota's LimitExceededException is not (no retry frees it;
botocore's eight attempts took a minute to say so), on the ECR API and on the extension alike."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from imagectl.ecr import ATTEMPTS, Connection, call_extension, ecr_client


class EcrServer(http.server.ThreadingHTTPServer):
    def __init__(self, error: str):
        super().__init__(("127.0.0.1", 0), EcrHandler)
        self.error, self.targets = error, []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class EcrHandler(http.server.BaseHTTPRequestHandler):
    server: EcrServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.targets.append(self.headers["X-Amz-Target"])
        answer = json.dumps({"__type": self.server.error, "message": "answered by the test"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering(monkeypatch) -> Iterator:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda *_: 0)
    servers: list[EcrServer] = []

    def start(error: str) -> EcrServer:
        server = EcrServer(error)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def put_image(server: EcrServer) -> ClientError:
    client = ecr_client(Connection(endpoint_url=server.endpoint), jobs=1)
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
    client = ecr_client(Connection(endpoint_url=server.endpoint), jobs=1)
    params = {"repositoryName": "team/app", "uploadId": "00000000-0000-4000-8000-000000000000", "layerSize": 1}
    with pytest.raises(ClientError) as raised:
        call_extension(client, "GetLayerPartUploadUrls", params)
    assert raised.value.response["Error"]["Code"] == "LimitExceededException"
    assert server.targets == ["ServerlessRegistry_20261130.GetLayerPartUploadUrls"]
