"""AWS JSON 1.1 over an API Gateway REST (v1 proxy) event: read the request, render the response.

The only module that knows HTTP. `error_response` is the one place an EcrError becomes a status
code and a `__type` body, which is all botocore needs to raise the modeled exception class.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

from . import service_model
from .config import MAX_RETURNED_BYTES
from .errors import EcrError, SerializationException, UnknownOperationException

CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    query: dict[str, list[str]]
    body: bytes
    request_id: str
    stage: str | None = None
    source_ip: str | None = None
    header_values: dict[str, list[str]] = field(default_factory=dict)  # every value of each header
    signed_paths: tuple[str, ...] = ("/",)  # the path the client requested (and signed): candidates
    requested_path: str = "/"  # the path as the client requested it (with a stage or base path)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def base_url(self) -> str:
        """The URL the client reached this API at: scheme, host, and any stage or base path in
        front of the API's own paths (`https://<api>.execute-api.../prod`, `https://registry.example`)."""
        scheme = (self.header("x-forwarded-proto") or "http").split(",")[0].strip()
        host = self.header("host") or "localhost"
        prefix = self.requested_path[: -len(self.path)] if self.requested_path.endswith(self.path) else ""
        return f"{scheme}://{host}{prefix.rstrip('/')}"


def http_request(event: dict[str, Any]) -> HttpRequest:
    """Read the parts of an API Gateway REST proxy event that the service uses."""
    context = event.get("requestContext") or {}
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items() if v is not None}
    multi = event.get("multiValueQueryStringParameters") or {
        k: [v] for k, v in (event.get("queryStringParameters") or {}).items()
    }
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    return HttpRequest(
        method=event.get("httpMethod") or "POST",
        path=event.get("path") or "/",
        headers=headers,
        query={k: list(v) for k, v in multi.items()},
        body=body,
        request_id=context.get("requestId") or str(uuid.uuid4()),
        stage=context.get("stage"),
        source_ip=(context.get("identity") or {}).get("sourceIp"),
        header_values=_header_values(event, headers),
        signed_paths=_signed_paths(event, context),
        requested_path=context.get("path") or event.get("path") or "/",
    )


def _header_values(event: dict[str, Any], headers: dict[str, str]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, listed in (event.get("multiValueHeaders") or {}).items():
        values.setdefault(name.lower(), []).extend(v for v in listed or () if v is not None)
    for name, value in headers.items():
        values.setdefault(name, [value])
    return {k: v for k, v in values.items() if v}


def _signed_paths(event: dict[str, Any], context: dict[str, Any]) -> tuple[str, ...]:
    """The path the client requested, which is the one it signed, most likely first.

    API Gateway strips the stage from `path`; `requestContext.path` (REST API) is what the client
    sent: `/<stage>/` on the execute-api domain, `/<base path>/...` on a custom domain. Custom
    domains and emulators differ in the details (stage kept or not, the LocalStack-style
    `/_aws/execute-api/<api>/<stage>` URL, a trailing slash), hence a few candidates. Every one of
    them names this very API, so a signature accepted over any of them grants nothing more."""
    path = event.get("path") or "/"
    requested = context.get("path")
    candidates = [requested, path]
    stage = context.get("stage")
    if stage:
        candidates.append(f"/{stage}{path}")
        # a custom domain mapped at its root may still report the stage (the client sent none)
        candidates.extend(
            p[len(stage) + 1 :] or "/"
            for p in (requested, path)
            if p and (p == f"/{stage}" or p.startswith(f"/{stage}/"))
        )
    if requested and context.get("apiId"):
        candidates.append(f"/_aws/execute-api/{context['apiId']}{requested}")
    found: list[str] = []
    for candidate in candidates:
        if not candidate or not candidate.startswith("/"):
            continue
        trimmed = candidate.rstrip("/") or "/"
        for variant in (candidate, trimmed, trimmed if trimmed == "/" else trimmed + "/"):
            if variant not in found:
                found.append(variant)
    return tuple(found)


def operation_name(request: HttpRequest) -> str:
    target = request.header("x-amz-target") or ""
    prefix, _, operation = target.partition(".")
    if prefix == service_model.EXTENSION_TARGET_PREFIX and operation in service_model.EXTENSION_OPERATIONS:
        return operation
    if prefix != service_model.target_prefix() or not operation:
        raise UnknownOperationException(f"Unknown operation {target or '(no X-Amz-Target)'}")
    if operation not in service_model.ecr_model().operation_names:
        raise UnknownOperationException(f"Unknown operation {target}")
    return operation


def read_params(request: HttpRequest, operation: str) -> dict[str, Any]:
    """Decode the JSON body and check it against the operation's input shape."""
    if request.body.strip():
        try:
            body = json.loads(request.body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting: the caller's fault
            raise SerializationException(f"Request body is not valid JSON: {exc}") from None
    else:
        body = {}  # an operation without input may send an empty body
    return service_model.read_input(operation, body)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class ResponseTooLarge(Exception):
    """The response would exceed what a function may return; `size` is what it would have been."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def ok_response(result: dict[str, Any], request_id: str) -> dict[str, Any]:
    response = _response(200, result, request_id)
    # Escaping makes a character at most 6 (\uXXXX; the runtime escapes non-ASCII): measure only
    # what could reach the limit.
    if len(response["body"]) * 6 > MAX_RETURNED_BYTES:
        size = returned_size(response)
        if size > MAX_RETURNED_BYTES:
            raise ResponseTooLarge(size)
    return response


def returned_size(value: Any) -> int:
    """The bytes of `value` as the Lambda runtime returns it (JSON; non-ASCII escaped, the larger)."""
    return len(json.dumps(value).encode("ascii"))


def error_response(error: EcrError, request_id: str) -> dict[str, Any]:
    body = {"__type": error.code, "message": error.message, **error.members}
    return _response(error.status, body, request_id)


def _response(status: int, body: dict[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id},
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        "isBase64Encoded": False,
    }
