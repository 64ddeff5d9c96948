"""`registry.tokens`: what the registry seals it alone can unseal; anything else is no token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import tokens

KEY = b"k" * 32


def test_a_sealed_payload_comes_back():
    payload = {"use": "page", "position": {"at": "sha256:" + "a" * 64, "skip": 3}, "filter": None}
    assert tokens.unseal(KEY, tokens.seal(KEY, payload)) == payload


def test_another_key_unseals_nothing():
    assert tokens.unseal(b"x" * 32, tokens.seal(KEY, {"use": "page"})) is None


def test_an_altered_payload_is_no_token():
    body, _, mac = tokens.seal(KEY, {"use": "page", "skip": 1}).partition(".")
    forged = tokens.seal(b"attacker", {"use": "page", "skip": 99}).split(".")[0]
    assert tokens.unseal(KEY, f"{forged}.{mac}") is None
    assert tokens.unseal(KEY, f"{body}.{mac[:-1]}") is None


@pytest.mark.parametrize("garbage", ["", ".", "abc", "abc.def", "é.é", "\ud800.x", "a.b.c", "=.=", "A" * 1000])
def test_garbage_is_no_token(garbage):
    assert tokens.unseal(KEY, garbage) is None


@given(st.text(max_size=200))
def test_no_string_is_a_token_by_chance(text):
    assert tokens.unseal(KEY, text) is None
