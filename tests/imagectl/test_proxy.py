"""`imagectl proxy` (docs/images.md#the-local-proxy) as a user runs it, with the clients it is for:
docker pushes a layer far past what one request to the registry may carry (one chunked PATCH),
containerd too (ctr: one monolithic PUT), the registry's errors reach docker as the registry says
them, skopeo copies through it, docker pulls through it. What no tool here sends on its own
(Content-Range chunks, an out-of-order chunk, a wrong digest, mounts) is driven with requests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support import sha256, unique_name, upload_blob

from imagectl.proxy.upstream import REFRESH_BEFORE, Upstream

MiB = 1 << 20
# Bytes. The 200 MiB layer held whole would be ~270 MB with Python's own ~60; the proxy spools it
# to disk and sends it in 1 MiB blocks (66 MB measured); through UploadLayerPart it holds one 4 MiB
# part an upload (docker sends three at once) and its copies on the way to boto3 (~90 MB).
PEAK_RSS_BOUND = 160 * 1000 * 1000


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen
    log: Path
    direct: bool  # what it said at start: it sends layers straight to S3
    way: str = ""  # how its uploads go on (either_proxy)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    def requests(self) -> str:
        """The requests it answered, from its log (a line each, written before the answer)."""
        return self.log.read_text()

    def way_of(self, size: int) -> str:
        """How the upload of `size` bytes went on, as the log says, without a direct upload's part count."""
        found = re.search(rf" upload \S+: {size} bytes (.+?)(?: in \d+ parts)?$", self.requests(), re.MULTILINE)
        assert found, f"no upload of {size} bytes in the proxy's log"
        return found[1]

    def peak_rss(self) -> int:
        """The proxy process's peak resident set (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")


def start_proxy(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with log.open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "imagectl", "--output", "json", "proxy", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


@contextlib.contextmanager
def running_proxy(env: dict[str, str], log: Path) -> Iterator[Proxy]:
    """`imagectl proxy --listen 127.0.0.1:0`, ready once it has said where it listens."""
    process = start_proxy(env, log, "--listen", "127.0.0.1:0")
    try:
        first = process.stdout.readline()  # type: ignore[union-attr]
        assert first, f"the proxy exited {process.wait(10)}: {log.read_text()}"
        listening = json.loads(first)
        yield Proxy(listening["url"], process, log, listening["directUploads"])
    finally:
        process.terminate()  # SIGTERM stops it as Ctrl-C does
        assert process.wait(20) == 0
        process.stdout.close()  # type: ignore[union-attr]


@pytest.fixture
def proxy(user_env, tmp_path):
    with running_proxy(user_env, tmp_path / "proxy.log") as running:
        yield running


STRAIGHT, THROUGH_PARTS, SPOOLED_PARTS = (
    "straight to S3",
    "through UploadLayerPart",
    "through UploadLayerPart (spooled)",
)
# The registry's direct upload limit for each way: the default; none (the extension off); 1 MiB
DIRECT_LIMITS = {STRAIGHT: None, THROUGH_PARTS: "0", SPOOLED_PARTS: str(MiB)}


@pytest.fixture(params=list(DIRECT_LIMITS))
def either_proxy(request, user_env, tmp_path, start_registry):
    """A proxy to the registry (its uploads spooled, then sent straight to S3); one to a registry
    without direct uploads (parts through UploadLayerPart as they arrive); one to a registry whose
    direct uploads stop at 1 MiB (spooled, then read back into UploadLayerPart parts). The registries
    share the backends, so `repo` and `ecr` are the same for all. `proxy.way` is what its log says
    of each finished upload over 1 MiB."""
    env, limit = user_env, DIRECT_LIMITS[request.param]
    if limit is not None:
        env = {**user_env, "AWS_ENDPOINT_URL_ECR": start_registry(REGISTRY_DIRECT_UPLOAD_MAX_BYTES=limit).endpoint}
    with running_proxy(env, tmp_path / "proxy.log") as running:
        assert running.direct == (request.param != THROUGH_PARTS)  # it asked the registry at start
        running.way = request.param
        yield running


# --- docker, containerd, skopeo ----------------------------------------------------------------------


def test_docker_pushes_a_200_mib_layer_through_the_proxy_then_pulls_it_from_the_registry_and_runs_it(
    proxy, repo, busybox_image, docker_engine, docker_logged_in, ecr
):
    busybox_image.restore()
    built = busybox_image.with_random_layer(f"local/big-proxy:{repo.rsplit('-', 1)[1]}", 200)
    through_proxy = f"{proxy.host}/{repo}:v1"
    docker_engine.run("tag", built, through_proxy)
    docker_engine.run("push", through_proxy, timeout=600)

    assert f"PATCH /v2/{repo}/blobs/uploads/" in proxy.requests()  # docker's one PATCH of a whole layer
    assert f"bytes {STRAIGHT} in 13 parts" in proxy.requests()  # the 200 MiB layer (and its gzip's few bytes more)
    peak = proxy.peak_rss()
    print(f"\nproxy peak RSS during the 200 MiB push: {peak / 1e6:.0f} MB")
    assert peak < PEAK_RSS_BOUND
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert detail["imageSizeInBytes"] > 200 * MiB  # docker gzips; random bytes stay as large

    docker_engine.run("rmi", through_proxy, built)
    from_registry = f"{docker_logged_in}/{repo}:v1"
    docker_engine.run("pull", from_registry, timeout=600)
    listed = docker_engine.run("run", "--rm", "--network", "none", from_registry, "ls", "-l", "/random.bin")
    assert str(200 * MiB) in listed.stdout


def test_the_registrys_errors_reach_docker_as_the_registry_says_them(proxy, busybox_image, docker_engine, ecr):
    busybox_image.restore()
    immutable = unique_name("immutable")
    ecr.create_repository(repositoryName=immutable, imageTagMutability="IMMUTABLE")
    docker_engine.run("tag", busybox_image.ref, f"{proxy.host}/{immutable}:v1")
    docker_engine.run("push", f"{proxy.host}/{immutable}:v1", timeout=300)

    docker_engine.run("tag", busybox_image.base, f"{proxy.host}/{immutable}:v1")
    taken = docker_engine.run("push", f"{proxy.host}/{immutable}:v1", timeout=300, check=False)
    assert taken.returncode != 0
    assert f"The image tag 'v1' already exists in the '{immutable}' repository" in taken.stderr

    absent = unique_name("absent")
    docker_engine.run("tag", busybox_image.ref, f"{proxy.host}/{absent}:v1")
    unknown = docker_engine.run("push", f"{proxy.host}/{absent}:v1", timeout=300, check=False)
    assert unknown.returncode != 0 and "name unknown" in unknown.stderr and absent in unknown.stderr


def test_containerd_pushes_an_8_mib_layer_through_the_proxy(
    proxy, repo, busybox_image, docker_engine, ctr, tmp_path, ecr
):
    """containerd sends each blob as one monolithic PUT (no chunked upload): past the 4.4 MiB a
    request to the registry may carry."""
    busybox_image.restore()
    built = busybox_image.with_random_layer(f"local/big-ctr:{repo.rsplit('-', 1)[1]}", 8)
    docker_engine.run("save", "-o", tmp_path / "big.tar", built)
    ctr.run("images", "import", "--base-name", "local/big-ctr", tmp_path / "big.tar", timeout=120)
    through_proxy = f"{proxy.host}/{repo}:from-ctr"
    try:
        ctr.run("images", "tag", "--force", f"docker.io/{built}", through_proxy)
        ctr.run("images", "push", "--plain-http", through_proxy, timeout=300)
    finally:
        ctr.run("images", "rm", f"docker.io/{built}", through_proxy, check=False)
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "from-ctr"}])["imageDetails"]
    assert detail["imageSizeInBytes"] > 8 * MiB
    requests_seen = proxy.requests()
    assert f"PUT /v2/{repo}/blobs/uploads/" in requests_seen and "PATCH " not in requests_seen


def test_skopeo_copies_through_the_proxy_and_reads_it_back(proxy, repo, saved_busybox, skopeo, ecr):
    destination = f"docker://{proxy.host}/{repo}:copied"
    skopeo.run("copy", "--dest-tls-verify=false", f"docker-archive:{saved_busybox}", destination, timeout=300)
    (detail,) = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "copied"}])["imageDetails"]

    inspected = json.loads(skopeo.run("inspect", "--tls-verify=false", destination).stdout)
    assert inspected["Digest"] == detail["imageDigest"]


def test_docker_pulls_through_the_proxy(proxy, repo, imagectl, saved_busybox, busybox_image, docker_engine):
    assert imagectl("push", saved_busybox, f"{repo}:v1").returncode == 0
    through_proxy = f"{proxy.host}/{repo}:v1"
    docker_engine.run("pull", through_proxy, timeout=300)
    ran = docker_engine.run("run", "--rm", "--network", "none", through_proxy)
    assert ran.stdout.strip() == busybox_image.content.strip()


# --- the other upload modes, as their clients send them -------------------------------------------


def start_upload(proxy: Proxy, repo: str) -> str:
    started = requests.post(f"{proxy.url}/v2/{repo}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    assert started.headers["Range"] == "0-0"
    return proxy.url + started.headers["Location"]


def test_chunks_with_content_range_cross_the_registrys_parts(either_proxy, repo, ecr):
    """9 MiB in chunks of 3 MiB: spooled, or the registry's 4 MiB parts cut across the chunks."""
    proxy, blob = either_proxy, os.urandom(9 * MiB)
    location = start_upload(proxy, repo)
    for first in range(0, len(blob), 3 * MiB):
        chunk = blob[first : first + 3 * MiB]
        headers = {"Content-Range": f"{first}-{first + len(chunk) - 1}", "Content-Type": "application/octet-stream"}
        patched = requests.patch(location, data=chunk, headers=headers, timeout=60)
        assert patched.status_code == 202, patched.text
        assert patched.headers["Range"] == f"0-{first + len(chunk) - 1}"
        location = proxy.url + patched.headers["Location"]

    status = requests.get(location, timeout=30)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(blob) - 1}"
    done = requests.put(location, params={"digest": sha256(blob)}, timeout=60)
    assert done.status_code == 201 and done.headers["Docker-Content-Digest"] == sha256(blob)
    (layer,) = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[sha256(blob)])["layers"]
    assert layer["layerSize"] == len(blob)
    assert proxy.way_of(len(blob)) == proxy.way


