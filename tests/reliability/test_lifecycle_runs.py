"""Lifecycle policies applied by the sweep (lambdas/registry/lifecycle/runs.py, docs/sweep.md): a
preview is exactly what the next run expires, a preview left IN_PROGRESS is completed by the sweep,
and requests racing a run never make it delete an image a rule keeps.

Time is injected, never slept: the sweep runs with `now` days ahead (`Sweeper.run(now=...)`) while
no request runs, so sinceImagePushed rules fire. Races are placed exactly: the racing request runs
in the window between the run's reading of the repository and its first deletion (the store's
`expire` is wrapped), and a concurrent test drives clients and runs in threads, then checks every
invariant of invariants.py and what the policy keeps.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import pytest
from harness import IsolatedRegistry, sweeper_for
from invariants import ObjectReader, assert_invariants, garbage, read_state
from support import index_manifest, push_image

from registry.lifecycle import Candidate, evaluate, parse_policy
from registry.lifecycle.runs import compute_preview
from registry.records import PREVIEW_IN_PROGRESS, Preview

pytestmark = pytest.mark.local_only
DAY = 24 * 3600


def rule(priority, tag_status, count_type="imageCountMoreThan", count=1, **lists):
    selection = {"tagStatus": tag_status, "countType": count_type, "countNumber": count, **lists}
    if count_type == "sinceImagePushed":
        selection["countUnit"] = "days"
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def policy(*rules) -> str:
    return json.dumps({"rules": list(rules)})


@pytest.fixture
def stack(backends, tmp_path):
    registry = IsolatedRegistry(backends, workers=2, faults_dir=tmp_path)
    registry.reader = ObjectReader(registry.backends)
    yield registry
    registry.stop()


def digests(ecr, repo) -> set[str]:
    pages = ecr.get_paginator("describe_images").paginate(repositoryName=repo)
    return {d["imageDigest"] for page in pages for d in page["imageDetails"]}


def preview_results(ecr, repo) -> list[dict]:
    pages = ecr.get_paginator("get_lifecycle_policy_preview").paginate(repositoryName=repo)
    return [r for page in pages for r in page["previewResults"]]


def a_repository_of_everything(ecr, repo) -> dict:
    """Releases, dev builds, untagged images, an index and its (untagged) children, oldest first."""
    made = {}
    for i in range(4):
        made[f"rel-{i}"] = push_image(ecr, repo, tag=f"release-{i}", layers=0)
    for i in range(3):
        made[f"dev-{i}"] = push_image(ecr, repo, tag=f"dev-{i}", layers=0)
    for i in range(4):
        made[f"untagged-{i}"] = push_image(ecr, repo, layers=0)
    children = [push_image(ecr, repo, layers=0) for _ in range(2)]
    ecr.put_image(repositoryName=repo, imageManifest=index_manifest(children), imageTag="multi")
    made["children"] = children
    return made


POLICY = policy(
    rule(1, "tagged", tagPrefixList=["release"], count=2),
    rule(2, "untagged", "sinceImagePushed", 3),
    rule(3, "any", "sinceImagePushed", 7),
)


def test_a_preview_is_what_the_run_expires(stack, monkeypatch):
    """Computed within StartLifecyclePolicyPreview, at the request's clock, and applied by a run
    right after: the same images, by the same rules. Then, days later (the injected clock), a
    preview and a run agree again -- sinceImagePushed rules included."""
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="app")
    made = a_repository_of_everything(ecr, "app")
    ecr.put_lifecycle_policy(repositoryName="app", lifecyclePolicyText=POLICY)
    assert ecr.start_lifecycle_policy_preview(repositoryName="app")["status"] == "COMPLETE"
    previewed = {r["imageDigest"]: r["appliedRulePriority"] for r in preview_results(ecr, "app")}
    assert previewed == {made["rel-0"].digest: 1, made["rel-1"].digest: 1}  # nothing is days old yet

    before = digests(ecr, "app")
    report = sweeper_for(stack, monkeypatch).run()
    assert report["images_expired"] == 2 and report["complete"], report
    assert before - digests(ecr, "app") == set(previewed)

    # Five days on (the injected clock): a preview computed then, as StartLifecyclePolicyPreview
    # computes it, and a run then. Untagged images older than three days go (not the index's
    # children), the releases rule 1 keeps stay, the any rule's seven days are not up.
    later = time.time() + 5 * DAY
    sweeper = sweeper_for(stack, monkeypatch)
    store = sweeper.store
    repo, stored = store.lifecycle.policy("000000000000", "app")
    preview = Preview("000000000000", "app", uuid.uuid4().hex, PREVIEW_IN_PROGRESS, stored.text, later)
    store.lifecycle.start_preview(repo, preview)
    assert compute_preview(store, preview, later).status == "COMPLETE"
    previewed = {r["imageDigest"]: r["appliedRulePriority"] for r in preview_results(ecr, "app")}
    before = digests(ecr, "app")
    report = sweeper.run(now=later)
    assert before - digests(ecr, "app") == set(previewed) == {made[f"untagged-{i}"].digest for i in range(4)}
    assert set(previewed.values()) == {2}
    assert {c.digest for c in made["children"]} <= digests(ecr, "app")

    # Eight days on: the any rule takes what is older than seven days, the index too, but not what
    # rule 1 selects (it keeps the two newest releases), nor the children the index referenced
    # when the run read the repository (they are untagged and unreferenced only for the next run).
    report = sweeper_for(stack, monkeypatch).run(now=time.time() + 8 * DAY)
    assert digests(ecr, "app") == {
        made["rel-2"].digest,
        made["rel-3"].digest,
        *(c.digest for c in made["children"]),
    }, report
    assert ecr.get_lifecycle_policy(repositoryName="app")["lastEvaluatedAt"].timestamp() == pytest.approx(
        report["now"], abs=0.01
    )
    assert_invariants(stack.backends, stack.reader)


def test_the_sweep_completes_a_preview_left_in_progress(backends, tmp_path, monkeypatch):
    """A request with no time budget leaves its preview IN_PROGRESS; the next sweep completes it at
    the sweep's clock, before it applies the policy, so the preview shows what that very run
    expires. Results bigger than an item go in parts (here made small); a later preview's
    completion deletes the parts of the earlier one."""
    stack = IsolatedRegistry(backends, workers=2, overrides={"REGISTRY_PREVIEW_BUDGET_SECONDS": "0"})
    try:
        ecr = stack.ecr()
        ecr.create_repository(repositoryName="slow")
        made = a_repository_of_everything(ecr, "slow")
        ecr.put_lifecycle_policy(repositoryName="slow", lifecyclePolicyText=POLICY)
        assert ecr.start_lifecycle_policy_preview(repositoryName="slow")["status"] == "IN_PROGRESS"
        assert ecr.get_lifecycle_policy_preview(repositoryName="slow")["status"] == "IN_PROGRESS"

        monkeypatch.setattr("registry.storage.lifecycle.PART_BYTES", 300)  # about two results a part
        sweeper = sweeper_for(stack, monkeypatch)
        dry = sweeper_for(stack, monkeypatch, dry_run=True)
        later = time.time() + 8 * DAY
        counted = dry.run(now=later)
        assert ecr.get_lifecycle_policy_preview(repositoryName="slow")["status"] == "IN_PROGRESS"  # dry: untouched
        before = digests(ecr, "slow")
        report = sweeper.run(now=later)
        assert report["previews_completed"] == 1
        preview = ecr.get_lifecycle_policy_preview(repositoryName="slow")
        assert preview["status"] == "COMPLETE"
        results = preview_results(ecr, "slow")
        gone = before - digests(ecr, "slow")
        assert gone == {r["imageDigest"] for r in results} and len(gone) == counted["images_expired"] == 10
        assert preview["summary"]["expiringImageTotalCount"] == 10
        assert {c.digest for c in made["children"]} <= digests(ecr, "slow")
        state = assert_invariants(stack.backends, ObjectReader(stack.backends))
        parts = [r for r in state.repositories if r["name"].startswith("#preview:slow#")]
        assert len(parts) > 3  # in parts indeed

        # A second preview replaces the first, parts and all. It shows the index's children: the
        # run expired the index, and they are untagged images three days old that nothing
        # references now. The run it comes before expires them.
        ecr.start_lifecycle_policy_preview(repositoryName="slow")
        before = digests(ecr, "slow")
        sweeper_for(stack, monkeypatch).run(now=later)
        children = {c.digest for c in made["children"]}
        assert {r["imageDigest"] for r in preview_results(ecr, "slow")} == children == before - digests(ecr, "slow")
        state = assert_invariants(stack.backends, ObjectReader(stack.backends))
        assert garbage(state).preview_parts == []
        assert len([r for r in state.repositories if r["name"].startswith("#preview:slow#")]) == 1
    finally:
        stack.stop()


# --- requests racing a run ------------------------------------------------------------------------------


def _retag(ecr, repo, pushed, tag):
    ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=tag)


RACES = {
    # The run decided to expire the older untagged image because the newer one is untagged too;
    # the newer one gets a tag first (it leaves the untagged images): the older is the only untagged
    # image now, which the rule keeps.
    "a tag on the image that justified the expiry": (
        policy(rule(1, "untagged")),
        lambda ecr, images: _retag(ecr, "race", images["new"], "now-tagged"),
        {"old", "new"},
        {"images_expired": 0, "lifecycle_readings": 2},
    ),
    # The image to expire is tagged first, with a tag a higher rule protects.
    "a protecting tag on the image to expire": (
        policy(rule(1, "tagged", tagPrefixList=["keep"], count=100), rule(2, "any")),
        lambda ecr, images: _retag(ecr, "race", images["old"], "keep-it"),
        {"old", "new"},
        {"images_expired": 0, "lifecycle_images_changed": 1},
    ),
    # A tag moves from the newer image to a new push: the newer one is no longer tagged "rel-2", and
    # the older release is the only one left that the rule selects (the new image has "rel-2" only).
    "a tag moved off the image that justified the expiry": (
        policy(rule(1, "tagged", tagPrefixList=["rel", "stable"])),
        lambda ecr, images: push_image(ecr, "race", tag="stable-2", layers=0),
        {"old", "new"},
        {"images_expired": 0, "lifecycle_readings": 2},
    ),
    # An untag (BatchDeleteImage of one of two tags) of the justifying image
    "an untag of the image that justified the expiry": (
        policy(rule(1, "tagged", tagPrefixList=["rel", "stable"])),
        lambda ecr, images: ecr.batch_delete_image(repositoryName="race", imageIds=[{"imageTag": "rel-2"}]),
        {"old", "new"},
        {"images_expired": 0, "lifecycle_readings": 2},
    ),
    # A new push only adds: the decision stands, the new image stays.
    "a new push": (
        policy(rule(1, "untagged")),
        lambda ecr, images: images.update(newest=push_image(ecr, "race", layers=0)),
        {"new", "newest"},
        {"images_expired": 1, "lifecycle_readings": 1},
    ),
    # An index now references the image to expire: it stays with the index.
    "an index referencing the image to expire": (
        policy(rule(1, "untagged")),
        lambda ecr, images: images.update(
            index=ecr.put_image(repositoryName="race", imageManifest=index_manifest([images["old"]]), imageTag="i")
        ),
        {"old", "new", "index"},
        {"images_expired": 0, "lifecycle_images_changed": 1},
    ),
    # The policy is deleted, or replaced, while the run applies it.
    "the policy deleted": (
        policy(rule(1, "untagged")),
        lambda ecr, images: ecr.delete_lifecycle_policy(repositoryName="race"),
        {"old", "new"},
        {"images_expired": 0},
    ),
    "the policy replaced": (
        policy(rule(1, "untagged")),
        lambda ecr, images: ecr.put_lifecycle_policy(
            repositoryName="race", lifecyclePolicyText=policy(rule(1, "untagged", count=9))
        ),
        {"old", "new"},
        {"images_expired": 0},
    ),
}


def _setup_race(ecr, text) -> dict:
    images = {}
    if "rel" in text:
        images["old"] = push_image(ecr, "race", tag="rel-1", layers=0)
        _retag(ecr, "race", images["old"], "stable-1")
        images["new"] = push_image(ecr, "race", tag="rel-2", layers=0)
        _retag(ecr, "race", images["new"], "stable-2")
    elif "keep" in text:
        images["old"] = push_image(ecr, "race", tag="a", layers=0)
        images["new"] = push_image(ecr, "race", tag="b", layers=0)
    else:
        images["old"] = push_image(ecr, "race", layers=0)
        images["new"] = push_image(ecr, "race", layers=0)
    return images


@pytest.mark.parametrize("text, race, survivors, expected", RACES.values(), ids=RACES.keys())
def test_a_request_between_the_runs_reading_and_its_deletion(stack, monkeypatch, text, race, survivors, expected):
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="race")
    images = _setup_race(ecr, text)
    ecr.put_lifecycle_policy(repositoryName="race", lifecyclePolicyText=text)
    sweeper = sweeper_for(stack, monkeypatch)
    real_expire, raced = sweeper.store.images.expire, []

    def race_first(*args, **kwargs):
        if not raced:
            raced.append(race(ecr, images))
        return real_expire(*args, **kwargs)

    sweeper.store.images.expire = race_first
    report = sweeper.run()
    assert raced, "the run decided to expire something"
    left = digests(ecr, "race")
    named = {
        name: (p["image"]["imageId"]["imageDigest"] if isinstance(p, dict) else p.digest) for name, p in images.items()
    }
    assert {name for name, digest in named.items() if digest in left} == survivors, report
    assert {k: report.get(k, 0) for k in expected} == expected, report
    assert_invariants(stack.backends, stack.reader)


def test_an_image_with_more_tags_than_one_transaction_deletes_is_not_expired(stack, monkeypatch):
    ecr = stack.ecr()
    ecr.create_repository(repositoryName="tags")
    many = push_image(ecr, "tags", tag="t0", layers=0)
    for i in range(1, 98):
        _retag(ecr, "tags", many, f"t{i}")
    push_image(ecr, "tags", tag="newer", layers=0)
    ecr.put_lifecycle_policy(repositoryName="tags", lifecyclePolicyText=policy(rule(1, "any")))
    report = sweeper_for(stack, monkeypatch).run()
    assert report["lifecycle_too_big"] == 1 and report.get("images_expired", 0) == 0, report
    assert many.digest in digests(ecr, "tags")


def test_pushes_and_retags_racing_runs_lose_nothing_a_rule_keeps(stack, monkeypatch):
    """Clients push (moving `latest`), tag old images `keep-*` and untag, while runs apply the policy
    over and over. Every `keep-*` tag a client set is still there at the end (a run never deleted
    an image after a protecting tag reached it), the children of a kept index stay, every invariant
    holds, and a last run, alone, leaves nothing the policy expires."""
    ecr = stack.ecr(retries=True)
    ecr.create_repository(repositoryName="busy")
    text = policy(
        rule(1, "tagged", tagPrefixList=["keep"], count=10_000),
        rule(2, "untagged", count=2),
        rule(3, "any", count=3),
    )
    ecr.put_lifecycle_policy(repositoryName="busy", lifecyclePolicyText=text)
    seed = [push_image(ecr, "busy", layers=0) for _ in range(6)]
    children = seed[:2]
    ecr.put_image(repositoryName="busy", imageManifest=index_manifest(children), imageTag="keep-index")
    done = threading.Event()
    kept_tags: dict[str, str] = {}
    pushed: list = []
    errors: list[BaseException] = []
    rng = random.Random(11)

    def pusher():
        for i in range(12):
            pushed.append(push_image(ecr, "busy", tag="latest", layers=0))  # the previous latest is untagged now
            if i % 3 == 0:
                push_image(ecr, "busy", tag=f"tmp-{i}", layers=0)

    def tagger():
        for i in range(10):
            candidates = seed + pushed[:]
            target = rng.choice(candidates)
            try:
                _retag(ecr, "busy", target, f"keep-{i}")  # pushes the manifest again if it was expired
            except ecr.exceptions.ImageAlreadyExistsException:
                continue
            kept_tags[f"keep-{i}"] = target.digest
            if i % 4 == 0:
                ecr.batch_delete_image(repositoryName="busy", imageIds=[{"imageTag": f"tmp-{i - i % 3}"}])

    def runs():
        sweeper = sweeper_for(stack, monkeypatch)
        while not done.is_set():
            sweeper.run()

    def guarded(work):
        def target():
            try:
                work()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        return target

    clients = [threading.Thread(target=guarded(w)) for w in (pusher, tagger)]
    runner = threading.Thread(target=guarded(runs))
    runner.start()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    done.set()
    runner.join()
    assert not errors, errors

    tags = {}
    for page in ecr.get_paginator("describe_images").paginate(repositoryName="busy"):
        for detail in page["imageDetails"]:
            tags.update(dict.fromkeys(detail.get("imageTags", []), detail["imageDigest"]))
    assert {t: tags.get(t) for t in kept_tags} == kept_tags
    assert tags.get("latest", pushed[-1].digest) == pushed[-1].digest
    assert {c.digest for c in children} <= digests(ecr, "busy")  # the index keeps them
    assert_invariants(stack.backends, stack.reader)

    final = sweeper_for(stack, monkeypatch).run()
    state = read_state(stack.backends)
    images = [
        Candidate(i["digest"], frozenset(i.get("tags") or ()), i["pushed_at"], i.get("parent_count", 0) > 0)
        for i in state.images
        if i["repository"] == "000000000000/busy"
    ]
    assert evaluate(parse_policy(text), images, final["now"]) == []
