"""Unit tests of the pure modules of the Lambda package: no network, no servers, no AWS clients.

The Lambda package is importable as `registry` once `<repo>/lambdas` is on sys.path. The rootdir
conftest does the same, but these tests must also run on their own (`pytest tests/unit`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import botocore.session
import pytest

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
if str(LAMBDAS) not in sys.path:
    sys.path.insert(0, str(LAMBDAS))


@pytest.fixture(scope="session")
def ecr_model():
    """botocore's ECR model, loaded through a Session: independent of `registry.service_model`."""
    return botocore.session.get_session().get_service_model("ecr")
