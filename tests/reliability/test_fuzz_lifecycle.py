"""Fuzzed lifecycle policy texts (hypothesis: model_strategies.lifecycle_policy_texts, documents in
and near the grammar, some cut short or with a byte changed), sent with raw SigV4 requests.

PutLifecyclePolicy and StartLifecyclePolicyPreview never answer a 5xx; they accept exactly the texts
that `documented` -- the rules of ECR's user guide, written here apart from the server's parser --
allows, and refuse every other with InvalidParameterException naming the problem, writing nothing:
the stored policy stays the last one accepted. An accepted preview completes within its request.
`make test` draws 150 texts, `make fuzz` (REGISTRY_FUZZ_PROFILE=fuzz) 1,500.
"""

from __future__ import annotations

import json
import os

import pytest
from harness import IsolatedRegistry, SignedClient
from hypothesis import HealthCheck, Phase, given, settings
from invariants import ObjectReader, assert_invariants
from model_strategies import lifecycle_policy_texts
from support import push_image
from test_fuzz import check_answer, successful_writes

pytestmark = pytest.mark.local_only
REPO = "fz/lifecycle"
PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "
)
EXAMPLES = {"ci": 150, "fuzz": 1500}[os.environ.get("REGISTRY_FUZZ_PROFILE", "ci")]


def _reject(constant: str):
    raise ValueError(constant)


def _integer(value, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < 2**31


def documented(text: str) -> bool:
    """Whether ECR's user guide allows this policy text ("Lifecycle policy properties", "evaluation
    rules"): the oracle."""
    try:
        document = json.loads(text, parse_constant=_reject)
    except (ValueError, RecursionError):
        return False
    if not isinstance(document, dict) or set(document) != {"rules"}:
        return False
    rules = document["rules"]
    if not isinstance(rules, list) or not 1 <= len(rules) <= 50:
        return False
    priorities, untagged, any_priorities, tag_sets = [], 0, [], []
    for rule in rules:
        if not isinstance(rule, dict) or not {"rulePriority", "selection", "action"} <= set(rule):
            return False
        if set(rule) - {"rulePriority", "description", "selection", "action"}:
            return False
        if not _integer(rule["rulePriority"]) or not isinstance(rule.get("description", ""), str):
            return False
        if rule["action"] != {"type": "expire"}:
            return False
        selection = rule["selection"]
        if not isinstance(selection, dict) or not {"tagStatus", "countType", "countNumber"} <= set(selection):
            return False
        if set(selection) - {"tagStatus", "tagPrefixList", "tagPatternList", "countType", "countUnit", "countNumber"}:
            return False
        status = selection["tagStatus"]
        lists = [name for name in ("tagPrefixList", "tagPatternList") if name in selection]
        if status == "tagged":
            if len(lists) != 1:
                return False
            values = selection[lists[0]]
            if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
                return False
            if lists[0] == "tagPatternList" and any(v.count("*") > 4 for v in values):
                return False
            tag_sets.append((lists[0], frozenset(values)))
        elif status in ("untagged", "any"):
            if lists:
                return False
        else:
            return False
        if selection["countType"] == "imageCountMoreThan":
            if "countUnit" in selection:
                return False
        elif selection["countType"] != "sinceImagePushed" or selection.get("countUnit") != "days":
            return False
        if not _integer(selection["countNumber"]):
            return False
        priorities.append(rule["rulePriority"])
        untagged += status == "untagged"
        if status == "any":
            any_priorities.append(rule["rulePriority"])
    return (
        len(set(priorities)) == len(priorities)
        and untagged <= 1
        and all(p == max(priorities) for p in any_priorities)
        and len(set(tag_sets)) == len(tag_sets)
    )


@pytest.fixture(scope="module")
def stack(backends, tmp_path_factory):
    registry = IsolatedRegistry(backends, workers=2, faults_dir=tmp_path_factory.mktemp("fuzz-lifecycle"))
    registry.raw = SignedClient(registry.endpoint)
    ecr = registry.ecr()
    ecr.create_repository(repositoryName=REPO)
    for tag in ("v1", None, "v2", None):
        push_image(ecr, REPO, tag=tag, layers=0)
    yield registry
    registry.stop()


def test_fuzzed_policy_texts_are_accepted_exactly_as_documented(stack):
    stored: list[str | None] = [None]
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("REGISTRY_FUZZ_PROFILE", "ci") == "ci",
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(text=lifecycle_policy_texts())
    def one(text):
        body = json.dumps({"repositoryName": REPO, "lifecyclePolicyText": text}).encode()
        verdicts = []
        for operation in ("PutLifecyclePolicy", "StartLifecyclePolicyPreview"):
            stack.clear_journal()
            status, headers, answer = stack.raw.send(operation, body)
            outcome = check_answer(operation, status, headers, answer)
            verdicts.append(outcome)
            if outcome == "OK":
                if operation == "PutLifecyclePolicy":
                    stored[0] = text
                else:
                    assert json.loads(answer)["status"] == "COMPLETE"
            else:
                assert outcome == "InvalidParameterException", answer
                assert json.loads(answer)["message"].startswith(PREFIX), answer
                assert successful_writes(stack) == [], f"a refused {operation} wrote to storage"
        assert verdicts[0] == verdicts[1]
        assert (verdicts[0] == "OK") == documented(text), (verdicts[0], text)
        outcomes[verdicts[0]] = outcomes.get(verdicts[0], 0) + 1
        status, _, answer = stack.raw.send("GetLifecyclePolicy", json.dumps({"repositoryName": REPO}).encode())
        if stored[0] is None:
            assert json.loads(answer)["__type"] == "LifecyclePolicyNotFoundException"
        else:
            assert json.loads(answer)["lifecyclePolicyText"] == stored[0]

    one()
    print("PutLifecyclePolicy", dict(sorted(outcomes.items())))
    assert outcomes.get("OK") and outcomes.get("InvalidParameterException"), outcomes
    assert_invariants(stack.backends, ObjectReader(stack.backends))
