"""Unit tests of the pure modules of the Lambda package: no network, no servers, no AWS clients."""

from __future__ import annotations

import botocore.session
import pytest


@pytest.fixture(scope="session")
def ecr_model():
    """botocore's ECR model, loaded through a Session: independent of `registry.service_model`."""
    return botocore.session.get_session().get_service_model("ecr")
