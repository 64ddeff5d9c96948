"""Faults at every storage call of the push path: InitiateLayerUpload, UploadLayerPart,
CompleteLayerUpload and PutImage.

For each scenario the calls the handler makes are recorded once (local/faults.py's journal), then a
fault is injected at each of them in turn, one fault kind at a time:

    throttled    every attempt throttled (DynamoDB ProvisionedThroughputExceededException 400,
                 S3 SlowDown 503): botocore's retries run out, the handler sees the error
    flaky        one attempt fails with 500 InternalServerError/InternalError: botocore retries
    timeout      every attempt times out before reaching the service
    lost         the first attempt is executed but its response is lost; botocore sends the same
                 request again, against the state the first one changed
    lost-always  every attempt is executed and every response lost: the write landed, the
                 handler believes it failed
    crash        (write calls) the Lambda dies right after the call: nothing after it runs

After each fault: the client saw success, ServerException (HTTP 500) or -- crash -- the gateway's
502; every invariant of `invariants.py` holds; the same request sent again behaves as ECR documents
(success if the first did not land; ImageAlreadyExistsException / LayerAlreadyExistsException /
InvalidLayerPartException naming the bytes received if it did); and the push then completes with
the right bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError
from harness import WRITES, IsolatedRegistry
from invariants import ObjectReader, assert_invariants
from support import image_manifest, new_blobs, sha256, upload_blob, upload_image_blobs

pytestmark = pytest.mark.local_only
MiB = 1024 * 1024
KINDS = ["throttled", "flaky", "timeout", "lost", "lost-always", "crash"]
ABSORBED = {"flaky", "lost"}  # one bad attempt: botocore's own retry must make the request succeed
# `make test` runs a slice of the matrix that still strikes every call: every write gets "lost"
# (it lands and botocore sends it again) and, in turn, "crash" or "lost-always" (it lands and the
# request fails); every read gets one of the other kinds in turn. `make fuzz`
# (REGISTRY_FAULT_MATRIX=full) runs every (call, kind) pair.
FULL = os.environ.get("REGISTRY_FAULT_MATRIX") == "full"


def selected(scenario_number: int, index: int, call, kind: str) -> bool:
    write = call.operation in WRITES and call.ok
    if kind == "crash" and not write:
        return False
    if FULL:
        return True
    if write:
        return kind == "lost" or kind == ["crash", "lost-always"][(index + scenario_number) % 2]
    turn = ["throttled", "timeout", "flaky", "lost-always"]
    return kind == turn[(index + scenario_number) % len(turn)]


def fault_rule(kind: str, service: str, operation: str, occurrence: int) -> dict:
    rule = {"service": service, "operation": operation, "skip": occurrence}
    if kind == "crash":
        return rule | {"when": "after", "error": "crash", "times": 1}
    rule |= {"when": "send", "times": 1 if kind in ABSORBED else 99}
    if kind == "throttled":
        return rule | (
            {"code": "ProvisionedThroughputExceededException", "status": 400}
            if service == "dynamodb"
            else {"code": "SlowDown", "status": 503}
        )
    if kind == "flaky":
        return rule | (
            {"code": "InternalServerError", "status": 500}
            if service == "dynamodb"
            else {"code": "InternalError", "status": 500}
        )
    return rule | {"error": "timeout" if kind == "timeout" else "lost"}


@pytest.fixture(scope="module")
def stack(backends, tmp_path_factory):
    registry = IsolatedRegistry(backends, workers=2, faults_dir=tmp_path_factory.mktemp("faults"))
    registry.reader = ObjectReader(registry.backends)
    registry.client = registry.ecr()
    yield registry
    registry.stop()


def outcome(call: Callable[[], dict]) -> tuple[str, dict]:
    try:
        return "OK", call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response


# --- scenarios: prepare (no faults), the request under test, what a retry may answer, the rest ----


@dataclass
class Scenario:
    name: str
    prepare: Callable  # (ecr, repo) -> dict of what the request needs
    request: Callable  # (ecr, prepared) -> response
    already: str | None  # the error a retry gets when the first request landed
    finish: Callable  # (ecr, prepared, stack) -> None: complete the push, check the result

    def run(self, ecr, prepared):
        return self.request(ecr, prepared)


def _repo(ecr, name):
    ecr.create_repository(repositoryName=name)
    return name


def start_upload(ecr, repo, data: bytes, parts: list[int]) -> dict:
    """An upload with `parts` (sizes) of `data` already sent."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    first = 0
    for size in parts:
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + size - 1,
            layerPartBlob=data[first : first + size],
        )
        first += size
    return {"repo": repo, "upload_id": upload_id, "data": data, "sent": first}


def send_part(ecr, p, size=None):
    size = size or p["part"]
    first = p["sent"]
    return ecr.upload_layer_part(
        repositoryName=p["repo"],
        uploadId=p["upload_id"],
        partFirstByte=first,
        partLastByte=first + size - 1,
        layerPartBlob=p["data"][first : first + size],
    )


