"""`make sam`'s pure parts (local/sam): the template SAM reads, the synth's cache key, the bridge's
name and subnet, and the mirror debootstrap is given. No servers, no Docker."""

from __future__ import annotations

import json

import pytest

from local.sam import install, template
from local.sam.network import Bridge


def test_the_local_template_declares_every_variable_and_env_vars_carries_the_values(tmp_path):
    synthesized = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Handler": template.HANDLER, "Environment": {"Variables": {"REGISTRY_BUCKET": "x"}}},
            },
            "Other": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "other.handler"}},
        }
    }
    path = tmp_path / "Stack.template.json"
    path.write_text(json.dumps(synthesized))
    environment = {"REGISTRY_BUCKET": "registry-layers", "AWS_ENDPOINT_URL_S3": "http://10.213.1.1:1"}

    local, env_vars = template.local_template(path, environment)

    assert local.parent == path.parent  # the asset paths of the original stay valid
    resources = json.loads(local.read_text())["Resources"]
    assert set(resources["Fn"]["Properties"]["Environment"]["Variables"]) == set(environment)
    assert "Environment" not in resources["Other"]["Properties"]
    assert json.loads(env_vars.read_text()) == {"Fn": environment}


def test_the_synth_runs_again_when_any_input_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(template, "ROOT", tmp_path)
    for name in template.SYNTH_INPUTS:
        target = tmp_path / name
        if "." in name:
            target.write_text(name)
        else:
            (target / "pkg").mkdir(parents=True)
            (target / "pkg" / "module.py").write_text("A = 1\n")
    before = template.synth_inputs_digest()
    (tmp_path / "lambdas/registry/pkg/__pycache__").mkdir()
    (tmp_path / "lambdas/registry/pkg/__pycache__/module.cpython-313.pyc").write_bytes(b"\0")
    assert template.synth_inputs_digest() == before  # bytecode is no input
    (tmp_path / "lambdas/registry/pkg/module.py").write_text("A = 2\n")
    assert template.synth_inputs_digest() != before


def test_each_state_folder_has_its_own_bridge():
    first, again, other = (Bridge.for_state(p) for p in ("/a/.local/sam", "/a/.local/sam", "/b/.local/sam"))
    assert first == again
    assert first.name != other.name
    assert len(first.name) <= 15  # IFNAMSIZ
    assert first.network.subnet_of(Bridge("x", "10.213.0.1", 16).network)
    assert first.dockerd_args == (f"--bridge={first.name}",)


@pytest.mark.parametrize(
    "sources, expected",
    [
        (
            {
                "debian.sources": "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n"
                "Components: main\n\nTypes: deb\nURIs: http://security.test/debian-security\n"
                "Suites: bookworm-security\nComponents: main\n"
            },
            "http://mirror.test/debian",
        ),
        ({"other.sources": "Types: deb\nURIs: http://elsewhere.test/x\nSuites: nodistro\nComponents: main\n"}, None),
    ],
)
def test_debootstrap_uses_the_mirror_apt_uses(tmp_path, monkeypatch, sources, expected):
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    for name, text in sources.items():
        (folder / name).write_text(text)
    monkeypatch.setattr(install, "APT_SOURCES", (folder, tmp_path / "sources.list"))
    assert install.debian_mirror("bookworm") == expected
