"""The scheduled sweep's Lambda entry point: `registry.sweep.handler.lambda_handler`.

Event `{"dryRun": true}` counts what would go and deletes nothing. The run stops 30 s before the
function's timeout; the next run carries on.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from ..config import Settings
from ..storage import RegistryStore
from . import Sweeper, grace_from_environment

logger = Logger()  # service name from POWERTOOLS_SERVICE_NAME, set by the stack


def lambda_handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    budget = context.get_remaining_time_in_millis() / 1000 - 30 if context is not None else None
    sweeper = Sweeper(
        RegistryStore(Settings.from_environment()),
        grace_seconds=grace_from_environment(),
        dry_run=bool((event or {}).get("dryRun")),
        log=lambda message, extra: logger.info(message, extra=extra),
    )
    return sweeper.run(budget_seconds=budget)
