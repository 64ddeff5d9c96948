"""Lifecycle policies, pure: what `parse_policy` accepts and refuses, and what `evaluate` expires.

The evaluation cases are tables: a repository (name, pushed N days before `NOW`, tags), a policy,
and the images expired with the rule that expires each. The clock is a parameter (`NOW`), so
sinceImagePushed is tested to the second. ECR's own examples (user guide, "Examples of lifecycle
policies") are among them, with ECR's stated outcome.
"""

from __future__ import annotations

import json
import random

import pytest

from registry.lifecycle import Candidate, PolicyInvalid, evaluate, parse_policy
from registry.lifecycle.policy import DAY_SECONDS

NOW = 1_800_000_000.0


def rule(priority, tag_status, count_type="imageCountMoreThan", count=1, prefixes=None, patterns=None, unit=None):
    selection = {"tagStatus": tag_status, "countType": count_type, "countNumber": count}
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    if unit is not None or count_type == "sinceImagePushed":
        selection["countUnit"] = unit or "days"
    return {
        "rulePriority": priority,
        "description": f"rule {priority}",
        "selection": selection,
        "action": {"type": "expire"},
    }


def policy(*rules) -> str:
    return json.dumps({"rules": list(rules)})


def img(name: str, days_ago: float, *tags: str, referenced: bool = False) -> Candidate:
    return Candidate(f"sha256:{name}", frozenset(tags), NOW - days_ago * DAY_SECONDS, referenced)


def expired(text: str, images: list[Candidate], now: float = NOW) -> list[tuple[str, int]]:
    return [
        (e.image.digest.removeprefix("sha256:"), e.rule_priority) for e in evaluate(parse_policy(text), images, now)
    ]


# --- what parse_policy accepts ----------------------------------------------------------------------

VALID = {
    "ECR's age example": policy(rule(1, "untagged", "sinceImagePushed", 14)),
    "ECR's count example": policy(rule(1, "untagged", count=1)),
    "prefixes then patterns then untagged then any": policy(
        rule(1, "tagged", prefixes=["prod", "release"]),
        rule(2, "tagged", patterns=["*test*1*2*3", "test*1*2*3*"]),
        rule(7, "untagged", count=3),
        rule(40, "any", "sinceImagePushed", 90),
    ),
    "priorities need not be sequential, nor listed in order": policy(
        rule(9, "tagged", prefixes=["b"]), rule(3, "tagged", prefixes=["a"])
    ),
    "prefix sets that differ": policy(rule(1, "tagged", prefixes=["a", "b"]), rule(2, "tagged", prefixes=["a"])),
    "no description": json.dumps({"rules": [{k: v for k, v in rule(1, "any").items() if k != "description"}]}),
    "the largest count": policy(rule(1, "any", count=2**31 - 1)),
}


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid_policies_are_read(text):
    parsed = parse_policy(text)
    assert [r.priority for r in parsed.rules] == sorted(r["rulePriority"] for r in json.loads(text)["rules"])


def test_a_rule_is_read_as_written():
    (read,) = parse_policy(policy(rule(4, "tagged", "sinceImagePushed", 30, patterns=["v*", "*-final"]))).rules
    assert (read.priority, read.tag_status, read.count_type, read.count_number) == (4, "tagged", "sinceImagePushed", 30)
    assert read.patterns == ("v*", "*-final") and read.prefixes == ()


# --- what it refuses, and that the message says what is wrong ---------------------------------------


def _edit(change):
    document = {"rules": [rule(1, "tagged", prefixes=["prod"])]}
    change(document)
    return json.dumps(document)


def _selection(**members):
    def change(document):
        selection = document["rules"][0]["selection"]
        for key, value in members.items():
            if value is None:
                selection.pop(key, None)
            else:
                selection[key] = value

    return _edit(change)


