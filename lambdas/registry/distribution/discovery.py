"""Discovery: the API's base (`GET /v2/`), tags/list (lexical order, `n` and `last`, a Link to the
next page), OCI 1.1 referrers; `_catalog` is not served (as ECR)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from ..manifests import OCI_INDEX
from ..operations import images
from . import http
from .blobs import layer_digest
from .exchange import Exchange

DEFAULT_PAGE, MAX_PAGE = 100, 1000  # ECR's


def base(x: Exchange) -> http.Reply:
    return http.Reply(200, {"Content-Type": "application/json"}, b"{}")


def catalog(x: Exchange) -> http.Reply:
    raise http.OciError("UNSUPPORTED", "The catalog is not served: list repositories with DescribeRepositories", 405)


def tags_list(x: Exchange) -> http.Reply:
    raw = x.query("n")
    if raw is None:
        n = DEFAULT_PAGE
    elif not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise http.OciError("UNSUPPORTED", f"n must be a number from 1 to {MAX_PAGE}", 400)
    else:
        n = int(raw)
    last = x.query("last")
    found = x.call(
        "ListImages", images.list_tags, {"repositoryName": x.name, "maxResults": n, "last": last}, check_input=False
    )
    headers = {"Content-Type": "application/json"}
    if found["more"] and found["tags"]:
        query = urlencode({"n": n, "last": found["tags"][-1]})
        headers["Link"] = f'<{x.url("tags/list")}?{query}>; rel="next"'
    body = json.dumps({"name": x.name, "tags": found["tags"]}, separators=(",", ":")).encode()
    return http.Reply(200, headers, body)


def referrers(x: Exchange) -> http.Reply:
    subject = layer_digest(x.route.reference)
    artifact_type = x.query("artifactType")
    params = {"repositoryName": x.name, "subjectDigest": subject, "artifactType": artifact_type}
    found = x.call("DescribeImages", images.list_referrers, params, check_input=False)
    headers = {"Content-Type": OCI_INDEX}
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found["manifests"]}
    return http.Reply(200, headers, json.dumps(index, separators=(",", ":")).encode())
