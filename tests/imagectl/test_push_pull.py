"""push, pull and copy against the real tools (GUIDE 15): what imagectl pushes, docker pulls and
runs; what it pulls, docker loads and runs; what it copies from CNCF Distribution is the same image."""

from __future__ import annotations

import json
import os
from base64 import b64decode

from tool_support import host_of, image_layout


def run_in_docker(docker_engine, reference: str) -> str:
    return docker_engine.run("run", "--rm", "--network", "none", reference).stdout.strip()


def test_docker_save_pushed_then_docker_pulls_and_runs_it(
    imagectl, saved_busybox, repository, docker_engine, docker_logged_in, busybox_image, ecr
):
    pushed = imagectl("--output", "json", "push", saved_busybox, f"{repository}:v1", "--create")
    assert pushed.returncode == 0, pushed.stderr
    (detail,) = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert detail["imageTags"] == ["v1"] and detail["imageDigest"] == pushed.result["digest"]

    reference = f"{docker_logged_in}/{repository}:v1"
    docker_engine.run("pull", reference, timeout=300)
    assert run_in_docker(docker_engine, reference) == busybox_image.content.strip()


def test_pulled_into_a_docker_archive_docker_loads_and_runs_it(
    imagectl, saved_busybox, repository, docker_engine, busybox_image, registry, tmp_path
):
    assert imagectl("push", f"docker-archive:{saved_busybox}", f"{repository}:v2", "--create").returncode == 0
    archive = tmp_path / "pulled.tar"
    pulled = imagectl("pull", f"{repository}:v2", archive)
    assert pulled.returncode == 0, pulled.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled")]  # nothing half-written left

    loaded = docker_engine.run("load", "-i", archive).stdout
    reference = f"{host_of(registry)}/{repository}:v2"
    assert reference in loaded
    assert run_in_docker(docker_engine, reference) == busybox_image.content.strip()


def test_an_engine_image_pushed_and_pulled_as_an_oci_layout_is_the_same_image(
    imagectl, busybox_image, repository, skopeo, tmp_path
):
    busybox_image.restore()
    pushed = imagectl("--output", "json", "push", f"docker-daemon:{busybox_image.ref}", f"{repository}:v1", "--create")
    assert pushed.returncode == 0, pushed.stderr
    layout = tmp_path / "layout"
    pulled = imagectl("--output", "json", "pull", f"{repository}:v1", f"oci:{layout}")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.result["digest"] == pushed.result["digest"]
    # skopeo reads the layout and finds the busybox image's config in it
    inspected = json.loads(skopeo.run("inspect", "--config", f"oci:{layout}:v1").stdout)
    assert inspected["config"]["Cmd"] == ["cat", busybox_image.file]


def test_copy_from_distribution_keeps_the_manifest_and_docker_runs_it(
    imagectl, busybox_image, distribution_registry, docker_engine, docker_logged_in, repository, ecr
):
    busybox_image.restore()
    source = f"{distribution_registry.host}/library/busybox:copied"
    docker_engine.run("tag", busybox_image.ref, source)
    docker_engine.run("push", source, timeout=300)
    distribution_digest = docker_engine.run("image", "inspect", "--format", "{{index .RepoDigests 0}}", source)
    copied = imagectl("--output", "json", "copy", source, f"{repository}:copied", "--create")
    assert copied.returncode == 0, copied.stderr
    assert copied.result["digest"] == distribution_digest.stdout.strip().split("@")[1]

    reference = f"{docker_logged_in}/{repository}:copied"
    docker_engine.run("pull", reference, timeout=300)
    assert run_in_docker(docker_engine, reference) == busybox_image.content.strip()


def test_copy_with_basic_credentials_and_without(imagectl, registry, ecr, repository, tmp_path):
    """The registry's own /v2 as a source that wants Basic auth (GetAuthorizationToken's password)."""
    image_layout(tmp_path / "layout", [os.urandom(4096)])
    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1", "--create")
    assert pushed.returncode == 0, pushed.stderr
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    source = f"{host_of(registry)}/{repository}:v1"

    anonymous = imagectl("copy", source, f"{repository}-copy:v1", "--create")
    assert anonymous.returncode == 5 and "needs credentials" in anonymous.stderr
    copied = imagectl(
        "--output",
        "json",
        "copy",
        source,
        f"{repository}-copy:v1",
        "--create",
        "--src-creds",
        b64decode(token).decode(),
    )
    assert copied.returncode == 0, copied.stderr
    assert copied.result["digest"] == pushed.result["digest"]


def test_an_oci_archive_pulled_pushes_back_as_the_same_image(imagectl, repository, tmp_path):
    image_layout(tmp_path / "layout", [os.urandom(4096), os.urandom(100)])
    pushed = imagectl("--output", "json", "push", f"oci:{tmp_path / 'layout'}:v1", f"{repository}:v1", "--create")
    assert pushed.returncode == 0, pushed.stderr
    archive = tmp_path / "image.oci.tar"
    assert imagectl("pull", f"{repository}@{pushed.result['digest']}", f"oci-archive:{archive}").returncode == 0
    again = imagectl("--output", "json", "push", archive, f"{repository}:again")
    assert again.returncode == 0, again.stderr
    assert again.result["digest"] == pushed.result["digest"] and again.result["blobsSkipped"] == 3


def test_an_archive_of_several_images_needs_the_one_named(imagectl, busybox_image, repository, ecr):
    """busybox_image.archive holds the base image and the image built on it (`docker save` of two)."""
    busybox_image.restore()
    unnamed = imagectl("push", busybox_image.archive, f"{repository}:v1", "--create")
    assert (
        unnamed.returncode == 6 and busybox_image.ref in unnamed.stderr and "docker-archive:PATH:TAG" in unnamed.stderr
    )
    named = imagectl(
        "--output",
        "json",
        "push",
        f"docker-archive:{busybox_image.archive}:{busybox_image.ref}",
        f"{repository}:v1",
        "--create",
    )
    assert named.returncode == 0, named.stderr
    (image,) = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])["images"]
    # docs/images.md#what-goes-up: a docker save layer goes up as it is, an uncompressed tar
    assert json.loads(image["imageManifest"])["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
