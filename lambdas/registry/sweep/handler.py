"""The scheduled sweep's Lambda entry point: `registry.sweep.handler.lambda_handler`.

Event `{"dryRun": true}` counts what would go and deletes nothing. The run stops 30 s before the
function's timeout; the next run carries on. Each real run emits INCOMPLETE_METRIC (1: it ran out
of time, 0: it finished): an alarm watches for runs that never finish; and the usage it measured
(usage.py), one EMF document per repository and per registry, or per registry only, or none, as
REGISTRY_USAGE_METRICS says. A dry run emits no metric: it is an operator's look (its result holds
the registries' usage), not a point of the schedule's series.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..config import METRICS_NAMESPACE, SWEEP_SERVICE_NAME, Settings
from ..storage import RegistryStore
from . import INCOMPLETE_METRIC, grace_from_environment, metered_sweeper, usage
from .usage import UsageMetrics

# The service is the sweep whatever the environment says (the stack sets the same name): the alarm
# watches the metric under exactly this dimension.
logger = Logger(service=SWEEP_SERVICE_NAME)


def lambda_handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    budget = context.get_remaining_time_in_millis() / 1000 - 30 if context is not None else None
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
    dry_run = bool((event or {}).get("dryRun"))
    metrics = usage.usage_metrics_from_environment(refuse=logger.error)
    sweeper = metered_sweeper(
        RegistryStore(Settings.from_environment()),
        grace_from_environment(),
        UsageMetrics.OFF if dry_run else metrics,
        namespace,
        dry_run=dry_run,
        log=lambda message, extra: logger.info(message, extra=extra),
    )
    result = sweeper.run(budget_seconds=budget)
    if not dry_run:  # an operator's dry run says nothing about the schedule keeping up
        with single_metric(
            name=INCOMPLETE_METRIC,
            unit=MetricUnit.Count,
            value=0 if result["complete"] else 1,
            namespace=namespace,
            default_dimensions={"service": SWEEP_SERVICE_NAME},
        ):
            pass  # written (to stdout, as EMF) when the block ends
    return result