def finish_upload(ecr, p, stack):
    """Send whatever was not received yet, complete, and check the layer is exactly the data."""
    digest = sha256(p["data"])
    sent = p["sent"]
    while sent < len(p["data"]):
        chunk = p["data"][sent : sent + 4 * MiB]
        ecr.upload_layer_part(
            repositoryName=p["repo"],
            uploadId=p["upload_id"],
            partFirstByte=sent,
            partLastByte=sent + len(chunk) - 1,
            layerPartBlob=chunk,
        )
        sent += len(chunk)
    done = ecr.complete_layer_upload(repositoryName=p["repo"], uploadId=p["upload_id"], layerDigests=[digest])
    assert done["layerDigest"] == digest
    check_layer(ecr, p["repo"], digest, len(p["data"]))


def check_layer(ecr, repo, digest, size):
    found = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest])
    assert [(layer["layerDigest"], layer["layerAvailability"], layer["layerSize"]) for layer in found["layers"]] == [
        (digest, "AVAILABLE", size)
    ]


def prepare_part(first_parts, part, total):
    def prepare(ecr, repo):
        prepared = start_upload(ecr, repo, os.urandom(total), first_parts)
        prepared["part"] = part
        return prepared

    return prepare


def finish_part(ecr, p, stack):
    p["sent"] += p["part"]
    finish_upload(ecr, p, stack)


def prepare_complete(parts, dedupe=False):
    def prepare(ecr, repo):
        data = os.urandom(sum(parts))
        if dedupe:  # the registry has these bytes already, from another repository
            upload_blob(ecr, _repo(ecr, repo + "-other"), data)
        return start_upload(ecr, repo, data, parts)

    return prepare


def complete(ecr, p):
    return ecr.complete_layer_upload(
        repositoryName=p["repo"], uploadId=p["upload_id"], layerDigests=[sha256(p["data"])]
    )


def finish_complete(ecr, p, stack):
    check_layer(ecr, p["repo"], sha256(p["data"]), len(p["data"]))
    # the layer serves an image, and its download URL gives exactly the bytes
    config, _ = new_blobs(0)
    upload_blob(ecr, p["repo"], config)
    manifest = image_manifest(config, [p["data"]])
    ecr.put_image(repositoryName=p["repo"], imageManifest=manifest, imageTag="pushed")
    import urllib.request

    url = ecr.get_download_url_for_layer(repositoryName=p["repo"], layerDigest=sha256(p["data"]))["downloadUrl"]
    assert sha256(urllib.request.urlopen(url).read()) == sha256(p["data"])


def prepare_put(ecr, repo):
    # A tag on another image first: the push under test moves it (MUTABLE), so the previous image's
    # tag set changes in the same transaction. The manifest is larger than an item holds: S3 first.
    old_config, _ = new_blobs(0)
    upload_blob(ecr, repo, old_config)
    old = ecr.put_image(repositoryName=repo, imageManifest=image_manifest(old_config, []), imageTag="latest")["image"][
        "imageId"
    ]["imageDigest"]
    config, layers = new_blobs(1)
    upload_image_blobs(ecr, repo, config, layers)
    document = json.loads(image_manifest(config, layers))
    document["annotations"] = {"filler": "z" * (70 * 1024)}
    return {"repo": repo, "manifest": json.dumps(document), "old": old}


def put(ecr, p):
    return ecr.put_image(repositoryName=p["repo"], imageManifest=p["manifest"], imageTag="latest")


def finish_put(ecr, p, stack):
    digest = sha256(p["manifest"].encode())
    details = {
        d["imageDigest"]: sorted(d.get("imageTags", []))
        for d in ecr.describe_images(repositoryName=p["repo"])["imageDetails"]
    }
    assert details == {p["old"]: [], digest: ["latest"]}
    pulled = ecr.batch_get_image(repositoryName=p["repo"], imageIds=[{"imageTag": "latest"}])["images"]
    assert [i["imageManifest"] for i in pulled] == [p["manifest"]]


def initiate(ecr, p):
    return ecr.initiate_layer_upload(repositoryName=p["repo"])


