"""Where an image is read from: an OCI image layout (a directory or a tar), a `docker save` archive, or
an image in a local Docker Engine (its `docker save`, through the API socket). Registries are in v2.py.

Sources are spelled as skopeo spells them (`oci:PATH[:REF]`, `oci-archive:PATH[:REF]`,
`docker-archive:PATH[:REF]`, `docker-daemon:IMAGE`), or given as a bare path whose content decides.
Blobs open at any byte offset: a resumed upload reads only what the registry has not got.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import posixpath
import shutil
import socket
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .errors import SourceError
from .oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    REF_NAME,
    Descriptor,
    Manifest,
    digest_hex,
    sha256_digest,
    verified,
)


class ImageSource(Protocol):
    description: str

    def root(self) -> Manifest: ...

    def manifest(self, descriptor: Descriptor) -> Manifest: ...

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> BinaryIO: ...


# --- files in a directory or in an uncompressed tar, opened at an offset -------------------------------


class BoundedReader:
    """At most `length` bytes of `stream` (a tar member's data)."""

    def __init__(self, stream: BinaryIO, length: int):
        self.stream, self.left = stream, length

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.stream.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Files(Protocol):
    def read(self, name: str) -> bytes: ...

    def open(self, name: str, offset: int = 0) -> BinaryIO: ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...


class DirectoryFiles:
    def __init__(self, root: Path):
        self.root = root

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as error:
            raise SourceError(f"{self.root}: cannot read {name}: {error.strerror}") from None

    def open(self, name: str, offset: int = 0) -> BinaryIO:
        try:
            stream = (self.root / name).open("rb")
        except OSError as error:
            raise SourceError(f"{self.root}: cannot read {name}: {error.strerror}") from None
        stream.seek(offset)
        return stream

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size


class TarFiles:
    """An uncompressed tar's regular files by name, read in place (offsets into the archive)."""

    def __init__(self, path: Path):
        self.path = path
        self.members: dict[str, tuple[int, int]] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(path, "r:") as archive:
                for member in archive:
                    name = posixpath.normpath(member.name)
                    if member.isfile():
                        self.members[name] = (member.offset_data, member.size)
                    elif member.issym():
                        links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                    elif member.islnk():
                        links[name] = posixpath.normpath(member.linkname)
        except (tarfile.TarError, OSError) as error:
            raise SourceError(f"{path}: not a readable uncompressed tar ({error})") from None
        for name, target in links.items():  # docker save links a layer that two images share
            if target in self.members:
                self.members[name] = self.members[target]

    def _member(self, name: str) -> tuple[int, int]:
        found = self.members.get(posixpath.normpath(name))
        if found is None:
            raise SourceError(f"{self.path}: the archive has no {name}")
        return found

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()

    def open(self, name: str, offset: int = 0) -> BinaryIO:
        start, size = self._member(name)
        stream = self.path.open("rb")
        stream.seek(start + offset)
        return BoundedReader(stream, size - offset)  # type: ignore[return-value]

    def exists(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def size(self, name: str) -> int:
        return self._member(name)[1]


def _json(files: Files, name: str, where: str) -> Any:
    try:
        return json.loads(files.read(name))
    except ValueError:
        raise SourceError(f"{where}: {name} is not JSON") from None


# --- OCI image layout ------------------------------------------------------------------------------


class OciLayout:
    """An OCI image layout: index.json names the images, blobs/sha256/<hex> holds everything."""

    def __init__(self, files: Files, description: str, ref: str | None):
        self.files, self.description = files, description
        index = _json(files, "index.json", description)
        entries = [Descriptor.read(m, f"{description}: index.json") for m in index.get("manifests") or []]
        self.entry = self._choose(entries, ref)

    def _choose(self, entries: list[Descriptor], ref: str | None) -> Descriptor:
        names = [e.annotations.get(REF_NAME) for e in entries]
        if ref is not None:
            chosen = [e for e, name in zip(entries, names, strict=True) if name == ref]
            if not chosen:
                raise SourceError(f"{self.description}: no image named {ref!r} (it has {_listing(names)})")
            return chosen[0]
        if len(entries) != 1:
            raise SourceError(
                f"{self.description}: holds {len(entries)} images ({_listing(names)}); name one as oci:PATH:REF"
            )
        return entries[0]

    def root(self) -> Manifest:
        return self.manifest(self.entry)

    def manifest(self, descriptor: Descriptor) -> Manifest:
        data = verified(self._blob(descriptor), descriptor.digest, self.description)
        return Manifest.parse(data, descriptor.media_type, f"{self.description}: {descriptor.digest}")

    def _blob(self, descriptor: Descriptor) -> bytes:
        return self.files.read(f"blobs/sha256/{digest_hex(descriptor.digest)}")

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> BinaryIO:
        return self.files.open(f"blobs/sha256/{digest_hex(descriptor.digest)}", offset)


def _listing(names: list[str | None]) -> str:
    return ", ".join(repr(n) if n else "an unnamed one" for n in names) or "none"


# --- docker save -------------------------------------------------------------------------------------


class DockerArchive:
    """`docker save`'s format: manifest.json lists each image's config file and layer tars. The
    registry gets an OCI image manifest naming them as they are: the config, and each layer as an
    uncompressed tar whose digest is its diff id (docs/images.md#what-goes-up)."""

    def __init__(self, files: Files, description: str, ref: str | None):
        self.files, self.description = files, description
        images = _json(files, "manifest.json", description)
        if not isinstance(images, list) or not images:
            raise SourceError(f"{description}: manifest.json lists no image")
        entry = self._choose(images, ref)
        self.blob_paths: dict[str, str] = {}
        self._manifest = self._synthesize(entry)

    def _choose(self, images: list[dict[str, Any]], ref: str | None) -> dict[str, Any]:
        if ref is not None:
            for image in images:
                tags = image.get("RepoTags") or []
                if ref in tags or any(t.rsplit(":", 1)[0] == ref for t in tags):
                    return image
            raise SourceError(f"{self.description}: no image tagged {ref!r}")
        if len(images) != 1:
            tags = [t for image in images for t in image.get("RepoTags") or []]
            raise SourceError(
                f"{self.description}: holds {len(images)} images ({', '.join(tags)}); name one as "
                "docker-archive:PATH:TAG"
            )
        return images[0]

    def _synthesize(self, entry: dict[str, Any]) -> Manifest:
        try:
            config_name, layer_names = str(entry["Config"]), [str(n) for n in entry["Layers"]]
        except (KeyError, TypeError):
            raise SourceError(f"{self.description}: manifest.json entry without Config and Layers") from None
        config = self.files.read(config_name)
        try:
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            raise SourceError(f"{self.description}: {config_name} has no rootfs.diff_ids") from None
        if len(diff_ids) != len(layer_names):
            raise SourceError(f"{self.description}: {len(layer_names)} layers but {len(diff_ids)} diff ids")
        config_descriptor = Descriptor(OCI_CONFIG, sha256_digest(config), len(config))
        self.blob_paths[config_descriptor.digest] = config_name
        layers = []
        for diff_id, name in zip(diff_ids, layer_names, strict=True):
            if not self.files.exists(name):
                raise SourceError(f"{self.description}: the archive has no {name}")
            layers.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": self.files.size(name)})
            self.blob_paths[diff_id] = name
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.as_json(),
            "layers": layers,
        }
        return Manifest(json.dumps(document, indent=2).encode(), OCI_MANIFEST)

    def root(self) -> Manifest:
        return self._manifest

    def manifest(self, descriptor: Descriptor) -> Manifest:
        raise SourceError(f"{self.description}: an archive of docker save holds no index")

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> BinaryIO:
        return self.files.open(self.blob_paths[descriptor.digest], offset)


# --- choosing and opening a source -------------------------------------------------------------------

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-daemon")


def split_transport(spec: str) -> tuple[str | None, str, str | None]:
    """`oci:PATH:REF` → ("oci", PATH, REF), `docker-archive:PATH:NAME:TAG` → (…, PATH, NAME:TAG);
    a bare path → (None, PATH, None)."""
    transport, sep, rest = spec.partition(":")
    if not sep or transport not in TRANSPORTS:
        return None, spec, None
    if transport == "docker-daemon":
        return transport, rest, None
    path, _, ref = rest.partition(":")  # skopeo's rule: the path ends at the first colon
    return transport, path, ref or None


@contextlib.contextmanager
def open_source(spec: str) -> Iterator[ImageSource]:
    transport, location, ref = split_transport(spec)
    if transport == "docker-daemon":
        with saved_from_engine(location) as archive:
            yield DockerArchive(TarFiles(archive), f"docker-daemon:{location}", None)
        return
    path = Path(location)
    if not path.exists():
        raise SourceError(f"{location}: no such file or directory")
    if path.is_dir():
        if transport not in (None, "oci"):
            raise SourceError(f"{location} is a directory: only an OCI layout (oci:) can be one")
        yield OciLayout(DirectoryFiles(path), location, ref)
        return
    files = _tar(path)
    if transport == "docker-archive" or (transport is None and not files.exists("index.json")):
        yield DockerArchive(files, location, ref)
    else:
        yield OciLayout(files, location, ref)


def _tar(path: Path) -> TarFiles:
    try:
        with path.open("rb") as stream:
            magic = stream.read(2)
    except OSError as error:
        raise SourceError(f"{path}: {error.strerror}") from None
    if magic == b"\x1f\x8b":
        raise SourceError(f"{path} is gzip-compressed: gunzip it first (layers are read in place, at any offset)")
    return TarFiles(path)


# --- a local Docker Engine -------------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 300.0):
        super().__init__("docker", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        raise SourceError(f"DOCKER_HOST={host}: only a unix socket is supported")
    return host[len("unix://") :]


@contextlib.contextmanager
def saved_from_engine(image: str) -> Iterator[Path]:
    """The engine's `docker save` of `image` (GET /images/{name}/get), spooled to a temporary file:
    its manifest comes last in the stream, and a resumed upload reads its layers at an offset."""
    path = engine_socket()
    connection = UnixHTTPConnection(path)
    spool = Path(tempfile.mkdtemp(prefix="imagectl-engine-")) / "image.tar"
    try:
        try:
            connection.request("GET", f"/images/{urllib.parse.quote(image, safe='')}/get")
            response = connection.getresponse()
            if response.status != 200:
                message = response.read().decode(errors="replace").strip()
                raise SourceError(f"docker-daemon:{image}: the engine answered {response.status}: {message}")
            with spool.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as error:
            raise SourceError(f"docker-daemon:{image}: cannot reach the engine at {path}: {error}") from None
        finally:
            connection.close()
        yield spool
    finally:
        shutil.rmtree(spool.parent, ignore_errors=True)
