"""A plain HTTP client of the `/v2` API for the tests: exactly the requests a container tool sends,
so that each rule of the spec can be asserted on the wire (the real tools are driven elsewhere)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return self.json()["errors"][0]["code"]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def login_header(ecr) -> str:
    """`Basic AWS:<password>` from GetAuthorizationToken, as `docker login` would send it."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    base64.b64decode(token)  # it is base64 of AWS:<password>: sent as is
    return f"Basic {token}"


class Client:
    def __init__(
        self,
        endpoint: str,
        authorization: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str | None = None,
    ):
        """`endpoint` over http or https (the deployed stack's; by default, the certificates trusted
        are the system's, or those of SSL_CERT_FILE). `host`: the Host header of every request, as a
        client that reached the endpoint under another name sends it (`<registry>.dkr.ecr...`)."""
        self.endpoint = endpoint.rstrip("/")
        parts = urlsplit(self.endpoint)
        self.host, self.port, self.prefix = parts.hostname, parts.port, parts.path
        self.tls = parts.scheme == "https"
        self.ssl_context = ssl_context
        self.authorization = authorization
        self.host_header = host

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls:
            context = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(self.host, self.port, timeout=120, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, chunked: bool = False
    ) -> Answer:
        """`path` is under the endpoint ("/v2/...") or absolute (a Location)."""
        if path.startswith("http"):
            parts = urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        else:
            path = self.prefix + path
        sent = dict(headers or {})
        if self.authorization and "Authorization" not in sent:
            sent["Authorization"] = self.authorization
        if self.host_header:
            sent.setdefault("Host", self.host_header)
        connection = self._connection()
        try:
            if chunked:
                connection.putrequest(method, path, skip_host="Host" in sent)
                for name, value in {**sent, "Transfer-Encoding": "chunked"}.items():
                    connection.putheader(name, value)
                connection.endheaders()
                for start in range(0, len(body or b""), 65536):
                    piece = body[start : start + 65536]
                    connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                connection.send(b"0\r\n\r\n")
            else:
                connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def push_blob(self, name: str, data: bytes) -> str:
        """POST, one streamed PATCH, PUT ?digest= (docker's way); the digest."""
        started = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert started.status == 202, (started.status, started.body)
        patched = self.request(
            "PATCH",
            started.header("location"),
            body=data,
            chunked=True,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patched.status == 202, (patched.status, patched.body)
        digest = sha256(data)
        separator = "&" if "?" in patched.header("location") else "?"
        done = self.request("PUT", f"{patched.header('location')}{separator}digest={digest}")
        assert done.status == 201, (done.status, done.body)
        return digest

    def push_manifest(self, name: str, reference: str, manifest: str, media_type: str) -> Answer:
        return self.request(
            "PUT", f"/v2/{name}/manifests/{reference}", body=manifest.encode(), headers={"Content-Type": media_type}
        )
