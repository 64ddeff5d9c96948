"""The proxy's HTTP side: a threaded server on loopback that answers the blob-upload routes itself
(uploads.py) and passes every other `/v2` request to the registry, its answer streamed back as it
is -- status, OCI error body, Docker-Content-Digest, a blob's redirect to S3 (the client follows it).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from .bodies import BadBody, Body, body_of, read_all
from .uploads import OciError, Uploads, UploadSession, as_oci_errors
from .upstream import Upstream

UPLOAD_ROUTE = re.compile(r"/v2/(?P<name>.+?)/blobs/uploads/(?P<upload_id>[^/]*)")
CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/\d+|/\*)?")
MAX_PASSED_BODY = 8 << 20  # a manifest's body (ECR's limit is 4 MiB); blobs never pass this way
COPY_SIZE = 1 << 20
NO_BODY_STATUSES = (204, 304)


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    upstream: requests.Response | None = None  # its body streamed to the client, then closed


def error_reply(error: OciError) -> Reply:
    body = json.dumps({"errors": [{"code": error.code, "message": error.message}]}).encode()
    return Reply(error.status, {**error.headers, "Content-Type": "application/json"}, body)


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True  # a client that hangs does not keep the proxy from stopping

    def __init__(self, address: tuple[str, int], family: int, upstream: Upstream):
        self.address_family = family
        self.upstream, self.uploads = upstream, Uploads(upstream.client)
        super().__init__(address, ProxyHandler)
        host = address[0]
        self.url = f"http://[{host}]:{self.server_port}" if ":" in host else f"http://{host}:{self.server_port}"


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked request bodies
    server: ProxyServer

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"imagectl proxy: {self.address_string()} {format % args}\n")

    def _serve(self) -> None:
        url = urlsplit(self.path)
        body: Body | None = None
        try:
            body = body_of(self.headers, self.rfile)
            reply = self._route(url.path, parse_qs(url.query), url.query, body)
        except OciError as error:
            reply = error_reply(error)
        except BadBody as error:
            reply = error_reply(OciError("BLOB_UPLOAD_INVALID", f"the request's body: {error}", 400))
        except Exception as error:  # noqa: BLE001 - a bug: said to the client and logged, the proxy goes on
            self.log_error("fault: %r", error)
            reply = error_reply(OciError("UNKNOWN", f"the proxy failed: {error!r}", 500))
        if body is None or not body.exhausted:  # unread bytes would be taken for the next request
            self.close_connection = True
        self._send(reply)

    def _route(self, path: str, query: dict[str, list[str]], raw_query: str, body: Body) -> Reply:
        upload = UPLOAD_ROUTE.fullmatch(path)
        if upload is None:
            return self._pass(path + (f"?{raw_query}" if raw_query else ""), body)
        name, upload_id = upload["name"], upload["upload_id"]
        one = {k: v[-1] for k, v in query.items()}
        if not upload_id and self.command == "POST":
            return self._start(name, one, body)
        if upload_id and self.command in ("PATCH", "PUT", "GET", "DELETE"):
            return self._continue(self.server.uploads.get(name, upload_id), one, body)
        raise OciError("UNSUPPORTED", f"{self.command} is not served on this route", 405)

    # --- uploads ------------------------------------------------------------------------------

    def _start(self, name: str, query: dict[str, str], body: Body) -> Reply:
        if "mount" in query and "from" in query:
            mounted = self._mount(name, query)
            if mounted is not None:
                return mounted
        session = self.server.uploads.start(name)
        if "digest" in query:  # the whole blob in the POST (monolithic POST)
            return self._finish(session, query, body)
        return _upload_reply(202, session)

    def _mount(self, name: str, query: dict[str, str]) -> Reply | None:
        """The registry's own answer when it mounted the blob from the other repository; None when it
        would take an upload instead (its upload is cancelled: the proxy makes its own)."""
        target = f"/v2/{name}/blobs/uploads/?{urlencode({'mount': query['mount'], 'from': query['from']})}"
        with as_oci_errors():
            answer = self.server.upstream.forward("POST", target, {})
        if answer.status_code != 202:
            return self._reply_from(answer)
        answer.close()
        started = self.server.upstream.headers_for_client(answer).get("Location")  # the path under its endpoint
        if started:
            with as_oci_errors():
                self.server.upstream.forward("DELETE", started, {}).close()
        return None

    def _continue(self, session: UploadSession, query: dict[str, str], body: Body) -> Reply:
        with session.lock:
            if self.command == "GET":
                return _upload_reply(204, session)
            if self.command == "DELETE":
                self.server.uploads.end(session.upload_id)
                return Reply(204)
            self._check_range(session)
            if self.command == "PUT":
                return self._finish(session, query, body)
            session.append(body)
            return _upload_reply(202, session)

    def _check_range(self, session: UploadSession) -> None:
        """A chunk with Content-Range must begin where the upload stands (416 with where, else)."""
        content_range = self.headers.get("Content-Range")
        if content_range is None:
            return
        match = CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None or int(match[1]) != session.received:
            raise OciError(
                "BLOB_UPLOAD_INVALID",
                f"Content-Range {content_range[:60]!r} does not follow the {session.received} bytes received",
                416,
                _upload_reply(416, session).headers,
            )

    def _finish(self, session: UploadSession, query: dict[str, str], body: Body) -> Reply:
        digest = query.get("digest")
        if not digest:
            raise OciError("DIGEST_INVALID", "the upload's last PUT names no digest (?digest=)", 400)
        try:
            session.append(body)
            size = session.received
            way = session.finish(digest)
        except OciError as refused:
            if refused.status < 500:  # the registry ended it (or will not take more): so does the proxy
                self.server.uploads.end(session.upload_id)
            raise
        self.server.uploads.end(session.upload_id)
        self.log_message("upload %s: %d bytes %s", session.upload_id, size, way)
        location = f"/v2/{session.repository}/blobs/{digest}"
        return Reply(201, {"Location": location, "Docker-Content-Digest": digest})

    # --- everything else: the registry's /v2 --------------------------------------------------

    def _pass(self, target: str, body: Body) -> Reply:
        data = read_all(body, MAX_PASSED_BODY)
        if data is None:
            raise OciError("SIZE_INVALID", f"the proxy passes bodies of at most {MAX_PASSED_BODY} bytes", 413)
        with as_oci_errors():
            answer = self.server.upstream.forward(self.command, target, joined(self.headers), data or None)
        return self._reply_from(answer)

    def _reply_from(self, answer: requests.Response) -> Reply:
        return Reply(answer.status_code, self.server.upstream.headers_for_client(answer), upstream=answer)

    # --- the answer ---------------------------------------------------------------------------

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        try:
            if reply.upstream is not None:
                self._send_upstream_body(reply.upstream)
            else:
                if self.command != "HEAD" or "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
        finally:
            if reply.upstream is not None:
                reply.upstream.close()

    def _send_upstream_body(self, answer: requests.Response) -> None:
        """As it comes: with the registry's length when it gave one (a HEAD's too), else chunked."""
        length = answer.headers.get("Content-Length")
        if self.command == "HEAD" or reply_has_no_body(answer.status_code):
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            return
        if length:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while piece := answer.raw.read(COPY_SIZE, decode_content=False):
            self.wfile.write(piece if length else b"%x\r\n%s\r\n" % (len(piece), piece))
        if not length:
            self.wfile.write(b"0\r\n\r\n")


def joined(headers: Message) -> dict[str, str]:
    """Each header once: one sent on several lines (skopeo's Accept, a media type a line) as one list."""
    names = {name.lower(): name for name in headers}
    return {name: ", ".join(headers.get_all(name, [])) for name in names.values()}


def reply_has_no_body(status: int) -> bool:
    return status < 200 or status in NO_BODY_STATUSES


def _upload_reply(status: int, session: UploadSession) -> Reply:
    return Reply(
        status,
        {
            "Location": f"/v2/{session.repository}/blobs/uploads/{session.upload_id}",
            "Range": f"0-{max(session.received - 1, 0)}",
            "Docker-Upload-UUID": session.upload_id,
        },
    )
