"""The registry behind the proxy: its ECR API (the user's boto3 client, for blob uploads) and its
`/v2` (for everything else), logged in with GetAuthorizationToken's token as Basic auth. The token
is fetched at start (no credentials: the proxy does not start) and again before it expires."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from ..ecr import Login, login
from ..v2 import RETRY, session

REFRESH_BEFORE = 15 * 60  # seconds before the token's expiry when a new one is fetched
# Hop-by-hop headers (RFC 9110 §7.6.1) and what the proxy sets itself: never passed on.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
NOT_TO_REGISTRY = HOP_BY_HOP | {"host", "authorization", "content-length", "accept-encoding"}
# The registry's challenge is for its own login, which the proxy answers: a client shown it would
# ask its user for a password the proxy does not need.
NOT_TO_CLIENT = HOP_BY_HOP | {"www-authenticate", "content-length"}
TIMEOUT = (10, 300)  # connect, read
# imagectl's retries of GETs and HEADs, but the last answer goes to the client as it is (a 503 stays a 503)
RETRY_THEN_PASS_ON = RETRY.new(raise_on_status=False)


class Upstream:
    def __init__(self, client: Any, clock: Any = time.time):
        self.client, self.clock = client, clock
        self.http = session(RETRY_THEN_PASS_ON)
        self._lock = threading.Lock()
        self.current: Login = login(client)

    @property
    def endpoint(self) -> str:
        return self.current.endpoint

    def authorization(self) -> str:
        with self._lock:
            expires = self.current.expires_at
            if expires and self.clock() > expires - REFRESH_BEFORE:
                self.current = login(self.client)
            return self.current.basic

    def forward(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> requests.Response:
        """`target` (path and query, /v2/...) on the registry; the response's body not yet read."""
        sent = {k: v for k, v in headers.items() if k.lower() not in NOT_TO_REGISTRY}
        # the client's encodings, else none: the body is passed on byte for byte, as encoded
        sent["Accept-Encoding"] = headers.get("Accept-Encoding") or "identity"
        sent["Authorization"] = self.authorization()
        return self.http.request(
            method,
            self.endpoint + target,
            headers=sent,
            data=body,
            stream=True,
            allow_redirects=False,  # passed on: the client follows a blob's redirect to S3 itself
            timeout=TIMEOUT,
        )

    def headers_for_client(self, response: requests.Response) -> dict[str, str]:
        headers = {k: v for k, v in response.headers.items() if k.lower() not in NOT_TO_CLIENT}
        location = headers.get("Location")
        if location and location.startswith(self.endpoint + "/"):  # the registry's own URL: the proxy's path
            headers["Location"] = location[len(self.endpoint) :]
        return headers
