"""Repository ARNs: how ECR names a repository as a resource (`repositoryArn`, and the tagging
operations' `resourceArn`). The one place that writes and reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import service_model

REPOSITORY_ARN = re.compile(r"arn:aws:ecr:(?P<region>[a-z0-9-]+):(?P<registry_id>[0-9]{12}):repository/(?P<name>.+)")


@dataclass(frozen=True)
class RepositoryArn:
    region: str
    registry_id: str
    name: str


def repository_arn(region: str, registry_id: str, name: str) -> str:
    return f"arn:aws:ecr:{region}:{registry_id}:repository/{name}"


def parse_repository_arn(text: str) -> RepositoryArn | None:
    """The repository an ARN names, or None when it names no repository (another service or kind of
    resource, a malformed ARN, a name ECR would refuse)."""
    match = REPOSITORY_ARN.fullmatch(text)
    if match is None or not service_model.satisfies("RepositoryName", match["name"]):
        return None
    return RepositoryArn(match["region"], match["registry_id"], match["name"])
