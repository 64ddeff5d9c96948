"""`registry.wire`: AWS JSON 1.1 over an API Gateway REST (v1 proxy) event.

The round-trip tests at the end put a real boto3 ECR client on both sides of the module, with no
network: a `before-send` handler turns botocore's prepared request into a proxy event, runs it
through `wire`, and hands botocore an `AWSResponse` built from our proxy response. botocore's own
parser then decides which exception class the caller sees.
"""

from __future__ import annotations

import base64
import json
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from registry import errors, wire
from registry.errors import SerializationException, UnknownOperationException

PREFIX = "AmazonEC2ContainerRegistry_V20150921"


def event(body=None, headers=None, base64_encoded=False, **extra):
    base = {
        "httpMethod": "POST",
        "path": "/",
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64_encoded,
        "requestContext": {"requestId": "req-1", "stage": "prod"},
    }
    return {**base, **extra}


def request_with(body: bytes | str, target: str = f"{PREFIX}.DescribeRepositories"):
    if isinstance(body, bytes):  # arbitrary bytes reach us base64-encoded, as API Gateway sends binary
        return wire.http_request(event(base64.b64encode(body).decode(), {"X-Amz-Target": target}, True))
    return wire.http_request(event(body, {"X-Amz-Target": target}))


# --- http_request ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-Amz-Target", "x-amz-target", "X-AMZ-TARGET", "x-Amz-tArget"])
def test_headers_are_found_in_any_case(name):
    request = wire.http_request(event("{}", {name: f"{PREFIX}.ListImages", "Content-Type": "x"}))
    assert request.header("X-Amz-Target") == f"{PREFIX}.ListImages"
    assert request.header("x-amz-target") == f"{PREFIX}.ListImages"
    assert request.header("content-type") == "x"


def test_base64_body_is_decoded():
    raw = b'{"repositoryName":"ab"}\xff'
    request = wire.http_request(event(base64.b64encode(raw).decode(), {}, base64_encoded=True))
    assert request.body == raw


def test_text_body_is_utf8_encoded():
    assert wire.http_request(event('{"a":"é"}', {})).body == '{"a":"é"}'.encode()


@pytest.mark.parametrize(
    "proxy_event",
    [
        event(None, None),
        {"httpMethod": "POST", "path": "/"},
        event("", {}),
        {},
    ],
    ids=["null-body-and-headers", "no-body-key", "empty-body", "empty-event"],
)
def test_missing_body_and_headers_read_as_empty(proxy_event):
    request = wire.http_request(proxy_event)
    assert request.body == b""
    assert request.headers == {}
    assert request.header("x-amz-target") is None
    assert request.request_id  # one is made up when API Gateway gave none


def test_request_context_is_read():
    request = wire.http_request(
        event("{}", {}, requestContext={"requestId": "abc", "stage": "prod", "identity": {"sourceIp": "203.0.113.9"}})
    )
    assert (request.request_id, request.stage, request.source_ip) == ("abc", "prod", "203.0.113.9")


def test_made_up_request_ids_are_unique():
    assert wire.http_request({}).request_id != wire.http_request({}).request_id


def test_null_header_values_are_dropped():
    assert wire.http_request(event("{}", {"X-Amz-Target": None, "Host": "h"})).headers == {"host": "h"}


# --- operation_name -------------------------------------------------------------------------------


def test_operation_name_is_read_from_x_amz_target():
    request = wire.http_request(event("{}", {"X-Amz-Target": f"{PREFIX}.PutImage"}))
    assert wire.operation_name(request) == "PutImage"


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "PutImage",
        f"{PREFIX}",
        f"{PREFIX}.",
        "DynamoDB_20120810.PutImage",
        "AmazonEC2ContainerRegistry_V20150922.PutImage",
        f"{PREFIX.lower()}.PutImage",
        f"{PREFIX}.NoSuchOperation",
        f"{PREFIX}.putImage",
        f"{PREFIX}.PutImage.",
        f" {PREFIX}.PutImage",
    ],
)
def test_unknown_targets_are_unknown_operations(target):
    headers = {} if target is None else {"X-Amz-Target": target}
    with pytest.raises(UnknownOperationException) as caught:
        wire.operation_name(wire.http_request(event("{}", headers)))
    assert caught.value.status == 400


