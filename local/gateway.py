"""A small stand-in for API Gateway's REST API with a Lambda proxy integration.

Each HTTP request becomes the same v1 proxy event the deployed API sends; a pool of worker
processes (warm, one request each at a time, like Lambda) runs the same handler. API Gateway's and
Lambda's payload limits are applied, so what fails deployed fails here too.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

from . import worker

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # REST API payload limit
LAMBDA_MAX_PAYLOAD = 6 * 1024 * 1024  # synchronous invoke request and response: 6,291,456 bytes
STAGE = "local"


def proxy_event(method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict:
    text = body.decode("utf-8", "surrogateescape")
    now = datetime.now(timezone.utc)
    request_id = str(uuid.uuid4())
    return {
        "resource": "/", "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourceId": "local", "resourcePath": "/", "httpMethod": method,
            "extendedRequestId": request_id, "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{path}", "accountId": "000000000000", "protocol": "HTTP/1.1",
            "stage": STAGE, "domainPrefix": "localhost", "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id, "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
            "domainName": "localhost", "apiId": "local",
        },
        "body": text, "isBase64Encoded": False,
    }


class Gateway:
    def __init__(self, port: int, environment: dict[str, str], workers: int = 8,
                 log_path: str | None = None, access_log: bool = False):
        context = multiprocessing.get_context("spawn")  # clean interpreters, like Lambda's
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                        initializer=worker.start, initargs=(environment, log_path))
        self.access_log = access_log
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Gateway":
        self._thread = Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def warm_up(self, count: int) -> None:
        """Start `count` workers now rather than on the first requests (cold starts)."""
        list(self.pool.map(time.sleep, [0.2] * count))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _handler_class(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.split("?")[0] != "/":
                    return self._reply(403, {"message": "Missing Authentication Token"})
                if length > API_GATEWAY_MAX_BODY:
                    return self._reply(413, {"message": "Request Too Long"})
                event = proxy_event("POST", "/", dict(self.headers.items()), body, self.client_address[0])
                if len(json.dumps(event)) > LAMBDA_MAX_PAYLOAD:
                    return self._reply(413, {"message": "Request Too Long"})
                try:
                    result = gateway.pool.submit(worker.invoke, event).result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker is a 502, as in AWS
                    print(f"gateway: handler failed: {exc!r}", file=sys.stderr)
                    return self._reply(502, {"message": "Internal server error"})
                payload = result.get("body") or ""
                if len(payload.encode("utf-8")) > LAMBDA_MAX_PAYLOAD:
                    return self._reply(502, {"message": "Internal server error"})
                self._send(result["statusCode"], result.get("headers") or {}, payload.encode("utf-8"))

            def do_GET(self):  # noqa: N802 - API Gateway has no such route: it answers 403
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply(403, {"message": "Missing Authentication Token"})

            do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

            def _reply(self, status: int, body: dict) -> None:
                self._send(status, {"Content-Type": "application/json",
                                    "x-amzn-ErrorType": "GatewayException"}, json.dumps(body).encode())

            def _send(self, status: int, headers: dict, payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, fmt, *args):  # noqa: A003
                if gateway.access_log:
                    target = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                    sys.stderr.write(f"{self.address_string()} {target} {fmt % args}\n")

        return Handler