def test_a_chunk_out_of_order_is_refused_with_where_the_upload_stands(proxy, repo):
    location = start_upload(proxy, repo)
    assert requests.patch(location, data=b"a" * 100, headers={"Content-Range": "0-99"}, timeout=30).status_code == 202
    skipped = requests.patch(location, data=b"b" * 100, headers={"Content-Range": "200-299"}, timeout=30)
    assert skipped.status_code == 416 and skipped.headers["Range"] == "0-99"
    assert skipped.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"


def test_a_monolithic_put_streamed_in_chunked_encoding(either_proxy, repo, ecr):
    """containerd's one PUT ?digest= with the whole body; sent chunked, as docker sends its PATCH."""
    proxy, blob = either_proxy, os.urandom(17 * MiB + 17)  # two direct parts; five UploadLayerParts
    location = start_upload(proxy, repo)
    pieces = (blob[i : i + MiB] for i in range(0, len(blob), MiB))  # a generator: requests sends it chunked
    done = requests.put(location, params={"digest": sha256(blob)}, data=pieces, timeout=60)
    assert done.status_code == 201, done.text
    (layer,) = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[sha256(blob)])["layers"]
    assert layer["layerAvailability"] == "AVAILABLE" and layer["layerSize"] == len(blob)
    assert proxy.way_of(len(blob)) == proxy.way


