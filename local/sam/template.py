"""The template SAM serves: the CDK app's own synthesis (app.py, the template `cdk deploy` uses, its
function's code the same bundle), with one setting of the local build, registry:architecture x86_64
(local/sam/__init__.py says why), and the asset and path metadata that the CDK CLI always asks for.
Its bundle is built from the wheels `make install` fetched (pip without an index), and reused while
its inputs hold (infra/bundling.py: the asset's hash); no synth runs while its inputs are unchanged.

SAM passes the function only the variables the template declares (its --env-vars file overrides
their values, and adds none), so a copy of the template beside the original (the asset paths stay
valid) declares every variable of the local function's environment; their values go in the
--env-vars file, as SAM's overrides.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from unittest import mock

from app import build_app
from infra.api import HANDLER

from . import ARCHITECTURE, ROOT, WHEELS

OUTDIR = ROOT / "cdk.out.sam"
# What the template and its bundle are made of: while none of it changes, a synth would write the
# same template again (the bundle's own hash covers a subset: infra/bundling.py), so none is run.
SYNTH_INPUTS = ("app.py", "cdk.json", "requirements.txt", "requirements-dev.txt", "infra", "lambdas/registry")
SYNTH_STAMP = "synth-inputs.json"
LOCAL_CONTEXT = {
    "registry:architecture": ARCHITECTURE,
    # What the CDK CLI sets for every synth (so `cdk deploy`'s template has them): the metadata that
    # tells SAM each resource's construct path and where a function's asset is (the bundle's folder).
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
}


def synthesize(outdir: Path = OUTDIR) -> tuple[Path, bool]:
    """Synthesize the app for this machine: the path of the stack's template, and whether a synth ran
    (False: the last one's inputs are unchanged)."""
    digest, stamp = synth_inputs_digest(), outdir / SYNTH_STAMP
    last = json.loads(stamp.read_text()) if stamp.exists() else {}
    if last.get("digest") == digest and (outdir / last["template"]).exists():
        return outdir / last["template"], False
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}  # the bundler's pip: nothing downloaded
    with mock.patch.dict(os.environ, offline):
        app, stack = build_app(context=LOCAL_CONTEXT, outdir=str(outdir))
        app.synth()
    stamp.write_text(json.dumps({"digest": digest, "template": stack.template_file}) + "\n")
    return outdir / stack.template_file, True


def synth_inputs_digest() -> str:
    digest = hashlib.sha256(json.dumps(LOCAL_CONTEXT, sort_keys=True).encode())
    for name in SYNTH_INPUTS:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def registry_function(template: dict) -> str:
    """The logical id of the registry function (the one with the registry's handler)."""
    (logical_id,) = (
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Handler") == HANDLER
    )
    return logical_id


def local_template(template_path: Path, environment: dict[str, str]) -> tuple[Path, Path]:
    """Write the template that declares every variable of `environment`, and SAM's --env-vars file
    with their values; both paths."""
    template = json.loads(template_path.read_text())
    function = registry_function(template)
    variables = template["Resources"][function]["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
    for name in environment:
        variables.setdefault(name, "")
    local = template_path.with_name("template.sam.json")
    local.write_text(json.dumps(template, indent=1))
    env_vars = template_path.with_name("env-vars.json")
    env_vars.write_text(json.dumps({function: environment}, indent=1))
    return local, env_vars
