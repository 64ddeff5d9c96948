"""Fixtures of the infrastructure tests (helpers in stack_synth.py)."""

from __future__ import annotations

import pytest
from stack_synth import SKIP_BUNDLING, Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized() -> Synthesized:
    """The stack as `cdk deploy` builds it by default, cdk-nag included (a finding fails synth)."""
    return synthesize()


@pytest.fixture(scope="session")
def template(synthesized):
    return synthesized.template


@pytest.fixture(scope="session")
def variant(tmp_path_factory):
    """Synthesize a variant from extra context, without bundling (fast)."""

    def build(context: dict, **stack_kwargs) -> Synthesized:
        outdir = tmp_path_factory.mktemp("variant")
        return synthesize({**SKIP_BUNDLING, **context}, outdir=outdir, **stack_kwargs)

    return build
