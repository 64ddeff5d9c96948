"""Tokens the registry issues and alone can verify: a JSON payload sealed with HMAC-SHA256 under
the registry's token key (derived from a KMS HMAC key, storage/signing.py). A sealed token cannot
be altered or forged by anyone without that key; its payload says what it is for (`use`), so a
token of one use is never accepted for another.

    token = base64url(JSON payload) "." base64url(HMAC-SHA256(key, first part))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def seal(key: bytes, payload: dict[str, Any]) -> str:
    body = _encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{body}.{_encode(_mac(key, body))}"


def unseal(key: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token sealed with `key`, or None for anything else (altered, forged, garbage)."""
    body, dot, mac = token.partition(".")
    if not dot:
        return None
    try:
        given = _decode(mac)
        expected = _mac(key, body)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        return None
    if not hmac.compare_digest(given, expected):
        return None
    payload = json.loads(_decode(body))  # ours: sealed above
    return payload if isinstance(payload, dict) else None


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