INVALID = {
    "not JSON": ("{rules: []", "not valid JSON"),
    "NaN": ('{"rules": [{"rulePriority": NaN}]}', "not valid JSON"),
    "nested too deep to read": ("[" * 30_000 + "]" * 30_000, "not valid JSON"),
    "a list": ("[]", "must be a JSON object"),
    "no rules": ("{}", "missing required properties rules"),
    "an unknown top-level property": (_edit(lambda d: d.update(version=1)), "'version' is not allowed"),
    "no rule": ('{"rules": []}', "1 to 50 rules"),
    "51 rules": (policy(*(rule(i, "tagged", prefixes=[f"p{i}"]) for i in range(1, 52))), "1 to 50 rules"),
    "a rule that is no object": ('{"rules": [1]}', "rules[0] must be a JSON object"),
    "a rule without selection": (
        _edit(lambda d: d["rules"][0].pop("selection")),
        "missing required properties selection",
    ),
    "a rule without action": (_edit(lambda d: d["rules"][0].pop("action")), "missing required properties action"),
    "an unknown rule property": (_edit(lambda d: d["rules"][0].update(enabled=True)), "'enabled' is not allowed"),
    "priority 0": (_edit(lambda d: d["rules"][0].update(rulePriority=0)), "rulePriority must be an integer"),
    "priority -1": (_edit(lambda d: d["rules"][0].update(rulePriority=-1)), "rulePriority must be an integer"),
    "priority 1.5": (_edit(lambda d: d["rules"][0].update(rulePriority=1.5)), "rulePriority must be an integer"),
    "priority '1'": (_edit(lambda d: d["rules"][0].update(rulePriority="1")), "rulePriority must be an integer"),
    "priority true": (_edit(lambda d: d["rules"][0].update(rulePriority=True)), "rulePriority must be an integer"),
    "priority past 32 bits": (
        _edit(lambda d: d["rules"][0].update(rulePriority=2**31)),
        "rulePriority must be an integer",
    ),
    "a description that is no string": (
        _edit(lambda d: d["rules"][0].update(description=3)),
        "description must be a string",
    ),
    "the same priority twice": (
        policy(rule(2, "tagged", prefixes=["a"]), rule(2, "tagged", prefixes=["b"])),
        "2 is used more than once",
    ),
    "tagStatus in capitals": (_selection(tagStatus="TAGGED"), "tagStatus must be one of tagged, untagged, any"),
    "tagged without a list": (_selection(tagPrefixList=None), "exactly one of tagPrefixList or tagPatternList"),
    "tagged with both lists": (_selection(tagPatternList=["p*"]), "exactly one of tagPrefixList or tagPatternList"),
    "untagged with prefixes": (_selection(tagStatus="untagged"), "only allowed with tagStatus tagged"),
    "any with patterns": (
        _selection(tagStatus="any", tagPrefixList=None, tagPatternList=["*"]),
        "only allowed with tagStatus tagged",
    ),
    "an empty prefix list": (_selection(tagPrefixList=[]), "tagPrefixList must be a non-empty list"),
    "an empty prefix": (_selection(tagPrefixList=[""]), "tagPrefixList must be a non-empty list of non-empty strings"),
    "a prefix that is no string": (_selection(tagPrefixList=[7]), "tagPrefixList must be a non-empty list"),
    "five wildcards": (_selection(tagPrefixList=None, tagPatternList=["test*1*2*3*4*5"]), "more than 4 wildcards"),
    "an unknown countType": (_selection(countType="imageCountLessThan"), "countType must be one of"),
    "sinceImagePushed without countUnit": (_selection(countType="sinceImagePushed"), "countUnit is required"),
    "countUnit hours": (_selection(countType="sinceImagePushed", countUnit="hours"), "countUnit must be one of days"),
    "countUnit with imageCountMoreThan": (
        _selection(countUnit="days"),
        "countUnit is only allowed with countType sinceImagePushed",
    ),
    "countNumber 0": (_selection(countNumber=0), "countNumber must be an integer from 1"),
    "countNumber '5'": (_selection(countNumber="5"), "countNumber must be an integer from 1"),
    "no countNumber": (_selection(countNumber=None), "missing required properties countNumber"),
    "an unknown selection property": (_selection(imageStatus="ACTIVE"), "'imageStatus' is not allowed"),
    "action delete": (
        _edit(lambda d: d["rules"][0]["action"].update(type="delete")),
        "action.type must be one of expire",
    ),
    "an action with more": (_edit(lambda d: d["rules"][0]["action"].update(days=3)), "'days' is not allowed"),
    "archiving": (
        _edit(lambda d: d["rules"][0]["action"].update(type="transition")),
        "transition action (archiving) is not supported",
    ),
    "storage classes": (_selection(storageClass="archive"), "storage classes (archiving) are not supported"),
    "last-pull ages": (_selection(countType="sinceImagePulled", countUnit="days"), "sinceImagePulled is not supported"),
    "two untagged rules": (
        policy(rule(1, "untagged"), rule(2, "untagged", count=5)),
        "only one rule may select untagged images",
    ),
    "any before another rule": (
        policy(rule(1, "any"), rule(2, "untagged")),
        "tagStatus any (rulePriority 1) must have the highest",
    ),
    "two any rules": (policy(rule(1, "any"), rule(2, "any", count=3)), "must have the highest rulePriority"),
    "the same prefixes twice": (
        policy(rule(1, "tagged", prefixes=["a", "b"]), rule(2, "tagged", prefixes=["b", "a"], count=4)),
        "the same tagPrefixList ['a', 'b']",
    ),
    "the same patterns twice": (
        policy(rule(1, "tagged", patterns=["v*"]), rule(2, "tagged", patterns=["v*"], count=4)),
        "the same tagPatternList ['v*']",
    ),
}