def test_bytes_that_are_not_the_digest_named_are_the_registrys_digest_invalid(either_proxy, repo, ecr):
    proxy, blob, claimed = either_proxy, os.urandom(1000), sha256(b"something else")
    location = start_upload(proxy, repo)
    refused = requests.put(location, params={"digest": claimed}, data=blob, timeout=30)
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["code"] == "DIGEST_INVALID" and claimed in error["message"]
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[claimed])["failures"]
    assert requests.get(location, timeout=30).json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_an_unknown_repository_is_name_unknown_at_the_first_post(proxy):
    absent = unique_name("absent")
    refused = requests.post(f"{proxy.url}/v2/{absent}/blobs/uploads/", timeout=30)
    assert refused.status_code == 404
    (error,) = refused.json()["errors"]
    assert error["code"] == "NAME_UNKNOWN" and absent in error["message"]


def test_a_blob_of_another_repository_is_mounted_and_a_head_finds_it(proxy, repo, ecr):
    source = unique_name("mount-source")
    ecr.create_repository(repositoryName=source)
    digest = upload_blob(ecr, source, os.urandom(2048))
    before = requests.head(f"{proxy.url}/v2/{repo}/blobs/{digest}", timeout=30)
    assert before.status_code == 404

    mounted = requests.post(
        f"{proxy.url}/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}, timeout=30
    )
    assert mounted.status_code == 201 and mounted.headers["Docker-Content-Digest"] == digest
    assert mounted.headers["Location"] == f"/v2/{repo}/blobs/{digest}"  # on the proxy, not the registry
    found = requests.head(f"{proxy.url}/v2/{repo}/blobs/{digest}", allow_redirects=True, timeout=30)  # as docker
    assert found.status_code == 200 and int(found.headers["Content-Length"]) == 2048