# --- read_params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{",
        '{"registryId": }',
        "{'a': 1}",
        '{"ignoredMember": NaN}',
        '{"ignoredMember": Infinity}',
        '{"ignoredMember": -Infinity}',
        "[]",
        '"a"',
        "1",
        "null",
        "true",
        "\ufeff{}",
        '{"a":1} trailing',
        '{"a":' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=[
        "text",
        "truncated",
        "missing-value",
        "single-quotes",
        "nan",
        "infinity",
        "-infinity",
        "array",
        "string",
        "number",
        "null",
        "bool",
        "bom",
        "trailing",
        "deeply-nested",
    ],
)
def test_bodies_that_are_not_a_json_object_are_serialization_errors(body):
    with pytest.raises(SerializationException) as caught:
        wire.read_params(request_with(body), "DescribeRepositories")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"repositoryNames":["\xc3"]}', b'{"a":"\xed\xa0\x80"}'],
    ids=["binary", "truncated-sequence", "encoded-surrogate"],
)
def test_bodies_that_are_not_utf8_are_serialization_errors(raw):
    with pytest.raises(SerializationException):
        wire.read_params(request_with(raw), "DescribeRepositories")


@pytest.mark.parametrize("body", ["", "  \n", None])
def test_an_empty_body_is_an_empty_object(body):
    request = wire.http_request(event(body, {"X-Amz-Target": f"{PREFIX}.DescribeRepositories"}))
    assert wire.read_params(request, "DescribeRepositories") == {}


def test_an_empty_body_still_needs_the_required_members():
    with pytest.raises(errors.InvalidParameterException, match="repositoryName"):
        wire.read_params(request_with(""), "CreateRepository")


def test_read_params_validates_against_the_operation():
    with pytest.raises(errors.InvalidParameterException, match="maxResults"):
        wire.read_params(request_with('{"maxResults": 0}'), "DescribeRepositories")
    assert wire.read_params(request_with('{"maxResults": 7, "x": 1}'), "DescribeRepositories") == {"maxResults": 7}


def test_escaped_lone_surrogates_in_the_body_are_rejected():
    with pytest.raises(SerializationException):
        wire.read_params(request_with('{"repositoryNames": ["ab\\ud800"]}'), "DescribeRepositories")


# --- responses ------------------------------------------------------------------------------------


def _headers(response) -> dict:
    return {k.lower(): v for k, v in response["headers"].items()}


def test_ok_response_framing():
    response = wire.ok_response({"repositories": [], "nextToken": "é"}, "req-9")
    assert response["statusCode"] == 200
    assert _headers(response) == {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "req-9"}
    assert response["isBase64Encoded"] is False
    assert json.loads(response["body"]) == {"repositories": [], "nextToken": "é"}


@pytest.mark.parametrize(
    "error,status",
    [
        (errors.ImageTagAlreadyExistsException("tag 'v1' is immutable"), 400),
        (errors.ServerException("boom"), 500),
        (errors.SerializationException("bad json"), 400),
        (errors.UnknownOperationException("no such op"), 400),
        (errors.MissingAuthenticationTokenException("no auth"), 403),
    ],
)
def test_error_response_framing(error, status):
    response = wire.error_response(error, "req-7")
    assert response["statusCode"] == status
    assert _headers(response) == {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "req-7"}
    assert json.loads(response["body"]) == {"__type": error.code, "message": error.message}


def test_error_response_puts_extra_members_at_the_top_level():
    error = errors.InvalidLayerPartException(
        "gap", registry_id="123456789012", repository_name="ab", upload_id="u-1", last_valid_byte_received=99
    )
    body = json.loads(wire.error_response(error, "r")["body"])
    assert body == {
        "__type": "InvalidLayerPartException",
        "message": "gap",
        "registryId": "123456789012",
        "repositoryName": "ab",
        "uploadId": "u-1",
        "lastValidByteReceived": 99,
    }
    body = json.loads(wire.error_response(errors.KmsException("kms", kms_error="DisabledException"), "r")["body"])
    assert body == {"__type": "KmsException", "message": "kms", "kmsError": "DisabledException"}


