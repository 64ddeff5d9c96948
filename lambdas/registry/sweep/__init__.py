"""The sweep: reclaims what abandoned work leaves behind (policy.py), run hourly by the stack's
scheduled Lambda (handler.py) or by hand (`python -m registry.sweep`). docs/sweep.md says what it
reclaims and why that is safe."""

from __future__ import annotations

import os

from .policy import DEFAULT_GRACE_SECONDS, GRACE_ENV, Sweeper

__all__ = ["DEFAULT_GRACE_SECONDS", "GRACE_ENV", "INCOMPLETE_METRIC", "Sweeper", "grace_from_environment"]
# What the scheduled run reports (EMF): 1 when it stopped before it was done, 0 when it finished.
INCOMPLETE_METRIC = "SweepIncomplete"


def grace_from_environment() -> float:
    raw = os.environ.get(GRACE_ENV)
    return float(raw) if raw not in (None, "") else DEFAULT_GRACE_SECONDS
