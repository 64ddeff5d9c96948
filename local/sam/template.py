"""The template SAM serves: the CDK app's own synthesis (app.py, the template `cdk deploy` uses, its
function's code the same bundle), with one setting of the local build, registry:architecture x86_64
(local/sam/__init__.py says why), and the asset and path metadata that the CDK CLI always asks for.
Its bundle is built from the wheels `make install` fetched (pip without an index), and reused while
its inputs hold (infra/bundling.py: the asset's hash).

SAM passes the function only the variables the template declares (its --env-vars file overrides
their values, and adds none), so a copy of the template beside the original (the asset paths stay
valid) declares every variable of the local function's environment; their values go in the
--env-vars file, as SAM's overrides.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

from app import build_app
from infra.api import HANDLER

from . import ARCHITECTURE, WHEELS

OUTDIR = Path(__file__).resolve().parents[2] / "cdk.out.sam"
LOCAL_CONTEXT = {
    "registry:architecture": ARCHITECTURE,
    # What the CDK CLI sets for every synth (so `cdk deploy`'s template has them): the metadata that
    # tells SAM each resource's construct path and where a function's asset is (the bundle's folder).
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
}


def synthesize(outdir: Path = OUTDIR) -> Path:
    """Synthesize the app for this machine; the path of the stack's template."""
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}  # the bundler's pip: nothing downloaded
    with mock.patch.dict(os.environ, offline):
        app, stack = build_app(context=LOCAL_CONTEXT, outdir=str(outdir))
        app.synth()
    return outdir / stack.template_file


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
