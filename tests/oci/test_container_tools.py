"""The real tools against the registry's `/v2` API, as a user runs them (GUIDE 15): docker (a private
dockerd), containerd's ctr and skopeo, logged in with `aws ecr get-login-password`, through the
local gateway (which does to these requests what API Gateway does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import unique_name, upload_blob

REGION = "us-east-1"


def host_of(registry) -> str:
    return urlsplit(registry.endpoint).netloc  # 127.0.0.1:<port>: docker uses plain HTTP on loopback


def login_password(registry, access_key_id="test", secret="test") -> str:
    """`aws ecr get-login-password`, with the AWS CLI."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
    }
    aws = str(Path(sys.executable).parent / "aws")
    return subprocess.run(
        [aws, "ecr", "get-login-password", "--endpoint-url", registry.endpoint],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def docker_login(docker_engine, registry, **key) -> None:
    docker_engine.run(
        "login", "-u", "AWS", "--password-stdin", host_of(registry), input=login_password(registry, **key), timeout=120
    )


@pytest.fixture(autouse=True)
def leave_the_engine_as_found(docker_engine, registry):
    """Untag what a test tagged (references to the registry, images it built), so that other
    tests of the session find the busybox image as they left it."""
    yield
    listed = docker_engine.run("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    ours = [
        f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}"
        for repository, tag, digest in (line.split() for line in listed.splitlines())
        if repository.startswith((host_of(registry), "local/other", "local/big"))
    ]
    if ours:
        docker_engine.run("rmi", *ours, check=False)


@pytest.fixture
def pushed(docker_engine, busybox_image, registry, ecr):
    """busybox_image pushed with `docker push` to a fresh repository: (reference, repository)."""
    busybox_image.restore()
    repo = unique_name("docker")
    ecr.create_repository(repositoryName=repo)
    docker_login(docker_engine, registry)
    reference = f"{host_of(registry)}/{repo}:v1"
    docker_engine.run("tag", busybox_image.ref, reference)
    docker_engine.run("push", reference, timeout=300)
    return reference, repo


def test_docker_login_push_pull_and_run(docker_engine, busybox_image, pushed):
    reference, _ = pushed
    docker_engine.run("rmi", reference)
    docker_engine.run("pull", reference, timeout=300)
    out = docker_engine.run("run", "--rm", "--network", "none", reference).stdout
    assert out.strip() == busybox_image.content.strip()


