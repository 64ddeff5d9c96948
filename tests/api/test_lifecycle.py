"""Lifecycle policies through a real boto3 client and the AWS CLI: PutLifecyclePolicy,
GetLifecyclePolicy, DeleteLifecyclePolicy, StartLifecyclePolicyPreview and
GetLifecyclePolicyPreview, each modeled error, and that a refused request stores nothing.

What the rules expire is tested pure in tests/unit/test_lifecycle_rules.py; the sweep applying the
policies (a preview is what the run expires, pushes racing a run) in
tests/reliability/test_lifecycle_runs.py.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from support import aws, error_code, push_image, snapshot, unique_name

PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "
)


def rule(priority, tag_status, count_type="imageCountMoreThan", count=1, **lists):
    selection = {"tagStatus": tag_status, "countType": count_type, "countNumber": count, **lists}
    if count_type == "sinceImagePushed":
        selection["countUnit"] = "days"
    return {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}


def policy(*rules, description: str | None = None) -> str:
    if description is not None:
        rules = tuple({**r, "description": description} for r in rules)
    return json.dumps({"rules": list(rules)}, indent=2)


KEEP_ONE_UNTAGGED = policy(rule(1, "untagged"), description="keep one untagged image")
KEEP_NEWEST = policy(rule(1, "any", count=1), description="keep the newest image")


def images_by_age(ecr, repo) -> list[dict]:
    details = ecr.describe_images(repositoryName=repo)["imageDetails"]
    return sorted(details, key=lambda d: d["imagePushedAt"])


def all_results(ecr, repo, **params) -> list[dict]:
    pages = ecr.get_paginator("get_lifecycle_policy_preview").paginate(repositoryName=repo, **params)
    return [result for page in pages for result in page["previewResults"]]


# --- PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy ------------------------------------


def test_put_get_and_delete_a_policy(ecr, repo):
    text = policy(rule(1, "tagged", tagPatternList=["release-*"], count=5), description="Expire old releases ✓")
    put = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
    assert (put["registryId"], put["repositoryName"], put["lifecyclePolicyText"]) == ("000000000000", repo, text)
    got = ecr.get_lifecycle_policy(repositoryName=repo)
    assert got["lifecyclePolicyText"] == text  # verbatim: spacing, order, characters
    assert "lastEvaluatedAt" not in got  # no run yet
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)  # replaces it
    deleted = ecr.delete_lifecycle_policy(repositoryName=repo)
    assert (deleted["repositoryName"], deleted["lifecyclePolicyText"]) == (repo, KEEP_ONE_UNTAGGED)
    for call in (ecr.get_lifecycle_policy, ecr.delete_lifecycle_policy):
        with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException) as missing:
            call(repositoryName=repo)
        assert missing.value.response["Error"]["Message"] == (
            f"Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id "
            f"'000000000000'"
        )


def test_the_longest_policy_the_model_allows(ecr, repo):
    text = policy(rule(1, "untagged"), description="")
    text = text.replace('"description": ""', '"description": "' + "x" * (30_720 - len(text)) + '"')
    assert len(text) == 30_720
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == text
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text + " ")


@pytest.mark.parametrize(
    "operation, params",
    [
        ("put_lifecycle_policy", {"lifecyclePolicyText": KEEP_ONE_UNTAGGED}),
        ("get_lifecycle_policy", {}),
        ("delete_lifecycle_policy", {}),
        ("start_lifecycle_policy_preview", {"lifecyclePolicyText": KEEP_ONE_UNTAGGED}),
        ("start_lifecycle_policy_preview", {}),
        ("get_lifecycle_policy_preview", {}),
    ],
)
def test_every_operation_names_a_missing_repository(ecr, operation, params):
    name = unique_name("never-created")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException) as missing:
        getattr(ecr, operation)(repositoryName=name, **params)
    assert missing.value.response["Error"]["Message"] == (
        f"The repository with name '{name}' does not exist in the registry with id '000000000000'"
    )
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


INVALID = {
    "not JSON": ('{"rules": [' + " " * 100, "the text is not valid JSON"),
    "tagged without a list": (policy(rule(1, "tagged")), "exactly one of tagPrefixList or tagPatternList"),
    "tagged with both lists": (
        policy(rule(1, "tagged", tagPrefixList=["v"], tagPatternList=["v*"])),
        "exactly one of tagPrefixList or tagPatternList",
    ),
    "a pattern of five wildcards": (
        policy(rule(1, "tagged", tagPatternList=["test*1*2*3*4*5*6"])),
        "more than 4 wildcards",
    ),
    "any before another rule": (policy(rule(1, "any"), rule(2, "untagged")), "must have the highest rulePriority"),
    "two untagged rules": (
        policy(rule(1, "untagged"), rule(2, "untagged", count=3)),
        "only one rule may select untagged",
    ),
    "sinceImagePushed without a unit": (
        json.dumps(
            {
                "rules": [
                    {
                        **rule(1, "untagged"),
                        "selection": {**rule(1, "untagged")["selection"], "countType": "sinceImagePushed"},
                    }
                ]
            }
        ),
        "countUnit is required",
    ),
    "countNumber 0": (policy(rule(1, "untagged", count=0)), "countNumber must be an integer from 1"),
    "the same priority twice": (
        policy(rule(3, "tagged", tagPrefixList=["a"]), rule(3, "tagged", tagPrefixList=["b"])),
        "rulePriority must be unique",
    ),
    "action delete": (policy(rule(1, "untagged")).replace('"expire"', '"delete"'), "action.type must be one of expire"),
}


@pytest.mark.parametrize("text, problem", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_policy_is_refused_naming_the_problem_and_nothing_is_stored(ecr, repo, text, problem):
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    for operation in (ecr.put_lifecycle_policy, ecr.start_lifecycle_policy_preview):
        with pytest.raises(ecr.exceptions.InvalidParameterException) as refused:
            operation(repositoryName=repo, lifecyclePolicyText=text)
        message = refused.value.response["Error"]["Message"]
        assert message.startswith(PREFIX) and problem in message, message
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException):
        ecr.get_lifecycle_policy_preview(repositoryName=repo)


# --- previews -------------------------------------------------------------------------------------------


def test_a_preview_of_the_repository_policy_shows_what_it_expires_and_deletes_nothing(ecr, repo):
    for _ in range(3):
        push_image(ecr, repo)  # untagged
    push_image(ecr, repo, tag="v1")
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException) as none_yet:
        ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert repo in none_yet.value.response["Error"]["Message"]
    before = snapshot(ecr, repo)

    started = ecr.start_lifecycle_policy_preview(repositoryName=repo)
    assert (started["repositoryName"], started["lifecyclePolicyText"]) == (repo, KEEP_ONE_UNTAGGED)
    assert started["status"] == "COMPLETE"  # computed within the request: the repository is small
    preview = ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert (preview["status"], preview["lifecyclePolicyText"]) == ("COMPLETE", KEEP_ONE_UNTAGGED)
    untagged = [d for d in images_by_age(ecr, repo) if "imageTags" not in d]
    assert preview["previewResults"] == [
        {
            "imageDigest": d["imageDigest"],
            "imagePushedAt": d["imagePushedAt"],
            "action": {"type": "EXPIRE"},
            "appliedRulePriority": 1,
        }
        for d in untagged[:2]
    ]
    assert preview["summary"] == {"expiringImageTotalCount": 2}
    assert "nextToken" not in preview
    assert snapshot(ecr, repo) == before


def test_a_preview_of_another_text_leaves_the_policy_as_it_is(ecr, repo):
    old, new = push_image(ecr, repo, tag="old"), push_image(ecr, repo, tag="new")
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    started = ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=KEEP_NEWEST)
    assert started["lifecyclePolicyText"] == KEEP_NEWEST
    results = ecr.get_lifecycle_policy_preview(repositoryName=repo)["previewResults"]
    assert [(r["imageDigest"], r["imageTags"]) for r in results] == [(old.digest, ["old"])]
    assert new.digest not in {r["imageDigest"] for r in results}
    assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED


def test_a_preview_needs_a_text_or_a_policy(ecr, repo):
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.start_lifecycle_policy_preview(repositoryName=repo)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException):
        ecr.get_lifecycle_policy_preview(repositoryName=repo)


def test_preview_results_page_filter_and_pick_images(ecr, repo):
    tagged = [push_image(ecr, repo, tag=f"t{i}") for i in range(4)]
    untagged = [push_image(ecr, repo) for _ in range(3)]
    newest = push_image(ecr, repo, tag="newest")
    ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=KEEP_NEWEST)
    everything = all_results(ecr, repo)
    assert [r["imageDigest"] for r in everything] == [p.digest for p in tagged + untagged]  # oldest first
    assert newest.digest not in {r["imageDigest"] for r in everything}

    first = ecr.get_lifecycle_policy_preview(repositoryName=repo, maxResults=3)
    assert len(first["previewResults"]) == 3 and first["summary"] == {"expiringImageTotalCount": 7}
    pages, token = [first["previewResults"]], first["nextToken"]
    while token:
        page = ecr.get_lifecycle_policy_preview(repositoryName=repo, maxResults=3, nextToken=token)
        pages.append(page["previewResults"])
        token = page.get("nextToken")
    assert [len(p) for p in pages] == [3, 3, 1] and [r for p in pages for r in p] == everything

    only_tagged = all_results(ecr, repo, filter={"tagStatus": "TAGGED"})
    only_untagged = all_results(ecr, repo, filter={"tagStatus": "UNTAGGED"})
    assert [r["imageDigest"] for r in only_tagged] == [p.digest for p in tagged]
    assert [r["imageDigest"] for r in only_untagged] == [p.digest for p in untagged]
    assert all_results(ecr, repo, filter={"tagStatus": "ANY"}) == everything

    picked = ecr.get_lifecycle_policy_preview(
        repositoryName=repo,
        imageIds=[{"imageTag": "t2"}, {"imageDigest": untagged[0].digest}, {"imageTag": "newest"}, {"imageTag": "no"}],
    )["previewResults"]
    assert [r["imageDigest"] for r in picked] == [tagged[2].digest, untagged[0].digest]

    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_lifecycle_policy_preview(repositoryName=repo, imageIds=[{"imageTag": "t1"}], maxResults=2)
    with pytest.raises(ecr.exceptions.InvalidParameterException):  # a token of another filter
        ecr.get_lifecycle_policy_preview(
            repositoryName=repo, nextToken=first["nextToken"], filter={"tagStatus": "TAGGED"}
        )
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_lifecycle_policy_preview(repositoryName=repo, nextToken="not-a-token")

    # a new preview replaces the old one, and the old one's tokens with it
    ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    with pytest.raises(ecr.exceptions.InvalidParameterException):
        ecr.get_lifecycle_policy_preview(repositoryName=repo, maxResults=3, nextToken=first["nextToken"])
    assert [r["imageDigest"] for r in all_results(ecr, repo)] == [p.digest for p in untagged[:2]]


@pytest.mark.local_only
def test_a_preview_too_big_for_its_request_stays_in_progress(start_registry):
    """With no time budget (REGISTRY_PREVIEW_BUDGET_SECONDS=0) the request leaves the preview
    IN_PROGRESS for the sweep to complete (tests/reliability/test_lifecycle_runs.py), and a
    second preview is refused meanwhile."""
    ecr = start_registry(REGISTRY_PREVIEW_BUDGET_SECONDS="0").ecr()
    repo = unique_name("in-progress")
    ecr.create_repository(repositoryName=repo)
    push_image(ecr, repo)
    started = ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    assert started["status"] == "IN_PROGRESS"
    preview = ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert preview["status"] == "IN_PROGRESS" and preview["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED
    assert "previewResults" not in preview and "summary" not in preview
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewInProgressException) as busy:
        ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=KEEP_NEWEST)
    assert busy.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ecr.get_lifecycle_policy_preview(repositoryName=repo)["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED


def test_a_deleted_repository_takes_its_policy_and_preview_along(ecr):
    name = unique_name("deleted")
    ecr.create_repository(repositoryName=name)
    push_image(ecr, name)
    push_image(ecr, name)
    ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    ecr.start_lifecycle_policy_preview(repositoryName=name)
    ecr.delete_repository(repositoryName=name, force=True)
    ecr.create_repository(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=name)
    with pytest.raises(ecr.exceptions.LifecyclePolicyPreviewNotFoundException):
        ecr.get_lifecycle_policy_preview(repositoryName=name)
    ecr.delete_repository(repositoryName=name)


def test_a_policy_for_a_deleted_repository_is_refused(ecr):
    name = unique_name("gone")
    ecr.create_repository(repositoryName=name)
    ecr.delete_repository(repositoryName=name)
    with pytest.raises(ClientError) as refused:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=KEEP_ONE_UNTAGGED)
    assert error_code(refused) == "RepositoryNotFoundException"


# --- the AWS CLI -----------------------------------------------------------------------------------------


def test_lifecycle_policies_with_the_aws_cli(registry, ecr, repo, tmp_path):
    old = push_image(ecr, repo)
    push_image(ecr, repo)
    path = tmp_path / "policy.json"
    path.write_text(KEEP_ONE_UNTAGGED)
    put = aws(registry, "put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", f"file://{path}")
    assert put["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED
    assert aws(registry, "get-lifecycle-policy", "--repository-name", repo)["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED
    started = aws(registry, "start-lifecycle-policy-preview", "--repository-name", repo)
    assert started["status"] == "COMPLETE"
    aws(registry, "wait", "lifecycle-policy-preview-complete", "--repository-name", repo)
    preview = aws(registry, "get-lifecycle-policy-preview", "--repository-name", repo)
    assert [(r["imageDigest"], r["appliedRulePriority"]) for r in preview["previewResults"]] == [(old.digest, 1)]
    assert preview["summary"] == {"expiringImageTotalCount": 1}
    deleted = aws(registry, "delete-lifecycle-policy", "--repository-name", repo)
    assert deleted["lifecyclePolicyText"] == KEEP_ONE_UNTAGGED
    with pytest.raises(AssertionError, match="LifecyclePolicyNotFoundException"):
        aws(registry, "get-lifecycle-policy", "--repository-name", repo)
