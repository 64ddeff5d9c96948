"""The sweep (lambdas/registry/sweep/, docs/sweep.md): what abandoned work leaves behind is reclaimed, what is
in use is not -- also when a push races the sweep.

Time is injected (`Sweeper.run(now=...)`), never slept: "a day later" is `now=t0 + grace + 1`.
A later `now` is only passed while no request runs (the sweep's documented assumption); the race
tests use the real clock and a grace of zero, so that every request in them starts after the sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest
from botocore.exceptions import ClientError
from harness import REGISTRY_ID, IsolatedRegistry, sweeper_for, use_function_environment
from invariants import ObjectReader, assert_invariants, garbage, read_state
from support import (
    DOCKER_MANIFEST,
    client_of,
    image_manifest,
    new_blobs,
    push_image,
    sha256,
    upload_blob,
    upload_image_blobs,
)

from registry.config import KMS_KEY_REGISTRY_TAG, METRICS_NAMESPACE
from registry.records import Grant
from registry.storage.layers import LayerStore
from registry.sweep.usage import (
    IMAGE_COUNT_METRIC,
    MAX_IMAGES_METRIC,
    REGISTRY_DIMENSION,
    REPOSITORY_COUNT_METRIC,
    REPOSITORY_DIMENSION,
    STORED_BYTES_METRIC,
    USAGE_METRICS_ENV,
    RegistryUsage,
    RepositoryUsage,
    UsageMetrics,
)

pytestmark = pytest.mark.local_only
MiB = 1024 * 1024
HOUR, WEEK = 3600, 7 * 24 * 3600


@pytest.fixture
def stack(backends, tmp_path):
    registry = IsolatedRegistry(backends, workers=2, faults_dir=tmp_path)
    registry.reader = ObjectReader(registry.backends)
    yield registry
    registry.stop()


@pytest.fixture
def make_sweeper(stack, monkeypatch):
    """A Sweeper built as the scheduled Lambda builds it: from the function's environment (which
    the test has too)."""
    use_function_environment(stack, monkeypatch)

    def make(grace: float = HOUR, **kwargs):
        return sweeper_for(stack, monkeypatch, grace, **kwargs)

    return make


def dynamodb(stack):
    return stack.backends.client("dynamodb")


def s3(stack):
    return stack.backends.client("s3")


def upload_parts(ecr, repo, data, part=4 * MiB) -> str:
    """An upload that received `data` and was never completed."""
    upload_id = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
    for first in range(0, len(data), part):
        chunk = data[first : first + part]
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    return upload_id


class LambdaContext:
    """What the handler reads of Lambda's context: the time left of the 15-minute timeout."""

    @staticmethod
    def get_remaining_time_in_millis():
        return 900_000


def deletions(report: dict) -> dict:
    return {k: v for k, v in report.items() if k.endswith(("_deleted", "_expired", "_aborted", "_finished")) and v}


