"""Property-based fuzzing of every operation we serve, with raw SigV4-signed requests.

Inputs come from botocore's ECR model (model_strategies.py). For every operation in
`registry.operations.OPERATIONS`:

- valid and boundary requests, often naming things that exist: never a 5xx; an error is one of
  that operation's modeled errors or a protocol error; a success parses with botocore's own parser
  against the output shape; a refused request made no successful write to DynamoDB or S3 (the
  handler's own clients, journaled by local/faults.py);
- invalid requests -- wrong types, constraint violations, broken bodies, lone surrogates, wrong
  targets, bad signatures -- sent eight at a time, concurrently: each gets exactly the error its
  kind calls for, and the registry's stored state (every table, every object) is identical before
  and after the batch, with no successful write in the journal.

Afterwards every invariant of invariants.py holds. `make test` runs a few thousand requests;
`make fuzz` (REGISTRY_FUZZ_PROFILE=fuzz) runs ten times as many.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.parsers import create_parser
from harness import WRITES, IsolatedRegistry, SignedClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from invariants import ObjectReader, assert_invariants, read_state
from model_strategies import MODEL, Request, World, invalid_request, valid_params
from support import image_manifest, new_blobs, push_image, upload_blob

from registry import errors
from registry.operations import OPERATIONS

pytestmark = pytest.mark.local_only
BATCH = 8

# Shrinking a failing batch re-sends requests for minutes: report the failing example as found.
_phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
_common = {
    "deadline": None,
    "print_blob": True,
    "phases": _phases,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
}
settings.register_profile("reliability-ci", max_examples=20, derandomize=True, **_common)
settings.register_profile("reliability-fuzz", max_examples=300, **_common)
PROFILE = settings.get_profile("reliability-" + os.environ.get("REGISTRY_FUZZ_PROFILE", "ci"))


def _protocol_errors() -> set[str]:
    base = getattr(errors, "ProtocolError", None)
    found, pending = set(), list(base.__subclasses__()) if base else []
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return found | {
        "UnknownOperationException",
        "SerializationException",
        "AccessDeniedException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
    }


PROTOCOL_ERRORS = _protocol_errors()
AUTH_ERRORS = {
    "MissingAuthenticationTokenException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
}


def modeled_errors(operation: str) -> set[str]:
    return {shape.name for shape in MODEL.operation_model(operation).error_shapes}


@pytest.fixture(scope="module")
def stack(backends, tmp_path_factory):
    registry = IsolatedRegistry(backends, workers=4, faults_dir=tmp_path_factory.mktemp("fuzz"))
    registry.raw = SignedClient(registry.endpoint)
    registry.reader = ObjectReader(registry.backends)
    yield registry
    registry.stop()


_worlds: dict[str, World] = {}


def world_of(stack, operation: str) -> World:
    """The world of one operation's tests (valid examples may change it: invalid ones may not)."""
    if operation not in _worlds:
        _worlds[operation] = build_world(stack, operation, "fuzz")
    return _worlds[operation]


def build_world(stack, operation: str, test: str) -> World:
    """Repositories of this test's own (a DeleteRepository example cannot spoil another's)."""
    ecr = stack.ecr()
    slug = f"{operation.lower()}-{test}"
    mutable, immutable = f"fz/{slug}/mutable", f"fz/{slug}/immutable"
    ecr.create_repository(repositoryName=mutable)
    ecr.create_repository(repositoryName=immutable, imageTagMutability="IMMUTABLE")
    first = push_image(ecr, mutable, tag="v1", layers=0)
    second = push_image(ecr, mutable, tag="latest", layers=0)
    config, _ = new_blobs(0)  # uploaded, in no image: a pushable manifest
    config_digest = upload_blob(ecr, mutable, config)
    in_progress = ecr.initiate_layer_upload(repositoryName=mutable)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=mutable, uploadId=in_progress, partFirstByte=0, partLastByte=2, layerPartBlob=b"abc"
    )
    empty = ecr.initiate_layer_upload(repositoryName=mutable)["uploadId"]
    config_of_first = json.loads(first.manifest)["config"]["digest"]
    return World(
        repositories=[mutable, immutable, f"fz/{slug}/missing"],
        digests=[first.digest, second.digest, "sha256:" + "0" * 64],
        tags=["v1", "latest", "nope"],
        layers=[config_of_first, config_digest, "sha256:" + "1" * 64],
        uploads=[in_progress, empty, "00000000-0000-4000-8000-000000000000"],
        manifests=[image_manifest(config, []), first.manifest],
    )


def send(stack, request: Request) -> tuple[int, dict, bytes]:
    client = stack.raw
    if request.sign == "unknown-key":
        from botocore.credentials import Credentials

        client = SignedClient(stack.endpoint, Credentials("AKIANOSUCHKEY0000000", "secret"))
    if request.sign in ("tamper", "none"):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921." + request.operation,
        }
        aws = AWSRequest(method="POST", url=client.endpoint, data=request.body, headers=headers)
        SigV4Auth(client.credentials, "ecr", "us-east-1").add_auth(aws)
        sent = dict(aws.headers.items())
        body = request.body + b" " if request.sign == "tamper" else request.body
        if request.sign == "none":
            sent.pop("Authorization")
        answer = client.http.request("POST", client.endpoint, body=body, headers=sent)
        return answer.status, dict(answer.headers.items()), answer.data
    return client.send(request.operation, request.body, target=request.target)


