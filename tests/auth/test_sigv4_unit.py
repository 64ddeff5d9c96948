"""The verifier, the key cache and the grants on their own: no servers. Requests are signed by
botocore's SigV4Auth, as SDKs sign them, and delivered as the API Gateway proxy events of the
ways a client can reach the function (execute-api URL with its stage, custom domains with and
without a base path, the emulator's URL form)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from registry import auth, wire
from registry.auth import permissions
from registry.auth.access_key_cache import AccessKeyCache
from registry.auth.sigv4 import verify
from registry.config import Settings
from registry.errors import (
    AccessDeniedException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from registry.operations.common import Caller
from registry.records import AccessKey, Grant
from registry.storage.access_keys import AccessKeyStore
from registry.storage.backend import Backend

REGION = "us-east-1"
KEY = AccessKey("AKIDTESTKEY", "111111111111", "ci", (Grant(("push",), ("team/*",)),), 0.0, True, "s3cr3t")
KEY_CREDENTIALS = Credentials(KEY.access_key_id, KEY.secret)
TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"


def signed_event(
    url: str,
    *,
    event_path: str = "/",
    context_path: str | None = None,
    stage: str = "prod",
    api_id: str | None = "abc123",
    body: bytes = b"{}",
    base64_body: bool = False,
    credentials: Credentials = KEY_CREDENTIALS,
    region: str = REGION,
    extra_headers: dict | None = None,
    signed_at: datetime | None = None,
) -> dict:
    parts = urlsplit(url)
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET, **(extra_headers or {})},
    )
    signer = SigV4Auth(credentials, "ecr", region)
    if signed_at is None:
        signer.add_auth(request)
    else:
        request.context["timestamp"] = signed_at.strftime("%Y%m%dT%H%M%SZ")
        signer._modify_request_before_signing(request)
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        signer._inject_signature_to_request(request, signature)
    headers = {**dict(request.headers.items()), "Host": parts.netloc, "X-Forwarded-For": "203.0.113.7"}
    query: dict[str, list[str]] = {}
    for pair in filter(None, parts.query.split("&")):
        name, _, value = pair.partition("=")
        query.setdefault(unquote(name), []).append(unquote(value))
    return {
        "httpMethod": "POST",
        "path": event_path,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "multiValueQueryStringParameters": query or None,
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
        "requestContext": {
            "path": context_path if context_path is not None else parts.path or "/",
            "stage": stage,
            "apiId": api_id,
            "requestId": "r-1",
        },
    }


def check(event: dict, key: AccessKey = KEY, now: float | None = None) -> AccessKey:
    request = wire.http_request(event)
    signed = auth.sigv4.SignedRequest(
        request.method, request.signed_paths, request.query, request.header_values, request.body
    )
    lookups = {key.access_key_id: key}
    return verify(signed, lookups.get, REGION, **({"now": lambda: now} if now is not None else {}))


# --- how clients reach the function ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url, event_path, context_path",
    [
        # execute-api URL with the stage: API Gateway strips it from `path`, keeps it in requestContext.path
        ("https://abc123.execute-api.us-east-1.amazonaws.com/prod", "/", "/prod"),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/prod", "/", "/prod/"),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/prod/", "/", "/prod/"),
        # custom domain, API mapped at the root
        ("https://registry.example.com", "/", "/"),
        # custom domain with a base path mapping (`path` keeps it, or not)
        ("https://registry.example.com/ecr", "/ecr", "/ecr/"),
        ("https://registry.example.com/ecr", "/", "/ecr"),
        # custom domain mapped without a stage, requestContext.path with the stage
        ("https://registry.example.com", "/prod/", "/prod/"),
        # the emulator's URL form: /_aws/execute-api/<api>/<stage>
        ("https://127.0.0.1:4566/_aws/execute-api/abc123/prod", "/", "/prod/"),
        # the local gateway: no stage in the URL
        ("http://127.0.0.1:4566", "/", "/"),
    ],
)
def test_the_path_the_client_requested_is_the_one_verified(url, event_path, context_path):
    assert check(signed_event(url, event_path=event_path, context_path=context_path)) is KEY


def test_a_path_that_did_not_lead_here_does_not_verify():
    event = signed_event("https://registry.example.com/elsewhere", event_path="/", context_path="/")
    with pytest.raises(InvalidSignatureException):
        check(event)


def test_base64_body_query_string_and_repeated_headers():
    url = "https://registry.example.com/?b=x%20y&a=2&a=1"
    event = signed_event(url, body=b'{"maxResults": 5}', base64_body=True)
    assert check(event) is KEY
    event = signed_event("https://registry.example.com", extra_headers={"X-Custom": "one"})
    event["multiValueHeaders"]["X-Custom"] = ["one"]
    auth_header = event["headers"]["Authorization"]
    assert "x-custom" in auth_header
    assert check(event) is KEY
    event["multiValueHeaders"]["X-Custom"] = ["one", "two"]  # a second value added on the way: not what was signed
    with pytest.raises(InvalidSignatureException):
        check(event)


def test_the_body_is_what_is_verified():
    event = signed_event("https://registry.example.com", body=b'{"repositoryNames": ["a"]}')
    event["body"] = '{"repositoryNames": ["b"]}'
    with pytest.raises(InvalidSignatureException):
        check(event)


def without_header(event: dict, name: str) -> dict:
    """The event as API Gateway hands it over when it does not pass `name` on."""
    for headers in (event["headers"], event["multiValueHeaders"]):
        for key in [k for k in headers if k.lower() == name.lower()]:
            del headers[key]
    return event


def test_a_signed_content_length_that_api_gateway_dropped_is_rebuilt_from_the_body():
    """The JS and Go SDKs sign content-length; a REST API proxy event never carries it."""
    body = b'{"repositoryNames": ["a"]}'
    event = signed_event("https://registry.example.com", body=body, extra_headers={"Content-Length": str(len(body))})
    assert "content-length" in event["headers"]["Authorization"]
    assert check(without_header(event, "Content-Length")) is KEY
    # what is rebuilt is the length of the body that arrived, not whatever was signed
    event = signed_event("https://registry.example.com", body=body, extra_headers={"Content-Length": "999"})
    with pytest.raises(InvalidSignatureException):
        check(without_header(event, "Content-Length"))


# --- the checks before the key is looked up --------------------------------------------------------


def no_lookup(_):
    raise AssertionError("the key must not be looked up for this request")


def refused_without_lookup(event: dict, error: type, now: float | None = None) -> str:
    request = wire.http_request(event)
    signed = auth.sigv4.SignedRequest(
        request.method, request.signed_paths, request.query, request.header_values, request.body
    )
    with pytest.raises(error) as caught:
        verify(signed, no_lookup, REGION, **({"now": lambda: now} if now is not None else {}))
    assert caught.value.status == 403
    return caught.value.message


def test_missing_authorization():
    event = signed_event("https://registry.example.com")
    del event["headers"]["Authorization"], event["multiValueHeaders"]["Authorization"]
    assert refused_without_lookup(event, MissingAuthenticationTokenException) == "Missing Authentication Token"


def test_session_token():
    event = signed_event(
        "https://registry.example.com", credentials=Credentials(KEY.access_key_id, KEY.secret, "session-token")
    )
    refused_without_lookup(event, UnrecognizedClientException)


@pytest.mark.parametrize("offset, accepted", [(-300, True), (300, True), (-301, False), (301, False)])
def test_the_skew_window_is_five_minutes(offset, accepted):
    signed_at = datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC)
    event = signed_event("https://registry.example.com", signed_at=signed_at)
    now = signed_at.timestamp() - offset
    if accepted:
        assert check(event, now=now) is KEY
    else:
        message = refused_without_lookup(event, InvalidSignatureException, now=now)
        assert message.startswith("Signature expired" if offset < 0 else "Signature not yet current")


def test_wrong_region_and_date_scope():
    refused_without_lookup(signed_event("https://registry.example.com", region="eu-west-1"), InvalidSignatureException)
    event = signed_event("https://registry.example.com")
    event["headers"]["X-Amz-Date"] = "20200101T000000Z"
    event["multiValueHeaders"]["X-Amz-Date"] = ["20200101T000000Z"]
    assert "Date in Credential scope" in refused_without_lookup(event, InvalidSignatureException)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/ecr/aws4_request, Credential=b, SignedHeaders=host, "
        "Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/ecr/aws4_request, SignedHeaders=x-amz-date;host, "
        "Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, "
        "Signature=zz",
    ],
)
def test_malformed_authorization(authorization):
    event = signed_event("https://registry.example.com")
    event["headers"]["Authorization"] = event["multiValueHeaders"]["Authorization"][0] = authorization
    refused_without_lookup(event, InvalidSignatureException)


def test_unknown_revoked_and_wrong_secret():
    event = signed_event("https://registry.example.com")
    request = wire.http_request(event)
    signed = auth.sigv4.SignedRequest(
        request.method, request.signed_paths, request.query, request.header_values, request.body
    )
    with pytest.raises(UnrecognizedClientException):
        verify(signed, lambda _: None, REGION)
    revoked = AccessKey(**{**KEY.__dict__, "active": False})
    with pytest.raises(UnrecognizedClientException):
        verify(signed, lambda _: revoked, REGION)
    other = AccessKey(**{**KEY.__dict__, "secret": "another"})
    with pytest.raises(InvalidSignatureException):
        verify(signed, lambda _: other, REGION)


# --- the key cache ---------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_cache_serves_a_key_for_ttl_seconds_then_reads_it_again():
    reads, clock = [], Clock()
    cache = AccessKeyCache(lambda k: reads.append(k) or KEY, ttl=60, clock=clock)
    assert cache.get("AKIDTESTKEY") is KEY and cache.get("AKIDTESTKEY") is KEY
    clock.now += 59.9
    assert cache.get("AKIDTESTKEY") is KEY
    assert reads == ["AKIDTESTKEY"]
    clock.now += 0.2
    cache.get("AKIDTESTKEY")
    assert reads == ["AKIDTESTKEY"] * 2


def test_cache_remembers_unknown_keys_and_is_bounded():
    reads, clock = [], Clock()
    cache = AccessKeyCache(lambda k: reads.append(k) or None, ttl=60, max_entries=3, clock=clock)
    for name in ("a", "a", "b", "c", "d", "a"):
        assert cache.get(name) is None
    assert reads == ["a", "b", "c", "d", "a"]  # "a" was the least recently used when "d" came


def test_a_flood_of_unknown_ids_never_evicts_a_real_key_and_reads_are_rationed():
    """1,100 made-up key ids (one unauthenticated request each) once meant 1,100 DynamoDB reads and
    the real key read again afterwards. Unknown ids are remembered apart from keys, and reads of ids
    never seen are rationed per execution environment."""
    reads, clock = [], Clock()
    cache = AccessKeyCache(lambda k: reads.append(k) or (KEY if k == "AKIDTESTKEY" else None), ttl=60, clock=clock)
    assert cache.get("AKIDTESTKEY") is KEY
    for i in range(1100):
        assert cache.get(f"FLOOD{i:05d}") is None
    assert cache.get("AKIDTESTKEY") is KEY
    assert reads.count("AKIDTESTKEY") == 1, "the real key stayed in memory"
    assert len(reads) - 1 <= 50, f"{len(reads) - 1} reads for 1,100 unknown ids at one instant"
    clock.now += 1.0  # the ration refills over time, a few reads a second
    before = len(reads)
    for i in range(100):
        cache.get(f"LATER{i:05d}")
    assert 1 <= len(reads) - before <= 25


def test_no_cache_with_ttl_zero_and_failures_are_not_cached():
    reads = []
    cache = AccessKeyCache(lambda k: reads.append(k) or KEY, ttl=0)
    cache.get("x"), cache.get("x")
    assert reads == ["x", "x"]
    calls = []

    def flaky(k):
        calls.append(k)
        if len(calls) == 1:
            raise RuntimeError("throttled")
        return KEY

    cache = AccessKeyCache(flaky, ttl=60)
    with pytest.raises(RuntimeError):
        cache.get("x")
    assert cache.get("x") is KEY and cache.get("x") is KEY and len(calls) == 2


class CountingDynamoDB:
    def __init__(self, item):
        self.item, self.calls = item, 0

    def get_item(self, **_):
        self.calls += 1
        return {"Item": self.item}


class CountingKms:
    def __init__(self):
        self.calls = 0

    def decrypt(self, **request):
        self.calls += 1
        assert request["EncryptionContext"] == {"registry_id": "111111111111", "access_key_id": "AKIDTESTKEY"}
        return {"Plaintext": b"s3cr3t"}


def test_a_warm_function_verifies_with_no_aws_call():
    """Cold: one GetItem and one Decrypt. Warm (same key, within the bound): none."""
    item = {
        "access_key_id": {"S": "AKIDTESTKEY"},
        "registry_id": {"S": "111111111111"},
        "name": {"S": "ci"},
        "grants": {"L": []},
        "status": {"S": "Active"},
        "created_at": {"N": "0"},
        "secret_ciphertext": {"B": b"ciphertext"},
    }
    dynamodb, kms = CountingDynamoDB(item), CountingKms()
    backend = Backend(Settings(region=REGION, tables={"keys": "keys"}), {"dynamodb": dynamodb, "kms": kms}.__getitem__)
    cache = AccessKeyCache(AccessKeyStore(backend, None).get, ttl=60)
    for _ in range(3):
        request = wire.http_request(signed_event("https://registry.example.com"))
        assert auth.authenticate(request, cache, REGION).registry_id == "111111111111"
    assert (dynamodb.calls, kms.calls) == (1, 1)


# --- grants ----------------------------------------------------------------------------------------

OPERATIONS = [
    "BatchGetImage",
    "PutImage",
    "DeleteRepository",
    "DescribeRepositories",
    "DescribeImages",
    "CreateRepository",
    "ListImages",
]


@pytest.mark.parametrize(
    "text, grant",
    [
        ("push:team/*", Grant(("push",), ("team/*",))),
        ("pull", Grant(("pull",), ("*",))),
        ("admin", Grant(("admin",), ("*",))),
        ("ecr:*", Grant(("ecr:*",), ("*",))),
        ("ecr:PutImage,ecr:ListImages:app,tools/*", Grant(("ecr:PutImage", "ecr:ListImages"), ("app", "tools/*"))),
        ("pull,ecr:DeleteRepository:scratch/*", Grant(("pull", "ecr:DeleteRepository"), ("scratch/*",))),
    ],
)
def test_parse_grant(text, grant):
    assert permissions.parse_grant(text, OPERATIONS) == grant


@pytest.mark.parametrize("text", ["", "pul", "ecr:NoSuchThing", "push:Team", "push:", "ecr", "push:a b"])
def test_parse_grant_refuses(text):
    with pytest.raises(ValueError):
        permissions.parse_grant(text, OPERATIONS)


@pytest.mark.parametrize(
    "grants, operation, repository, allowed",
    [
        ([Grant(("pull",), ("*",))], "BatchGetImage", "a", True),
        ([Grant(("pull",), ("*",))], "PutImage", "a", False),
        ([Grant(("push",), ("*",))], "PutImage", "a", True),
        ([Grant(("push",), ("*",))], "DeleteRepository", "a", False),
        ([Grant(("push",), ("*",))], "CreateRepository", "a", False),
        ([Grant(("admin",), ("*",))], "DeleteRepository", "a/b/c", True),
        ([Grant(("push",), ("team/*",))], "PutImage", "team/app", True),
        ([Grant(("push",), ("team/*",))], "PutImage", "team", False),
        ([Grant(("push",), ("team/*",))], "PutImage", "teams/app", False),
        ([Grant(("ecr:Describe*",), ("*",))], "DescribeImages", "x", True),
        ([Grant(("ecr:Describe*",), ("*",))], "ListImages", "x", False),
        ([Grant(("pull",), ("a",)), Grant(("ecr:PutImage",), ("b",))], "PutImage", "b", True),
        ([Grant(("pull",), ("a",)), Grant(("ecr:PutImage",), ("b",))], "PutImage", "a", False),
        ([], "DescribeRepositories", None, False),
    ],
)
def test_allows(grants, operation, repository, allowed):
    assert permissions.allows(grants, operation, repository) is allowed


def test_push_is_pull_plus_the_upload_actions():
    assert set(permissions.ROLES["push"]) - set(permissions.ROLES["pull"]) == {
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
    }


def no_policies(registry_id, names):
    return {}


def test_authorize_names_principal_action_and_resource():
    caller = Caller.of(KEY)
    assert permissions.authorize(caller, "PutImage", {"repositoryName": "team/app"}, REGION, no_policies) == (
        "111111111111"
    )
    with pytest.raises(AccessDeniedException) as caught:
        permissions.authorize(caller, "DeleteRepository", {"repositoryName": "team/app"}, REGION, no_policies)
    assert caught.value.status == 400
    assert caught.value.message == (
        "User: arn:aws:iam::111111111111:user/ci is not authorized to perform: ecr:DeleteRepository on "
        "resource: arn:aws:ecr:us-east-1:111111111111:repository/team/app"
    )
    with pytest.raises(AccessDeniedException, match=r"repository/team/app because no resource-based policy allows"):
        permissions.authorize(
            caller, "PutImage", {"registryId": "222222222222", "repositoryName": "team/app"}, REGION, no_policies
        )
    # DescribeRepositories without names needs the action on some repository
    permissions.authorize(caller, "DescribeRepositories", {}, REGION, no_policies)
    assert caller.may("DescribeRepositories", "team/x") and not caller.may("DescribeRepositories", "other")


# --- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, seconds", [(None, 60.0), ("", 60.0), ("1", 1.0), ("0", 0.0), ("0.5", 0.5)])
def test_key_cache_seconds(monkeypatch, raw, seconds):
    if raw is None:
        monkeypatch.delenv("REGISTRY_KEY_CACHE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("REGISTRY_KEY_CACHE_SECONDS", raw)
    assert Settings.from_environment().access_key_cache_seconds == seconds


@pytest.mark.parametrize("raw", ["-1", "901", "soon"])
def test_key_cache_seconds_out_of_bounds(monkeypatch, raw):
    monkeypatch.setenv("REGISTRY_KEY_CACHE_SECONDS", raw)
    with pytest.raises(ValueError):
        Settings.from_environment()


def test_wire_lists_the_signed_path_candidates():
    request = wire.http_request({"path": "/", "requestContext": {"path": "/prod/", "stage": "prod", "apiId": "abc"}})
    assert request.signed_paths[0] == "/prod/"
    assert set(request.signed_paths) == {
        "/prod/",
        "/prod",
        "/",
        "/_aws/execute-api/abc/prod/",
        "/_aws/execute-api/abc/prod",
    }
    assert wire.http_request({}).signed_paths == ("/",)