def test_abandoned_work_is_reclaimed_and_nothing_in_use_is(stack, make_sweeper):
    ecr, bucket = stack.ecr(), stack.backends.bucket
    t0 = time.time()
    # In use: an image with its layers, in a repository that stays.
    ecr.create_repository(repositoryName="keep")
    config, layers = new_blobs(2)
    upload_image_blobs(ecr, "keep", config, layers)
    kept = ecr.put_image(repositoryName="keep", imageManifest=image_manifest(config, layers), imageTag="v1")["image"][
        "imageManifest"
    ]
    # Abandoned: a layer no image ever used; an upload never completed (a tail), another with a
    # multipart upload; a repository deleted with its image, which shared a layer with "keep"
    # (that blob stays) and had a config of its own (that one goes).
    upload_blob(ecr, "keep", os.urandom(300))
    tail_upload = upload_parts(ecr, "keep", os.urandom(1000))
    multipart_upload = upload_parts(ecr, "keep", os.urandom(5 * MiB + 10))
    ecr.create_repository(repositoryName="gone")
    gone_config, _ = new_blobs(0)
    for blob in (gone_config, layers[0]):
        upload_blob(ecr, "gone", blob)
    ecr.put_image(repositoryName="gone", imageManifest=image_manifest(gone_config, layers[:1]), imageTag="v1")
    ecr.delete_repository(repositoryName="gone", force=True)
    # A DeleteRepository that stopped half-way (marked, never finished).
    ecr.create_repository(repositoryName="stuck")
    push_image(ecr, "stuck", tag="v1")
    dynamodb(stack).update_item(
        TableName=stack.backends.tables["repositories"],
        Key={"registry_id": {"S": "000000000000"}, "name": {"S": "stuck"}},
        UpdateExpression="SET deleting = :t ADD config_version :one",
        ExpressionAttributeValues={":t": {"N": str(t0)}, ":one": {"N": "1"}},
    )
    # Leftovers no item names: a tail, a blob object, a multipart upload (a crashed request each).
    s3(stack).put_object(Bucket=bucket, Key="uploads/00000000-0000-4000-8000-000000000001/0-x", Body=b"tail")
    s3(stack).put_object(
        Bucket=bucket, Key="blobs/000000000000/aes256/00000000-0000-4000-8000-000000000002", Body=b"blob"
    )
    s3(stack).create_multipart_upload(
        Bucket=bucket, Key="blobs/000000000000/aes256/00000000-0000-4000-8000-000000000003"
    )
    # Items written before the sweep existed: a layer without created_at, a blob without used_at.
    legacy = upload_blob(ecr, "keep", os.urandom(200))
    layers_table, blobs_table = stack.backends.tables["layers"], stack.backends.tables["blobs"]
    dynamodb(stack).update_item(
        TableName=layers_table,
        Key={"repository": {"S": "000000000000/keep"}, "digest": {"S": legacy}},
        UpdateExpression="REMOVE created_at",
    )
    dynamodb(stack).update_item(
        TableName=blobs_table,
        Key={"scope": {"S": "000000000000/aes256"}, "digest": {"S": legacy}},
        UpdateExpression="REMOVE used_at",
    )
    assert_invariants(stack.backends, stack.reader)

    # Now: nothing is old enough to go; the legacy items get their timestamps.
    report = make_sweeper(HOUR).run(now=t0 + 60)
    # moto dates every multipart upload 2010-11-10 (S3 gives the real Initiated time), so the
    # orphaned one looks ancient at once; the sweep keeps those of live uploads whatever the date.
    assert deletions(report) == {"multipart_aborted": 1}, report
    assert report["layers_stamped"] == 1 and report["blobs_stamped"] == 1 and report["complete"]

    # An hour later: unreferenced layers and unused blobs go, the stuck deletion is finished, the
    # leftover tail goes; uploads (not expired) and young-looking blob objects stay.
    dry = make_sweeper(HOUR, dry_run=True).run(now=t0 + HOUR + 120)
    report = make_sweeper(HOUR).run(now=t0 + HOUR + 120)
    # (usage is measured after the reclaiming: the dry run's is the state before it)
    assert {k: v for k, v in dry.items() if k not in ("now", "cutoff", "usage")} == {
        k: v for k, v in report.items() if k not in ("now", "cutoff", "usage")
    } | {"dry_run": True}
    assert report["repositories_finished"] == 1
    assert report["layers_deleted"] == 2  # the unused layer and the legacy one
    # theirs (2), "gone"'s own config (1), "stuck"'s config and layer (2) -- not the shared layer
    assert report["blobs_deleted"] == 5
    state = assert_invariants(stack.backends, stack.reader)
    assert "stuck" not in {r["name"] for r in state.repositories}
    assert {(layer["repository"], layer["digest"]) for layer in state.layers} == {
        ("000000000000/keep", sha256(blob)) for blob in (config, *layers)
    }
    assert {b["digest"] for b in state.blobs} == {sha256(blob) for blob in (config, *layers)}
    assert "uploads/00000000-0000-4000-8000-000000000001/0-x" not in state.objects
    assert {tail_upload, multipart_upload} <= {u["upload_id"] for u in state.uploads}

    # Past the uploads' expiry: they go with their staged bytes, and so do the orphaned blob
    # object and multipart upload.
    report = make_sweeper(HOUR).run(now=t0 + WEEK + 2 * HOUR)
    assert report["uploads_expired"] >= 2 and report["multipart_aborted"] == 1, report
    state = assert_invariants(stack.backends, stack.reader)
    left = garbage(state)
    assert left.total() == 0, left
    assert state.uploads == [] and state.multipart == {}
    assert all(key.startswith(("blobs/", "manifests/")) for key in state.objects), sorted(state.objects)
    assert len([k for k in state.objects if k.startswith("blobs/")]) == len(state.blobs)
    # What is in use works as before.
    pulled = ecr.batch_get_image(repositoryName="keep", imageIds=[{"imageTag": "v1"}])["images"]
    assert [i["imageManifest"] for i in pulled] == [kept]
    for blob in layers:
        url = ecr.get_download_url_for_layer(repositoryName="keep", layerDigest=sha256(blob))["downloadUrl"]
        assert urllib.request.urlopen(url).read() == blob


