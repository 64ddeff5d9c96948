"""`make run` runs the sweep every REGISTRY_SWEEP_INTERVAL_SECONDS (local/sweeper.py), so a lifecycle
policy acts locally as it does on AWS. Waits on the loop's own signal that a run ended, never a sleep."""

from __future__ import annotations

import json

import pytest
from harness import IsolatedRegistry
from support import push_image

from local.sweeper import DEFAULT_INTERVAL_SECONDS, SweepLoop, interval_from_environment
from registry.sweep.usage import MAX_IMAGES_METRIC, REGISTRY_DIMENSION, USAGE_METRICS_ENV

pytestmark = pytest.mark.local_only
KEEP_ONE_UNTAGGED = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"},
            }
        ]
    }
)


def test_the_loop_applies_lifecycle_policies(backends, monkeypatch):
    stack = IsolatedRegistry(backends, workers=1)
    lines: list[str] = []
    try:
        ecr = stack.ecr()
        ecr.create_repository(repositoryName="local")
        pushed = [push_image(ecr, "local", layers=0) for _ in range(3)]
        ecr.put_lifecycle_policy(repositoryName="local", lifecyclePolicyText=KEEP_ONE_UNTAGGED)
        monkeypatch.setenv("REGISTRY_SWEEP_INTERVAL_SECONDS", "0.05")
        monkeypatch.setenv("REGISTRY_SWEEP_GRACE_SECONDS", "7200")
        loop = SweepLoop.from_environment(stack.backends, log=lines.append)
        assert (loop.interval, loop.sweeper.grace) == (0.05, 7200)
        loop.start()
        try:
            assert loop.wait_for_runs(2, timeout=120)
        finally:
            loop.stop()
        left = [d["imageDigest"] for d in ecr.describe_images(repositoryName="local")["imageDetails"]]
        assert left == [pushed[-1].digest]
        assert "lastEvaluatedAt" in ecr.get_lifecycle_policy(repositoryName="local")
        assert lines[0].startswith("sweep: images expired 2") and lines[1].startswith("sweep: nothing to do")
    finally:
        stack.stop()


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("REGISTRY_SWEEP_INTERVAL_SECONDS", raising=False)
    assert interval_from_environment() == DEFAULT_INTERVAL_SECONDS == 3600
    monkeypatch.setenv("REGISTRY_SWEEP_INTERVAL_SECONDS", "60")
    assert interval_from_environment() == 60
    monkeypatch.setenv("REGISTRY_SWEEP_INTERVAL_SECONDS", "0")
    with pytest.raises(ValueError, match="REGISTRY_SWEEP_INTERVAL_SECONDS"):
        interval_from_environment()


def test_the_loop_writes_the_usage_metrics_the_environment_asks_for(backends, monkeypatch, capsys):
    """As the stack's function: REGISTRY_USAGE_METRICS=registry writes only each registry's metrics
    (EMF on stdout), and a value the synth would refuse is refused in the loop's log."""
    stack = IsolatedRegistry(backends, workers=1)
    try:
        ecr = stack.ecr()
        ecr.create_repository(repositoryName="metered")
        push_image(ecr, "metered", layers=0)
        monkeypatch.setenv("REGISTRY_SWEEP_INTERVAL_SECONDS", "0.05")
        monkeypatch.setenv(USAGE_METRICS_ENV, "registry")
        lines: list[str] = []
        loop = SweepLoop.from_environment(stack.backends, log=lines.append)
        capsys.readouterr()
        loop.start()
        try:
            assert loop.wait_for_runs(1, timeout=120)
        finally:
            loop.stop()
        documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert documents, "the usage metrics of each run"
        for document in documents:
            ((dimensions,),) = [d["Dimensions"] for d in document["_aws"]["CloudWatchMetrics"]]
            assert dimensions == [REGISTRY_DIMENSION], document
        assert any(MAX_IMAGES_METRIC in document for document in documents), documents

        monkeypatch.setenv(USAGE_METRICS_ENV, "everything")
        SweepLoop.from_environment(stack.backends, log=lines.append)
        assert [line for line in lines if USAGE_METRICS_ENV in line] == [
            f"sweep: {USAGE_METRICS_ENV}='everything' is not one of repository, registry, off: "
            "writing repository metrics"
        ]
    finally:
        stack.stop()
