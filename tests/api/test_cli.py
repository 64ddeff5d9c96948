"""The AWS CLI, as a user types it: `aws ecr ... --endpoint-url`."""

from __future__ import annotations

import os
import subprocess

from support import AWS_CLI, aws, image_manifest, new_blobs, sha256, upload_image_blobs


def test_push_and_pull_with_the_aws_cli(registry, ecr, tmp_path):
    repo = f"cli/app-{os.urandom(4).hex()}"
    created = aws(registry, "create-repository", "--repository-name", repo, "--image-tag-mutability", "IMMUTABLE")[
        "repository"
    ]
    assert created["repositoryName"] == repo and created["imageTagMutability"] == "IMMUTABLE"
    config, blobs = new_blobs(2)
    upload_image_blobs(ecr, repo, config, blobs)
    manifest = image_manifest(config, blobs)
    path = tmp_path / "manifest.json"
    path.write_bytes(manifest.encode())
    pushed = aws(
        registry, "put-image", "--repository-name", repo, "--image-tag", "v1", "--image-manifest", f"file://{path}"
    )["image"]
    assert pushed["imageId"] == {"imageDigest": sha256(manifest.encode()), "imageTag": "v1"}
    pulled = aws(registry, "batch-get-image", "--repository-name", repo, "--image-ids", "imageTag=v1")
    assert pulled["images"][0]["imageManifest"] == manifest
    assert pulled["failures"] == []
    listed = aws(registry, "list-images", "--repository-name", repo)["imageIds"]
    assert listed == [{"imageDigest": sha256(manifest.encode()), "imageTag": "v1"}]


def test_cli_reports_modeled_errors(registry):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    done = subprocess.run(
        [
            AWS_CLI,
            "ecr",
            "describe-images",
            "--repository-name",
            "cli/does-not-exist",
            "--endpoint-url",
            registry.endpoint,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "RepositoryNotFoundException" in done.stderr


def test_tag_a_repository_with_the_aws_cli(registry):
    repo = f"cli/tagged-{os.urandom(4).hex()}"
    arn = aws(registry, "create-repository", "--repository-name", repo, "--tags", "Key=team,Value=platform")[
        "repository"
    ]["repositoryArn"]
    assert aws(registry, "tag-resource", "--resource-arn", arn, "--tags", "Key=tier,Value=gold") == {}
    listed = aws(registry, "list-tags-for-resource", "--resource-arn", arn)["tags"]
    assert listed == [{"Key": "team", "Value": "platform"}, {"Key": "tier", "Value": "gold"}]
    aws(registry, "untag-resource", "--resource-arn", arn, "--tag-keys", "team", "absent")
    assert aws(registry, "list-tags-for-resource", "--resource-arn", arn)["tags"] == [{"Key": "tier", "Value": "gold"}]
    scanning = aws(
        registry,
        "put-image-scanning-configuration",
        "--repository-name",
        repo,
        "--image-scanning-configuration",
        "scanOnPush=true",
    )
    assert scanning["imageScanningConfiguration"] == {"scanOnPush": True}
    assert aws(registry, "describe-registry")["replicationConfiguration"] == {"rules": []}
