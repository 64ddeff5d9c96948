"""A multi-platform index goes with its children; a layer larger than a part (and than Lambda's
6 MB payload) goes up in the registry's parts; a push killed half-way and run again sends only
the rest; a push run again when everything is there sends nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

from support import OCI_INDEX, sha256
from tool_support import image_layout, new_layout, platform_image, write_blob

MiB = 1 << 20


def two_platform_layout(layout: Path) -> dict[str, str]:
    """An OCI layout whose one image is an index of a linux/amd64 and a linux/arm64 image; the
    digests of the index and of each platform's manifest."""
    new_layout(layout)
    children, digests = [], {}
    for arch in ("amd64", "arm64"):
        child = platform_image(layout, arch, [os.urandom(1024)])
        children.append({**child, "platform": {"os": "linux", "architecture": arch}})
        digests[f"linux/{arch}"] = child["digest"]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    entry = {
        "mediaType": OCI_INDEX,
        **write_blob(layout, index),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    digests["index"] = entry["digest"]
    return digests


def test_a_multi_platform_index_goes_with_its_children_and_comes_back(imagectl, repository, ecr, tmp_path):
    digests = two_platform_layout(tmp_path / "layout")
    pushed = imagectl("--output", "json", "push", f"oci:{tmp_path / 'layout'}", f"{repository}:multi", "--create")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["digest"] == digests["index"] and pushed.result["manifests"] == 3
    images = {
        d["imageDigest"]: d.get("imageTags", []) for d in ecr.describe_images(repositoryName=repository)["imageDetails"]
    }
    assert images == {digests["index"]: ["multi"], digests["linux/amd64"]: [], digests["linux/arm64"]: []}

    pulled = imagectl("pull", f"{repository}:multi", f"oci:{tmp_path / 'back'}")
    assert pulled.returncode == 0, pulled.stderr
    original = {p.name: p.read_bytes() for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir()}
    back = {p.name: p.read_bytes() for p in (tmp_path / "back" / "blobs" / "sha256").iterdir()}
    assert back == original

    archive = tmp_path / "arm64.tar"
    assert imagectl("pull", "--platform", "linux/arm64", f"{repository}:multi", archive).returncode == 0
    with tarfile.open(archive) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
        config = json.load(tar.extractfile(entry["Config"]))
    assert config["architecture"] == "arm64"


def start_push(user_env, source: Path, destination: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "imagectl", "--output", "json", "--jobs", "1", "push", source, destination, "--create"],
        env=user_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_push_killed_half_way_sends_only_the_rest_when_run_again(
    imagectl, user_env, busybox_image, docker_engine, repository, ecr, tmp_path
):
    """A 24 MiB random layer: six parts of the registry's 4 MiB, each larger than Lambda's payload
    allows in one request. The first run is killed (SIGKILL) once the registry has acknowledged the
    big layer's first part; the second sends what the registry lacks, from where it stopped."""
    big = busybox_image.with_random_layer("local/big:resume", 24)
    archive = tmp_path / "big.tar"
    docker_engine.run("save", "-o", archive, big)
    big_layer = json.loads(docker_engine.run("image", "inspect", big).stdout)[0]["RootFS"]["Layers"][-1]

    first = start_push(user_env, archive, f"{repository}:big")
    acknowledged = 0
    for line in first.stdout:  # the events as they come: kill once the big layer is part-way up
        event = json.loads(line)
        if event["event"] == "progress" and event["digest"] == big_layer:
            acknowledged = event["bytes"]
            first.send_signal(signal.SIGKILL)
            break
    first.wait(60)
    first.stdout.close()
    first.stderr.close()
    assert first.returncode == -signal.SIGKILL and 0 < acknowledged < 24 * MiB

    second = imagectl("--output", "json", "push", archive, f"{repository}:big")
    assert second.returncode == 0, second.stderr
    (layer,) = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[big_layer])["layers"]
    resumed_at = second.result["resumed"][big_layer]
    assert resumed_at >= acknowledged  # nothing the registry had acknowledged went again
    # One worker pushed the smaller blobs before the big layer: the second run sends the big layer's rest only.
    assert second.result["blobsUploaded"] == 1
    assert second.result["bytesUploaded"] == layer["layerSize"] - resumed_at
    starts = {e["digest"]: e["offset"] for e in second.events if e["event"] == "start"}
    assert starts == {big_layer: resumed_at}

    # The layer the registry assembled from the two runs is the source's, byte for byte: a pull verifies it.
    assert imagectl("pull", f"{repository}:big", f"oci:{tmp_path / 'back'}").returncode == 0
    # Everything is there now: a third run sends nothing.
    third = imagectl("--output", "json", "push", archive, f"{repository}:again")
    assert third.returncode == 0 and third.result["bytesUploaded"] == 0 and third.result["blobsUploaded"] == 0


def forge_state(user_env, registry, repository: str, digest: str, upload_id: str, last_byte: int) -> None:
    """The resume state as a run killed at the wrong moment leaves it (resume.py's format)."""
    from imagectl.resume import PendingUpload, ResumeState

    state = ResumeState(Path(user_env["XDG_CACHE_HOME"]) / "imagectl" / "uploads.json")
    state.record(
        ResumeState.key(registry.endpoint, "000000000000", repository, digest),
        PendingUpload(upload_id, 4 * MiB, last_byte),
    )


def test_where_the_registry_holds_more_than_recorded_the_push_goes_on_from_there(
    imagectl, user_env, registry, repository, ecr, tmp_path
):
    """Killed after the registry took a part but before the state recorded it: the next part's
    InvalidLayerPartException names the registry's last byte, and the push goes on from it."""
    layer = os.urandom(9 * MiB)
    image_layout(tmp_path / "layout", [layer])
    ecr.create_repository(repositoryName=repository)
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repository,
        uploadId=upload,
        partFirstByte=0,
        partLastByte=4 * MiB - 1,
        layerPartBlob=layer[: 4 * MiB],
    )
    forge_state(user_env, registry, repository, sha256(layer), upload, -1)

    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["resumed"] == {sha256(layer): 4 * MiB}
    assert pushed.result["bytesUploaded"] == 5 * MiB + len(config_of(tmp_path / "layout"))


def test_an_upload_the_registry_forgot_starts_afresh(imagectl, user_env, registry, repository, ecr, tmp_path):
    layer = os.urandom(5 * MiB)
    image_layout(tmp_path / "layout", [layer])
    ecr.create_repository(repositoryName=repository)
    forge_state(user_env, registry, repository, sha256(layer), str(uuid.uuid4()), 4 * MiB - 1)

    pushed = imagectl("--output", "json", "push", tmp_path / "layout", f"{repository}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.result["resumed"] == {}
    assert pushed.result["bytesUploaded"] == 5 * MiB + len(config_of(tmp_path / "layout"))


def config_of(layout: Path) -> bytes:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_text())
    return (layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes()
