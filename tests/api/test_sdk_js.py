"""The AWS SDK for JavaScript v3 (`@aws-sdk/client-ecr`), a second client beside botocore.

It signs headers botocore does not -- `content-length` among them, which API Gateway does not pass on
to the function -- so it is the client that shows whether any SDK but botocore gets in. It runs in a
Node process (tests/sdk_js/ecr_calls.mjs, installed by `make install`), against the local stack or
REGISTRY_ENDPOINT.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from support import image_manifest, new_blobs, sha256, unique_name

SDK_JS = Path(__file__).resolve().parents[1] / "sdk_js"
REGION = "us-east-1"


class SdkError(Exception):
    def __init__(self, name: str, status: int, message: str):
        super().__init__(f"{name} ({status}): {message}")
        self.name, self.status = name, status


class JsEcr:
    """ECR calls through the JS SDK: `js.call("CreateRepository", repositoryName=...)` returns the
    output, or raises SdkError with the error name the SDK gave."""

    def __init__(self, endpoint: str):
        if not (SDK_JS / "node_modules" / "@aws-sdk" / "client-ecr").exists():
            pytest.fail("the JS SDK is missing: run `make install` (npm ci --prefix tests/sdk_js)")
        env = dict(os.environ)
        # Trust what boto3 is told to trust (the emulator's self-signed CA in the e2e run).
        if env.get("AWS_CA_BUNDLE"):
            env.setdefault("NODE_EXTRA_CA_CERTS", env["AWS_CA_BUNDLE"])
        self.endpoint = endpoint
        self.process = subprocess.Popen(
            ["node", str(SDK_JS / "ecr_calls.mjs")],
            cwd=SDK_JS,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def call(self, operation: str, secret: str = "test", **params) -> dict:
        client = {"endpoint": self.endpoint, "region": REGION, "accessKeyId": "test", "secretAccessKey": secret}
        self.process.stdin.write(json.dumps({"client": client, "operation": operation, "input": params}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise AssertionError(f"the JS SDK process exited with {code}: {self.process.stderr.read()}")
        answer = json.loads(line)
        if "error" in answer:
            raise SdkError(**answer["error"])
        return answer["output"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def js(registry):
    client = JsEcr(registry.endpoint)
    yield client
    client.close()


def push_blob(js: JsEcr, repo: str, blob: bytes) -> str:
    upload = js.call("InitiateLayerUpload", repositoryName=repo)
    js.call(
        "UploadLayerPart",
        repositoryName=repo,
        uploadId=upload["uploadId"],
        partFirstByte=0,
        partLastByte=len(blob) - 1,
        layerPartBlob=base64.b64encode(blob).decode(),
    )
    done = js.call("CompleteLayerUpload", repositoryName=repo, uploadId=upload["uploadId"], layerDigests=[sha256(blob)])
    return done["layerDigest"]


def test_push_and_pull_with_the_js_sdk(js, ecr):
    repo = unique_name("js-sdk")
    created = js.call("CreateRepository", repositoryName=repo, imageTagMutability="IMMUTABLE")["repository"]
    assert created["repositoryName"] == repo and created["imageTagMutability"] == "IMMUTABLE"
    described = js.call("DescribeRepositories", repositoryNames=[repo])["repositories"]
    assert [r["repositoryName"] for r in described] == [repo]
    config, layers = new_blobs(1)
    assert [push_blob(js, repo, blob) for blob in (config, *layers)] == [sha256(b) for b in (config, *layers)]
    manifest = image_manifest(config, layers)
    pushed = js.call("PutImage", repositoryName=repo, imageTag="v1", imageManifest=manifest)["image"]
    assert pushed["imageId"] == {"imageDigest": sha256(manifest.encode()), "imageTag": "v1"}
    pulled = js.call("BatchGetImage", repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert pulled["images"][0]["imageManifest"] == manifest and pulled["failures"] == []
    # and botocore sees the same image
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"] == ["v1"]


def test_modeled_errors_reach_the_js_sdk_by_name(js):
    with pytest.raises(SdkError) as excinfo:
        js.call("DescribeImages", repositoryName="js-sdk/does-not-exist")
    assert (excinfo.value.name, excinfo.value.status) == ("RepositoryNotFoundException", 400)


def test_a_wrong_secret_is_an_invalid_signature(js):
    with pytest.raises(SdkError) as excinfo:
        js.call("DescribeRepositories", secret="not-the-secret")
    assert (excinfo.value.name, excinfo.value.status) == ("InvalidSignatureException", 403)
