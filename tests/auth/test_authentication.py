"""Only correctly signed requests get in: every refusal has AWS's code and status, and changes nothing.

Black-box: real boto3 clients and raw requests signed with botocore's SigV4Auth, against the
registry (local stack, or REGISTRY_ENDPOINT with the deployment's `test`/`test` key).
"""

from __future__ import annotations

import json

import boto3
import pytest
from auth_support import (
    ADMIN,
    CONTENT_TYPE,
    REGION,
    TARGET,
    minutes_ago,
    new_registry_id,
    send,
    signed,
    unique_name,
)
from botocore.auth import SigV4Auth
from botocore.exceptions import ClientError
from support import client_of, ecr_client


def exists(ecr, name: str) -> bool:
    try:
        ecr.describe_repositories(repositoryNames=[name])
        return True
    except ecr.exceptions.RepositoryNotFoundException:
        return False


def refused(reply, status: int, code: str) -> None:
    assert (reply.status, reply.code) == (status, code), reply.body
    assert reply.headers["Content-Type"] == CONTENT_TYPE
    assert reply.json["message"]


# --- the happy path, raw ---------------------------------------------------------------------------


def test_a_correctly_signed_raw_request_gets_in(registry, ecr):
    name = unique_name("raw-ok")
    reply = send(signed(registry.endpoint, "CreateRepository", {"repositoryName": name}))
    assert reply.status == 200, reply.body
    assert exists(ecr, name)


def test_a_request_signed_four_minutes_ago_still_gets_in(registry):
    reply = send(signed(registry.endpoint, "DescribeRepositories", {}, signed_at=minutes_ago(4)))
    assert reply.status == 200, reply.body


# --- refusals --------------------------------------------------------------------------------------


def test_unsigned_request_is_refused(registry, ecr):
    name = unique_name("unsigned")
    reply = send(signed(registry.endpoint, "CreateRepository", {"repositoryName": name}, credentials=None))
    refused(reply, 403, "MissingAuthenticationTokenException")
    assert not exists(ecr, name)


def test_wrong_secret_is_refused(registry, ecr):
    name = unique_name("wrong-secret")
    intruder = ecr_client(registry.endpoint, ADMIN.access_key, "not-the-secret")
    with pytest.raises(ClientError) as excinfo:
        intruder.create_repository(repositoryName=name)
    error = excinfo.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidSignatureException", 403)
    assert "signature we calculated does not match" in error["Error"]["Message"]
    assert not exists(ecr, name)


def test_unknown_key_is_refused(registry, ecr):
    name = unique_name("unknown-key")
    stranger = ecr_client(registry.endpoint, "REGKNOSUCHKEY0000000", "whatever")
    with pytest.raises(ClientError) as excinfo:
        stranger.create_repository(repositoryName=name)
    error = excinfo.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("UnrecognizedClientException", 403)
    assert not exists(ecr, name)


def test_tampered_body_is_refused(registry, ecr):
    """Signed for one repository name, sent with another: neither is created."""
    meant, swapped = unique_name("meant"), unique_name("swapped")
    request = signed(registry.endpoint, "CreateRepository", {"repositoryName": meant})
    tampered = json.dumps({"repositoryName": swapped}).encode()
    refused(send(request, body=tampered), 403, "InvalidSignatureException")
    assert not exists(ecr, meant) and not exists(ecr, swapped)


def test_tampered_operation_is_refused(registry, ecr, repo):
    """Signed as DescribeRepositories, sent as DeleteRepository."""
    request = signed(registry.endpoint, "DescribeRepositories", {"repositoryName": repo, "force": True})
    request.headers.replace_header("X-Amz-Target", TARGET + "DeleteRepository")
    refused(
        send(request, body=json.dumps({"repositoryName": repo, "force": True}).encode()),
        403,
        "InvalidSignatureException",
    )
    assert exists(ecr, repo)


