"""6. The Docker/OCI Distribution API (`/v2`), through the local gateway (its own process, with its
REQUEST authorizer) in front of the handler, with moto as S3 and DynamoDB Local:

- warm-up: /v2 requests until the stand-ins are warm (DynamoDB Local's JVM).
- blob pull: GET /v2/<name>/blobs/<digest> on a keep-alive connection, its 307 followed to the
  presigned S3 URL and the body read to the end, against a GET of a presigned URL of the same object
  made without the registry (the same HTTP client) and boto3's get_object; the three alternate, and
  the median of the runs is reported. The blob is seeded with the ECR API
  (InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload): a /v2 request body stops at ~4.4 MiB.
- docker pull against CNCF Distribution: bench.v2_docker.
- manifest latency: GET and HEAD by tag and by digest from one client (keep-alive, docker's Accept
  header), interleaved with PutImage through the ECR API (boto3), so that the machine's load falls
  on every kind alike.
- backend calls per request: bench.child v2_calls (the handler in-process, bench.inproc's hooks)."""

from __future__ import annotations

import http.client
import json
import statistics
import traceback
from collections.abc import Callable
from urllib.parse import urlsplit

from botocore.config import Config

from bench import v2_docker
from bench.common import (
    DOCKER_ACCEPT,
    GatewayProcess,
    HandlerLog,
    MiB,
    nonce,
    now,
    oci_manifest,
    random_bytes,
    summary,
)
from bench.runner import run_child
from tests.oci.distribution import login_header
from tests.support import push_image, upload_blob

CLIENT = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=600, max_pool_connections=4)
READ_SIZE = MiB