@pytest.mark.parametrize("text, problem", INVALID.values(), ids=INVALID.keys())
def test_invalid_policies_are_refused_naming_the_problem(text, problem):
    with pytest.raises(PolicyInvalid) as refused:
        parse_policy(text)
    assert problem in refused.value.problem


# --- what evaluate expires ---------------------------------------------------------------------------

# ECR's user guide, "Filtering on multiple rules" and "...multiple tags in a single rule"
REPO_AB = [img("A", 10, "beta-1", "prod-1"), img("B", 9, "beta-2", "prod-2"), img("C", 8, "beta-3")]
REPO_ABCDEF = [
    img("A", 12, "alpha-1"),
    img("B", 11, "beta-1"),
    img("C", 10, "alpha-2", "beta-2"),
    img("D", 4, "alpha-3"),
    img("E", 3, "beta-3"),
    img("F", 2, "alpha-4", "beta-4"),
]
REPO_GAMMA = [
    img("A", 10, "alpha-1", "beta-1", "gamma-1"),
    img("B", 9, "alpha-2", "beta-2"),
    img("C", 8, "alpha-3", "beta-3", "gamma-2"),
]
MIXED = [
    img("old-untagged", 40),
    img("mid-untagged", 20),
    img("new-untagged", 1),
    img("prod-old", 50, "prod-1"),
    img("prod-mid", 45, "prod-2"),
    img("prod-new", 2, "prod-3"),
    img("dev-old", 35, "dev-1"),
    img("dev-new", 3, "dev-2"),
]

CASES = {
    # rule 1 marks A (keeps B, the younger prod); rule 2 would mark A and B, but B meets rule 1's
    # tagging requirements, so rule 2 cannot expire it: "Result: Image A is expired"
    "ECR multiple rules, example A": (
        policy(rule(1, "tagged", prefixes=["prod"]), rule(2, "tagged", prefixes=["beta"])),
        REPO_AB,
        [("A", 1)],
    ),
    # rule 1 (beta) sees all three and marks A and B; rule 2 sees nothing new: "Images A and B"
    "ECR multiple rules, example B": (
        policy(rule(1, "tagged", prefixes=["beta"]), rule(2, "tagged", prefixes=["prod"])),
        REPO_AB,
        [("A", 1), ("B", 1)],
    ),
    # both prefixes must match: C and F are selected, C is older than five days
    "ECR multiple tags in a rule, example A": (
        policy(rule(1, "tagged", "sinceImagePushed", 5, prefixes=["alpha", "beta"])),
        REPO_ABCDEF,
        [("C", 1)],
    ),
    # tags are not exclusive: all three have alpha and beta; keep the youngest
    "ECR multiple tags in a rule, example B": (
        policy(rule(1, "tagged", prefixes=["alpha", "beta"])),
        REPO_GAMMA,
        [("A", 1), ("B", 1)],
    ),
    "patterns too must all match, each a whole tag": (
        policy(rule(1, "tagged", patterns=["alpha-*", "*-2"])),
        REPO_GAMMA,
        [("B", 1)],  # B (alpha-2) and C (alpha-3, gamma-2) are selected, A has no *-2: C is kept
    ),
    "a pattern is not a prefix": (
        policy(rule(1, "tagged", "sinceImagePushed", 1, patterns=["prod"])),
        MIXED,
        [],
    ),
    "untagged, keep 1": (policy(rule(1, "untagged")), MIXED, [("old-untagged", 1), ("mid-untagged", 1)]),
    "untagged older than 30 days": (policy(rule(1, "untagged", "sinceImagePushed", 30)), MIXED, [("old-untagged", 1)]),
    "tagged prod, keep 2": (policy(rule(1, "tagged", prefixes=["prod"], count=2)), MIXED, [("prod-old", 1)]),
    # the any rule expires what is older than 30 days, but not the prod images rule 1 selects
    # (rule 1 keeps the three of them), whatever their age
    "a higher rule shields what it selects from an any rule": (
        policy(rule(1, "tagged", prefixes=["prod"], count=5), rule(2, "any", "sinceImagePushed", 30)),
        MIXED,
        [("dev-old", 2), ("old-untagged", 2)],
    ),
    # rule 9 counts every image, the prod ones too: it keeps the three youngest (new-untagged,
    # prod-new, dev-new) and marks the rest; rule 1 keeps prod-mid from it, and expires prod-old itself
    "an any rule counts what higher rules select": (
        policy(rule(1, "tagged", prefixes=["prod"], count=2), rule(9, "any", count=3)),
        MIXED,
        [("prod-old", 1), ("old-untagged", 9), ("dev-old", 9), ("mid-untagged", 9)],
    ),
    "untagged then any": (
        policy(rule(1, "untagged", count=2), rule(2, "any", "sinceImagePushed", 36)),
        MIXED,
        [("prod-old", 2), ("prod-mid", 2), ("old-untagged", 1)],
    ),
    "nothing selected": (policy(rule(1, "tagged", prefixes=["release"])), MIXED, []),
    "a count no repository reaches": (policy(rule(1, "any", count=100)), MIXED, []),
}