def test_error_messages_keep_non_ascii_text():
    body = wire.error_response(errors.RepositoryNotFoundException("dépôt 'x'"), "r")["body"]
    assert json.loads(body.encode("utf-8"))["message"] == "dépôt 'x'"


# --- round trips through a real botocore client ---------------------------------------------------


class _Raw:
    """The `raw` of an AWSResponse: what urllib3 would give botocore."""

    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


class Loopback:
    """A boto3 ECR client whose requests go through `wire` and a fake operation, not the network."""

    def __init__(self):
        self.respond = lambda params, operation, request: wire.ok_response({}, request.request_id)
        self.seen: list[tuple[str, dict]] = []
        self.client = boto3.client(
            "ecr",
            region_name="us-east-1",
            endpoint_url="https://ecr.invalid",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )  # one call, one request
        self.client.meta.events.register("before-send.ecr", self._send)

    def _send(self, request, **_):
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        proxy = event(
            base64.b64encode(body).decode(),
            dict(request.headers.items()),
            base64_encoded=True,
            requestContext={"requestId": str(uuid.uuid4())},
        )
        proxy["headers"] = {k: v.decode() if isinstance(v, bytes) else v for k, v in proxy["headers"].items()}
        incoming = wire.http_request(proxy)
        try:
            operation = wire.operation_name(incoming)
            params = wire.read_params(incoming, operation)
            self.seen.append((operation, params))
            response = self.respond(params, operation, incoming)
        except errors.EcrError as error:
            response = wire.error_response(error, incoming.request_id)
        return AWSResponse(
            request.url, response["statusCode"], response["headers"], _Raw(response["body"].encode("utf-8"))
        )

    def fail_with(self, error: errors.EcrError):
        self.respond = lambda params, operation, request: wire.error_response(error, "rid-1")


@pytest.fixture(scope="module")
def loopback():
    return Loopback()


@pytest.fixture
def ecr(loopback):
    loopback.respond = lambda params, operation, request: wire.ok_response({}, request.request_id)
    loopback.seen.clear()
    return loopback.client


def test_botocore_requests_are_read_back_unchanged(ecr, loopback):
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "note": 'é \U0001f600 "quoted"'}
    )
    ecr.put_image(repositoryName="team/app", imageManifest=manifest, imageTag="v1")
    ecr.describe_repositories()
    ecr.upload_layer_part(
        repositoryName="ab",
        uploadId="0f8fad5b-d9cb-469f-a165-70867728950e",
        partFirstByte=0,
        partLastByte=3,
        layerPartBlob=b"\x00\xff\x10\x80",
    )
    assert loopback.seen == [
        ("PutImage", {"repositoryName": "team/app", "imageManifest": manifest, "imageTag": "v1"}),
        ("DescribeRepositories", {}),
        (
            "UploadLayerPart",
            {
                "repositoryName": "ab",
                "uploadId": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "partFirstByte": 0,
                "partLastByte": 3,
                "layerPartBlob": b"\x00\xff\x10\x80",
            },
        ),
    ]


def test_botocore_parses_an_ok_response(ecr, loopback):
    image = {
        "registryId": "123456789012",
        "repositoryName": "ab",
        "imageId": {"imageDigest": "sha256:" + "a" * 64, "imageTag": "v1"},
        "imageManifest": "{}",
        "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
    }
    loopback.respond = lambda params, operation, request: wire.ok_response({"image": image}, "rid-ok")
    result = ecr.put_image(repositoryName="ab", imageManifest="{}")
    assert result["image"] == image
    assert result["ResponseMetadata"]["RequestId"] == "rid-ok"
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_botocore_reads_timestamps_as_datetimes(ecr, loopback):
    loopback.respond = lambda params, operation, request: wire.ok_response(
        {"repositories": [{"repositoryName": "ab", "createdAt": 1563223656.5}]}, "r"
    )
    created = ecr.describe_repositories()["repositories"][0]["createdAt"]
    assert created.timestamp() == 1563223656.5


def _modeled_errors():
    for name, cls in sorted(vars(errors).items()):
        if isinstance(cls, type) and issubclass(cls, errors.EcrError) and cls.modeled and cls is not errors.EcrError:
            yield name