@pytest.mark.parametrize("minutes", [6, 30, 24 * 60])
def test_replay_past_the_skew_window_is_refused(registry, ecr, minutes):
    """A request captured `minutes` ago, replayed as is: correctly signed, but expired."""
    name = unique_name(f"replay-{minutes}")
    reply = send(
        signed(registry.endpoint, "CreateRepository", {"repositoryName": name}, signed_at=minutes_ago(minutes))
    )
    refused(reply, 403, "InvalidSignatureException")
    assert reply.json["message"].startswith("Signature expired")
    assert not exists(ecr, name)


def test_signature_from_the_future_is_refused(registry, ecr):
    name = unique_name("future")
    reply = send(signed(registry.endpoint, "CreateRepository", {"repositoryName": name}, signed_at=minutes_ago(-6)))
    refused(reply, 403, "InvalidSignatureException")
    assert "not yet current" in reply.json["message"]
    assert not exists(ecr, name)


def test_session_token_is_refused(registry, ecr):
    """We issue no temporary credentials: a session token cannot be ours."""
    name = unique_name("session-token")
    client = boto3.client(
        "ecr",
        endpoint_url=registry.endpoint,
        region_name=REGION,
        aws_access_key_id=ADMIN.access_key,
        aws_secret_access_key=ADMIN.secret_key,
        aws_session_token="FwoGZXIvYXdzEXAMPLE",
    )
    with pytest.raises(ClientError) as excinfo:
        client.create_repository(repositoryName=name)
    error = excinfo.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("UnrecognizedClientException", 403)
    assert not exists(ecr, name)


@pytest.mark.parametrize("service, region", [("execute-api", REGION), ("ecr", "eu-west-1"), ("s3", REGION)])
def test_signature_for_another_service_or_region_is_refused(registry, ecr, service, region):
    name = unique_name(f"scope-{service}-{region}")
    reply = send(
        signed(registry.endpoint, "CreateRepository", {"repositoryName": name}, service=service, region=region)
    )
    refused(reply, 403, "InvalidSignatureException")
    assert "scoped" in reply.json["message"]
    assert not exists(ecr, name)


class _TargetUnsigned(SigV4Auth):
    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        del headers["x-amz-target"]
        return headers


def test_operation_must_be_signed(registry, ecr):
    name = unique_name("target-unsigned")
    reply = send(signed(registry.endpoint, "CreateRepository", {"repositoryName": name}, signer_class=_TargetUnsigned))
    refused(reply, 403, "InvalidSignatureException")
    assert "x-amz-target" in reply.json["message"]
    assert not exists(ecr, name)


def test_declared_payload_hash_must_be_the_real_one(registry, ecr):
    """A client may send X-Amz-Content-SHA256; UNSIGNED-PAYLOAD (or any other value than the
    body's hash) would leave the body unprotected, so it is refused."""
    name = unique_name("unsigned-payload")
    reply = send(
        signed(
            registry.endpoint,
            "CreateRepository",
            {"repositoryName": name},
            extra_headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
        )
    )
    refused(reply, 403, "InvalidSignatureException")
    assert not exists(ecr, name)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecr/aws4_request",
        "AWS4-HMAC-SHA256 Credential=test, SignedHeaders=host, Signature=" + "0" * 64,
        "AWS4-ECDSA-P256-SHA256 Credential=test/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00",
        "Basic dGVzdDp0ZXN0",
    ],
)
def test_malformed_authorization_is_refused(registry, authorization):
    request = signed(registry.endpoint, "DescribeRepositories", {})
    request.headers.replace_header("Authorization", authorization)
    refused(send(request), 403, "InvalidSignatureException")


def test_refusals_reach_boto3_as_client_errors_with_the_code(registry):
    """What an SDK user sees: a ClientError whose code names the problem, no retries."""
    client = boto3.client(
        "ecr",
        endpoint_url=registry.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="wrong",
    )
    with pytest.raises(ClientError) as excinfo:
        client.describe_repositories()
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert excinfo.value.response["Error"]["Code"] == "InvalidSignatureException"


@pytest.mark.local_only
def test_issued_key_works_from_boto3(registry, issue_key):
    key = issue_key(new_registry_id(), (("admin",), ("*",)))
    client = client_of(registry.endpoint, key)
    assert client.describe_repositories()["repositories"] == []
