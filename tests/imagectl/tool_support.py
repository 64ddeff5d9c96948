"""imagectl's test helpers: how a user runs it (Ran, user_environment) and the fixtures that need the
container tools (here, not in conftest.py, whose imports of the tools' fixtures their parameters would shadow)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, sha256

REGION = "us-east-1"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        """`--output json`'s events, one JSON object a line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    @property
    def result(self) -> dict:
        (result,) = [e for e in self.events if e["event"] == "result"]
        return result


def user_environment(registry, cache: Path, docker_engine=None) -> dict[str, str]:
    """What a user's shell has: the registry's key, Region and endpoint, a cache dir of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_"))}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_ECR=registry.endpoint,
        AWS_CONFIG_FILE=str(cache / "aws-config"),  # none: no profile of the machine's user leaks in
        AWS_SHARED_CREDENTIALS_FILE=str(cache / "aws-credentials"),
        XDG_CACHE_HOME=str(cache),
    )
    if docker_engine is not None:
        env["DOCKER_HOST"] = docker_engine.env["DOCKER_HOST"]
    return env


def host_of(registry) -> str:
    return urlsplit(registry.endpoint).netloc


@pytest.fixture
def docker_logged_in(docker_engine, registry, ecr):
    """docker logged in to the registry with GetAuthorizationToken's password."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    docker_engine.run("login", "-u", "AWS", "--password-stdin", host_of(registry), input=password)
    return host_of(registry)


@pytest.fixture
def saved_busybox(docker_engine, busybox_image, tmp_path) -> Path:
    """`docker save` of the busybox image alone."""
    busybox_image.restore()
    archive = tmp_path / "busybox.tar"
    docker_engine.run("save", "-o", archive, busybox_image.ref)
    return archive


# --- OCI image layouts made in the test ------------------------------------------------------------


def new_layout(layout: Path) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def write_blob(layout: Path, data: bytes) -> dict:
    """`data` as a blob of the layout; its digest and size."""
    (layout / "blobs" / "sha256" / sha256(data).split(":")[1]).write_bytes(data)
    return {"digest": sha256(data), "size": len(data)}


def platform_image(layout: Path, arch: str, layers: list[bytes]) -> dict:
    """An image manifest for linux/`arch` with these layers, written into the layout; its descriptor."""
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **write_blob(layout, config.encode())},
        "layers": [{"mediaType": OCI_LAYER, **write_blob(layout, layer)} for layer in layers],
    }
    return {"mediaType": OCI_MANIFEST, **write_blob(layout, json.dumps(manifest).encode())}


def image_layout(layout: Path, layers: list[bytes], ref: str = "v1") -> dict:
    """An OCI layout holding one linux/amd64 image named `ref`; the image's descriptor."""
    new_layout(layout)
    image = platform_image(layout, "amd64", layers)
    entry = {**image, "annotations": {"org.opencontainers.image.ref.name": ref}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return image


# --- a stand-in for S3 or the registry, answering as the test says --------------------------------


class LoopbackServer(http.server.ThreadingHTTPServer):
    """An HTTP server on a free loopback port; its handler (a QuietHandler) reads the test's state
    from attributes of the server."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def answer(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Callable[[LoopbackServer], LoopbackServer]]:
    """serve(server) → the server, answering in the background until the test ends."""
    started: list[LoopbackServer] = []

    def start(server: LoopbackServer) -> LoopbackServer:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