def finish_initiate(ecr, p, stack):
    upload_id = ecr.initiate_layer_upload(repositoryName=p["repo"])["uploadId"]
    finish_upload(ecr, {"repo": p["repo"], "upload_id": upload_id, "data": b"layer", "sent": 0}, stack)


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("initiate", lambda ecr, repo: {"repo": repo}, initiate, None, finish_initiate),
        Scenario("part-first", prepare_part([], 1000, 3000), send_part, "InvalidLayerPartException", finish_part),
        Scenario("part-next", prepare_part([1000], 1000, 3000), send_part, "InvalidLayerPartException", finish_part),
        # 4 MiB staged, then 1.5 MiB: at least 5 MiB pending, the first S3 part of a multipart upload
        Scenario(
            "part-multipart",
            prepare_part([4 * MiB], 3 * MiB // 2, 6 * MiB),
            send_part,
            "InvalidLayerPartException",
            finish_part,
        ),
        Scenario("complete-small", prepare_complete([3000]), complete, "LayerAlreadyExistsException", finish_complete),
        Scenario(
            "complete-multipart",
            prepare_complete([4 * MiB, 3 * MiB // 2, 1000]),
            complete,
            "LayerAlreadyExistsException",
            finish_complete,
        ),
        Scenario(
            "complete-dedupe",
            prepare_complete([3000], dedupe=True),
            complete,
            "LayerAlreadyExistsException",
            finish_complete,
        ),
        Scenario("put-image", prepare_put, put, "ImageAlreadyExistsException", finish_put),
    ]
}

DATA_TABLES = ("repositories", "images", "tags", "layers", "blobs", "uploads")


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    table: str | None  # DynamoDB calls on one table: the table's logical name
    ok: bool = False

    @property
    def site(self) -> tuple:
        return self.service, self.operation, self.table


_calls: dict[str, list[Call]] = {}


def recorded_calls(stack, scenario: Scenario) -> list[Call]:
    """The storage calls the request under test makes, in order. Calls on other tables than the
    registry's data (the access-key lookup of request authentication) are not steps of the push."""
    if scenario.name not in _calls:
        logical = {physical: name for name, physical in stack.backends.tables.items()}
        ecr = stack.client
        prepared = scenario.prepare(ecr, _repo(ecr, f"rec/{scenario.name}"))
        stack.clear_journal()
        scenario.run(ecr, prepared)
        calls: list[Call] = []
        for line in stack.journal():
            call = Call(line["service"], line["operation"], logical.get(line["table"], line["table"]))
            if line["ok"]:
                for i in range(len(calls) - 1, -1, -1):
                    if calls[i].site == call.site and not calls[i].ok:
                        calls[i] = Call(*call.site, ok=True)
                        break
            else:
                calls.append(call)
        _calls[scenario.name] = [c for c in calls if c.table is None or c.table in DATA_TABLES]
    return _calls[scenario.name]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_at_every_storage_call(stack, scenario, kind, subtests):
    scenario = SCENARIOS[scenario]
    calls = recorded_calls(stack, scenario)
    assert calls, "the journal recorded no storage call"
    seen: dict[tuple, int] = {}
    number = list(SCENARIOS).index(scenario.name)
    chosen = 0
    for index, call in enumerate(calls):
        occurrence = seen.get(call.site, 0)
        seen[call.site] = occurrence + 1
        if not selected(number, index, call, kind):
            continue
        chosen += 1
        label = (
            f"{index}:{call.service}.{call.operation}" + (f"({call.table})" if call.table else "") + f"#{occurrence}"
        )
        with subtests.test(call=label):
            run_case(stack, scenario, kind, call, occurrence, str(index))
    if not chosen:
        pytest.skip("not in the short matrix (make fuzz runs every call with every kind)")


def run_case(stack, scenario: Scenario, kind: str, call: Call, occurrence: int, index: str):
    ecr = stack.client
    repo = _repo(ecr, f"f/{scenario.name}-{kind}-{index}-{os.urandom(3).hex()}")
    prepared = scenario.prepare(ecr, repo)
    scope = {f"000000000000/{repo}", f"000000000000/{repo}-other"}
    rule = fault_rule(kind, call.service, call.operation, occurrence)
    if call.table:
        rule["match"] = {"TableName": stack.backends.tables[call.table]}
    stack.set_faults(rule)
    first, answer = outcome(lambda: scenario.run(ecr, prepared))
    left = stack.faults()
    stack.set_faults()
    assert left and (left[0].get("skip", 0) == 0 and left[0].get("times", 1) < rule["times"]), (
        f"the fault never struck: {left}"
    )
    if kind in ABSORBED:
        assert first == "OK", f"one failed attempt should be retried by botocore; the client got {first}: {answer}"
    elif kind == "crash":
        assert first == "502", f"a crashed Lambda is API Gateway's 502; the client got {first}"
    else:
        assert first in ("OK", "ServerException"), f"{first}: {answer}"
        if first == "ServerException":
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert_invariants(stack.backends, stack.reader, repositories=scope)

    # The client sends the same request again (a user, or an SDK retrying a 500/502).
    second, again = outcome(lambda: scenario.run(ecr, prepared))
    if first == "OK":
        assert scenario.already is None or second == scenario.already, f"retry after success: {second}: {again}"
    else:
        assert second == "OK" or (scenario.already and second == scenario.already), (
            f"retry after {first}: {second}: {again}"
        )
    if second == "InvalidLayerPartException":  # the part is in: the upload continues after it
        assert again["lastValidByteReceived"] == prepared["sent"] + prepared["part"] - 1, again
    scenario.finish(ecr, prepared, stack)
    assert_invariants(stack.backends, stack.reader, repositories=scope)


def test_whole_registry_after_every_fault(stack):
    """After the whole matrix: every invariant over everything stored, the global ones included."""
    assert_invariants(stack.backends, stack.reader)
