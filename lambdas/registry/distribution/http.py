"""What the `/v2` API answers: replies, the spec's error body, and the one table from the error
hierarchy to the spec's codes and statuses (as the JSON 1.1 wire maps it to `__type` once).

    {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "...", "detail": {...}}]}
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .. import errors

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}
# The realm and service of the Basic challenge, as ECR sends them.
SERVICE = "ecr.amazonaws.com"


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def proxy_response(self, request_id: str) -> dict[str, Any]:
        """The API Gateway proxy response. Bodies are JSON or manifests (UTF-8 text): sent as text."""
        headers = {**API_VERSION, **self.headers, "x-amzn-RequestId": request_id}
        try:
            return {
                "statusCode": self.status,
                "headers": headers,
                "body": self.body.decode("utf-8"),
                "isBase64Encoded": False,
            }
        except UnicodeDecodeError:  # never for what we send; kept exact if it ever is
            body = base64.b64encode(self.body).decode("ascii")
            return {"statusCode": self.status, "headers": headers, "body": body, "isBase64Encoded": True}


class OciError(Exception):
    """An error of the spec that no ECR error stands for (a bad route, name, range, ...)."""

    def __init__(self, code: str, message: str, status: int, detail: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.detail = code, message, status, detail
        self.headers = headers or {}


def error_reply(
    code: str, message: str, status: int, detail: Any = None, headers: dict[str, str] | None = None
) -> Reply:
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    body = json.dumps({"errors": [entry]}, separators=(",", ":")).encode()
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


# The ECR errors the operations raise, as the spec says them. InvalidParameterException depends on
# what was being done (a manifest, an upload, ...): the route's own code (`invalid`) stands for it.
CODES: dict[type[errors.EcrError], tuple[str, int]] = {
    errors.RepositoryNotFoundException: ("NAME_UNKNOWN", 404),
    errors.ImageNotFoundException: ("MANIFEST_UNKNOWN", 404),
    errors.LayersNotFoundException: ("MANIFEST_BLOB_UNKNOWN", 400),
    errors.ReferencedImagesNotFoundException: ("MANIFEST_BLOB_UNKNOWN", 400),
    errors.ImageTagAlreadyExistsException: ("TAG_INVALID", 400),
    errors.ImageDigestDoesNotMatchException: ("DIGEST_INVALID", 400),
    errors.InvalidLayerException: ("DIGEST_INVALID", 400),
    errors.UploadNotFoundException: ("BLOB_UPLOAD_UNKNOWN", 404),
    errors.InvalidLayerPartException: ("BLOB_UPLOAD_INVALID", 416),
    errors.EmptyUploadException: ("BLOB_UPLOAD_INVALID", 400),
    errors.LayerInaccessibleException: ("BLOB_UNKNOWN", 404),
    errors.LimitExceededException: ("DENIED", 403),
    errors.KmsException: ("DENIED", 403),
    errors.AccessDeniedException: ("DENIED", 403),
    errors.ServerException: ("UNKNOWN", 500),
}


def ecr_error_reply(error: errors.EcrError, invalid: str) -> Reply:
    if isinstance(error, errors.InvalidParameterException):
        code, status = invalid, 400
    else:
        code, status = CODES.get(type(error), ("UNKNOWN", error.status))
    headers = {}
    if isinstance(error, errors.InvalidLayerPartException):  # where the upload stands
        headers["Range"] = f"0-{max(error.members['lastValidByteReceived'], 0)}"
    return error_reply(code, error.message, status, headers=headers)


def login_refused() -> Reply:
    """A login the authorizer let through that is no longer good (it expired, or its key was revoked,
    while API Gateway cached the authorizer's answer): the authorizer's own refusal."""
    status, body = GATEWAY_RESPONSES["ACCESS_DENIED"]
    return Reply(status, {"Content-Type": "application/json"}, body.encode())


# --- what API Gateway itself answers on the /v2 routes (its gateway responses; the local gateway
# answers the same): the 401 challenge (a function's own WWW-Authenticate would be renamed), a
# refused login, and a body past what reaches the function. ------------------------------------

# The API's binary media types: bodies of these types reach the function base64-encoded, byte for byte;
# any other arrives as UTF-8 text (invalid bytes replaced). Layer bytes come as application/octet-stream
# (containerd, skopeo) or with no Content-Type at all (docker's PATCH), which API Gateway takes for
# application/json. The ECR API's bodies (application/x-amz-json-1.1) and manifests (their own types)
# stay text: base64 would shrink the 4 MiB layer parts of the ECR API out of the payload.
BINARY_MEDIA_TYPES = ("application/octet-stream", "application/json")

# A body reaches the function only up to about 4.4 MiB: Lambda's invoke payload is 6,291,456 bytes,
# and a binary body is base64-encoded in it (+33 %, plus the event around it).
SIZE_INVALID_MESSAGE = (
    "A request body reaches this registry only up to about 4.4 MiB (its API runs on AWS Lambda): push "
    "larger layers in chunks of at most 4 MiB (OCI-Chunk-Max-Length) with a client that chunks, or "
    "through the ECR API (UploadLayerPart), which takes a layer of any size in parts."
)


def gateway_body(code: str, message: str) -> str:
    """The spec's error body; its top-level message is for AWS SDKs, which meet these answers on the
    ECR API too (a gateway response covers the whole API) and read an error's message there."""
    body = {"errors": [{"code": code, "message": message}], "message": message}
    return json.dumps(body, separators=(",", ":"))


GATEWAY_RESPONSES: dict[str, tuple[int, str]] = {
    # API Gateway's response type: (status, body)
    "UNAUTHORIZED": (
        401,
        gateway_body("UNAUTHORIZED", "authentication required: log in with aws ecr get-login-password"),
    ),
    "ACCESS_DENIED": (
        403,
        gateway_body(
            "DENIED",
            "not authorized: the login has expired, was revoked or is not one of this registry's, "
            "or the request's source is not allowed; log in again with aws ecr get-login-password",
        ),
    ),
    "REQUEST_TOO_LARGE": (413, gateway_body("SIZE_INVALID", SIZE_INVALID_MESSAGE)),
}


def challenge(realm: str) -> str:
    return f'Basic realm="{realm.rstrip("/")}/",service="{SERVICE}"'
