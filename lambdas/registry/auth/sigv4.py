"""AWS Signature Version 4, checked the way the client computed it: with botocore's own signer.

The client (any AWS SDK, the AWS CLI) signs for service `ecr` in the deployment's Region. We
rebuild its canonical request from what reached us -- method, the path it requested, the query,
exactly the headers it lists in SignedHeaders (content-length, which API Gateway does not pass on,
from the body), the SHA-256 of the real body bytes -- set the
signer's timestamp to the client's X-Amz-Date, let botocore compute the signature with the
key's secret and compare in constant time. Nothing here does I/O: the key comes from `lookup`.

Checks before the key is even looked up (cheap refusals first): Authorization present and well
formed, no session token (we issue none), scope `<date>/<region>/ecr/aws4_request` with the date
of X-Amz-Date, host, x-amz-date and (when sent) x-amz-target signed: the operation is what grants
are checked against, and
X-Amz-Date within 5 minutes of our clock (a captured request cannot be replayed later).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from ..errors import InvalidSignatureException, MissingAuthenticationTokenException, UnrecognizedClientException
from ..records import AccessKey

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "ecr"
MAX_SKEW_SECONDS = 300
TIMESTAMP = "%Y%m%dT%H%M%SZ"
# The operation (X-Amz-Target) is what grants are checked against: when sent, it must be signed.
REQUIRED_SIGNED_HEADERS = ("host", "x-amz-date", "x-amz-target")
_PARAMETER = re.compile(r"\s*(Credential|SignedHeaders|Signature)\s*=\s*([^,\s]*)\s*")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."


@dataclass(frozen=True)
class SignedRequest:
    """What the client signed, as it reached the function (see wire.HttpRequest)."""

    method: str
    paths: tuple[str, ...]  # the path the client may have requested, most likely first
    query: dict[str, list[str]]
    headers: dict[str, list[str]]  # lower-case names, every value
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ",".join(values) if values else None


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidSignatureException(f"Unsupported signature algorithm {algorithm[:40]!r}: sign with {ALGORITHM}")
    parameters: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAMETER.fullmatch(part)
        if not match or match[1] in parameters:
            raise InvalidSignatureException(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters, "
                "each once, separated by commas"
            )
        parameters[match[1]] = match[2]
    if set(parameters) != {"Credential", "SignedHeaders", "Signature"}:
        raise InvalidSignatureException(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"
        )
    scope = parameters["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise InvalidSignatureException(
            "Credential should be scoped to <access key>/<date>/<region>/<service>/aws4_request"
        )
    signed = tuple(parameters["SignedHeaders"].split(";"))
    if any(not h or h != h.lower() for h in signed) or list(signed) != sorted(set(signed)):
        raise InvalidSignatureException("SignedHeaders must be lower-case header names, sorted, separated by ';'")
    if not _SIGNATURE.fullmatch(parameters["Signature"]):
        raise InvalidSignatureException(SIGNATURE_MISMATCH)
    return Authorization(scope[0], scope[1], scope[2], scope[3], scope[4], signed, parameters["Signature"])


class _ClientSigner(SigV4Auth):  # type: ignore[misc]  # botocore ships no types
    """botocore's SigV4 signer, made to sign exactly the headers the client signed and the real
    bytes of the body (never a client-declared payload hash)."""

    def __init__(self, key: AccessKey, region: str, headers: HTTPHeaders, body_sha256: str):
        super().__init__(Credentials(key.access_key_id, key.secret), SERVICE, region)
        self._headers, self._body_sha256 = headers, body_sha256

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._headers

    def payload(self, request: AWSRequest) -> str:
        return self._body_sha256


def verify(
    request: SignedRequest, lookup: Callable[[str], AccessKey | None], region: str, now: Callable[[], float] = time.time
) -> AccessKey:
    """The key that signed `request`, or the protocol error AWS would answer."""
    header = request.header("authorization")
    if not header:
        if "X-Amz-Signature" in request.query or "X-Amz-Credential" in request.query:
            raise MissingAuthenticationTokenException(
                "Missing Authentication Token: presigned (query string) requests are not supported; "
                "sign the Authorization header"
            )
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    if request.header("x-amz-security-token") is not None or "X-Amz-Security-Token" in request.query:
        # Temporary credentials are STS's, not ours: this registry issues long-term keys only.
        raise UnrecognizedClientException(INVALID_TOKEN)
    auth = parse_authorization(header)
    if auth.service != SERVICE:
        raise InvalidSignatureException(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if auth.region != region:
        raise InvalidSignatureException(
            f"Credential should be scoped to a valid region, not '{auth.region[:40]}'. Use '{region}'."
        )
    if auth.terminator != "aws4_request":
        raise InvalidSignatureException("Credential should be scoped with a valid terminator: 'aws4_request'.")
    missing = [
        h
        for h in REQUIRED_SIGNED_HEADERS
        if h not in auth.signed_headers and (h != "x-amz-target" or request.header(h) is not None)
    ]
    if missing:
        raise InvalidSignatureException(f"SignedHeaders must include {', '.join(missing)}")
    amz_date = request.header("x-amz-date") or ""
    try:
        signed_at = datetime.strptime(amz_date, TIMESTAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidSignatureException(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header "
            "in ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z')"
        ) from None
    if auth.date != amz_date[:8]:
        raise InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date[:16]}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    current = now()
    if signed_at < current - MAX_SKEW_SECONDS:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than {_stamp(current - MAX_SKEW_SECONDS)} "
            f"({_stamp(current)} - 5 min.)"
        )
    if signed_at > current + MAX_SKEW_SECONDS:
        raise InvalidSignatureException(
            f"Signature not yet current: {amz_date} is still later than {_stamp(current + MAX_SKEW_SECONDS)} "
            f"({_stamp(current)} + 5 min.)"
        )

    key = lookup(auth.access_key_id)
    if key is None or not key.active or not key.secret:
        raise UnrecognizedClientException(INVALID_TOKEN)

    body_sha256 = hashlib.sha256(request.body).hexdigest()
    declared = request.header("x-amz-content-sha256")
    if declared is not None and declared != body_sha256:
        raise InvalidSignatureException("The provided 'x-amz-content-sha256' header does not match what was computed.")
    headers = HTTPHeaders()
    for name in auth.signed_headers:
        values = request.headers.get(name)
        if not values and name == "content-length":
            # The JS and Go SDKs sign it; a REST API proxy event never carries it. It is the length
            # of the very body hashed above, so rebuilding it lets nothing unsigned through.
            values = [str(len(request.body))]
        if not values:  # a signed header that did not reach us cannot be checked
            raise InvalidSignatureException(SIGNATURE_MISMATCH)
        for value in values:
            headers[name] = value  # HTTPHeaders appends: several values are joined with ','
    signer = _ClientSigner(key, region, headers, body_sha256)
    query = [(name, value) for name, values in request.query.items() for value in values]
    for path in request.paths:
        candidate = AWSRequest(method=request.method, url=f"https://signed.invalid{path}", params=query)
        candidate.context["timestamp"] = amz_date
        string_to_sign = signer.string_to_sign(candidate, signer.canonical_request(candidate))
        if hmac.compare_digest(signer.signature(string_to_sign, candidate), auth.signature):
            return key
    raise InvalidSignatureException(SIGNATURE_MISMATCH)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime(TIMESTAMP)
