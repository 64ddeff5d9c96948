"""Synthesizing the stack in tests: the default stack (with cdk-nag and the real, bundled Lambda
asset) once per session, and cheap variants that skip bundling.

The first synth costs a few seconds (jsii loads aws-cdk-lib into node) plus pip bundling on a cold
`cdk.out.test/`; the bundle is reused while its inputs (sources, requirements, platform) don't change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.api import HANDLER as API_HANDLER  # noqa: E402
from infra.sweep import HANDLER as SWEEP_HANDLER  # noqa: E402,F401

TEST_OUTDIR = ROOT / "cdk.out.test"
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}


@dataclass
class Synthesized:
    app: object
    stack: object
    template: object  # aws_cdk.assertions.Template
    template_json: dict
    outdir: Path

    @property
    def template_path(self) -> Path:
        return self.outdir / self.stack.template_file

    def asset_dir(self) -> Path:
        props = function_by_handler(self.template, API_HANDLER)[1]["Properties"]
        assets = json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())
        key = props["Code"]["S3Key"]
        for asset in assets["files"].values():
            if asset["destinations"] and next(iter(asset["destinations"].values()))["objectKey"] == key:
                return self.outdir / asset["source"]["path"]
        raise AssertionError(f"no asset for {key}")


def synthesize(context: dict | None = None, outdir: Path | None = None, **stack_kwargs) -> Synthesized:
    from aws_cdk.assertions import Template

    import app as cdk_app

    outdir = outdir or TEST_OUTDIR
    if stack_kwargs:
        application, stack = _build_with(context, outdir, **stack_kwargs)
    else:
        application, stack = cdk_app.build_app(context=context, outdir=str(outdir))
    assembly = application.synth()
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(application, stack, Template.from_json(template_json), template_json, Path(outdir))


def _build_with(context, outdir, **stack_kwargs):
    """Like app.build_app, with extra RegistryStack arguments."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from infra.config import RegistryProps
    from infra.registry_stack import RegistryStack

    defaults = json.loads((ROOT / "cdk.json").read_text())["context"]
    application = cdk.App(context={**defaults, **(context or {})}, outdir=str(outdir))
    props = RegistryProps.from_context(application.node)
    stack = RegistryStack(application, props.stack_name, props=props, **stack_kwargs)
    cdk.Validations.of(application).add_plugins(AwsSolutionsChecks(application))
    return application, stack


def function_by_handler(template, handler: str) -> tuple[str, dict]:
    """(logical id, resource) of the one function of the stack with this handler."""
    found = [
        (logical_id, resource)
        for logical_id, resource in template.find_resources("AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == handler
    ]
    assert len(found) == 1, f"expected one function with handler {handler}, found {[i for i, _ in found]}"
    return found[0]


def role_policy_statements(template, function: dict) -> list[dict]:
    """Every statement of the policies attached to the role of `function` (a template resource)."""
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements
