"""Who is calling, and may they: SigV4 verification of every request (`sigv4.verify`) against the
access keys the registry issued (`access_key_cache.AccessKeyCache` over
`storage.access_keys.AccessKeyStore`), and per-key grants (`permissions.authorize`). The handler
runs `authenticate` before anything else of a request.
"""

from __future__ import annotations

from ..records import AccessKey
from ..wire import HttpRequest
from .access_key_cache import AccessKeyCache
from .permissions import authorize
from .sigv4 import SignedRequest, verify


def authenticate(request: HttpRequest, access_keys: AccessKeyCache, region: str) -> AccessKey:
    """The key that signed this wire.HttpRequest; a 403 protocol error otherwise."""
    signed = SignedRequest(
        method=request.method,
        paths=request.signed_paths,
        query=request.query,
        headers=request.header_values,
        body=request.body,
    )
    return verify(signed, access_keys.get, region)


__all__ = ["AccessKeyCache", "authenticate", "authorize"]