@pytest.mark.parametrize("name", list(_modeled_errors()))
def test_botocore_raises_the_modeled_class_for_every_modeled_error(name, ecr, loopback):
    cls = getattr(errors, name)
    if name == "InvalidLayerPartException":
        error = cls("m é", registry_id="1", repository_name="r", upload_id="u", last_valid_byte_received=1)
    else:
        error = cls("m é")
    loopback.fail_with(error)
    with pytest.raises(getattr(ecr.exceptions, name)) as caught:
        ecr.describe_repositories()
    response = caught.value.response
    assert response["Error"] == {"Code": name, "Message": "m é"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == error.status
    assert response["ResponseMetadata"]["RequestId"] == "rid-1"


def test_botocore_reads_kms_error(ecr, loopback):
    loopback.fail_with(errors.KmsException("The KMS key is disabled", kms_error="DisabledException"))
    with pytest.raises(ecr.exceptions.KmsException) as caught:
        ecr.create_repository(repositoryName="ab")
    assert caught.value.response["kmsError"] == "DisabledException"
    assert caught.value.response["message"] == "The KMS key is disabled"


def test_botocore_reads_the_members_of_invalid_layer_part_exception(ecr, loopback):
    loopback.fail_with(
        errors.InvalidLayerPartException(
            "gap",
            registry_id="123456789012",
            repository_name="ab",
            upload_id="u-1",
            last_valid_byte_received=5_000_000_000,
        )
    )
    with pytest.raises(ecr.exceptions.InvalidLayerPartException) as caught:
        ecr.upload_layer_part(
            repositoryName="ab",
            uploadId="0f8fad5b-d9cb-469f-a165-70867728950e",
            partFirstByte=0,
            partLastByte=0,
            layerPartBlob=b"x",
        )
    response = caught.value.response
    assert response["lastValidByteReceived"] == 5_000_000_000
    assert (response["registryId"], response["repositoryName"], response["uploadId"]) == ("123456789012", "ab", "u-1")


@pytest.mark.parametrize(
    "error",
    [
        errors.SerializationException("bad"),
        errors.UnknownOperationException("?"),
        errors.AccessDeniedException("no"),
        errors.InvalidSignatureException("sig"),
    ],
)
def test_protocol_errors_reach_botocore_as_client_errors_with_their_code(error, ecr, loopback):
    loopback.fail_with(error)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        ecr.describe_repositories()
    assert caught.value.response["Error"]["Code"] == error.code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == error.status


def test_server_side_validation_reaches_botocore_as_invalid_parameter(ecr, loopback):
    # botocore does not check maxima or patterns: the request is sent and our wire refuses it.
    with pytest.raises(ecr.exceptions.InvalidParameterException) as caught:
        ecr.create_repository(repositoryName="UPPER", imageTagMutability="SOMETIMES")
    assert "repositoryName" in caught.value.response["Error"]["Message"]
    assert "imageTagMutability" in caught.value.response["Error"]["Message"]
    assert loopback.seen == []


# --- the bytes a function returns -------------------------------------------------------------------


def test_a_response_past_what_a_function_may_return_is_refused_as_sent():
    """The limit is on the proxy response as returned (the body escaped once more), not on the body:
    5.24 MB of quote-heavy manifests became 6.44 MB there."""
    body = {"images": [{"imageManifest": '"' * 1_400_000}] * 2}  # 2.8 MB of body text, 11 MB returned
    with pytest.raises(wire.ResponseTooLarge) as refused:
        wire.ok_response(body, "r")
    assert refused.value.size > wire.MAX_RETURNED_BYTES
    small = wire.ok_response({"images": [{"imageManifest": '"' * 1_000}]}, "r")
    assert wire.returned_size(small) < wire.MAX_RETURNED_BYTES


def test_a_response_budget_counts_entries_as_returned():
    from registry.operations.common import ResponseBudget

    budget = ResponseBudget()
    quotes = {"imageManifest": '"' * 1_000_000}  # 2 MB in the body, 4+ MB returned
    assert budget.take(quotes)
    assert not budget.take(quotes), "a second one would pass the limit as returned"
    assert budget.take({"imageManifest": "x" * 1_000_000}), "plain characters are counted once"
