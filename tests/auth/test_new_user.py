"""As a new user would: the operator issues a key with `python -m registryctl keys create`, the
user pastes the printed profile into their AWS CLI files and pushes with
`aws ecr put-image --profile … --endpoint-url …`. Then the operator lists and revokes it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from auth_support import new_registry_id
from support import image_manifest, new_blobs, sha256

pytestmark = pytest.mark.local_only  # the command talks to the local stack's keys table

ROOT = Path(__file__).resolve().parents[2]
AWS = str(Path(sys.executable).parent / "aws")


def registryctl(backends, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(backends.registryctl_environment())  # the operator's view of the local stack
    return subprocess.run(
        [sys.executable, "-m", "registryctl", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


class User:
    """The AWS CLI with nothing but a config and a credentials file of its own."""

    def __init__(self, home: Path, endpoint: str):
        self.config, self.credentials, self.endpoint = home / "config", home / "credentials", endpoint

    def aws(self, profile: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_CONFIG_FILE=str(self.config),
            AWS_SHARED_CREDENTIALS_FILE=str(self.credentials),
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        done = subprocess.run(
            [AWS, "ecr", *args, "--profile", profile, "--endpoint-url", self.endpoint, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"aws ecr {args[0]} failed ({done.returncode}): {done.stderr}")
        return done


def test_new_user_pushes_with_an_aws_cli_profile(registry, backends, tmp_path):
    registry_id = new_registry_id()
    created = registryctl(
        backends,
        "keys",
        "create",
        "--registry",
        registry_id,
        "--name",
        "ci-bot",
        "--grant",
        "push:team/*",
        "--grant",
        "ecr:CreateRepository:team/*",
    )
    assert created.returncode == 0, created.stderr
    # The command prints a ready profile: the user pastes it into ~/.aws/credentials.
    profile = created.stdout[created.stdout.index("[ci-bot]") :].split("\n\n")[0] + "\n"
    assert re.search(r"aws_access_key_id = REGK[A-Z2-7]{16}\n", profile)
    assert re.search(r"aws_secret_access_key = \S{40}\n", profile)
    user = User(tmp_path, registry.endpoint)
    user.credentials.write_text(profile)
    user.config.write_text("[profile ci-bot]\nregion = us-east-1\n")

    user.aws("ci-bot", "create-repository", "--repository-name", "team/app")
    config, blobs = new_blobs(0)  # the config blob only: each CLI call costs a second or more
    for number, blob in enumerate((config, *blobs)):
        path = tmp_path / f"blob{number}"
        path.write_bytes(blob)
        upload_id = json.loads(user.aws("ci-bot", "initiate-layer-upload", "--repository-name", "team/app").stdout)[
            "uploadId"
        ]
        user.aws(
            "ci-bot",
            "upload-layer-part",
            "--repository-name",
            "team/app",
            "--upload-id",
            upload_id,
            "--part-first-byte",
            "0",
            "--part-last-byte",
            str(len(blob) - 1),
            "--layer-part-blob",
            f"fileb://{path}",
        )
        user.aws(
            "ci-bot",
            "complete-layer-upload",
            "--repository-name",
            "team/app",
            "--upload-id",
            upload_id,
            "--layer-digests",
            sha256(blob),
        )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(image_manifest(config, blobs))
    pushed = json.loads(
        user.aws(
            "ci-bot",
            "put-image",
            "--repository-name",
            "team/app",
            "--image-tag",
            "v1",
            "--image-manifest",
            f"file://{manifest}",
        ).stdout
    )["image"]
    assert pushed["registryId"] == registry_id
    assert pushed["imageId"] == {"imageDigest": sha256(manifest.read_bytes()), "imageTag": "v1"}
    # Its grants end where they end: no deletion (and nothing outside team/*, see test_permissions).
    refused = user.aws("ci-bot", "delete-repository", "--repository-name", "team/app", "--force", check=False)
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
    assert "user/ci-bot is not authorized to perform: ecr:DeleteRepository" in refused.stderr

    # The operator sees the key (never its secret) and revokes it.
    access_key_id = re.search(r"aws_access_key_id = (\S+)", profile)[1]
    secret = re.search(r"aws_secret_access_key = (\S+)", profile)[1]
    listing = registryctl(backends, "keys", "list", "--registry", registry_id, "--output", "json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout) == [
        {
            "AccessKeyId": access_key_id,
            "RegistryId": registry_id,
            "Name": "ci-bot",
            "Status": "Active",
            "Grants": [
                {"actions": ["push"], "repositories": ["team/*"]},
                {"actions": ["ecr:CreateRepository"], "repositories": ["team/*"]},
            ],
            "CreatedAt": json.loads(listing.stdout)[0]["CreatedAt"],
        }
    ]
    assert secret not in listing.stdout
    assert secret not in registryctl(backends, "keys", "list").stdout
    revoked = registryctl(backends, "keys", "revoke", access_key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert (
        json.loads(registryctl(backends, "keys", "list", "--registry", registry_id, "--output", "json").stdout)[0][
            "Status"
        ]
        == "Revoked"
    )


def test_the_secret_is_stored_encrypted_only(backends):
    registry_id = new_registry_id()
    created = registryctl(
        backends,
        "--output",
        "json",
        "keys",
        "create",
        "--registry",
        registry_id,
        "--name",
        "auditor",
        "--grant",
        "pull",
    )
    key = json.loads(created.stdout)
    item = backends.client("dynamodb").get_item(
        TableName=backends.tables["keys"], Key={"access_key_id": {"S": key["AccessKeyId"]}}
    )["Item"]
    assert key["SecretAccessKey"].encode() not in repr(item).encode()
    assert set(item) == {"access_key_id", "registry_id", "name", "grants", "status", "created_at", "secret_ciphertext"}
    kms = backends.client("kms")
    with pytest.raises(kms.exceptions.InvalidCiphertextException):  # bound to its key id and registry
        kms.decrypt(
            CiphertextBlob=item["secret_ciphertext"]["B"],
            EncryptionContext={"registry_id": registry_id, "access_key_id": "REGKSOMEOTHERKEY0000"},
        )


def test_seeding_a_known_key_and_refusing_bad_input(registry, backends):
    """What a deployment's test setup does: a key with a chosen id and a secret read from stdin."""
    registry_id = new_registry_id()
    seeded = registryctl(
        backends,
        "keys",
        "create",
        "--registry",
        registry_id,
        "--name",
        "seeded",
        "--grant",
        "admin",
        "--access-key-id",
        f"seed{registry_id}",
        "--secret-stdin",
        stdin="s3cr3t-from-stdin\n",
    )
    assert seeded.returncode == 0, seeded.stderr
    from support import ecr_client

    assert (
        ecr_client(registry.endpoint, f"seed{registry_id}", "s3cr3t-from-stdin").describe_repositories()["repositories"]
        == []
    )
    again = registryctl(
        backends,
        "keys",
        "create",
        "--registry",
        registry_id,
        "--name",
        "seeded",
        "--grant",
        "admin",
        "--access-key-id",
        f"seed{registry_id}",
        "--secret-stdin",
        stdin="x\n",
    )
    assert again.returncode == 2 and "exists already" in again.stderr
    for bad in (
        ["--registry", "12345", "--grant", "pull"],
        ["--registry", registry_id, "--grant", "pul"],
        ["--registry", registry_id, "--grant", "ecr:NoSuchOperation"],
        ["--registry", registry_id, "--grant", "push:Upper/Case"],
    ):
        done = registryctl(backends, "keys", "create", "--name", "bad", *bad)
        assert done.returncode == 2 and done.stderr.startswith("registryctl: "), (bad, done.stderr)
    assert registryctl(backends, "keys", "revoke", "REGKNOSUCHKEY0000000").returncode == 2