def test_expired_upload_is_refused_then_reclaimed(stack, make_sweeper):
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="late")
    upload_id = upload_parts(ecr, "late", b"first bytes")
    # A week passes (the item's expiry is moved instead: the workers' clocks are real).
    dynamodb(stack).update_item(
        TableName=stack.backends.tables["uploads"],
        Key={"upload_id": {"S": upload_id}},
        UpdateExpression="SET expires_at = :t",
        ExpressionAttributeValues={":t": {"N": str(int(time.time()) - 1)}},
    )
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.upload_layer_part(
            repositoryName="late", uploadId=upload_id, partFirstByte=11, partLastByte=11, layerPartBlob=b"x"
        )
    with pytest.raises(ecr.exceptions.UploadNotFoundException):
        ecr.complete_layer_upload(repositoryName="late", uploadId=upload_id, layerDigests=[sha256(b"first bytes")])
    report = make_sweeper(0).run()
    assert report["uploads_expired"] == 1 and report["objects_deleted"] == 1, report
    state = assert_invariants(stack.backends, stack.reader)
    assert state.uploads == [] and not [k for k in state.objects if k.startswith("uploads/")]


def test_push_racing_the_layer_sweep_keeps_its_layer(stack, make_sweeper):
    """PutImage marks the layer between the sweep's scan and its delete: the delete must fail."""
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="race")
    config, layers = new_blobs(1)
    upload_image_blobs(ecr, "race", config, layers)
    manifest = image_manifest(config, layers)
    sweeper = make_sweeper(0)
    real_delete, pushed = sweeper.store.layers.delete_never_referenced, []

    def push_first(layer, cutoff):
        if not pushed:
            pushed.append(ecr.put_image(repositoryName="race", imageManifest=manifest, imageTag="v1"))
        return real_delete(layer, cutoff)

    sweeper.store.layers.delete_never_referenced = push_first
    report = sweeper.run()
    assert pushed and report.get("layers_deleted", 0) == 0, report
    assert_invariants(stack.backends, stack.reader)
    assert ecr.batch_get_image(repositoryName="race", imageIds=[{"imageTag": "v1"}])["images"]

    # The other order: the sweep deletes first, the push finds the layer gone (ECR's documented
    # "unassociated layers may be cleaned up at any time") and the client uploads it again.
    config, layers = new_blobs(1)
    upload_image_blobs(ecr, "race", config, layers)
    manifest = image_manifest(config, layers)
    assert make_sweeper(0).run()["layers_deleted"] == 2
    with pytest.raises(ecr.exceptions.LayersNotFoundException):
        ecr.put_image(repositoryName="race", imageManifest=manifest, imageTag="v2")
    upload_image_blobs(ecr, "race", config, layers)
    ecr.put_image(repositoryName="race", imageManifest=manifest, imageTag="v2")
    assert_invariants(stack.backends, stack.reader)


