"""The sweep: reclaims what abandoned work leaves behind (policy.py), run hourly by the stack's
scheduled Lambda (handler.py) or by hand (`python -m registry.sweep`). docs/sweep.md says what it
reclaims and why that is safe."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from ..storage import RegistryStore
from . import usage
from .policy import DEFAULT_GRACE_SECONDS, GRACE_ENV, Sweeper
from .usage import UsageMetrics

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "GRACE_ENV",
    "INCOMPLETE_METRIC",
    "Sweeper",
    "grace_from_environment",
    "metered_sweeper",
]
# What the scheduled run reports (EMF): 1 when it stopped before it was done, 0 when it finished.
INCOMPLETE_METRIC = "SweepIncomplete"


def grace_from_environment() -> float:
    raw = os.environ.get(GRACE_ENV)
    return float(raw) if raw not in (None, "") else DEFAULT_GRACE_SECONDS


def metered_sweeper(
    store: RegistryStore, grace_seconds: float, metrics: UsageMetrics, namespace: str, **kwargs: Any
) -> Sweeper:
    """A Sweeper that writes the usage it measures as the metrics the operator chose (usage.py), as
    the scheduled Lambda's and `make run`'s do."""
    return Sweeper(
        store,
        grace_seconds,
        report_usage=None if metrics is UsageMetrics.OFF else partial(usage.emit, namespace=namespace, metrics=metrics),
        report_repositories=metrics is UsageMetrics.REPOSITORY,
        **kwargs,
    )
