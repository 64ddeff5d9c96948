"""5. PutImage throughput with 1, 8 and 16 concurrent clients.

Three systems, each driven by the same number of client threads (one boto3 client each, one
repository each, every push a new image with a new tag), for the same total time at each
concurrency level (the registry and raw DynamoDB in alternating short windows):

- registry: boto3 ECR clients -> the local gateway (its own process) -> 16 warm worker processes
  running the handler -> DynamoDB Local;
- raw DynamoDB: boto3 DynamoDB clients sending DynamoDB Local exactly the BatchGetItem and
  TransactWriteItems one PutImage sends (captured from the handler by bench.child capture; the
  digest, tag and repository substituted, a fresh ClientRequestToken) -- the floor for this work;
- moto: boto3 ECR clients -> moto's server ECR (a separate moto process started here). moto
  skips what makes PutImage expensive: its digest is not the SHA-256 of the manifest bytes, it
  checks no layers and no referenced images, and nothing is atomic or conditional (no immutability
  check that holds under races, no quotas). A reference point, not a peer.

CPU seconds of every process involved are read from /proc around each window, so the table can say
where a PutImage's CPU goes on this machine."""

from __future__ import annotations

import base64
import hashlib
import os
import statistics
import sys
import threading
import urllib.request
import uuid

import boto3
from botocore.config import Config

from bench.common import (
    CREDENTIALS,
    REGION,
    CpuMeter,
    GatewayProcess,
    children_of,
    nonce,
    now,
    oci_manifest,
    percentile,
)
from bench.runner import run_child
from local.registry import REGISTRY_ID
from local.services import Service, free_port
from tests.support import sha256, upload_blob

LEVELS = (1, 8, 16)
SEGMENTS = 4  # alternating windows per system and level
CLIENT = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=2)


def _digest(manifest: str) -> str:
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


class Replay:
    """The captured DynamoDB requests of one PutImage, re-targeted at a new digest/tag/repository."""

    def __init__(self, requests: list, digest: str, tag: str, repository: str):
        self.requests = [
            (op, _decode(params))
            for service, op, params in requests
            if service == "dynamodb" and op in ("BatchGetItem", "TransactWriteItems")
        ]
        for _, params in self.requests:
            params.pop("ReturnConsumedCapacity", None)
        self.digest, self.tag, self.repository = digest, tag, repository

    def calls(self, digest: str, tag: str, repository: str) -> list[tuple[str, dict]]:
        swap = {
            self.digest: digest,
            self.tag: tag,
            self.repository: repository,
            f"{REGISTRY_ID}/{self.repository}": f"{REGISTRY_ID}/{repository}",
        }
        out = []
        for op, params in self.requests:
            params = _swap(params, swap)
            if op == "TransactWriteItems":
                params["ClientRequestToken"] = str(uuid.uuid4())
            out.append((op, params))
        return out


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _swap(value, swap: dict):
    if isinstance(value, str):
        return swap.get(value, value)
    if isinstance(value, dict):
        return {k: _swap(v, swap) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, swap) for v in value]
    return value


def _drive(threads: int, make_worker, warmup: float, window: float) -> dict:
    """Run `threads` workers (each a callable doing one PutImage) until warm, then for `window`."""
    stop = threading.Event()
    done: list[list[tuple[float, float]]] = [[] for _ in range(threads)]
    errors: list[str] = []
    workers = [make_worker(i) for i in range(threads)]

    def loop(i: int) -> None:
        while not stop.is_set():
            started = now()
            try:
                workers[i]()
            except Exception as error:  # noqa: BLE001 - counted, shown in the results
                errors.append(repr(error)[:300])
                continue
            done[i].append((started, now()))

    pool = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    began = now()
    for thread in pool:
        thread.start()
    # Warm: every thread has finished a few pushes (the registry's workers are started on demand,
    # one cold start each) and `warmup` seconds have passed.
    while now() - began < warmup or min(len(d) for d in done) < 3:
        if now() - began > 120:
            break
        threading.Event().wait(0.05)
    return {"done": done, "errors": errors, "stop": stop, "pool": pool, "window": window}


def _measure(threads: int, make_worker, warmup: float, window: float, meter: CpuMeter) -> dict:
    """One window: pushes completed inside it, their latencies, and the CPU each process used."""
    run = _drive(threads, make_worker, warmup, window)
    meter.start()
    t0 = now()
    threading.Event().wait(window)
    t1 = now()
    cpu = meter.stop()
    run["stop"].set()
    for thread in run["pool"]:
        thread.join(timeout=60)
    return {
        "latencies": [end - start for d in run["done"] for start, end in d if t0 <= end <= t1],
        "seconds": t1 - t0,
        "cpu": cpu,
        "errors": run["errors"],
    }


def _combine(windows: list[dict]) -> dict:
    """Several windows of one system at one level, as one measurement."""
    latencies = [x for w in windows for x in w["latencies"]]
    seconds = sum(w["seconds"] for w in windows)
    count = len(latencies)
    cpu: dict[str, float] = {}
    for w in windows:
        for name, used in w["cpu"].items():
            cpu[name] = cpu.get(name, 0.0) + used
    errors = [e for w in windows for e in w["errors"]]
    return {
        "put_images_per_s": round(count / seconds, 1),
        "completed": count,
        "window_s": round(seconds, 2),
        "latency_ms": {
            "median": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "p99": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
        },
        "errors": len(errors),
        "first_errors": errors[:3],
        "cpu_ms_per_put_image": {k: round(v * 1000 / count, 2) for k, v in cpu.items() if v} if count else {},
        "cpu_utilisation": round(sum(cpu.values()) / seconds / (os.cpu_count() or 1), 2),
    }