def test_complete_racing_the_blob_sweep_never_gets_a_deleted_object(stack, make_sweeper):
    """CompleteLayerUpload of bytes the registry has (an unused blob) while the sweep removes that
    blob: whichever order, the layer ends on an object holding its bytes."""
    ecr = stack.ecr()
    data = os.urandom(5 * MiB + 100)  # a multipart upload: its bytes must survive a failed attempt
    digest = sha256(data)
    ecr.create_repository(repositoryName="first")
    upload_blob(ecr, "first", data)
    ecr.delete_repository(repositoryName="first", force=True)  # the blob is now unused
    ecr.create_repository(repositoryName="second")
    upload_id = upload_parts(ecr, "second", data)

    # In-process, so the sweep can run exactly between Complete's read of the blob index and its
    # transaction -- the window a real race would hit.
    from registry.config import Settings
    from registry.storage import ConcurrentUpdate, RegistryStore

    store = RegistryStore(Settings.from_environment())
    repo = store.repositories.get("000000000000", "second")
    upload = store.uploads.get(upload_id)
    real_transact, swept = store.backend.transact, []

    def sweep_first(actions):
        if not swept:
            swept.append(make_sweeper(0).run())
        return real_transact(actions)

    store.backend.transact = sweep_first
    for _ in range(3):  # what operations.common.retrying does
        try:
            layer = store.layers.complete(repo, upload, digest, time.time())
            break
        except ConcurrentUpdate:
            continue
    else:
        pytest.fail("CompleteLayerUpload kept conflicting")
    assert swept[0]["blobs_deleted"] == 1, swept  # the sweep did take the blob away first
    state = assert_invariants(stack.backends, stack.reader)
    assert layer.object_key == upload.object_key  # the retry used its own bytes
    assert [(layer["repository"], layer["digest"]) for layer in state.layers] == [("000000000000/second", digest)]

    # The other order: the Complete stamps the blob first, the sweep (already past its scan of the
    # layers) must not delete it.
    ecr.create_repository(repositoryName="third")
    other = upload_parts(ecr, "third", data)
    sweeper = make_sweeper(0)
    real_delete, completed = sweeper.store.layers.delete_unused_blob, []
    ecr.delete_repository(repositoryName="second", force=True)

    def complete_first(blob, cutoff):
        if not completed:
            completed.append(ecr.complete_layer_upload(repositoryName="third", uploadId=other, layerDigests=[digest]))
        return real_delete(blob, cutoff)

    sweeper.store.layers.delete_unused_blob = complete_first
    report = sweeper.run()
    assert completed and report.get("blobs_deleted", 0) == 0, report
    assert_invariants(stack.backends, stack.reader)