class Connection:
    """One keep-alive HTTP/1.1 connection, as a container tool holds one to each host it pulls from.
    Bodies are read into one reused buffer and dropped: what is timed is the transfer."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.http = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        self.buffer = memoryview(bytearray(READ_SIZE))

    def request(self, method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], int]:
        """(status, headers with lower-case names, bytes of body read)."""
        parts = urlsplit(url)
        self.http.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = self.http.getresponse()
        size = 0
        while read := response.readinto(self.buffer):
            size += read
        return response.status, {k.lower(): v for k, v in response.getheaders()}, size

    def close(self) -> None:
        self.http.close()


def fetch(url: str) -> int:
    """GET on a new connection (a client meets S3 as a new host): the bytes read."""
    connection = Connection(url)
    try:
        status, _, size = connection.request("GET", url)
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"GET {url[:80]}: {status}")
    return size


# --- warm-up -------------------------------------------------------------------------------------


def warm_up(ctx, gateway: GatewayProcess, ecr, authorization: str) -> dict:
    """/v2 requests until DynamoDB Local's JVM has compiled its hot paths: run alone (--only v2), the
    first hundreds of requests take twice as long as the later ones, which the earlier sections of a
    full run would have hidden. What the first and the last 100 took is kept as the evidence."""
    count = 500 if ctx.quick else 1000
    repo = f"bench/v2-warm-{nonce()}"
    ecr.create_repository(repositoryName=repo)
    pushed = push_image(ecr, repo, tag="v1", layers=1)
    layer = json.loads(pushed.manifest)["layers"][0]["digest"]
    registry = Connection(gateway.endpoint)
    requests = (
        (f"{gateway.endpoint}/v2/{repo}/manifests/v1", 200),
        (f"{gateway.endpoint}/v2/{repo}/blobs/{layer}", 307),
    )
    seconds = []
    for number in range(count):
        url, expected = requests[number % 2]
        started = now()
        status, _, _ = registry.request("GET", url, {"Authorization": authorization, "Accept": DOCKER_ACCEPT})
        seconds.append(now() - started)
        if status != expected:
            raise RuntimeError(f"GET {url}: {status}")
    registry.close()
    return {"requests": count, "first_100_ms": summary(seconds[:100]), "last_100_ms": summary(seconds[-100:])}


# --- blob pull --------------------------------------------------------------------------------------


def _pull_through_registry(registry: Connection, blob_url: str, authorization: str) -> dict[str, float]:
    started = now()
    status, headers, _ = registry.request("GET", blob_url, {"Authorization": authorization})
    if status != 307:
        raise RuntimeError(f"GET blob: {status}, not a redirect")
    redirected = now()
    size = fetch(headers["location"])
    return {"seconds": now() - started, "redirect_seconds": redirected - started, "bytes": size}


def _pull_presigned(s3, bucket: str, key: str) -> dict[str, float]:
    started = now()
    size = fetch(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}))
    return {"seconds": now() - started, "bytes": size}


def _pull_boto3(s3, bucket: str, key: str) -> dict[str, float]:
    started = now()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    size = sum(len(chunk) for chunk in body.iter_chunks(READ_SIZE))
    return {"seconds": now() - started, "bytes": size}


def blob_pull(ctx, gateway: GatewayProcess, ecr, authorization: str, log: HandlerLog) -> dict:
    # Many runs: on a shared machine one transfer varies by more than the redirect costs.
    size, runs = (64 if ctx.quick else 256) * MiB, 7 if ctx.quick else 15
    repo = f"bench/v2-blob-{nonce()}"
    ecr.create_repository(repositoryName=repo)
    started = now()
    digest = upload_blob(ecr, repo, random_bytes(size, 3))
    ctx.log(f"seeded a {size // MiB} MiB blob through the ECR API in {now() - started:.1f}s")
    registry, s3, bucket = Connection(gateway.endpoint), ctx.backends.client("s3"), ctx.backends.bucket
    blob_url = f"{gateway.endpoint}/v2/{repo}/blobs/{digest}"
    status, headers, _ = registry.request("GET", blob_url, {"Authorization": authorization})  # authorizer cached
    if status != 307:
        raise RuntimeError(f"GET {blob_url}: {status}, not a redirect")
    key = urlsplit(headers["location"]).path.split("/", 2)[2]  # /<bucket>/<key>: the object the registry serves
    ways: dict[str, Callable[[], dict[str, float]]] = {
        "registry": lambda: _pull_through_registry(registry, blob_url, authorization),
        "presigned": lambda: _pull_presigned(s3, bucket, key),
        "boto3": lambda: _pull_boto3(s3, bucket, key),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    for run in range(runs + 1):  # the first round warms moto and the clients: not counted
        if run == 1:
            log.mark()
        names = list(ways)
        for name in names[run % len(names) :] + names[: run % len(names)]:
            sample = ways[name]()
            if sample["bytes"] != size:
                raise RuntimeError(f"{name}: {sample['bytes']} bytes of {size}")
            if run:
                samples[name].append(sample)
    registry.close()
    return {**_blob_result(size, runs, samples), "handler_ms": log.since_mark()}


def _blob_result(size: int, runs: int, samples: dict[str, list[dict[str, float]]]) -> dict:
    registry, direct = samples["registry"], statistics.median(s["seconds"] for s in samples["presigned"])
    speeds = {
        name: round(statistics.median(size / MiB / s["seconds"] for s in runs_), 1) for name, runs_ in samples.items()
    }
    return {
        "blob_mib": size // MiB,
        "runs": runs,
        "mib_per_s": speeds,
        "seconds": {name: summary([s["seconds"] for s in runs_], scale=1, digits=3) for name, runs_ in samples.items()},
        "redirect_ms": summary([s["redirect_seconds"] for s in registry]),
        # the registry's GET of S3 after the redirect, beside the direct GET: the same request to the same moto
        "registry_transfer_seconds": summary(
            [s["seconds"] - s["redirect_seconds"] for s in registry], scale=1, digits=3
        ),
        "ratio": round(speeds["registry"] / speeds["presigned"], 3),
        "ratio_to_boto3": round(speeds["registry"] / speeds["boto3"], 3),
        # What the ratio would be if the 307 were the only difference: steadier than the measured one
        # when the machine is shared, as one 256 MiB transfer varies by more than the 307 costs.
        "ratio_from_parts": round(direct / (direct + statistics.median(s["redirect_seconds"] for s in registry)), 3),
        "target": ">= 0.9 of a direct GET of the same S3 object",
    }


# --- manifest latency -------------------------------------------------------------------------------


def manifest_latency(ctx, gateway: GatewayProcess, ecr, authorization: str, log: HandlerLog) -> dict:
    count = 50 if ctx.quick else 300
    repo = f"bench/v2-manifests-{nonce()}"
    ecr.create_repository(repositoryName=repo)
    pushed = push_image(ecr, repo, tag="v1", layers=2)  # a Docker v2 manifest, as docker pushes
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"v2-bench" * 128
    blobs = [(upload_blob(ecr, repo, blob), len(blob)) for blob in (config, layer)]
    registry = Connection(gateway.endpoint)
    kinds = {
        f"{method} by {by}": _manifest_request(
            registry, f"{gateway.endpoint}/v2/{repo}/manifests/{ref}", method, authorization
        )
        for by, ref in (("tag", "v1"), ("digest", pushed.digest))
        for method in ("GET", "HEAD")
    }
    kinds["PutImage (ECR API)"] = lambda: _put_image(ecr, repo, blobs)
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    warmup = 5
    for run in range(warmup + count):
        if run == warmup:
            log.mark()
        names = list(kinds)
        for name in names[run % len(names) :] + names[: run % len(names)]:
            started = now()
            kinds[name]()
            if run >= warmup:
                samples[name].append(now() - started)
    registry.close()
    return {
        "requests_each": count,
        "latency_ms": {name: summary(s) for name, s in samples.items()},
        "handler_ms": log.since_mark(),
    }


def _manifest_request(registry: Connection, url: str, method: str, authorization: str) -> Callable[[], None]:
    headers = {"Authorization": authorization, "Accept": DOCKER_ACCEPT}

    def send() -> None:
        status, _, _ = registry.request(method, url, headers)
        if status != 200:
            raise RuntimeError(f"{method} {url}: {status}")

    return send


def _put_image(ecr, repo: str, blobs: list[tuple[str, int]]) -> None:
    ecr.put_image(
        repositoryName=repo, imageManifest=oci_manifest(blobs[0], blobs[1:], nonce()), imageTag=f"t-{nonce()}"
    )


# --- the section ------------------------------------------------------------------------------------


def _part(ctx, name: str, measure: Callable[[], dict]) -> dict:
    """One part's result; a part that fails is reported as such, and the others still run."""
    ctx.log(name)
    started = now()
    try:
        result = measure()
    except Exception as error:  # noqa: BLE001 - shown in the report, with the traceback on stderr
        traceback.print_exc()
        result = {"error": repr(error)}
    result["seconds_taken"] = round(now() - started, 1)
    return result


def run(ctx) -> dict:
    log = HandlerLog(ctx.scratch / "v2-handler.log")
    gateway = GatewayProcess(ctx.environment, workers=4, log_path=log.path)
    try:
        ecr = gateway.ecr(config=CLIENT)
        authorization = login_header(ecr)  # Basic AWS:<password>, as `docker login` stores it
        result = {
            "warm_up": _part(ctx, "warm-up", lambda: warm_up(ctx, gateway, ecr, authorization)),
            "blob_pull": _part(ctx, "blob pull", lambda: blob_pull(ctx, gateway, ecr, authorization, log)),
            "docker_pull": _part(ctx, "docker pull", lambda: v2_docker.run(ctx, gateway, ecr, log)),
            "manifests": _part(
                ctx, "manifest latency", lambda: manifest_latency(ctx, gateway, ecr, authorization, log)
            ),
        }
    finally:
        gateway.stop()
    result["calls"] = _part(ctx, "backend calls per request", lambda: run_child("v2_calls", {}, ctx.environment))
    return result
