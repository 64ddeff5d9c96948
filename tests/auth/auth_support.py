"""What the authentication tests share: raw SigV4-signed requests (botocore's own signer, with a
timestamp of our choosing when needed), clients for issued keys, and fresh registry ids."""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"

TARGET = "AmazonEC2ContainerRegistry_V20150921."
CONTENT_TYPE = "application/x-amz-json-1.1"
ADMIN = Credentials("test", "test")  # the key `make run` and the suite start with (registry 000000000000)


def unique_name(prefix: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-")[:40] or "repo"
    return f"auth/{slug}-{uuid.uuid4().hex[:10]}"


def new_registry_id() -> str:
    return "".join(random.choice("0123456789") for _ in range(12))


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body) if self.body else {}

    @property
    def code(self) -> str | None:
        return self.json.get("__type")


def signed(
    endpoint: str,
    operation: str,
    params: dict | bytes,
    credentials: Credentials | None = ADMIN,
    *,
    signed_at: datetime | None = None,
    service: str = "ecr",
    region: str = REGION,
    extra_headers: dict | None = None,
    signer_class=SigV4Auth,
) -> AWSRequest:
    """An ECR request as an SDK builds it; signed with `credentials` at `signed_at` (default: now)."""
    body = params if isinstance(params, bytes) else json.dumps(params).encode()
    request = AWSRequest(
        method="POST",
        url=endpoint.rstrip("/") + "/",
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET + operation, **(extra_headers or {})},
    )
    if credentials is None:
        return request
    signer = signer_class(credentials, service, region)
    if signed_at is None:
        signer.add_auth(request)
        return request
    # SigV4Auth.add_auth always takes "now": these are its steps with the signer's context
    # timestamp set by us, as a request captured at `signed_at` and replayed now would carry.
    request.context["timestamp"] = signed_at.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return request


def send(request: AWSRequest, body: bytes | None = None) -> Reply:
    """Send it as is (or with another body than the one signed)."""
    data = request.body if body is None else body
    data = data.encode() if isinstance(data, str) else data
    prepared = urllib.request.Request(
        request.url, data=data, method=request.method, headers=dict(request.headers.items())
    )
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def repository_names(ecr) -> list[str]:
    names = []
    for page in ecr.get_paginator("describe_repositories").paginate():
        names.extend(r["repositoryName"] for r in page["repositories"])
    return sorted(names)
