"""`registry.auth.login`: a login is accepted only as issued, for its key, until it expires."""

from __future__ import annotations

import base64

import pytest

from registry import tokens
from registry.auth import login
from registry.auth.access_key_cache import AccessKeyCache
from registry.records import AccessKey, Grant

TOKEN_KEY = b"t" * 32
KEY = AccessKey("AKIDLOGIN", "111111111111", "ci", (Grant(("pull",), ("*",)),), 0.0, True, "secret")
NOW = 1_800_000_000.0


def keys(*known: AccessKey) -> AccessKeyCache:
    by_id = {k.access_key_id: k for k in known}
    return AccessKeyCache(by_id.get, ttl=0)


def header(password: str, user: str = "AWS") -> str:
    return "Basic " + login.basic_credentials(user, password)


def test_an_issued_login_logs_in_as_its_key_until_it_expires():
    password, expires = login.issue(TOKEN_KEY, KEY, NOW)
    assert expires == NOW + 12 * 3600
    assert login.verify(header(password), TOKEN_KEY, keys(KEY), NOW) == KEY
    assert login.verify(header(password), TOKEN_KEY, keys(KEY), expires - 1) == KEY
    assert login.verify(header(password), TOKEN_KEY, keys(KEY), expires) is None


def test_a_revoked_or_moved_key_logs_in_no_more():
    password, _ = login.issue(TOKEN_KEY, KEY, NOW)
    assert login.verify(header(password), TOKEN_KEY, keys(), NOW) is None
    other_registry = AccessKey("AKIDLOGIN", "222222222222", "ci", KEY.grants, 0.0, True, "secret")
    assert login.verify(header(password), TOKEN_KEY, keys(other_registry), NOW) is None
    revoked = AccessKey("AKIDLOGIN", "111111111111", "ci", KEY.grants, 0.0, False, "secret")
    assert login.verify(header(password), TOKEN_KEY, keys(revoked), NOW) is None


def test_forged_altered_and_other_tokens_are_refused():
    password, _ = login.issue(TOKEN_KEY, KEY, NOW)
    page_token = tokens.seal(TOKEN_KEY, {"use": "page", "key": "AKIDLOGIN", "registry": "111111111111", "exp": 2**40})
    forged = tokens.seal(b"x" * 32, {"use": "login", "key": "AKIDLOGIN", "registry": "111111111111", "exp": 2**40})
    for refused in (
        header(page_token),
        header(forged),
        # altered: not in its last character, whose low bits may be base64 padding that decodes the same
        header(password[:-2] + ("A" if password[-2] != "A" else "B") + password[-1]),
        header(password, user="root"),
        "Bearer " + password,
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"AWS").decode(),
        "",
        None,
    ):
        assert login.verify(refused, TOKEN_KEY, keys(KEY), NOW) is None, refused


@pytest.mark.parametrize("seconds", [0, 1, 3600])
def test_two_logins_never_share_a_password(seconds):
    assert login.issue(TOKEN_KEY, KEY, NOW)[0] != login.issue(TOKEN_KEY, KEY, NOW + seconds)[0]