def test_a_mount_the_registry_cannot_make_becomes_an_upload_of_the_proxys(proxy, repo):
    absent = sha256(b"in no repository")
    started = requests.post(
        f"{proxy.url}/v2/{repo}/blobs/uploads/", params={"mount": absent, "from": "test/nowhere"}, timeout=30
    )
    assert started.status_code == 202
    upload_id = started.headers["Docker-Upload-UUID"]
    assert started.headers["Location"] == f"/v2/{repo}/blobs/uploads/{upload_id}"
    assert requests.get(proxy.url + started.headers["Location"], timeout=30).status_code == 204


def test_without_credentials_the_proxy_does_not_start(user_env, tmp_path):
    anonymous = {k: v for k, v in user_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    refused = start_proxy(anonymous, tmp_path / "proxy.log", "--listen", "127.0.0.1:0")
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 5 and json.loads(out)["code"] == "Credentials"
    assert "no AWS credentials" in (tmp_path / "proxy.log").read_text()


def test_a_non_loopback_listen_is_refused_unless_allowed(user_env, tmp_path):
    refused = start_proxy(user_env, tmp_path / "proxy.log", "--listen", "0.0.0.0:0")
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "no login of its own" in (tmp_path / "proxy.log").read_text() and "--allow-remote" in out


def test_the_login_is_renewed_before_it_expires(ecr):
    now = time.time()
    upstream = Upstream(ecr, clock=lambda: now)
    first = upstream.current
    assert first.expires_at > now + REFRESH_BEFORE
    assert upstream.authorization() == first.basic and upstream.current is first
    now = first.expires_at - REFRESH_BEFORE + 1
    upstream.authorization()
    assert upstream.current is not first and upstream.current.expires_at > first.expires_at - REFRESH_BEFORE