def test_entry_points(stack, make_sweeper, monkeypatch):
    """`python -m registry.sweep` and the scheduled Lambda handler, with the function's environment."""
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="cli")
    upload_blob(ecr, "cli", b"never used")
    env = {**os.environ, **stack.backends.environment(), "REGISTRY_SWEEP_GRACE_SECONDS": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "registry.sweep", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["dry_run"] and report["complete"] and report["layers_deleted"] == 1
    assert len(read_state(stack.backends).layers) == 1  # a dry run deletes nothing

    from registry.sweep import handler

    monkeypatch.setenv("REGISTRY_SWEEP_GRACE_SECONDS", "0")
    report = handler.lambda_handler({}, LambdaContext())
    assert report["complete"] and report["layers_deleted"] == 1 and report["blobs_deleted"] == 1
    assert read_state(stack.backends).layers == []


def test_a_refused_push_of_a_large_manifest_leaves_nothing_the_sweep_keeps(backends, tmp_path, monkeypatch):
    """A manifest over 64 KiB is written to S3 before the transaction; when the transaction is then
    refused (here: the images quota), the object is named by no image, and the sweep reclaims it --
    but never the object of an image that was pushed."""
    stack = IsolatedRegistry(backends, workers=2, overrides={"REGISTRY_MAX_IMAGES_PER_REPOSITORY": "1"})
    try:
        for name, value in stack.backends.environment().items():
            monkeypatch.setenv(name, value)
        from registry.config import Settings
        from registry.storage import RegistryStore
        from registry.sweep import Sweeper

        ecr = stack.ecr()
        for repo in ("full", "room"):
            ecr.create_repository(repositoryName=repo)
        push_image(ecr, "full")
        big = {}
        for repo in ("full", "room"):
            config, layers = new_blobs(1)
            upload_image_blobs(ecr, repo, config, layers)
            big[repo] = image_manifest(config, layers, extra={"annotations": {"padding": "x" * 70_000}})
        with pytest.raises(ecr.exceptions.LimitExceededException):
            ecr.put_image(repositoryName="full", imageManifest=big["full"], imageTag="big")
        ecr.put_image(repositoryName="room", imageManifest=big["room"], imageTag="big")
        before = garbage(read_state(stack.backends)).objects
        assert [k for k in before if k.startswith("manifests/")], "the refused push's object is garbage now"

        sweeper = Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=HOUR)
        report = sweeper.run(now=time.time() + HOUR + 1)
        assert report["manifests_deleted"] == 1, report
        state = assert_invariants(stack.backends, ObjectReader(stack.backends))
        assert [k for k in garbage(state).objects if k.startswith("manifests/")] == []
        got = ecr.batch_get_image(repositoryName="room", imageIds=[{"imageTag": "big"}])["images"]
        assert got[0]["imageManifest"] == big["room"]
    finally:
        stack.stop()


def test_claims_of_a_push_too_big_for_one_transaction(stack, make_sweeper):
    """A push of more layers than its commit can mark claims the rest first and marks them after the
    commit. Refused: the claims make nothing downloadable and the sweep reclaims the layers later.
    Stopped right after its commit (the Lambda died): the sweep finds the claimant image and marks
    the layers itself, so the image never loses them."""
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="big", imageTagMutability="IMMUTABLE")
    pushed = {}
    for name in ("winner", "loser", "crashed"):
        config, layers = new_blobs(100, size=8)
        digests = upload_image_blobs(ecr, "big", config, layers)
        pushed[name] = (image_manifest(config, layers), digests)
    ecr.put_image(repositoryName="big", imageManifest=pushed["winner"][0], imageTag="v1")
    # The loser read "v1" as free just before the winner took it (in-process, to hit that window):
    # its claims land, its commit is refused, and it would answer ImageTagAlreadyExists.
    from registry.config import Settings
    from registry.records import Image
    from registry.storage import ConcurrentUpdate, ImageCommit, RegistryStore

    store = RegistryStore(Settings.from_environment())
    manifest = pushed["loser"][0].encode()
    loser = Image(digest=sha256(manifest), media_type=DOCKER_MANIFEST, size=0, pushed_at=time.time(), manifest=manifest)
    commit = ImageCommit(
        store.repositories.get("000000000000", "big"), loser, True, "v1", None, tuple(pushed["loser"][1])
    )
    with pytest.raises(ConcurrentUpdate):
        store.images.commit(commit, 100, 100)
    # The crashed push: its worker dies right after the commit transaction (the second one).
    stack.set_faults(
        {
            "service": "dynamodb",
            "operation": "TransactWriteItems",
            "skip": 1,
            "when": "after",
            "error": "crash",
            "times": 1,
        }
    )
    with pytest.raises(ClientError):
        ecr.put_image(repositoryName="big", imageManifest=pushed["crashed"][0], imageTag="v2")
    stack.set_faults()
    downloadable = {name: _downloadable(ecr, "big", digests) for name, (_, digests) in pushed.items()}
    assert downloadable["loser"] == set() and downloadable["winner"] == set(pushed["winner"][1])
    assert len(downloadable["crashed"]) == 97, "the commit marked what it could; the rest are only claimed"

    assert not deletions(make_sweeper(HOUR).run()), "claims are young: nothing goes yet"
    report = make_sweeper(HOUR).run(now=time.time() + HOUR + 1)
    assert report["layers_marked"] == 4 and report["layers_deleted"] == 101, report
    assert _downloadable(ecr, "big", pushed["crashed"][1]) == set(pushed["crashed"][1])
    assert ecr.batch_get_image(repositoryName="big", imageIds=[{"imageTag": "v2"}])["images"]
    assert_invariants(stack.backends, stack.reader)


