"""Who is calling, and may they: SigV4 verification of every request (`sigv4.verify`) against the
keys the registry issued (`keys.KeyCache` over `storage.keys.KeyStore`), and per-key grants
(`permissions.authorize`). The handler runs `authenticate` before anything else of a request.
"""

from __future__ import annotations

from ..model import AccessKey
from .keys import KeyCache
from .permissions import authorize
from .sigv4 import SignedRequest, verify


def authenticate(request, keys: KeyCache, region: str) -> AccessKey:
    """The key that signed this wire.HttpRequest; a 403 protocol error otherwise."""
    signed = SignedRequest(
        method=request.method,
        paths=request.signed_paths,
        query=request.query,
        headers=request.header_values,
        body=request.body,
    )
    return verify(signed, keys.get, region)


__all__ = ["KeyCache", "authenticate", "authorize"]
