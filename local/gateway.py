"""A small stand-in for API Gateway's REST API with a Lambda proxy integration.

Each HTTP request becomes the same v1 proxy event the deployed API sends; a pool of worker
processes (warm, one request each at a time, like Lambda) runs the same handler. API Gateway's and
Lambda's payload limits are applied, so what fails deployed fails here too.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread
from urllib.parse import parse_qsl

from registry.config import AUTHORIZER_CACHE_SECONDS
from registry.distribution import http as distribution_http
from registry.distribution import is_distribution_path

from .worker import Invocation, Worker

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # REST API payload limit
LAMBDA_MAX_PAYLOAD = 6 * 1024 * 1024  # synchronous invoke request and response: 6,291,456 bytes
STAGE = "local"
READ_TIMEOUT_SECONDS = 60.0  # a client silent this long mid-request (or idle between requests) is dropped
# Request headers that API Gateway (REST API) does not pass on in the proxy event: the body's framing
# and the hop-by-hop headers: LocalStack's list, from its parity tests against AWS, and Keep-Alive
# (connection-specific by RFC 9110 7.6.1; not in that list, so assumed). A client that signed one of
# them signed what the function never sees.
DROPPED_REQUEST_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Content-Length",
        "Content-MD5",
        "Expect",
        "Keep-Alive",
        "Max-Forwards",
        "Proxy-Authenticate",
        "Server",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "WWW-Authenticate",
    )
)
BINARY_MEDIA_TYPES = frozenset(distribution_http.BINARY_MEDIA_TYPES)
# Response headers API Gateway renames when a function sets them: the challenge must come from the
# gateway itself (its UNAUTHORIZED response), and the length is the gateway's own (0 for a HEAD).
REMAPPED_RESPONSE_HEADERS = {
    "www-authenticate": "x-amzn-Remapped-WWW-Authenticate",
    "content-length": "x-amzn-Remapped-Content-Length",
}
# The stack routes `ANY` on /v2 and /v2/{proxy+}: every method API Gateway accepts reaches the authorizer
V2_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DECIMAL = re.compile(r"[0-9]+")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})(?:;[^\r\n]*)?\r?\n")
_QUERY = re.compile(r"\?[^\s'\"]*")  # the query of a request target, up to the end of the target


def proxy_event(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
    query: str = "",
    header_list: list[tuple[str, str]] | None = None,
    authorizer: dict | None = None,
) -> dict:
    """The REST API proxy event of a request for `path` (as the client requested it, without the
    query string). Our URLs carry no stage, so `path` and `requestContext.path` are both the path
    the client requested, which is the one it signed; on AWS, `path` lacks the stage prefix
    that `requestContext.path` keeps."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    # API Gateway takes a request without a Content-Type for application/json (docker's PATCH has none)
    media_type = content_type.split(";", 1)[0].strip().lower() or "application/json"
    binary = media_type in BINARY_MEDIA_TYPES
    # A body of a binary media type reaches the function base64-encoded. Any other is handed over
    # as text, invalid UTF-8 replaced (U+FFFD): no longer what the client signed, refused as such.
    text = base64.b64encode(body).decode("ascii") if binary else body.decode("utf-8", errors="replace")
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    multi_headers: dict[str, list[str]] = {}
    for name, value in header_list if header_list is not None else headers.items():
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    return {
        "resource": "/",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": "/",
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": path,
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
            "domainName": "localhost",
            "apiId": "local",
            **({"authorizer": authorizer} if authorizer is not None else {}),
        },
        "body": text,
        "isBase64Encoded": binary,
    }


def authorizer_event(method: str, path: str, headers: dict[str, str], source_ip: str) -> dict:
    """The event of a REQUEST authorizer (identity source: the Authorization header)."""
    return {
        "type": "REQUEST",
        "methodArn": f"arn:aws:execute-api:us-east-1:000000000000:local/{STAGE}/{method}{path}",
        "resource": "/v2/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "requestContext": {"stage": STAGE, "apiId": "local", "identity": {"sourceIp": source_ip}},
    }


class WorkerPool:
    """Up to `size` warm workers; a request waits for an idle one, as Lambda's concurrency limit."""

    def __init__(self, size: int, environment: dict[str, str]):
        self.size, self.environment = size, environment
        self.idle: queue.LifoQueue[Worker] = queue.LifoQueue()  # reuse the warmest worker first
        self.started: list[Worker] = []
        self.lock = Lock()

    def invoke(self, event: Invocation) -> tuple[dict, int]:
        """Run one event (serialized once by the caller) on an idle worker: its result, and the
        result's serialized size."""
        worker = self._acquire()
        try:
            result = worker.invoke(event)
        except Exception:
            worker.stop()
            with self.lock:
                self.started.remove(worker)
            raise
        self.idle.put(worker)
        return result

    def _acquire(self) -> Worker:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            if len(self.started) < self.size:
                worker = Worker(self.environment)  # a cold start
                self.started.append(worker)
                return worker
        return self.idle.get()

    def stop(self) -> None:
        with self.lock:
            for worker in self.started:  # ask all to exit first, then wait for each
                worker.process.stdin.close()
            for worker in self.started:
                worker.stop()
            self.started.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once; the default backlog of 5 drops them