def check_answer(
    operation: str | None, status: int, headers: dict, body: bytes, expect: frozenset[str] | None = None
) -> str:
    """The invariants of one answer; returns its outcome ("OK" or the error type)."""
    assert status < 500, f"HTTP {status}: {body[:500]!r}"
    if status < 300:
        assert expect is None, f"accepted a request that must be refused ({sorted(expect)}): {body[:300]!r}"
        shape = MODEL.operation_model(operation).output_shape
        if shape is not None:
            create_parser("json").parse({"body": body, "headers": headers, "status_code": status}, shape)
        return "OK"
    assert headers.get("Content-Type") == "application/x-amz-json-1.1", headers
    code = json.loads(body)["__type"]
    allowed = PROTOCOL_ERRORS | (modeled_errors(operation) if operation else set())
    assert code in allowed, f"{code} is not an error of {operation}: {body[:300]!r}"
    if expect is not None:
        assert code in expect, f"expected {sorted(expect)}, got {code}: {body[:300]!r}"
    if code in AUTH_ERRORS:
        assert status == 403, status
    else:
        assert status == 400, status
    return code


def successful_writes(stack) -> list[dict]:
    return [line for line in stack.journal() if line["ok"] and line["operation"] in WRITES]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_valid_and_boundary_requests(stack, operation):
    world = world_of(stack, operation)
    outcomes: dict[str, int] = {}

    @PROFILE
    @given(params=valid_params(operation, world))
    def one(params):
        stack.clear_journal()
        status, headers, body = stack.raw.send(operation, json.dumps(params).encode())
        outcome = check_answer(operation, status, headers, body)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "OK":
            assert successful_writes(stack) == [], f"a refused {operation} ({outcome}) wrote to storage"

    one()
    print(operation, dict(sorted(outcomes.items())))
    assert_invariants(stack.backends, stack.reader)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_invalid_requests_are_refused_and_change_nothing(stack, operation):
    world = world_of(stack, operation)
    before = [read_state(stack.backends).fingerprint()]
    pool = ThreadPoolExecutor(BATCH)

    @PROFILE
    @given(batch=st.lists(invalid_request(operation, world), min_size=BATCH, max_size=BATCH))
    def batch_of(batch):
        stack.clear_journal()
        answers = list(pool.map(lambda r: send(stack, r), batch))
        for request, (status, headers, body) in zip(batch, answers, strict=False):
            try:
                check_answer(request.operation or operation, status, headers, body, request.expect)
            except AssertionError as failure:
                raise AssertionError(f"{request!r}: {failure}") from None
        assert successful_writes(stack) == [], "refused requests wrote to storage"
        after = read_state(stack.backends).fingerprint()
        assert after == before[0], "refused requests changed the stored state"

    try:
        batch_of()
    finally:
        pool.shutdown()


def _token(position: dict) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


WIDE_TAG = "\U0001f600" * 300  # 300 characters (the model's maximum), 1,200 bytes of UTF-8
LONG_DIGEST = "blake3:" + "a" * 1100  # a well-formed digest no DynamoDB key can hold
# (operation, params, the error it must get): each once answered HTTP 500
REGRESSIONS = [
    ("BatchGetImage", {"imageIds": [{"imageTag": WIDE_TAG}]}, None),
    ("BatchGetImage", {"imageIds": [{"imageDigest": LONG_DIGEST}]}, None),
    ("BatchDeleteImage", {"imageIds": [{"imageDigest": LONG_DIGEST}, {"imageTag": WIDE_TAG}]}, None),
    ("DescribeImages", {"imageIds": [{"imageTag": WIDE_TAG}]}, "ImageNotFoundException"),
    ("GetDownloadUrlForLayer", {"layerDigest": "md5:" + "a" * 1100}, "LayersNotFoundException"),
    ("DescribeRepositories", {"nextToken": _token({"after": "x" * 2000})}, "InvalidParameterException"),
    ("DescribeImages", {"nextToken": _token({"after": "x" * 2000})}, "InvalidParameterException"),
    ("ListImages", {"nextToken": _token({"at": "x" * 2000, "skip": 0})}, "InvalidParameterException"),
    ("PutImage", {"imageTag": WIDE_TAG}, "InvalidParameterException"),
]


@pytest.mark.parametrize(
    "operation, params, expect", REGRESSIONS, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(REGRESSIONS)]
)
def test_regressions(stack, operation, params, expect):
    world = build_world(stack, operation, f"regression-{REGRESSIONS.index((operation, params, expect))}")
    params = {"repositoryName": world.repositories[0], **params}
    if operation == "PutImage":
        params["imageManifest"] = world.manifests[0]
    stack.clear_journal()
    status, headers, body = stack.raw.send(operation, json.dumps(params).encode())
    outcome = check_answer(operation, status, headers, body, frozenset({expect}) if expect else None)
    if outcome != "OK":
        assert successful_writes(stack) == []
