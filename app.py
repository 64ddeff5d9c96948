#!/usr/bin/env python3
"""The CDK app: one RegistryStack, checked by cdk-nag (AwsSolutions) on every synth.

Runs the same under `npx cdk synth|deploy` and as `python app.py`: the context of cdk.json is loaded
here as defaults (the CDK CLI's own context, e.g. `-c registry:removalPolicy=destroy`, wins), so both
produce the same template. No AWS call happens at synth: the stack is environment-agnostic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import RegistryProps
from infra.registry_stack import RegistryStack

ROOT = Path(__file__).resolve().parent


def build_app(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, RegistryStack]:
    defaults = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
    app = cdk.App(
        context={**defaults, **(context or {})}, outdir=outdir or os.environ.get("CDK_OUTDIR") or str(ROOT / "cdk.out")
    )
    props = RegistryProps.from_context(app.node)
    stack = RegistryStack(app, props.stack_name, props=props)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
