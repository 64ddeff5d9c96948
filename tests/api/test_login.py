"""GetAuthorizationToken: what `aws ecr get-login-password | docker login` starts with.

The password is a token the registry verifies without storing it: sealed with the registry's token
key, bound to the access key, its registry and its expiry; it carries exactly the key's grants
(checked where it is used: the `/v2` API, tests/oci).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError
from support import client_of

TWELVE_HOURS = 12 * 3600


def test_the_token_is_aws_and_a_password_for_twelve_hours(ecr, registry):
    before = time.time()
    (data,) = ecr.get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and len(password) > 40
    expires = data["expiresAt"].timestamp()
    assert before + TWELVE_HOURS - 5 <= expires <= time.time() + TWELVE_HOURS + 5
    assert data["proxyEndpoint"] == registry.endpoint.rstrip("/")


def test_each_token_is_new_and_none_is_stored(ecr):
    first = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    second = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    assert first != second  # a nonce in each: two logins never share a password


def test_the_own_registry_may_be_named_and_no_other(ecr):
    own = ecr.get_authorization_token(registryIds=["000000000000"])["authorizationData"]
    assert len(own) == 1
    with pytest.raises(ClientError) as denied:
        ecr.get_authorization_token(registryIds=["111111111111"])
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_pull_key_may_log_in(start_registry, issue_key):
    key = issue_key("000000000000", (["pull"], ["team/*"]))
    local = start_registry()
    ecr = client_of(local.endpoint, key)
    assert ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]


def test_the_aws_cli_prints_the_password(registry):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    done = subprocess.run(
        [aws, "ecr", "get-login-password", "--endpoint-url", registry.endpoint],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    password = done.stdout.strip()
    assert len(password) > 40 and ":" not in password
