"""The paths of the Docker/OCI Distribution API (`/v2`), read into routes.

    /v2/                                      base       the API is here (and the login works)
    /v2/_catalog                              catalog    not served (as ECR)
    /v2/<name>/manifests/<tag or digest>      manifest
    /v2/<name>/blobs/<digest>                 blob
    /v2/<name>/blobs/uploads/                 uploads    POST: start an upload (or mount, or push whole)
    /v2/<name>/blobs/uploads/<upload id>      upload
    /v2/<name>/tags/list                      tags
    /v2/<name>/referrers/<digest>             referrers

A name is a repository name as the ECR model writes it (it may hold slashes, so the route is found
from the end of the path).

The registry is named by the host, as ECR's are (`<registry>.dkr.ecr.<region>.amazonaws.com`): a
host whose first label is 12 digits names that registry (one that shares repositories with the
caller by their policies); any other host serves the caller's own registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..service_model import ecr_model
from . import http

_ROUTE = re.compile(
    r"/v2/(?P<name>.+?)/(?:(?P<kind>manifests|blobs/uploads|blobs|referrers)/(?P<reference>[^/]*)|(?P<tags>tags/list))"
)


_REGISTRY_LABEL = re.compile(r"(?P<registry>[0-9]{12})\.")


def registry_in_host(host: str | None) -> str | None:
    """The registry a Host header names (its first label, if 12 digits), else None."""
    match = _REGISTRY_LABEL.match(host or "")
    return match["registry"] if match else None


@dataclass(frozen=True)
class Route:
    kind: str
    name: str = ""
    reference: str = ""  # a tag or digest, an upload id, or "" (POST .../blobs/uploads/)


def parse(path: str) -> Route:
    """The route of a path under /v2; NAME_INVALID for a bad repository name, 404 for no route."""
    if path in ("/v2", "/v2/"):
        return Route("base")
    if path.rstrip("/") == "/v2/_catalog":
        return Route("catalog")
    match = _ROUTE.fullmatch(path)
    if match is None:
        raise http.OciError("UNSUPPORTED", "No such route of the registry API", 404)
    name = match["name"]
    if not is_repository_name(name):
        raise http.OciError("NAME_INVALID", f"Invalid repository name {name[:300]!r}", 400)
    if match["tags"]:
        return Route("tags", name)
    kind = {"manifests": "manifest", "blobs": "blob", "blobs/uploads": "upload", "referrers": "referrers"}[
        match["kind"]
    ]
    if kind == "upload" and not match["reference"]:
        return Route("uploads", name)
    if not match["reference"]:
        raise http.OciError("UNSUPPORTED", "No such route of the registry API", 404)
    return Route(kind, name, match["reference"])


def is_repository_name(name: str) -> bool:
    shape = ecr_model().shape_for("RepositoryName")
    low, high = shape.metadata.get("min", 1), shape.metadata.get("max", 256)
    return low <= len(name) <= high and re.fullmatch(shape.metadata["pattern"], name) is not None
