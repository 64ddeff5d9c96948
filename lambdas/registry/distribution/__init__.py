"""The Docker/OCI Distribution API (`/v2`), beside the ECR API on the same endpoint: a second wire
over the same operations and storage (GUIDE 11). It reads its own requests (routes, Basic auth,
upload sessions) and renders its own errors; every rule is the operation's, whichever API called it.

Every request logs in with Basic `AWS:<password>` (GetAuthorizationToken's), checked here on every
request; the key's grants and the repository's policy decide per action and repository, as on the
ECR API, in the registry the host names (routes.registry_in_host), else the caller's own. In the
deployed stack an API Gateway authorizer (`authorize`) answers unauthenticated requests with the
401 challenge -- a function's own WWW-Authenticate header would be renamed by API Gateway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from .. import errors
from ..auth import login
from ..auth.access_key_cache import AccessKeyCache
from ..config import SERVICE_NAME, Settings
from ..operations import Caller
from ..storage import RegistryStore
from ..wire import HttpRequest
from . import blobs, discovery, http, manifests, routes
from .exchange import Exchange

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE_NAME, child=True)

Handler = Callable[[Exchange], http.Reply]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("base", "GET"): discovery.base,
    ("base", "HEAD"): discovery.base,
    ("catalog", "GET"): discovery.catalog,
    ("manifest", "GET"): manifests.get_manifest,
    ("manifest", "HEAD"): manifests.head_manifest,
    ("manifest", "PUT"): manifests.put_manifest,
    ("manifest", "DELETE"): manifests.delete_manifest,
    ("blob", "GET"): blobs.get_blob,
    ("blob", "HEAD"): blobs.head_blob,
    ("blob", "DELETE"): blobs.delete_blob,
    ("uploads", "POST"): blobs.start_upload,
    ("upload", "PATCH"): blobs.patch_upload,
    ("upload", "PUT"): blobs.put_upload,
    ("upload", "GET"): blobs.upload_status,
    ("upload", "DELETE"): blobs.cancel_upload,
    ("tags", "GET"): discovery.tags_list,
    ("referrers", "GET"): discovery.referrers,
}
# What an InvalidParameterException of an operation means, by what the request was about.
INVALID = {
    "manifest": "MANIFEST_INVALID",
    "blob": "DIGEST_INVALID",
    "uploads": "BLOB_UPLOAD_INVALID",
    "upload": "BLOB_UPLOAD_INVALID",
    "referrers": "DIGEST_INVALID",
}


def is_distribution_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def serve(
    request: HttpRequest,
    store: RegistryStore,
    access_keys: AccessKeyCache,
    settings: Settings,
    clock: Callable[[], float] = time.time,
) -> tuple[dict[str, Any], str]:
    """The proxy response to a `/v2` request, and what it was (route kind and outcome, for the log)."""
    named_registry = routes.registry_in_host(request.header("host"))
    # A host that names a registry is the one its Locations must name too: the public URL does not.
    endpoint = request.base_url() if named_registry else settings.public_url or request.base_url()
    kind = "unknown"
    try:
        key = login.verify(request.header("authorization"), store.token_key.get(), access_keys, clock())
        if key is None:
            return http.login_refused().proxy_response(request.request_id), "login refused"
        route = routes.parse(request.path)
        kind = route.kind
        handler = HANDLERS.get((route.kind, request.method))
        if handler is None:
            raise http.OciError("UNSUPPORTED", f"{request.method} is not served on this route", 405)
        reply = handler(
            Exchange(request, route, Caller.of(key), store, settings, endpoint, named_registry or key.registry_id)
        )
    except http.OciError as refused:
        reply = http.error_reply(refused.code, refused.message, refused.status, refused.detail, refused.headers)
    except errors.EcrError as error:
        reply = http.ecr_error_reply(error, INVALID.get(kind, "UNSUPPORTED"))
    except Exception:
        logger.exception("unhandled fault", extra={"route": kind})
        reply = http.error_reply("UNKNOWN", "An internal error occurred", 500)
    return reply.proxy_response(request.request_id), f"{kind}:{reply.status}"


def authorize(event: dict[str, Any], store: RegistryStore, access_keys: AccessKeyCache) -> dict[str, Any]:
    """API Gateway's REQUEST authorizer of the `/v2` routes. A valid login is let through (the
    function checks it again, and the grants and the repository's policy, on the request itself: so
    the answer API Gateway caches per Authorization header never keeps a revoked policy working);
    any other is denied, which API Gateway answers with its ACCESS_DENIED response (403 DENIED), as
    ECR answers an expired login. Never by failing: an authorizer says Unauthorized by raising, and
    every such error would count in the function's error alarm. A request without credentials never
    gets here: API Gateway answers it with the 401 challenge itself."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    key = login.verify(headers.get("authorization"), store.token_key.get(), access_keys, time.time())
    # arn:aws:execute-api:<region>:<account>:<api>/<stage>/<method>/<path>: every /v2 route of the stage
    api, stage = event["methodArn"].split("/")[:2]
    statement = {
        "Action": "execute-api:Invoke",
        "Effect": "Allow" if key else "Deny",
        "Resource": f"{api}/{stage}/*/v2*",
    }
    decision: dict[str, Any] = {
        "principalId": key.access_key_id if key else "anonymous",
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
    }
    if key:
        decision["context"] = {"registryId": key.registry_id}
    return decision
