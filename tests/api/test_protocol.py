"""The AWS JSON 1.1 wire, with raw SigV4-signed requests (what any AWS SDK sends)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TARGET = "AmazonEC2ContainerRegistry_V20150921."
CREDENTIALS = Credentials("test", "test")


def send(
    endpoint,
    body: bytes | str,
    target: str | None = "DescribeRepositories",
    method="POST",
    path="/",
    content_type="application/x-amz-json-1.1",
    raw_target: bool = False,
):
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target if raw_target else TARGET + target
    data = body.encode() if isinstance(body, str) else body
    request = AWSRequest(method=method, url=endpoint.rstrip("/") + path, data=data, headers=headers)
    SigV4Auth(CREDENTIALS, "ecr", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(
        request.url, data=data if method == "POST" else None, method=method, headers=dict(request.headers.items())
    )
    try:
        with urllib.request.urlopen(prepared) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def test_success_framing(registry):
    status, headers, body = send(registry.endpoint, "{}")
    assert status == 200
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert len(headers["x-amzn-RequestId"]) >= 16
    assert "repositories" in json.loads(body)


def test_empty_body_is_an_empty_input(registry):
    status, _, body = send(registry.endpoint, b"")
    assert status == 200 and "repositories" in json.loads(body)


@pytest.mark.parametrize(
    "target", ["AmazonEC2ContainerRegistry_V20150921.NoSuchOperation", "DynamoDB_20120810.ListTables", "PutImage", None]
)
def test_unknown_operation(registry, target):
    status, headers, body = send(registry.endpoint, "{}", target=target, raw_target=True)
    assert status == 400
    assert json.loads(body)["__type"] == "UnknownOperationException"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"


def test_known_but_unserved_operation(registry):
    from registry.operations import OPERATIONS
    from registry.service_model import ecr_model

    unserved = min(set(ecr_model().operation_names) - set(OPERATIONS))  # e.g. scanning's
    status, _, body = send(registry.endpoint, "{}", target=unserved)
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1,2]",
        b'"text"',
        b'{"maxResults": NaN}',
        b'{"maxResults": "ten"}',
        b'{"repositoryNames": "one"}',
        b'{"registryId": 12}',
    ],
)
def test_serialization_errors(registry, body):
    status, _, answer = send(registry.endpoint, body)
    assert status == 400
    assert json.loads(answer)["__type"] == "SerializationException"


def test_a_body_that_is_not_utf8_does_not_arrive_as_signed(registry):
    """API Gateway (no binary media types) passes the body on as text, invalid UTF-8 replaced:
    the bytes the client signed never reach the function, so the signature cannot match.
    (wire's SerializationException for such bytes: tests/unit/test_wire_protocol.py.)"""
    status, _, answer = send(registry.endpoint, b"\xff\xfe{}")
    assert status == 403
    assert json.loads(answer)["__type"] == "InvalidSignatureException"


def test_constraint_violations_are_invalid_parameter(registry):
    status, _, body = send(registry.endpoint, json.dumps({"repositoryName": "a"}), target="CreateRepository")
    error = json.loads(body)
    assert status == 400 and error["__type"] == "InvalidParameterException"
    assert "repositoryName" in error["message"]
    status, _, body = send(registry.endpoint, json.dumps({}), target="CreateRepository")
    assert status == 400 and json.loads(body)["__type"] == "InvalidParameterException"


def test_blob_must_be_base64(registry, ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    status, _, body = send(
        registry.endpoint,
        json.dumps(
            {
                "repositoryName": repo,
                "uploadId": upload_id,
                "partFirstByte": 0,
                "partLastByte": 1,
                "layerPartBlob": "***",
            }
        ),
        target="UploadLayerPart",
    )
    assert status == 400 and json.loads(body)["__type"] == "SerializationException"


def test_other_paths_and_methods_are_not_routes(registry):
    for method, path in (("GET", "/"), ("POST", "/v1/"), ("PUT", "/")):
        status, _, body = send(registry.endpoint, "{}", method=method, path=path)
        assert status == 403 and json.loads(body) == {"message": "Missing Authentication Token"}


def test_error_members_reach_boto3(ecr, repo):
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as excinfo:
        ecr.upload_layer_part(
            repositoryName=repo, uploadId=upload_id, partFirstByte=10, partLastByte=10, layerPartBlob=b"x"
        )
    response = excinfo.value.response
    assert response["Error"]["Code"] == "InvalidLayerPartException"
    assert {k: response[k] for k in ("registryId", "repositoryName", "uploadId", "lastValidByteReceived")} == {
        "registryId": response["registryId"],
        "repositoryName": repo,
        "uploadId": upload_id,
        "lastValidByteReceived": -1,
    }
    assert response["ResponseMetadata"]["RequestId"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_timestamps_are_epoch_seconds(registry, repo):
    _status, _, body = send(registry.endpoint, json.dumps({"repositoryNames": [repo]}))
    created = json.loads(body)["repositories"][0]["createdAt"]
    assert isinstance(created, (int, float)) and created > 1.7e9


def test_foreign_registry_is_refused(ecr, repo):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as excinfo:
        ecr.describe_repositories(registryId="123456789012", repositoryNames=[repo])
    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "is not authorized to perform: ecr:DescribeRepositories" in excinfo.value.response["Error"]["Message"]
