"""The Docker/OCI `/v2` API as a client: this registry's for pulls (its login is GetAuthorizationToken's
token as Basic auth) and any registry's as the source of a copy (anonymous, Basic, or the Bearer token
a Basic login buys where the registry asks for one).

A blob GET may answer with a redirect (this registry's 307 to S3): it is followed without the
registry's credentials, as docker does. GETs and HEADs are retried on 429 and 5xx with backoff.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import CredentialsError, NotFound, RegistryError
from .oci import MANIFEST_TYPES, Descriptor, Manifest, verified

RETRY = Retry(total=6, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"))
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")


def session(retry: Retry = RETRY) -> requests.Session:
    made = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


@dataclass(frozen=True)
class ImageName:
    """`[scheme://]host/repository[:tag|@digest]`; without a scheme, https except on loopback (plain HTTP,
    as docker reaches 127.0.0.0/8)."""

    base_url: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, text: str) -> ImageName:
        scheme, _, rest = text.rpartition("://")
        host, _, path = rest.partition("/")
        if not path or ("." not in host and ":" not in host and host != "localhost"):
            raise ValueError(f"{text}: give the registry's host, e.g. 127.0.0.1:5000/library/busybox:latest")
        repository, reference = split_reference(path)
        scheme = scheme or ("http" if LOOPBACK.match(host) else "https")
        return cls(f"{scheme}://{host}", repository, reference)


def split_reference(text: str, default_tag: str = "latest") -> tuple[str, str]:
    """`repo[:tag|@digest]` → (repo, tag or digest)."""
    if "@" in text:
        repository, _, digest = text.partition("@")
        return repository, digest
    repository, sep, tag = text.rpartition(":")
    if not sep or "/" in tag:
        return text, default_tag
    return repository, tag


class DistributionClient:
    def __init__(self, base_url: str, credentials: tuple[str, str] | None):
        self.base_url, self.credentials = base_url.rstrip("/"), credentials
        self.http = session()
        self.authorization: str | None = None  # the header that worked last
        self.basic = "Basic " + base64.b64encode(":".join(credentials).encode()).decode() if credentials else None

    def _get(self, path: str, *, headers: dict[str, str] | None = None, stream: bool = False) -> requests.Response:
        url = f"{self.base_url}/v2/{path}"
        headers = dict(headers or {})
        try:
            response = self._send(url, headers, stream)
            if response.status_code == 401:
                self.authorization = self._answer(response.headers.get("WWW-Authenticate", ""))
                response = self._send(url, headers, stream)
            while response.is_redirect:  # followed without the registry's credentials
                location = urljoin(url, response.headers["Location"])
                response.close()
                response = self.http.get(location, headers=headers, stream=stream, allow_redirects=False, timeout=60)
        except requests.RequestException as error:
            raise RegistryError(f"cannot reach {self.base_url}: {error}") from None
        if response.status_code in (401, 403):
            raise CredentialsError(
                f"{self.base_url} refused the credentials ({response.status_code}): {_why(response)}"
            )
        if response.status_code == 404:
            raise NotFound(f"{self.base_url}/v2/{path}: {_why(response)}")
        if response.status_code not in (200, 206):
            raise RegistryError(f"{self.base_url}/v2/{path} answered {response.status_code}: {_why(response)}")
        return response

    def _send(self, url: str, headers: dict[str, str], stream: bool) -> requests.Response:
        if self.authorization:
            headers = {**headers, "Authorization": self.authorization}
        return self.http.get(url, headers=headers, stream=stream, allow_redirects=False, timeout=60)

    def _answer(self, challenge: str) -> str | None:
        """The Authorization header a 401's challenge asks for: Basic, or a Bearer token from its realm."""
        if challenge.lower().startswith("bearer"):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            params = {k: v for k, v in fields.items() if k in ("service", "scope")}
            auth = self.credentials if self.credentials else None
            answer = self.http.get(fields.get("realm", ""), params=params, auth=auth, timeout=60)
            if answer.status_code != 200:
                raise CredentialsError(f"{fields.get('realm')} refused a token ({answer.status_code})")
            token = answer.json().get("token") or answer.json().get("access_token")
            return f"Bearer {token}"
        if self.basic is None:
            raise CredentialsError(f"{self.base_url} needs credentials")
        return self.basic

    def manifest(self, repository: str, reference: str) -> Manifest:
        accept = {"Accept": ", ".join(MANIFEST_TYPES)}
        response = self._get(f"{repository}/manifests/{reference}", headers=accept)
        data = response.content
        where = f"{repository}:{reference}"
        expected = reference if reference.startswith("sha256:") else response.headers.get("Docker-Content-Digest")
        if expected:
            verified(data, expected, where)
        return Manifest.parse(data, response.headers.get("Content-Type", "").split(";")[0] or None, where)

    def open_blob(self, repository: str, digest: str, offset: int = 0) -> BinaryIO:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self._get(f"{repository}/blobs/{digest}", headers=headers, stream=True)
        raw: Any = response.raw
        raw.decode_content = False
        if offset and response.status_code == 200:  # no Range support: skip what is there
            left = offset
            while left > 0:
                chunk = raw.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
        return raw  # type: ignore[no-any-return]


def _why(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.text[:200]
    except ValueError:
        return response.text[:200]


class RegistrySource:
    """An image in a registry, as the source of a copy."""

    def __init__(self, client: DistributionClient, repository: str, reference: str):
        self.client, self.repository, self.reference = client, repository, reference
        self.description = f"{client.base_url}/{repository}:{reference}"

    def root(self) -> Manifest:
        return self.client.manifest(self.repository, self.reference)

    def manifest(self, descriptor: Descriptor) -> Manifest:
        return self.client.manifest(self.repository, descriptor.digest)

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> BinaryIO:
        return self.client.open_blob(self.repository, descriptor.digest, offset)
