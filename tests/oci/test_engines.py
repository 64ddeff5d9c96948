"""The harness itself, proven against a real peer: Debian's Distribution (docker-registry 2.8).

docker push / rmi / pull / run, skopeo copy to an OCI layout and back, skopeo list-tags, ctr pull and
push, all over plain HTTP on loopback; then an image with a layer of random MiB. The next step points
the same tools at our own registry. Each step is timed (the summary at the end of the run).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from tools import engines
from tools.engines import timed

LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class Pushed:
    host: str
    repository: str
    tag: str
    digest: str  # of the manifest docker pushed

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"


@pytest.fixture(scope="module")
def pushed(docker_engine, busybox_image, distribution_registry) -> Pushed:
    """local/busybox:test, pushed by docker to Distribution as test/busybox:1."""
    target = Pushed(distribution_registry.host, "test/busybox", "1", "")
    docker_engine.run("tag", busybox_image.ref, target.ref)
    with timed("docker push (2 layers, 1 MiB) to Distribution"):
        out = docker_engine.run("push", target.ref).stdout
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
    assert digest, out
    return Pushed(target.host, target.repository, target.tag, digest.group(1))


def raw_manifest(skopeo, ref: str) -> dict:
    return json.loads(skopeo.run("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)


def test_docker_pushes_removes_pulls_and_runs_the_image(docker_engine, busybox_image, pushed):
    image_id = docker_engine.run("image", "inspect", "--format", "{{.Id}}", pushed.ref).stdout.strip()
    try:
        # Every image that holds its layers goes, so that the pull fetches each of them.
        with timed("docker rmi (every tag of the image and its base)"):
            docker_engine.run("rmi", pushed.ref, busybox_image.ref, busybox_image.base)
        assert docker_engine.run("image", "inspect", image_id, check=False).returncode != 0
        with timed("docker pull from Distribution"):
            out = docker_engine.run("pull", pushed.ref).stdout
        assert out.count("Pull complete") == 2, out
        assert f"Digest: {pushed.digest}" in out
        pulled = docker_engine.run("image", "inspect", "--format", "{{.Id}}", pushed.ref).stdout.strip()
        assert pulled == image_id  # the same config, so the same image
        with timed("docker run --rm --network none (cat the added file)"):
            cat = docker_engine.run("run", "--rm", "--network", "none", pushed.ref, "cat", busybox_image.file)
        assert cat.stdout == busybox_image.content
        # The image's own CMD, and busybox's applets through their symlinks.
        assert docker_engine.run("run", "--rm", "--network", "none", pushed.ref).stdout == busybox_image.content
        ls = docker_engine.run("run", "--rm", "--network", "none", pushed.ref, "sh", "-c", "echo $0; ls /bin")
        assert ls.stdout.split() == ["sh", "busybox", "cat", "echo", "ls", "sh"]
    finally:
        busybox_image.restore()


def test_skopeo_copies_to_an_oci_layout_and_back_and_lists_tags(skopeo, pushed, tmp_path):
    layout = tmp_path / "layout"
    with timed("skopeo copy docker:// -> oci:"):
        skopeo.run("copy", "--src-tls-verify=false", f"docker://{pushed.ref}", f"oci:{layout}:one")
    index = json.loads((layout / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["one"]

    back = Pushed(pushed.host, "test/skopeo-back", "2", "")
    with timed("skopeo copy oci: -> docker://"):
        skopeo.run("copy", "--dest-tls-verify=false", f"oci:{layout}:one", f"docker://{back.ref}")
    with timed("skopeo list-tags"):
        assert skopeo.list_tags(f"docker://{back.host}/{back.repository}") == ["2"]
    original, copied = raw_manifest(skopeo, pushed.ref), raw_manifest(skopeo, back.ref)
    assert copied["mediaType"] == "application/vnd.oci.image.manifest.v1+json"  # oci: converted it
    assert [layer["digest"] for layer in copied["layers"]] == [layer["digest"] for layer in original["layers"]]


def test_ctr_pulls_and_pushes_over_plain_http(ctr, skopeo, pushed):
    copy = Pushed(pushed.host, "test/ctr-copy", "1", "")
    try:
        with timed("ctr images pull --plain-http"):
            ctr.run("images", "pull", "--plain-http", pushed.ref)
        ctr.run("images", "tag", "--force", pushed.ref, copy.ref)
        with timed("ctr images push --plain-http (another repository)"):
            ctr.run("images", "push", "--plain-http", copy.ref)
    finally:
        ctr.run("images", "rm", pushed.ref, copy.ref, check=False)
    assert skopeo.list_tags(f"docker://{copy.host}/{copy.repository}") == ["1"]
    digest = json.loads(skopeo.run("inspect", "--tls-verify=false", f"docker://{copy.ref}").stdout)["Digest"]
    assert digest == pushed.digest  # ctr pushed the very manifest docker had pushed


def test_an_image_with_a_layer_of_random_mib(docker_engine, busybox_image, distribution_registry, skopeo):
    ref = f"{distribution_registry.host}/test/random:2mib"
    with timed("docker build of a 2 MiB random layer"):
        busybox_image.with_random_layer(ref, 2)
    with timed("docker push of the 2 MiB random layer"):
        docker_engine.run("push", ref)
    docker_engine.run("rmi", ref)
    layers = raw_manifest(skopeo, ref)["layers"]
    assert len(layers) == 3
    assert all(layer["mediaType"] == LAYER_GZIP for layer in layers)
    assert 2 * 1024 * 1024 < layers[-1]["size"] < 2.1 * 1024 * 1024  # random bytes do not compress


@pytest.mark.parametrize(
    "env, outcome", [({}, "skip"), ({"CI": "true"}, "fail"), ({"REGISTRY_REQUIRE_DOCKER": "1"}, "fail")]
)
def test_a_missing_tool_skips_only_where_tools_are_not_required(monkeypatch, env, outcome):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("REGISTRY_REQUIRE_DOCKER", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="no-such-tool-here` is not installed: run `make install`"):
        engines.find_binary("no-such-tool-here")
