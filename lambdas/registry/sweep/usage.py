"""What the registry holds, as the sweep measures it after reclaiming (docs/sweep.md#usage): per
repository its image count and the bytes of its layers, per registry its repository count and the
bytes it stores, each blob object once. The scheduled run writes them as CloudWatch metrics (EMF);
the dashboard graphs them against the quotas (infra/monitoring.py reads these names).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

# Metric names, and the dimensions that tell the series apart: a repository's metrics carry both
# dimensions, a registry's only REGISTRY_DIMENSION (the same StoredBytes name, another series).
IMAGE_COUNT_METRIC = "ImageCount"  # per repository: what the images-per-repository quota counts
REPOSITORY_COUNT_METRIC = "RepositoryCount"  # per registry: what the repositories-per-registry quota counts
STORED_BYTES_METRIC = "StoredBytes"
REGISTRY_DIMENSION = "RegistryId"
REPOSITORY_DIMENSION = "RepositoryName"


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
    stored_bytes: int  # each blob object once (LayerStore.registry_stored_bytes)


Usage = RepositoryUsage | RegistryUsage


def emit(usage: Usage, namespace: str) -> None:
    """One EMF document (one stdout line) with every metric of one repository or one registry: the
    dimension values differ from one to the next, so no document can hold two of them."""
    # service="": no `service` dimension (Powertools adds one unless empty): the series are keyed by
    # registry and repository alone, which is what the dashboard's queries name.
    document = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
    document.add_dimension(REGISTRY_DIMENSION, usage.registry_id)
    if isinstance(usage, RepositoryUsage):
        document.add_dimension(REPOSITORY_DIMENSION, usage.repository)
        document.add_metric(IMAGE_COUNT_METRIC, MetricUnit.Count, usage.image_count)
    else:
        document.add_metric(REPOSITORY_COUNT_METRIC, MetricUnit.Count, usage.repository_count)
    document.add_metric(STORED_BYTES_METRIC, MetricUnit.Bytes, usage.stored_bytes)
    document.flush_metrics()
