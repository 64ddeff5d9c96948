"""A revoked key stops working within the documented bound: REGISTRY_KEY_CACHE_SECONDS, how long a
warm function trusts a key it has read. The bound is configurable so that this is tested in
seconds: a second gateway on the same backends runs with a 1-second cache."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from auth_support import new_registry_id
from botocore.exceptions import ClientError
from support import client_of

pytestmark = pytest.mark.local_only

CACHE_SECONDS = 1.0
MARGIN_SECONDS = 2.0  # scheduling, a request in flight, the refusal's own round trip
WORKERS = 4  # start_registry's pool: every worker has a cache of its own


def outcome(ecr) -> str:
    try:
        ecr.describe_repositories()
        return "OK"
    except ClientError as error:
        return error.response["Error"]["Code"]


def test_revoked_key_stops_working_within_the_cache_bound(start_registry, issue_key, access_key_store):
    registry = start_registry(REGISTRY_KEY_CACHE_SECONDS=str(CACHE_SECONDS))
    key = issue_key(new_registry_id(), (("pull",), ("*",)))
    # Warm every worker's cache with the key: concurrent calls spread over the pool.
    with ThreadPoolExecutor(WORKERS * 2) as pool:
        assert set(pool.map(lambda _: outcome(client_of(registry.endpoint, key)), range(WORKERS * 4))) == {"OK"}
    ecr = client_of(registry.endpoint, key)

    access_key_store.revoke(key.access_key_id, time.time())
    revoked_at = time.monotonic()
    deadline = revoked_at + CACHE_SECONDS + MARGIN_SECONDS
    first_refusal = None
    while time.monotonic() < deadline:  # poll: no fixed sleep decides anything
        if outcome(ecr) == "UnrecognizedClientException":
            first_refusal = time.monotonic() - revoked_at
            break
    assert first_refusal is not None, f"still accepted {CACHE_SECONDS + MARGIN_SECONDS:.1f}s after revocation"
    assert first_refusal <= CACHE_SECONDS + MARGIN_SECONDS

    # Once the bound has passed since the revocation, no worker accepts it any more.
    while time.monotonic() < revoked_at + CACHE_SECONDS:
        outcome(ecr)  # keep polling until the bound has passed (each call is a real request)
    with ThreadPoolExecutor(WORKERS * 2) as pool:
        outcomes = list(pool.map(lambda _: outcome(client_of(registry.endpoint, key)), range(WORKERS * 4)))
    assert set(outcomes) == {"UnrecognizedClientException"}


def test_within_the_bound_a_warm_worker_does_not_read_the_key_again(start_registry, issue_key, access_key_store):
    """The other side of the bound: with the default cache a revocation is not seen at once
    (the warm path makes no DynamoDB/KMS call), which is why the bound is documented."""
    registry = start_registry(REGISTRY_KEY_CACHE_SECONDS="600")
    key = issue_key(new_registry_id(), (("pull",), ("*",)))
    ecr = client_of(registry.endpoint, key)
    assert outcome(ecr) == "OK"
    access_key_store.revoke(key.access_key_id, time.time())
    assert outcome(ecr) == "OK"  # sequential calls reuse the warmest worker: it trusts its cached key


def test_a_revoked_keys_docker_login_stops_within_the_cache_bound(start_registry, issue_key, access_key_store):
    """`/v2`: the authorizer's allow is cached for minutes per Authorization header, but the function
    checks the login again on every request, with the key cache: the bound is the same, and the
    refusal is the authorizer's own (403 DENIED)."""
    from distribution import Client

    registry = start_registry(REGISTRY_KEY_CACHE_SECONDS=str(CACHE_SECONDS))
    key = issue_key(new_registry_id(), (("pull",), ("*",)))
    (data,) = client_of(registry.endpoint, key).get_authorization_token()["authorizationData"]
    v2 = Client(registry.endpoint, f"Basic {data['authorizationToken']}")
    assert v2.request("GET", "/v2/").status == 200  # the authorizer's allow is now cached

    access_key_store.revoke(key.access_key_id, time.time())
    revoked_at = time.monotonic()
    answer = v2.request("GET", "/v2/")
    while answer.status == 200 and time.monotonic() < revoked_at + CACHE_SECONDS + MARGIN_SECONDS:
        answer = v2.request("GET", "/v2/")
    assert answer.status == 403 and answer.error_code == "DENIED", (answer.status, answer.body[:300])
    assert time.monotonic() - revoked_at <= CACHE_SECONDS + MARGIN_SECONDS