def test_what_docker_pushed_is_what_the_ecr_api_sees(docker_engine, pushed, ecr):
    reference, repo = pushed
    repo_digest = docker_engine.run("image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout
    (digest,) = [d.split("@", 1)[1] for d in json.loads(repo_digest) if d.startswith(reference.rsplit(":", 1)[0])]
    (detail,) = ecr.describe_images(repositoryName=repo)["imageDetails"]
    assert detail["imageDigest"] == digest and detail["imageTags"] == ["v1"]
    (image,) = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"]
    assert image["imageId"]["imageDigest"] == digest
    import hashlib

    assert "sha256:" + hashlib.sha256(image["imageManifest"].encode()).hexdigest() == digest


def test_an_image_pushed_through_the_ecr_api_runs_in_docker(
    docker_engine, busybox_image, skopeo, registry, ecr, tmp_path
):
    """The busybox image as an OCI layout (skopeo), pushed with boto3 alone -- the ECR API's
    InitiateLayerUpload/UploadLayerPart/CompleteLayerUpload and PutImage -- then pulled by docker."""
    busybox_image.restore()
    layout = tmp_path / "layout"
    skopeo.run(
        "copy",
        "--src-daemon-host",
        docker_engine.host,
        f"docker-daemon:{busybox_image.ref}",
        f"oci:{layout}:v1",
        timeout=300,
    )
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = (layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text()
    document = json.loads(manifest)
    repo = unique_name("ecr-api")
    ecr.create_repository(repositoryName=repo)
    for descriptor in (document["config"], *document["layers"]):
        upload_blob(ecr, repo, (layout / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_bytes())
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")
    docker_login(docker_engine, registry)
    reference = f"{host_of(registry)}/{repo}:v1"
    docker_engine.run("pull", reference, timeout=300)
    assert (
        docker_engine.run("run", "--rm", "--network", "none", reference).stdout.strip() == busybox_image.content.strip()
    )


def test_containerd_pulls_and_pushes(ctr, pushed, registry, ecr):
    reference, repo = pushed
    credentials = f"AWS:{login_password(registry)}"
    ctr.run("images", "pull", "--plain-http", "--user", credentials, reference, timeout=300)
    copy = f"{host_of(registry)}/{repo}:from-ctr"
    ctr.run("images", "tag", "--force", reference, copy)
    ctr.run("images", "push", "--plain-http", "--user", credentials, copy, timeout=300)
    tags = {t for d in ecr.describe_images(repositoryName=repo)["imageDetails"] for t in d.get("imageTags", [])}
    assert tags == {"v1", "from-ctr"}


def test_skopeo_copies_to_and_from_an_oci_layout_and_lists_tags(skopeo, pushed, registry, ecr, tmp_path):
    reference, repo = pushed
    credentials = f"AWS:{login_password(registry)}"
    layout = tmp_path / "copy"
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        credentials,
        f"docker://{reference}",
        f"oci:{layout}:v1",
        timeout=300,
    )
    back = f"{host_of(registry)}/{repo}:from-skopeo"
    skopeo.run(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        credentials,
        f"oci:{layout}:v1",
        f"docker://{back}",
        timeout=300,
    )
    listed = skopeo.run(
        "list-tags", "--tls-verify=false", "--creds", credentials, f"docker://{host_of(registry)}/{repo}"
    ).stdout
    assert sorted(json.loads(listed)["Tags"]) == ["from-skopeo", "v1"]


def test_logged_out_and_pull_only_keys_are_refused(docker_engine, pushed, registry, issue_key, ecr):
    reference, repo = pushed
    docker_engine.run("logout", host_of(registry))
    docker_engine.run("rmi", reference)
    refused = docker_engine.run("pull", reference, check=False, timeout=300)
    assert refused.returncode != 0 and (
        "no basic auth credentials" in refused.stderr or "unauthorized" in refused.stderr.lower()
    ), refused.stderr
    key = issue_key("000000000000", (["pull"], ["*"]))
    docker_login(docker_engine, registry, access_key_id=key.access_key_id, secret=key.secret)
    docker_engine.run("pull", reference, timeout=300)
    other = f"{host_of(registry)}/{repo}:by-reader"
    docker_engine.run("tag", reference, other)
    denied = docker_engine.run("push", other, check=False, timeout=300)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
    tags = {t for d in ecr.describe_images(repositoryName=repo)["imageDetails"] for t in d.get("imageTags", [])}
    assert tags == {"v1"}


def test_an_immutable_tag_refuses_other_content_with_ecrs_message(docker_engine, busybox_image, pushed, ecr):
    reference, repo = pushed
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    before = ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageDigest"]
    other = busybox_image.with_random_layer("local/other:test", 0.01)
    docker_engine.run("tag", other, reference)
    refused = docker_engine.run("push", reference, check=False, timeout=300)
    assert refused.returncode != 0
    assert "cannot be overwritten because the tag is immutable" in refused.stderr, refused.stderr
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert detail["imageDigest"] == before


def test_a_layer_past_the_payload_limit_says_why(docker_engine, busybox_image, registry, ecr):
    busybox_image.restore()
    repo = unique_name("big-layer")
    ecr.create_repository(repositoryName=repo)
    docker_login(docker_engine, registry)
    big = busybox_image.with_random_layer("local/big:test", 6)
    reference = f"{host_of(registry)}/{repo}:v1"
    docker_engine.run("tag", big, reference)
    refused = docker_engine.run("push", reference, check=False, timeout=300)
    assert refused.returncode != 0
    assert "4.4 MiB" in refused.stderr, refused.stderr
