"""`registry.records`: wildcard exclusion filters and which tags may not be moved.

A filter is a whole-tag match where `*` is any run of characters (also none) and every other
character is literal; the model allows `[0-9a-zA-Z._*-]` in a filter, so `.` must not be a regex dot.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.records import (
    IMMUTABLE,
    IMMUTABLE_WITH_EXCLUSION,
    MUTABLE,
    MUTABLE_WITH_EXCLUSION,
    Repository,
    tag_is_immutable,
    wildcard_matches,
)


@pytest.mark.parametrize(
    "pattern,tag",
    [
        ("latest", "latest"),
        ("*", "anything"),
        ("*", ""),
        ("v*", "v"),
        ("v*", "v1.2.3"),
        ("*-rc", "1.0-rc"),
        ("*-rc", "-rc"),
        ("release-*-final", "release--final"),
        ("release-*-final", "release-1.2-final"),
        ("a*b*c", "abc"),
        ("a*b*c", "a-b-c-b-c"),
        ("**", "x"),
        ("1.0", "1.0"),
        ("dev_*", "dev_feature-x"),
        ("*.*", "."),
        ("v*", "v\nx"),
    ],
)
def test_wildcard_matches(pattern, tag):
    assert wildcard_matches(pattern, tag)


@pytest.mark.parametrize(
    "pattern,tag",
    [
        ("latest", "latest-foo"),
        ("latest", "my-latest"),
        ("latest", "Latest"),
        ("latest", ""),
        ("v*", "1v"),
        ("*-rc", "1.0-rc1"),
        ("1.0", "1x0"),
        ("1.0", "110"),
        ("a.b", "aXb"),
        ("v1.*", "v1-2"),
        ("a*b*c", "acb"),
        ("release-*-final", "release-final"),
        ("x", "xx"),
        ("prod", "prod\n"),
    ],
)
def test_wildcard_does_not_match(pattern, tag):
    assert not wildcard_matches(pattern, tag)


_FILTER_CHARS = st.sampled_from(list("abcxyz019._-*"))
_TAG_CHARS = st.sampled_from(list("abcxyz019._-"))


def _reference(pattern: str, tag: str) -> bool:
    """An independent glob: dynamic programming over the pattern, no regular expressions."""
    table = [[False] * (len(tag) + 1) for _ in range(len(pattern) + 1)]
    table[0][0] = True
    for i, p in enumerate(pattern, 1):
        table[i][0] = table[i - 1][0] and p == "*"
        for j, t in enumerate(tag, 1):
            table[i][j] = (table[i - 1][j] or table[i][j - 1]) if p == "*" else (table[i - 1][j - 1] and p == t)
    return table[-1][-1]


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(_FILTER_CHARS, min_size=1, max_size=8), st.text(_TAG_CHARS, max_size=10))
def test_wildcard_agrees_with_a_reference_glob(pattern, tag):
    assert wildcard_matches(pattern, tag) == _reference(pattern, tag)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(_TAG_CHARS, min_size=1, max_size=12))
def test_a_filter_without_star_matches_only_itself(tag):
    assert wildcard_matches(tag, tag)
    assert not wildcard_matches(tag, tag + "x")
    assert not wildcard_matches(tag, "x" + tag)


def test_regex_metacharacters_in_a_filter_are_literal():
    # Only [0-9a-zA-Z._*-] passes the model, but nothing else may turn into regex syntax either.
    assert wildcard_matches("a+b", "a+b") and not wildcard_matches("a+b", "aab")
    assert wildcard_matches("(x)", "(x)") and not wildcard_matches("(x)", "x")
    assert not wildcard_matches("[ab]", "a")
    assert wildcard_matches("a|b", "a|b") and not wildcard_matches("a|b", "a")


# --- tag_is_immutable ----------------------------------------------------------------------------

FILTERS = ("release-*", "latest")


@pytest.mark.parametrize(
    "mutability,tag,expected",
    [
        (MUTABLE, "latest", False),
        (MUTABLE, "release-1", False),
        (MUTABLE, "dev", False),
        (IMMUTABLE, "latest", True),
        (IMMUTABLE, "release-1", True),
        (IMMUTABLE, "dev", True),
        # IMMUTABLE_WITH_EXCLUSION: immutable, except the tags a filter matches
        (IMMUTABLE_WITH_EXCLUSION, "latest", False),
        (IMMUTABLE_WITH_EXCLUSION, "release-1", False),
        (IMMUTABLE_WITH_EXCLUSION, "dev", True),
        (IMMUTABLE_WITH_EXCLUSION, "latest-foo", True),
        # MUTABLE_WITH_EXCLUSION: mutable, except the tags a filter matches
        (MUTABLE_WITH_EXCLUSION, "latest", True),
        (MUTABLE_WITH_EXCLUSION, "release-1", True),
        (MUTABLE_WITH_EXCLUSION, "dev", False),
        (MUTABLE_WITH_EXCLUSION, "latest-foo", False),
    ],
)
def test_tag_is_immutable(mutability, tag, expected):
    assert tag_is_immutable(mutability, FILTERS, tag) is expected


@pytest.mark.parametrize("mutability", [MUTABLE, IMMUTABLE])
def test_filters_do_not_change_plain_settings(mutability):
    for tag in ("latest", "release-9", "other"):
        assert tag_is_immutable(mutability, FILTERS, tag) == tag_is_immutable(mutability, (), tag)


def test_without_filters_the_exclusion_settings_exclude_nothing():
    assert tag_is_immutable(IMMUTABLE_WITH_EXCLUSION, (), "x") is True
    assert tag_is_immutable(MUTABLE_WITH_EXCLUSION, (), "x") is False


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.text(_FILTER_CHARS, min_size=1, max_size=5), max_size=5), st.text(_TAG_CHARS, max_size=6))
def test_the_two_exclusion_settings_are_complements(filters, tag):
    filters = tuple(filters)
    assert tag_is_immutable(IMMUTABLE_WITH_EXCLUSION, filters, tag) != tag_is_immutable(
        MUTABLE_WITH_EXCLUSION, filters, tag
    )


def test_repository_delegates_to_its_setting():
    repo = Repository(
        registry_id="123456789012",
        name="ab",
        created_at=0.0,
        tag_mutability=MUTABLE_WITH_EXCLUSION,
        exclusion_filters=("prod-*",),
    )
    assert repo.tag_is_immutable("prod-1") and not repo.tag_is_immutable("dev-1")
    assert repo.partition == "123456789012/ab"


def test_the_four_settings_are_the_models_enum(ecr_model):
    assert set(ecr_model.shape_for("ImageTagMutability").enum) == {
        MUTABLE,
        IMMUTABLE,
        IMMUTABLE_WITH_EXCLUSION,
        MUTABLE_WITH_EXCLUSION,
    }


# --- a filter is matched in linear time -----------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, tag",
    [
        ("*a*a*a*a*b", "a" * 300),  # 14.5 s with the backtracking regex this replaced
        ("*a" * 10 + "*b", "a" * 300),  # never finished
        ("*a" * 64 + "*", "ab" * 150),  # matches: 64 a's are there
    ],
)
def test_adversarial_filters_finish(pattern, tag):
    """A push that moves a tag matches it against the repository's filters, inside the request: a
    pathological filter must not hold the function. The match runs in a child process so that a
    matcher that backtracks fails this test (by the child's deadline) instead of hanging the suite."""
    probe = f"from registry.records import wildcard_matches; print(wildcard_matches({pattern!r}, {tag!r}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == str(_reference(pattern, tag))