@pytest.mark.parametrize("text, images, expected", CASES.values(), ids=CASES.keys())
def test_evaluation(text, images, expected):
    assert sorted(expired(text, images)) == sorted(expected)
    # and whatever order the images come in
    shuffled = list(images)
    random.Random(7).shuffle(shuffled)
    assert expired(text, shuffled) == expired(text, images)


def test_results_are_oldest_first_with_each_images_rule():
    results = evaluate(
        parse_policy(policy(rule(1, "untagged", count=2), rule(2, "any", "sinceImagePushed", 36))), MIXED, NOW
    )
    assert [e.image.pushed_at for e in results] == sorted(e.image.pushed_at for e in results)


def test_since_image_pushed_to_the_second():
    """Older than N days means pushed more than N x 24 hours before `now`: the clock decides."""
    text = policy(rule(1, "any", "sinceImagePushed", 7))
    image = img("x", 0)
    seven_days = 7 * DAY_SECONDS
    assert expired(text, [image], now=image.pushed_at + seven_days) == []
    assert expired(text, [image], now=image.pushed_at + seven_days + 1) == [("x", 1)]
    assert expired(text, [image], now=image.pushed_at) == []


def test_image_count_keeps_the_most_recently_pushed_whatever_the_digests():
    images = [Candidate(f"sha256:{d}", frozenset(), NOW - age) for d, age in (("a", 1), ("z", 3), ("m", 2), ("b", 4))]
    assert expired(policy(rule(1, "untagged", count=2)), images) == [("b", 1), ("z", 1)]


def test_images_pushed_at_the_same_instant_are_ordered_by_digest():
    same = [Candidate(f"sha256:{d}", frozenset(), NOW) for d in "dcab"]
    assert expired(policy(rule(1, "untagged", count=2)), same) == [("c", 1), ("d", 1)]


def test_an_image_a_list_references_counts_but_stays():
    """An index's children: counted (they are the youngest untagged images here), never expired."""
    images = [
        img("child", 1, referenced=True),
        img("orphan", 5),
        img("older-orphan", 9),
        img("old-child", 20, referenced=True),
    ]
    assert expired(policy(rule(1, "untagged")), images) == [("older-orphan", 1), ("orphan", 1)]


def test_each_image_is_expired_by_one_rule_at_most():
    text = policy(
        rule(1, "tagged", prefixes=["dev"]),
        rule(2, "tagged", patterns=["*-1"], count=1),
        rule(3, "any", "sinceImagePushed", 1),
    )
    results = evaluate(parse_policy(text), MIXED, NOW)
    digests = [e.image.digest for e in results]
    assert len(digests) == len(set(digests))
    by_rule = {e.image.digest.removeprefix("sha256:"): e.rule_priority for e in results}
    assert by_rule == {
        "dev-old": 1,  # rule 1 selects it first, and marks it (rule 2 would too)
        "prod-old": 2,  # prod-1 matches *-1: rule 2 keeps dev-old's place, marks prod-old
        "prod-mid": 3,
        "prod-new": 3,  # two days old; dev-new is older, but rule 1 selects it (and keeps it)
        "mid-untagged": 3,
        "old-untagged": 3,
    }
