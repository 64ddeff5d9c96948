"""Registry logins: the password of GetAuthorizationToken, and its check on every `/v2` request.

The password is a sealed token (tokens.py) with the access key's id, its registry, an expiry and a
nonce: the registry verifies it without storing it, with key material that never leaves KMS. It
carries exactly the key's grants -- the key is looked up again (AccessKeyCache) for every request
that presents it, so a revoked key's logins stop working within the key cache bound.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from ..records import AccessKey
from ..tokens import seal, unseal
from .access_key_cache import AccessKeyCache

LOGIN = "login"  # the token's use: never accepted as anything else (a page token, say)
USER = "AWS"  # the user name of every login, as ECR's
LIFETIME_SECONDS = 12 * 3600


def issue(token_key: bytes, key: AccessKey, now: float) -> tuple[str, int]:
    """(the password for `key`, when it expires: epoch seconds)."""
    expires = int(now) + LIFETIME_SECONDS
    payload = {
        "use": LOGIN,
        "key": key.access_key_id,
        "registry": key.registry_id,
        "exp": expires,
        "nonce": secrets.token_urlsafe(9),
    }
    return seal(token_key, payload), expires


def basic_credentials(user: str, password: str) -> str:
    """ECR's authorizationToken: base64 of `AWS:<password>`."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def verify(authorization: str | None, token_key: bytes, access_keys: AccessKeyCache, now: float) -> AccessKey | None:
    """The active key a `Basic AWS:<password>` header logs in as, or None (absent, malformed,
    altered, expired, or the key revoked or gone)."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return None
    if not colon or user != USER:
        return None
    payload = unseal(token_key, password)
    if payload is None or payload.get("use") != LOGIN or not isinstance(payload.get("exp"), int):
        return None
    if payload["exp"] <= now or not isinstance(payload.get("key"), str):
        return None
    key = access_keys.get(payload["key"])
    if key is None or not key.active or key.registry_id != payload.get("registry"):
        return None
    return key
