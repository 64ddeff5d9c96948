"""2. PutImage latency is flat in repository size: 1 image vs 20,000 images.

The big repository is filled directly in DynamoDB Local with BatchWriteItem (4 threads), item by
item as PutImage writes them (image item with its inline manifest and tag set, tag item, the
repository's image counter), through the store's own key schema and codec: 20,000 pushes through
the API would take ~10 minutes and measure nothing more, because PutImage never reads anything but
the keys it names. Then single-client PutImages through the local gateway alternate between the
two repositories (same layers, same manifest size), so drift of the machine hits both alike."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import GatewayProcess, nonce, now, oci_manifest, summary
from local.registry import REGISTRY_ID
from registry.storage import codec
from registry.storage.schema import TABLES
from tests.support import upload_blob


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _fill(ctx, repo: str, blobs: tuple[tuple[str, int], tuple[str, int]], count: int) -> float:
    dynamodb = ctx.backends.client("dynamodb")
    tables = ctx.backends.tables
    repo_key = f"{REGISTRY_ID}/{repo}"
    config, layer = blobs
    images, tags = TABLES["images"], TABLES["tags"]
    started = time.perf_counter()

    def items(start: int, stop: int):
        for i in range(start, stop):
            manifest = oci_manifest(config, [layer], f"fill-{i}").encode()
            digest, tag, pushed = _sha256(manifest), f"fill-{i}", time.time()
            yield (
                tables["images"],
                codec.item(
                    **{
                        images.partition_key: repo_key,
                        images.sort_key: digest,
                        "media_type": "application/vnd.oci.image.manifest.v1+json",
                        "size": layer[1],
                        "pushed_at": pushed,
                        "tags": {tag},
                        "manifest": manifest,
                    }
                ),
            )
            yield (
                tables["tags"],
                codec.item(**{tags.partition_key: repo_key, tags.sort_key: tag, "digest": digest, "pushed_at": pushed}),
            )

    def write(span: tuple[int, int]) -> None:
        batch: list = []
        for table, item in items(*span):
            batch.append((table, item))
            if len(batch) == 25:
                _batch_write(dynamodb, batch)
                batch = []
        if batch:
            _batch_write(dynamodb, batch)

    step = 500
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, [(s, min(count, s + step)) for s in range(0, count, step)]))
    dynamodb.update_item(
        TableName=tables["repositories"],
        Key=codec.item(registry_id=REGISTRY_ID, name=repo),
        UpdateExpression="ADD image_count :n",
        ExpressionAttributeValues=codec.values(n=count),
    )
    return time.perf_counter() - started


def _batch_write(dynamodb, batch) -> None:
    request: dict = {}
    for table, item in batch:
        request.setdefault(table, []).append({"PutRequest": {"Item": item}})
    while request:
        request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _count(ctx, repo: str) -> int:
    dynamodb = ctx.backends.client("dynamodb")
    total, request = (
        0,
        {
            "TableName": ctx.backends.tables["images"],
            "Select": "COUNT",
            "KeyConditionExpression": "repository = :r",
            "ExpressionAttributeValues": {":r": {"S": f"{REGISTRY_ID}/{repo}"}},
        },
    )
    while True:
        page = dynamodb.query(**request)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run(ctx) -> dict:
    big_count = 2_000 if ctx.quick else 20_000
    samples = 60 if ctx.quick else 250
    gateway = GatewayProcess(ctx.environment, workers=2, log_path=ctx.scratch / "size-handler.log")
    try:
        ecr = gateway.ecr()
        config_bytes, layer_bytes = b'{"architecture":"amd64","os":"linux"}', b"layer" * 200
        blobs = ((_sha256(config_bytes), len(config_bytes)), (_sha256(layer_bytes), len(layer_bytes)))
        repos = {"small": f"bench/size-small-{nonce()}", "big": f"bench/size-big-{nonce()}"}
        for repo in repos.values():
            ecr.create_repository(repositoryName=repo)
            for blob in (config_bytes, layer_bytes):
                upload_blob(ecr, repo, blob)
            ecr.put_image(
                repositoryName=repo, imageManifest=oci_manifest(*blobs[:1], [blobs[1]], nonce()), imageTag="first"
            )  # marks the layers: every later push is the steady state
        ctx.log(f"filling {big_count} images")
        fill_seconds = _fill(ctx, repos["big"], blobs, big_count)
        counts = {k: _count(ctx, r) for k, r in repos.items()}
        ctx.log(f"filled in {fill_seconds:.1f}s; measuring {samples} pushes per repository")
        latencies: dict[str, list[float]] = {"small": [], "big": []}
        for i in range(samples + 10):
            order = ("small", "big") if i % 2 == 0 else ("big", "small")
            for which in order:
                manifest = oci_manifest(blobs[0], [blobs[1]], nonce())
                started = now()
                ecr.put_image(repositoryName=repos[which], imageManifest=manifest, imageTag=f"t-{nonce()}")
                if i >= 10:  # the first 10 rounds warm both up
                    latencies[which].append(now() - started)
    finally:
        gateway.stop()
    small, big = summary(latencies["small"]), summary(latencies["big"])
    return {
        "images": counts,
        "fill_seconds": round(fill_seconds, 1),
        "fill_method": "BatchWriteItem of image + tag items through registry.storage.schema/codec, 4 threads",
        "latency_ms": {"small": small, "big": big},
        "ratio_median": round(big["median"] / small["median"], 3),
        "ratio_p99": round(big["p99"] / small["p99"], 3),
        "target": "<= 1.2x",
    }