def _downloadable(ecr, repo, digests):
    served = set()
    for digest in digests:
        try:
            ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
            served.add(digest)
        except ecr.exceptions.LayerInaccessibleException:
            pass
    return served


# --- usage: what each repository and registry holds, measured after the reclaiming ---------------------

OTHER_REGISTRY = "111111111111"


class Pushes:
    """Pushes through one registry's ECR API, remembering what each repository was given: the usage
    the sweep must report, computed from the pushes alone."""

    def __init__(self, ecr, registry_id: str):
        self.ecr, self.registry_id = ecr, registry_id
        self.blobs: dict[str, dict[str, int]] = {}  # repository -> digest -> size
        self.images: Counter[str] = Counter()
        self.key: dict[str, str] = {}  # repository -> the key its bytes are stored under

    def repository(self, name: str, kms_key: str | None = None) -> None:
        encryption = {"encryptionType": "KMS", "kmsKey": kms_key} if kms_key else {"encryptionType": "AES256"}
        self.ecr.create_repository(repositoryName=name, encryptionConfiguration=encryption)
        self.blobs[name], self.key[name] = {}, kms_key or "AES256"

    def blob(self, repo: str, data: bytes) -> None:
        if sha256(data) not in self.blobs[repo]:
            upload_blob(self.ecr, repo, data)
            self.blobs[repo][sha256(data)] = len(data)

    def image(self, repo: str, *layers: bytes) -> None:
        config, _ = new_blobs(0)
        for blob in (config, *layers):
            self.blob(repo, blob)
        self.ecr.put_image(repositoryName=repo, imageManifest=image_manifest(config, list(layers)))
        self.images[repo] += 1

    def repositories(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(registry, repository) -> (images, bytes of its blobs)."""
        return {(self.registry_id, r): (self.images[r], sum(blobs.values())) for r, blobs in self.blobs.items()}

    def registry(self) -> dict[str, tuple[int, int, int, int]]:
        """registry -> (repositories, images, most images in a repository, bytes stored): bytes once
        per digest and key."""
        stored = {(self.key[r], digest): size for r, blobs in self.blobs.items() for digest, size in blobs.items()}
        most = max((self.images[r] for r in self.blobs), default=0)
        return {self.registry_id: (len(self.blobs), sum(self.images.values()), most, sum(stored.values()))}


def other_registry(stack):
    """An ECR client of another registry (tenant) of the same deployment, with its own admin key."""
    key = stack.backends.access_key_store().create(
        OTHER_REGISTRY, "usage-other", (Grant(("admin",), ("*",)),), time.time()
    )
    return client_of(stack.endpoint, key)


def registry_kms_key(stack, registry_id: str) -> str:
    """A customer KMS key the operator assigned to the registry (tagged with its id)."""
    tags = [{"TagKey": KMS_KEY_REGISTRY_TAG, "TagValue": registry_id}]
    return stack.backends.client("kms").create_key(Tags=tags)["KeyMetadata"]["Arn"]


def measured(reported) -> tuple[dict, dict]:
    """The usage the sweep reported, in the shapes of Pushes.repositories() and .registry()."""
    repositories = {
        (u.registry_id, u.repository): (u.image_count, u.stored_bytes)
        for u in reported
        if isinstance(u, RepositoryUsage)
    }
    registries = {
        u.registry_id: (u.repository_count, u.image_count, u.max_images_in_a_repository, u.stored_bytes)
        for u in reported
        if isinstance(u, RegistryUsage)
    }
    assert len(repositories) + len(registries) == len(reported), "each reported once"
    return repositories, registries


def usage_result(*pushes: Pushes) -> dict:
    """The usage a complete run's result holds, computed from the pushes."""
    registries = {}
    for each in pushes:
        for registry, (count, images, most, stored) in each.registry().items():
            registries[registry] = {
                "repositories": count,
                "images": images,
                "max_images_in_a_repository": most,
                "stored_bytes": stored,
            }
    return {"complete": True, "registries": registries}


def test_usage_counts_images_and_bytes_per_repository_and_each_stored_blob_once_per_registry(stack, make_sweeper):
    ours, theirs = Pushes(stack.ecr(), REGISTRY_ID), Pushes(other_registry(stack), OTHER_REGISTRY)
    shared, loose = os.urandom(3000), os.urandom(777)
    ours.repository("alpha")
    ours.image("alpha", shared, os.urandom(1234))
    ours.image("alpha", shared)
    ours.blob("alpha", loose)  # uploaded, in no image: stored all the same (until the sweep takes it)
    ours.repository("beta")
    ours.image("beta", shared)  # the same bytes: stored once in the registry
    ours.repository("sealed", kms_key=registry_kms_key(stack, REGISTRY_ID))
    ours.image("sealed", shared)  # under another key: stored a second time
    ours.repository("empty")
    theirs.repository("alpha")
    theirs.image("alpha", shared)  # another registry: its own copy

    reported: list = []
    result = make_sweeper(HOUR, report_usage=reported.append).run(now=time.time() + 60)
    assert not deletions(result), result
    repositories, registries = measured(reported)
    assert repositories == ours.repositories() | theirs.repositories()
    assert registries == ours.registry() | theirs.registry()
    assert registries[REGISTRY_ID][3] < sum(stored for (r, _), (_, stored) in repositories.items() if r == REGISTRY_ID)
    # A registry is reported once all of its repositories were.
    for registry_id in registries:
        positions = [i for i, u in enumerate(reported) if u.registry_id == registry_id]
        assert isinstance(reported[positions[-1]], RegistryUsage)
    assert result["usage"] == usage_result(ours, theirs)

    # An hour later the loose layer is reclaimed, and the same run's usage no longer counts it.
    del ours.blobs["alpha"][sha256(loose)]
    reported.clear()
    result = make_sweeper(HOUR, report_usage=reported.append).run(now=time.time() + HOUR + 120)
    assert result["layers_deleted"] == 1 and result["blobs_deleted"] == 1, result
    assert measured(reported) == (ours.repositories() | theirs.repositories(), ours.registry() | theirs.registry())


def test_usage_never_takes_the_reclaimings_time_and_reports_no_registry_cut_short(stack, make_sweeper):
    ours = Pushes(stack.ecr(), REGISTRY_ID)
    for name in ("one", "two", "three"):
        ours.repository(name)
        ours.image(name, os.urandom(100))
    reported: list = []

    # Out of time while reclaiming: nothing is measured.
    result = make_sweeper(HOUR, report_usage=reported.append).run(budget_seconds=-1)
    assert result["complete"] is False and result["usage"] == {"complete": False, "registries": {}}
    assert reported == []

    # Out of time after the first repository was measured: it is reported, its registry is not.
    sweeper = make_sweeper(HOUR, report_usage=reported.append)
    measure = sweeper.store.layers.stored_bytes

    def measure_then_run_out(repo):
        sweeper._deadline = 0.0  # the monotonic clock is past it: the run's next step stops it
        return measure(repo)

    sweeper.store.layers.stored_bytes = measure_then_run_out
    result = sweeper.run(budget_seconds=3600)
    assert result["complete"] is True, "the reclaiming was done"
    assert result["usage"] == {"complete": False, "registries": {}}
    ((key, value),) = measured(reported)[0].items()
    assert ours.repositories()[key] == value


def emf_documents(out: str) -> list[dict]:
    """The EMF documents among the lines a run wrote to stdout (the others are its log)."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def metric_values(document: dict) -> tuple[list[str], dict[str, tuple[str, float]]]:
    """A document's dimension names and its metrics: name -> (unit, value)."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    (dimensions,) = directive["Dimensions"]

    def value(name: str) -> float:
        found = document[name]
        (single,) = found if isinstance(found, list) else [found]
        return single

    return dimensions, {m["Name"]: (m["Unit"], value(m["Name"])) for m in directive["Metrics"]}


def written_usage(documents: list[dict]) -> dict[tuple[str, str | None], dict[str, tuple[str, float]]]:
    """The usage documents among EMF documents, by series: (registry, repository or None) -> metrics."""
    written = {}
    for document in documents:
        dimensions, metrics = metric_values(document)
        if dimensions == [REGISTRY_DIMENSION, REPOSITORY_DIMENSION]:
            written[(document[REGISTRY_DIMENSION], document[REPOSITORY_DIMENSION])] = metrics
        elif dimensions == [REGISTRY_DIMENSION]:
            written[(document[REGISTRY_DIMENSION], None)] = metrics
    return written


def expected_usage(pushes: Pushes, written: UsageMetrics) -> dict[tuple[str, str | None], dict[str, tuple[str, float]]]:
    """What `written_usage` finds when the run writes `written`, computed from the pushes."""
    ((repositories, _, most, stored),) = pushes.registry().values()
    registry = {REPOSITORY_COUNT_METRIC: ("Count", repositories), STORED_BYTES_METRIC: ("Bytes", stored)}
    if written is UsageMetrics.OFF:
        return {}
    if written is UsageMetrics.REGISTRY:
        return {(pushes.registry_id, None): registry | {MAX_IMAGES_METRIC: ("Count", most)}}
    return {(pushes.registry_id, None): registry} | {
        series: {IMAGE_COUNT_METRIC: ("Count", images), STORED_BYTES_METRIC: ("Bytes", stored)}
        for series, (images, stored) in pushes.repositories().items()
    }


@pytest.mark.parametrize(
    ("setting", "written"),
    [
        (None, UsageMetrics.REPOSITORY),
        ("repository", UsageMetrics.REPOSITORY),
        ("registry", UsageMetrics.REGISTRY),
        ("off", UsageMetrics.OFF),
        ("per-repository", UsageMetrics.REPOSITORY),  # set by hand past the synth: refused, the default
    ],
)
def test_the_scheduled_run_writes_the_usage_metrics_asked_for_and_a_dry_run_only_returns_them(
    stack, monkeypatch, capsys, caplog, setting, written
):
    from registry.sweep import handler

    ours = Pushes(stack.ecr(), REGISTRY_ID)
    ours.repository("emf/app")
    ours.image("emf/app", os.urandom(500), os.urandom(700))
    ours.image("emf/app", os.urandom(300))
    ours.repository("emf/one")
    ours.image("emf/one", os.urandom(400))
    ours.repository("emf/empty")
    use_function_environment(stack, monkeypatch)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)  # the default is the stack's
    monkeypatch.delenv(USAGE_METRICS_ENV, raising=False)
    if setting is not None:
        monkeypatch.setenv(USAGE_METRICS_ENV, setting)
    if written is not UsageMetrics.REPOSITORY:  # a repository's bytes are read only for its own metrics

        def no_query(self, repo):
            raise AssertionError(f"{repo.name}'s bytes were read for no metric")

        monkeypatch.setattr(LayerStore, "stored_bytes", no_query)

    capsys.readouterr()
    result = handler.lambda_handler({}, LambdaContext())
    documents = emf_documents(capsys.readouterr().out)
    assert written_usage(documents) == expected_usage(ours, written)
    assert len(documents) == len(expected_usage(ours, written)) + 1, "and SweepIncomplete"
    assert result["usage"] == usage_result(ours), "the result holds the usage whatever is written"
    # (the log's records: its JSON goes to the stdout the Logger found at import, not capsys's)
    refusals = [
        r.getMessage() for r in caplog.records if r.levelname == "ERROR" and USAGE_METRICS_ENV in r.getMessage()
    ]
    assert len(refusals) == (setting == "per-repository"), refusals

    dry = handler.lambda_handler({"dryRun": True}, LambdaContext())
    assert emf_documents(capsys.readouterr().out) == []
    assert dry["usage"] == result["usage"]