class Gateway:
    def __init__(
        self,
        port: int,
        environment: dict[str, str],
        workers: int = 8,
        log_path: str | None = None,
        access_log: bool = False,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ):
        env = {**os.environ, **environment}
        if log_path:
            env["REGISTRY_LOCAL_HANDLER_LOG"] = log_path
        self.pool = WorkerPool(workers, env)
        self._authorizer_cache: dict[str, tuple[float, dict | bool | None]] = {}
        self._authorizer_lock = Lock()
        self.access_log = access_log
        self.read_timeout = read_timeout
        self.server = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self.server.server_address[1]
        self._thread: Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def authorize(
        self, authorization: str, method: str, path: str, headers: list[tuple[str, str]], source_ip: str
    ) -> dict | bool | None:
        """The `/v2` authorizer, as API Gateway runs it: its context if it allows the request, False if
        it denies it, None for Unauthorized; answers kept AUTHORIZER_CACHE_SECONDS per header."""
        now = time.monotonic()
        with self._authorizer_lock:
            cached = self._authorizer_cache.get(authorization)
        if cached is not None and cached[0] > now:
            return cached[1]
        event = authorizer_event(method, path, dict(headers), source_ip)
        result, _ = self.pool.invoke(Invocation.of(event))
        if result.get("errorMessage") == "Unauthorized":
            decision: dict | bool | None = None
        elif "errorMessage" in result:
            raise RuntimeError(f"authorizer failed: {result['errorMessage']}")
        else:
            statements = (result.get("policyDocument") or {}).get("Statement") or []
            allowed = any(s.get("Effect") == "Allow" for s in statements) and not any(
                s.get("Effect") == "Deny" for s in statements
            )
            decision = dict(result.get("context") or {}, principalId=result.get("principalId")) if allowed else False
        with self._authorizer_lock:
            self._authorizer_cache[authorization] = (now + AUTHORIZER_CACHE_SECONDS, decision)
        return decision

    def start(self) -> Gateway:
        self._thread = Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.pool.stop()

    def _handler_class(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: with Nagle's algorithm on, the body waits for
            # the client's delayed ACK of the headers (~40 ms per request on Linux loopback).
            disable_nagle_algorithm = True
            timeout = gateway.read_timeout  # on the socket: no read (or write) waits forever
            # Not HTTP/0.9 (the default): every answer has a status line, a malformed request line's 400 too.
            default_request_version = "HTTP/1.1"

            def _route(self):
                path, _, query = self.path.partition("?")
                if self.command == "POST" and path == "/":
                    return self._ecr_api(path, query)
                if is_distribution_path(path) and self.command in V2_METHODS:
                    return self._distribution(path, query)
                if self._read_body() is not None:  # API Gateway has no such route
                    self._reply(403, {"message": "Missing Authentication Token"})
                return None

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _route

            def _ecr_api(self, path: str, query: str) -> None:
                body = self._read_body()
                if body is None:
                    return None
                invocation = Invocation.of(self._event(path, query, body))
                if invocation.size > LAMBDA_MAX_PAYLOAD:
                    return self._reply(413, {"message": "Request Too Long"})
                return self._invoke(invocation)

            def _distribution(self, path: str, query: str) -> None:
                """A `/v2` route: the authorizer first (identity source Authorization), then the function."""
                body = self._read_body(distribution=True)
                if body is None:
                    return None
                authorization = self.headers.get("Authorization")
                if not authorization:  # API Gateway answers without calling the authorizer
                    return self._gateway_response("UNAUTHORIZED")
                try:
                    allowed = gateway.authorize(
                        authorization, self.command, path, self._headers(), self.client_address[0]
                    )
                except Exception as exc:  # noqa: BLE001 - API Gateway: 500 when its authorizer fails
                    print(f"gateway: authorizer failed: {exc!r}", file=sys.stderr)
                    return self._reply(500, {"message": None})
                if allowed is None:
                    return self._gateway_response("UNAUTHORIZED")
                if allowed is False:
                    return self._gateway_response("ACCESS_DENIED")
                invocation = Invocation.of(self._event(path, query, body, authorizer=allowed))
                if invocation.size > LAMBDA_MAX_PAYLOAD:  # what no function can be given
                    return self._gateway_response("REQUEST_TOO_LARGE")
                return self._invoke(invocation)

            def _headers(self) -> list[tuple[str, str]]:
                return [(k, v) for k, v in self.headers.items() if k.lower() not in DROPPED_REQUEST_HEADERS]

            def _event(self, path: str, query: str, body: bytes, authorizer: dict | None = None) -> dict:
                headers = self._headers()
                return proxy_event(
                    self.command,
                    path,
                    dict(headers),
                    body,
                    self.client_address[0],
                    query=query,
                    header_list=headers,
                    authorizer=authorizer,
                )

            def _invoke(self, invocation: Invocation) -> None:
                try:
                    result, returned = gateway.pool.invoke(invocation)
                except Exception as exc:  # noqa: BLE001 - a crashed worker is a 502, as in AWS
                    print(f"gateway: handler failed: {exc!r}", file=sys.stderr)
                    return self._reply(502, {"message": "Internal server error"})
                # Lambda's limit is on what the function returned, serialized (the body escaped once
                # more inside it), not on the body: past it, the invoke fails and API Gateway says 502.
                if returned > LAMBDA_MAX_PAYLOAD or "statusCode" not in result:
                    if "errorMessage" in result:
                        print(f"gateway: handler failed: {result['errorMessage']}", file=sys.stderr)
                    return self._reply(502, {"message": "Internal server error"})
                raw = result.get("body") or ""
                payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
                headers = {
                    REMAPPED_RESPONSE_HEADERS.get(name.lower(), name): value
                    for name, value in (result.get("headers") or {}).items()
                }
                return self._send(result["statusCode"], headers, payload)

            def _gateway_response(self, kind: str) -> None:
                status, body = distribution_http.GATEWAY_RESPONSES[kind]
                headers = {"Content-Type": "application/json", **distribution_http.API_VERSION}
                if kind == "UNAUTHORIZED":
                    headers["WWW-Authenticate"] = distribution_http.challenge(gateway.endpoint)
                if kind == "REQUEST_TOO_LARGE":
                    self.close_connection = True
                return self._send(status, headers, body.encode())

            def _read_body(self, distribution: bool = False) -> bytes | None:
                """The body, at most API Gateway's limit; None once the request has been refused.

                Refused by what the headers declare, before a byte of the body is read: the body
                is then left unread, so the connection closes after the answer. A chunked body
                (docker's streamed PATCH) is read chunk by chunk, and refused as soon as it is
                past the limit."""
                too_large = (
                    (lambda: self._gateway_response("REQUEST_TOO_LARGE"))
                    if distribution
                    else (lambda: self._refuse(413, "Request Too Long"))
                )
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    return self._read_chunked(too_large)
                if "Transfer-Encoding" in self.headers:  # another coding: not supported here
                    return self._refuse(411, "Length Required")
                declared = self.headers.get_all("Content-Length") or ["0"]
                if len(set(declared)) != 1 or not _DECIMAL.fullmatch(declared[0]):
                    return self._refuse(400, "Invalid Content-Length")
                length = int(declared[0])
                if length > API_GATEWAY_MAX_BODY:
                    return too_large()
                body = self.rfile.read(length)
                if len(body) < length:  # the client closed the connection mid-body
                    self.close_connection = True
                    return None
                return body

            def _read_chunked(self, too_large) -> bytes | None:
                parts, size = [], 0
                while True:
                    line = self.rfile.readline(1024)
                    match = _CHUNK_SIZE.fullmatch(line)
                    if match is None:
                        return self._refuse(400, "Invalid chunked body")
                    length = int(match[1], 16)
                    if length == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return b"".join(parts)
                    size += length
                    if size > API_GATEWAY_MAX_BODY:
                        return too_large()
                    chunk = self.rfile.read(length)
                    if len(chunk) < length or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                        self.close_connection = True
                        return None
                    parts.append(chunk)

            def _refuse(self, status: int, message: str) -> None:
                self.close_connection = True
                self._reply(status, {"message": message})

            def _reply(self, status: int, body: dict) -> None:
                self._send(
                    status,
                    {"Content-Type": "application/json", "x-amzn-ErrorType": "GatewayException"},
                    json.dumps(body).encode(),
                )

            def _send(self, status: int, headers: dict, payload: bytes) -> None:
                if self.command == "HEAD":  # API Gateway sends no body, and says so: length 0
                    payload = b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, fmt, *args):
                if gateway.access_log:
                    # No headers when the request line or the headers could not be parsed.
                    headers = getattr(self, "headers", None)
                    target = ((headers and headers.get("X-Amz-Target")) or "").rpartition(".")[2]
                    # A query can carry credentials (a presigned request's X-Amz-Signature): never logged.
                    line = _QUERY.sub("?...", fmt % args)
                    sys.stderr.write(f"{self.address_string()} {target} {line}\n")

        return Handler
