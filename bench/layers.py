"""4. Layer push throughput, CompleteLayerUpload time and the completing process's peak memory.

A layer goes through InitiateLayerUpload / UploadLayerPart (the part size the registry asks for,
4 MiB) / CompleteLayerUpload via the local gateway, and is compared with one plain S3 PutObject of
the same bytes to the same S3 stand-in (the moto server the registry itself uses). The 1 GiB layer
is completed by a dedicated process (bench.child complete, handler in-process) whose peak resident
memory (VmHWM) is read when it is done; the gateway's workers' VmHWM is read after the pushes."""

from __future__ import annotations

import hashlib
import os

from botocore.config import Config

from bench.common import CpuMeter, GatewayProcess, MiB, children_of, nonce, now, peak_rss_mib, random_bytes
from bench.runner import run_child

CLIENT = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=600, max_pool_connections=2)


def _push_parts(ecr, repo: str, data: bytes) -> tuple[str, float, int]:
    """Initiate and upload every part; returns (upload id, seconds, parts)."""
    started = now()
    upload = ecr.initiate_layer_upload(repositoryName=repo)
    size, parts = upload["partSize"], 0
    view = memoryview(data)
    for first in range(0, len(data), size):
        chunk = bytes(view[first : first + size])
        ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
        parts += 1
    return upload["uploadId"], now() - started, parts


def _plain_put(s3, bucket: str, data: bytes) -> float:
    key = f"bench/plain-{nonce()}"
    started = now()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    elapsed = now() - started
    s3.delete_object(Bucket=bucket, Key=key)
    return elapsed


def run(ctx) -> dict:
    size = (64 if ctx.quick else 256) * MiB
    big = None if ctx.quick else 1024 * MiB
    s3 = ctx.backends.client("s3")
    gateway = GatewayProcess(ctx.environment, workers=2, log_path=ctx.scratch / "layers-handler.log")
    result: dict = {"layer_mib": size // MiB, "part_mib": None}
    try:
        ecr = gateway.ecr(config=CLIENT)
        repo = f"bench/layers-{nonce()}"
        ecr.create_repository(repositoryName=repo)
        data = random_bytes(size, 1)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        me = os.getpid()
        meter = CpuMeter(
            {
                "benchmark client": lambda: [me],
                "gateway": lambda: [gateway.process.pid],
                "workers (handler)": gateway.worker_pids,
                "moto (S3)": lambda: [ctx.backends.moto.process.pid],
                "DynamoDB Local": lambda: [
                    ctx.backends.dynamodb.process.pid,
                    *children_of(ctx.backends.dynamodb.process.pid),
                ],
            }
        )
        _plain_put(s3, ctx.backends.bucket, random_bytes(8 * MiB, 9))  # warm the S3 client and moto
        meter.start()
        plain = _plain_put(s3, ctx.backends.bucket, data)
        plain_cpu = meter.stop()
        ctx.log(f"plain PutObject of {size // MiB} MiB: {plain:.2f}s; pushing through the gateway")
        meter.start()
        upload_id, parts_seconds, parts = _push_parts(ecr, repo, data)
        started = now()
        done = ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id, layerDigests=[digest])
        complete = now() - started
        push_cpu = meter.stop()
        assert done["layerDigest"] == digest
        push = parts_seconds + complete
        plain_again = _plain_put(s3, ctx.backends.bucket, data)
        plain_median = (plain + plain_again) / 2
        result.update(
            {
                "part_mib": round(size / parts / MiB, 2),
                "parts": parts,
                "plain_put_seconds": [round(plain, 2), round(plain_again, 2)],
                "push_seconds": round(push, 2),
                "parts_seconds": round(parts_seconds, 2),
                "complete_seconds": {f"{size // MiB} MiB": round(complete, 2)},
                "push_mib_per_s": round(size / MiB / push, 1),
                "plain_put_mib_per_s": round(size / MiB / plain_median, 1),
                "throughput_ratio": round(plain_median / push, 3),
                "cpu_ms_per_mib": {
                    "push": {k: round(v * 1000 / (size / MiB), 1) for k, v in push_cpu.items() if v},
                    "plain_put": {k: round(v * 1000 / (size / MiB), 1) for k, v in plain_cpu.items() if v},
                },
                "target": ">= 0.5 of plain PutObject; 1 GiB completed in a process with peak RSS < 256 MB",
            }
        )
        del data
        if big:
            data = random_bytes(big, 2)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            ctx.log("pushing the parts of 1 GiB")
            upload_id, big_parts_seconds, _ = _push_parts(ecr, repo, data)
            del data
            completed = run_child(
                "complete", {"repository": repo, "upload_id": upload_id, "digest": digest}, ctx.environment
            )
            result["complete_seconds"]["1024 MiB"] = completed["seconds"]
            result["complete_1gib_process"] = completed
            result["parts_1gib_mib_per_s"] = round(big / MiB / big_parts_seconds, 1)
        result["gateway_worker_peak_rss_mib"] = max(peak_rss_mib(p) for p in gateway.worker_pids())
    finally:
        gateway.stop()
    return result
