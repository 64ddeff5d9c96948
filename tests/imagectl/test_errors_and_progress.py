"""Clear errors and nothing half-done: each failure a user meets exits with its documented code
(docs/images.md#exit-codes) and leaves the registry and the destination as they were. And the
progress display: bars on a terminal (a pseudo-terminal here), plain lines otherwise."""

from __future__ import annotations

import gzip
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import unique_name
from tool_support import image_layout

from imagectl.errors import DigestMismatch
from imagectl.oci import Manifest
from imagectl.progress import PlainReporter
from imagectl.pull import pull

MiB = 1 << 20


@pytest.fixture
def layout(tmp_path) -> Path:
    image_layout(tmp_path / "layout", [os.urandom(2048)])
    return tmp_path / "layout"


def test_an_unknown_repository_is_named_with_the_way_to_create_it(imagectl, layout, repository, ecr):
    refused = imagectl("push", layout, f"{repository}:v1")
    assert refused.returncode == 3
    assert repository in refused.stderr and "--create" in refused.stderr
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.describe_repositories(repositoryNames=[repository])


def test_a_taken_immutable_tag_is_refused_and_keeps_its_image(imagectl, layout, tmp_path, ecr):
    repository = unique_name("immutable")
    ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    first = imagectl("--output", "json", "push", layout, f"{repository}:v1")
    assert first.returncode == 0, first.stderr
    image_layout(tmp_path / "other", [os.urandom(2048)])
    refused = imagectl("--output", "json", "push", tmp_path / "other", f"{repository}:v1")
    assert refused.returncode == 4 and "immutable" in refused.stderr
    assert refused.events[-1] == {
        "event": "error",
        "code": "ImmutableTagTaken",
        "message": refused.stderr.strip().removeprefix("imagectl: "),
        "exitCode": 4,
    }
    (detail,) = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert detail["imageDigest"] == first.result["digest"]


def test_missing_and_rejected_credentials(imagectl, user_env, layout, repository):
    anonymous = {k: v for k, v in user_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    missing = imagectl("push", layout, f"{repository}:v1", "--create", env=anonymous)
    assert missing.returncode == 5 and "no AWS credentials" in missing.stderr
    wrong = imagectl("pull", f"{repository}:v1", "out", env={**user_env, "AWS_SECRET_ACCESS_KEY": "wrong"})
    assert wrong.returncode == 5 and "refused the credentials" in wrong.stderr
    no_profile = imagectl("--profile", "nosuch", "pull", f"{repository}:v1", "out")
    assert no_profile.returncode == 5 and "(nosuch) could not be found" in no_profile.stderr


def test_unreadable_and_malformed_sources(imagectl, tmp_path, repository, ecr):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    compressed = tmp_path / "saved.tar.gz"
    compressed.write_bytes(gzip.compress(b"not even a tar"))
    no_index = tmp_path / "empty-layout"
    no_index.mkdir()
    for source, why in (
        (tmp_path / "absent.tar", "no such file"),
        (garbage, "not a readable uncompressed tar"),
        (compressed, "gunzip it first"),
        (no_index, "index.json"),
    ):
        refused = imagectl("push", source, f"{repository}:v1", "--create")
        assert (refused.returncode, why in refused.stderr) == (6, True), refused.stderr
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):  # refused before anything was created
        ecr.describe_repositories(repositoryNames=[repository])


def test_a_layer_whose_bytes_do_not_match_its_digest_is_refused_untagged(imagectl, layout, repository, ecr):
    blobs = sorted((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    tampered = next(p for p in blobs if p.stat().st_size == 2048)  # the layer
    tampered.write_bytes(os.urandom(2048))
    refused = imagectl("push", layout, f"{repository}:v1", "--create")
    assert refused.returncode == 7 and "do not hash to it" in refused.stderr
    assert ecr.describe_images(repositoryName=repository)["imageDetails"] == []


def test_a_pull_verifies_every_blob_and_leaves_no_destination(tmp_path):
    """The registry's side cannot be made to lie here: a client that serves other bytes stands in."""
    layer = os.urandom(100)
    manifest = Manifest(
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":'
        b'{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:' + b"0" * 64 + b'","size":100},'
        b'"layers":[]}',
        "application/vnd.oci.image.manifest.v1+json",
    )

    class Lying:
        def manifest(self, repository, reference):
            return manifest

        def open_blob(self, repository, digest, offset=0):
            import io

            return io.BytesIO(layer)

    with pytest.raises(DigestMismatch):
        pull(
            Lying(),
            "repo",
            "v1",
            str(tmp_path / "out"),
            platform_wanted=None,
            name="x",
            jobs=1,
            reporter=PlainReporter(),
        )  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_tag_and_an_existing_destination(imagectl, layout, repository, tmp_path):
    assert imagectl("push", layout, f"{repository}:v1", "--create").returncode == 0
    missing = imagectl("pull", f"{repository}:nope", tmp_path / "out")
    assert missing.returncode == 9 and "MANIFEST_UNKNOWN" in missing.stderr
    (tmp_path / "taken").mkdir()
    exists = imagectl("pull", f"{repository}:v1", tmp_path / "taken")
    assert exists.returncode == 2 and "exists" in exists.stderr


def test_progress_on_a_terminal_and_as_plain_lines(user_env, imagectl, tmp_path, repository):
    image_layout(tmp_path / "big", [os.urandom(6 * MiB)])
    argv = [sys.executable, "-m", "imagectl", "push", tmp_path / "big", f"{repository}:v1", "--create"]
    controller, terminal = pty.openpty()
    with subprocess.Popen(argv, env=user_env, stdin=terminal, stdout=terminal, stderr=terminal) as process:
        os.close(terminal)
        screen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
    os.close(controller)
    assert process.returncode == 0, screen
    text = screen.decode(errors="replace")
    assert "\x1b[" in text  # a live display that redraws itself
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    # the overall bar and the layer's: bytes, rate and time left
    assert "push 2 blobs" in shown and shown.count("6.0/6.0 MiB") >= 2, shown
    assert "MB/s" in shown and "0:00:00" in shown, shown
    assert f"pushed {repository}:v1" in text

    plain = imagectl("pull", f"{repository}:v1", tmp_path / "out")
    assert plain.returncode == 0 and "\x1b" not in plain.stderr
    lines = plain.stderr.splitlines()
    assert lines[0] == "pull 2 blobs, 6.0 MiB"
    assert any(line.endswith("start 6.0 MiB") for line in lines)
    assert any(" verified 6.0 MiB in " in line and "MiB/s" in line for line in lines)
