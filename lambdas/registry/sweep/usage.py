"""What the registry holds, as the sweep measures it after reclaiming (docs/sweep.md#usage): per
repository its image count and the bytes of its layers, per registry its repository count and the
bytes it stores, each blob object once. The scheduled run writes them as CloudWatch metrics (EMF),
as many as the operator's REGISTRY_USAGE_METRICS asks for (UsageMetrics); the dashboard graphs them
against the quotas (infra/monitoring.py reads these names).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

# Metric names, and the dimensions that tell the series apart: a repository's metrics carry both
# dimensions, a registry's only REGISTRY_DIMENSION (the same StoredBytes name, another series).
IMAGE_COUNT_METRIC = "ImageCount"  # per repository: what the images-per-repository quota counts
REPOSITORY_COUNT_METRIC = "RepositoryCount"  # per registry: what the repositories-per-registry quota counts
STORED_BYTES_METRIC = "StoredBytes"
# per registry, without per-repository metrics: the images-per-repository quota, one series a registry
MAX_IMAGES_METRIC = "MaxImagesInARepository"
REGISTRY_DIMENSION = "RegistryId"
REPOSITORY_DIMENSION = "RepositoryName"
# Set by the stack from registry:usageMetrics (infra/config.py); `make run` passes it on as well.
USAGE_METRICS_ENV = "REGISTRY_USAGE_METRICS"


class UsageMetrics(StrEnum):
    """Which usage metrics the scheduled run writes: each is a CloudWatch custom metric, billed
    monthly (docs/deploying.md#costs), and per-repository ones add up with the repositories."""

    REPOSITORY = "repository"  # each repository's and each registry's
    REGISTRY = "registry"  # each registry's, with MAX_IMAGES_METRIC in place of the repositories' counts
    OFF = "off"  # none: the run's result still holds each registry's usage


DEFAULT_USAGE_METRICS = UsageMetrics.REPOSITORY


def usage_metrics_from_environment(refuse: Callable[[str], None]) -> UsageMetrics:
    """The operator's choice. The synth refuses an invalid value, so one here was set by hand: it is
    refused through `refuse` (the log) and the default applies, which keeps the dashboard's graphs
    fed rather than silently dropping them."""
    raw = os.environ.get(USAGE_METRICS_ENV) or DEFAULT_USAGE_METRICS
    try:
        return UsageMetrics(raw)
    except ValueError:
        choices = ", ".join(UsageMetrics)
        refuse(f"{USAGE_METRICS_ENV}={raw!r} is not one of {choices}: writing {DEFAULT_USAGE_METRICS!s} metrics")
        return DEFAULT_USAGE_METRICS


@dataclass(frozen=True)
class RepositoryUsage:
    registry_id: str
    repository: str
    image_count: int
    stored_bytes: int  # its layers' bytes, shared ones included (LayerStore.stored_bytes)


@dataclass(frozen=True)
class RegistryUsage:
    registry_id: str
    repository_count: int
    image_count: int  # of its live repositories, summed
    max_images_in_a_repository: int  # of its fullest repository: the one nearest the images quota
    stored_bytes: int  # each blob object once (LayerStore.registry_stored_bytes)


Usage = RepositoryUsage | RegistryUsage


def emit(usage: Usage, namespace: str, metrics: UsageMetrics = DEFAULT_USAGE_METRICS) -> None:
    """One EMF document (one stdout line) with every metric of one repository or one registry: the
    dimension values differ from one to the next, so no document can hold two of them. A
    repository's usage is given only with UsageMetrics.REPOSITORY (Sweeper's report_repositories)."""
    # service="": no `service` dimension (Powertools adds one unless empty): the series are keyed by
    # registry and repository alone, which is what the dashboard's queries name.
    document = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    document.add_dimension(REGISTRY_DIMENSION, usage.registry_id)
    if isinstance(usage, RepositoryUsage):
        document.add_dimension(REPOSITORY_DIMENSION, usage.repository)
        document.add_metric(IMAGE_COUNT_METRIC, MetricUnit.Count, usage.image_count)
    else:
        document.add_metric(REPOSITORY_COUNT_METRIC, MetricUnit.Count, usage.repository_count)
        if metrics is UsageMetrics.REGISTRY:  # else each repository's ImageCount shows the quota
            document.add_metric(MAX_IMAGES_METRIC, MetricUnit.Count, usage.max_images_in_a_repository)
    document.add_metric(STORED_BYTES_METRIC, MetricUnit.Bytes, usage.stored_bytes)
    document.flush_metrics()