def _start_moto() -> Service:
    port = free_port()
    service = Service("bench-moto-ecr", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port)
    service.wait_until_ready(lambda s: urllib.request.urlopen(f"{s.endpoint}/moto-api/", timeout=1).read())
    return service


def run(ctx) -> dict:
    warmup, window = (1.0, 4.0) if ctx.quick else (2.0, 10.0)  # window: per system and level, in total
    most = max(LEVELS)
    gateway = GatewayProcess(ctx.environment, workers=most, log_path=ctx.scratch / "throughput-handler.log")
    moto = _start_moto()
    results: dict = {"levels": {}, "window_s": window}
    try:
        setup = gateway.ecr(config=CLIENT)
        config_bytes, layer_bytes = b'{"architecture":"amd64","os":"linux"}', b"tput" * 256
        blobs = ((sha256(config_bytes), len(config_bytes)), (sha256(layer_bytes), len(layer_bytes)))
        tag = nonce()
        repos = [f"bench/tput-{tag}-{i:02d}" for i in range(most)]
        moto_setup = boto3.client("ecr", endpoint_url=moto.endpoint, region_name=REGION, **CREDENTIALS)
        for repo in repos:
            setup.create_repository(repositoryName=repo)
            moto_setup.create_repository(repositoryName=repo)
            for blob in (config_bytes, layer_bytes):
                upload_blob(setup, repo, blob)
            setup.put_image(
                repositoryName=repo, imageManifest=oci_manifest(blobs[0], [blobs[1]], nonce()), imageTag="first"
            )  # marks the layers: every later push is the steady state
        manifest, first_tag = oci_manifest(blobs[0], [blobs[1]], nonce()), f"t-{nonce()}"
        captured = run_child(
            "capture", {"repository": repos[0], "manifest": manifest, "tag": first_tag}, ctx.environment
        )
        replay = Replay(captured["requests"], _digest(manifest), first_tag, repos[0])
        results["raw_requests"] = [op for op, _ in replay.requests]
        results["captured_calls"] = captured["tally"]["by_operation"]

        def registry_worker(i: int):
            client = gateway.ecr(config=CLIENT)

            def push():
                client.put_image(
                    repositoryName=repos[i],
                    imageManifest=oci_manifest(blobs[0], [blobs[1]], nonce()),
                    imageTag=f"t-{nonce()}",
                )

            return push

        def raw_worker(i: int):
            client = ctx.backends.client("dynamodb")

            def push():
                new = oci_manifest(blobs[0], [blobs[1]], nonce())
                for _attempt in range(12):
                    try:
                        for op, params in replay.calls(_digest(new), f"t-{nonce()}", repos[i]):
                            getattr(client, _snake(op))(**params)
                        return
                    except client.exceptions.TransactionCanceledException:
                        continue  # the handler would read again and decide again
                raise RuntimeError("raw replay kept conflicting")

            return push

        def moto_worker(i: int):
            client = boto3.client("ecr", endpoint_url=moto.endpoint, region_name=REGION, config=CLIENT, **CREDENTIALS)

            def push():
                client.put_image(
                    repositoryName=repos[i],
                    imageManifest=oci_manifest(blobs[0], [blobs[1]], nonce()),
                    imageTag=f"t-{nonce()}",
                )

            return push

        me = os.getpid()
        groups = {
            "benchmark clients": lambda: [me],
            "gateway": lambda: [gateway.process.pid],
            "workers (handler)": gateway.worker_pids,
            "DynamoDB Local": lambda: [
                ctx.backends.dynamodb.process.pid,
                *children_of(ctx.backends.dynamodb.process.pid),
            ],
            "moto ECR": lambda: [moto.process.pid],
        }
        meter = CpuMeter(groups)
        for level in LEVELS:
            # The registry and its floor alternate in short windows, so that a change in the load of
            # this (shared) machine falls on both alike; moto, a reference only, gets one window.
            ctx.log(f"{level} clients: raw DynamoDB and registry, {SEGMENTS} alternating windows each; moto")
            windows: dict[str, list[dict]] = {"raw DynamoDB": [], "registry": []}
            for segment in range(SEGMENTS):
                order = (("raw DynamoDB", raw_worker), ("registry", registry_worker))
                for name, worker in order if segment % 2 == 0 else order[::-1]:
                    windows[name].append(
                        _measure(level, worker, warmup if segment == 0 else 0.5, window / SEGMENTS, meter)
                    )
            row = {name: _combine(w) for name, w in windows.items()}
            row["moto ECR"] = _combine([_measure(level, moto_worker, warmup, window / SEGMENTS, meter)])
            raw = row["raw DynamoDB"]["put_images_per_s"]
            row["ratio_registry_to_raw"] = round(row["registry"]["put_images_per_s"] / raw, 3) if raw else None
            results["levels"][str(level)] = row
    finally:
        gateway.stop()
        moto.stop()
    results["target"] = ">= 0.7 of raw DynamoDB Local at each level"
    results["moto_skips"] = (
        "moto's digest is not the SHA-256 of the manifest bytes, it checks no layers and no "
        "referenced images, and it has no atomicity, conditional tag immutability or quotas"
    )
    return results


def _snake(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation)
