"""`imagectl proxy`: a registry endpoint on loopback for docker, containerd, skopeo and BuildKit
(docs/images.md#the-local-proxy). They push to it as to any registry; it sends their layers on to
the registry with the ECR API -- spooled, then straight to S3 in presigned parts where the registry
offers direct uploads, else in UploadLayerPart parts as they arrive (so no layer is too large, and
none is held in memory) -- and passes everything else to the registry's `/v2`, logged in with the
user's AWS credentials.

How the modules meet, along one request: server (route; answer) → uploads (a blob's bytes on to
the registry, through uploader.LayerParts and send_direct_parts) or upstream (the registry's /v2
with the login); bodies reads request bodies as they arrive.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .server import ProxyServer
from .upstream import Upstream


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise UsageError(f"--listen {text}: give HOST:PORT, e.g. 127.0.0.1:5000")
        return cls(host, int(port))

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def open_proxy(listen: Listen, client: Any, allow_remote: bool) -> ProxyServer:
    """The server, bound (its port known, even for :0), logged in to the registry, not yet serving."""
    if not listen.is_loopback and not allow_remote:
        raise UsageError(
            f"--listen {listen.host}: the proxy has no login of its own, and whoever reaches it pushes and "
            "pulls with your AWS credentials; listen on loopback (127.0.0.1, ::1), or add --allow-remote"
        )
    upstream = Upstream(client)
    try:
        return ProxyServer((listen.host, listen.port), listen.family, upstream)
    except OSError as error:
        raise UsageError(f"cannot listen on {listen.host}:{listen.port}: {error.strerror}") from None
