"""9. `imagectl push` and `imagectl pull` of a 512 MiB image of four layers of random bytes (128 MiB
with --quick), each ÷ `skopeo copy` of the same image into and out of Debian's docker-registry (CNCF
Distribution, filesystem storage) on loopback, and the push beside a raw S3 upload of the same bytes
(boto3's upload_file of the archive to the moto the registry uses).

The docker-archive is written directly (manifest.json, a config, one tar a layer), so no Docker
Engine is needed. skopeo pushes with `--dest-decompress`: the layers go up as the uncompressed tars
imagectl sends (skopeo would otherwise gzip them on the way, work imagectl does not do). Each round
pushes to a new repository of the registry and to a Distribution started afresh (an empty store: a
blob seen before would be mounted, not uploaded), then pulls both into new OCI layouts; the order
alternates between rounds. Every client (imagectl, skopeo, the S3 upload) is its own process: its CPU
time from wait4's rusage, its peak resident set (VmHWM) from /proc while it runs; the servers' CPU
time from /proc, around each transfer."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from bench.common import CREDENTIALS, REGION, CpuMeter, GatewayProcess, MiB, children_of, nonce, now, peak_rss_mib
from tests.tools import engines

LAYERS = 4
TAG = "v1"


@dataclass(frozen=True)
class Finished:
    """What one client process took: wall seconds, CPU seconds (user + system), peak RSS."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run(ctx) -> dict:
    """The section; skipped, with the reason, where skopeo or docker-registry is missing."""
    root = ctx.scratch / "images"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    gateway = GatewayProcess(ctx.environment, workers=4, log_path=root / "handler.log")
    try:
        skopeo = engines.make_skopeo(root / "skopeo")
        distribution = engines.find_binary("docker-registry", "/usr/bin/docker-registry")
        return _measure(ctx, root, gateway, skopeo, distribution)
    except (pytest.skip.Exception, pytest.fail.Exception) as missing:  # what engines says of a missing tool
        return {"skipped": getattr(missing, "msg", str(missing))}
    finally:
        gateway.stop()
        shutil.rmtree(root, ignore_errors=True)


def _measure(ctx, root: Path, gateway: GatewayProcess, skopeo: engines.Skopeo, distribution_binary: str) -> dict:
    image_mib = 128 if ctx.quick else 512
    rounds = 1 if ctx.quick else 3
    archive = write_docker_archive(root / "image.tar", image_mib, LAYERS)
    ctx.log(f"wrote a docker-archive of {LAYERS} layers, {image_mib} MiB; {rounds} round(s) of push and pull")
    times: dict[str, dict[str, list[Finished]]] = {"push": {}, "pull": {}}
    cpu: dict[str, dict[str, dict[str, float]]] = {"push": {}, "pull": {}}

    def record(kind: str, side: str, finished: Finished, servers: dict[str, float]) -> None:
        times[kind].setdefault(side, []).append(finished)
        totals = cpu[kind].setdefault(side, {})
        for process, seconds in {"client": finished.cpu_seconds, **servers}.items():
            totals[process] = totals.get(process, 0.0) + seconds / rounds

    _warm_up(ctx, root, gateway)
    for number in range(rounds):
        distribution = engines.start_distribution_registry(root / "distribution")
        try:
            meter = _meter(ctx, gateway, distribution)
            sides = [
                partial(_imagectl_round, root, gateway, archive, meter, record),
                partial(_skopeo_round, root, skopeo, distribution, archive, meter, record),
                partial(_s3_upload_round, ctx, archive, meter, record),
            ]
            for measure in sides if number % 2 == 0 else sides[::-1]:
                measure()
        finally:
            distribution.stop()
        ctx.log(f"round {number + 1}: " + _line(times))
    versions = {
        "skopeo": engines.run_command([skopeo.binary, "--version"]).stdout.split()[-1],
        "distribution": engines.run_command([distribution_binary, "--version"]).stdout.split()[-1],
    }
    return {"image_mib": image_mib, "layers": LAYERS, "rounds": rounds, **versions, **_summary(times, cpu, image_mib)}


def _line(times: dict[str, dict[str, list[Finished]]]) -> str:
    return ", ".join(
        f"{kind} {side} {runs[-1].seconds:.1f}s" for kind, sides in times.items() for side, runs in sides.items()
    )


def _summary(times, cpu, image_mib: int) -> dict:
    result: dict = {}
    for kind, sides in times.items():
        medians = {side: statistics.median(f.seconds for f in runs) for side, runs in sides.items()}
        result[kind] = {
            "seconds": {side: [round(f.seconds, 2) for f in runs] for side, runs in sides.items()},
            "median_seconds": {side: round(m, 2) for side, m in medians.items()},
            "mib_per_s": {side: round(image_mib / m, 1) for side, m in medians.items()},
            "peak_rss_mib": {side: max(f.peak_rss_mib for f in runs) for side, runs in sides.items()},
            "cpu_ms_per_mib": {
                side: {p: round(s * 1000 / image_mib, 1) for p, s in used.items() if s >= 0.005}
                for side, used in cpu[kind].items()
            },
            # the same bytes moved: the ratio of throughputs is the inverse ratio of times
            "ratio_to_skopeo": round(medians["skopeo"] / medians["imagectl"], 3),
        }
    push = result["push"]["median_seconds"]
    result["push"]["ratio_to_s3_upload"] = round(push["s3_upload"] / push["imagectl"], 3)
    # What a push by the direct-upload design would take, from its two measured halves
    direct = push["s3_upload"] + push["s3_read_and_hash"]
    result["push"]["direct_design"] = {
        "seconds": round(direct, 2),
        "ratio_to_skopeo": round(push["skopeo"] / direct, 3),
    }
    result["target"] = "push >= 0.5 and pull >= 0.8 of skopeo with Distribution"
    return result


# --- the image ---------------------------------------------------------------------------------------


def write_docker_archive(path: Path, total_mib: int, layers: int) -> Path:
    """A `docker save` archive of one image: `layers` layers, each a tar of one file of random bytes."""
    folder = path.parent / "layers"
    folder.mkdir(parents=True, exist_ok=True)
    diff_ids, names = [], []
    for number in range(layers):
        layer = folder / f"layer-{number}.tar"
        _random_layer(layer, f"layer-{number}.bin", total_mib // layers)
        diff_ids.append("sha256:" + _sha256_file(layer))
        names.append(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [f"bench/images:{TAG}"], "Layers": layer_names}])
    with tarfile.open(path, "w") as tar:
        _add_bytes(tar, "manifest.json", manifest.encode())
        _add_bytes(tar, config_name, config)
        for name, layer in zip(layer_names, names, strict=True):
            tar.add(layer, arcname=name)
    shutil.rmtree(folder)
    return path


def _random_layer(path: Path, member: str, mib: int) -> None:
    data = path.with_suffix(".bin")
    with data.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
    with tarfile.open(path, "w") as tar:
        tar.add(data, arcname=member)
    data.unlink()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# --- the clients, each a process -----------------------------------------------------------------------


def run_measured(argv: list, env: dict[str, str], log: Path) -> Finished:
    """Run a client to its end: its time, its CPU (wait4's rusage: the process alone) and its peak
    RSS. Not rusage's ru_maxrss: that keeps the RSS of the forking process (this one) across exec,
    so a small client would report the bench's size. VmHWM, read every 20 ms until it exits, is
    the client's own high-water mark (all but growth in its last 20 ms)."""
    with log.open("ab") as stderr:
        started = now()
        process = subprocess.Popen([str(a) for a in argv], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        peak = _PeakSampler(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = now() - started
        peak.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
    return Finished(elapsed, usage.ru_utime + usage.ru_stime, peak.mib)


class _PeakSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.mib, self.done = pid, 0.0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.mib = max(self.mib, peak_rss_mib(self.pid))
            except OSError:  # exited: its last reading stands
                return
            self.done.wait(0.02)

    def stop(self) -> None:
        self.done.set()
        self.join()


def imagectl_environment(gateway: GatewayProcess, cache: Path | None = None) -> dict[str, str]:
    """imagectl's environment against the bench gateway: the registry's test credentials, nothing else."""
    env = {
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_ECR": gateway.endpoint,
        "PATH": "/usr/bin:/bin",
    }
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)  # the resume state: a fresh one, never the user's
    return env


def _imagectl(root: Path, gateway: GatewayProcess, *args) -> Finished:
    env = imagectl_environment(gateway, root / "cache")
    return run_measured([sys.executable, "-m", "imagectl", "--output", "json", *args], env, root / "imagectl.log")


def _imagectl_round(root: Path, gateway: GatewayProcess, archive: Path, meter: CpuMeter, record) -> None:
    repository = f"bench/images-{nonce()}"
    meter.start()
    pushed = _imagectl(root, gateway, "push", "--create", f"docker-archive:{archive}", f"{repository}:{TAG}")
    record("push", "imagectl", pushed, meter.stop())
    layout = root / "pulled-imagectl"
    meter.start()
    pulled = _imagectl(root, gateway, "pull", f"{repository}:{TAG}", f"oci:{layout}")
    record("pull", "imagectl", pulled, meter.stop())
    shutil.rmtree(layout)


def _skopeo_round(root: Path, skopeo: engines.Skopeo, distribution, archive: Path, meter: CpuMeter, record) -> None:
    reference = f"docker://{distribution.host}/bench/images:{TAG}"
    log = root / "skopeo.log"
    meter.start()
    copy = [*skopeo.argv, "copy", "--quiet"]
    pushed = run_measured(
        [*copy, "--dest-tls-verify=false", "--dest-decompress", f"docker-archive:{archive}", reference], skopeo.env, log
    )
    record("push", "skopeo", pushed, meter.stop())
    layout = root / "pulled-skopeo"
    meter.start()
    pulled = run_measured([*copy, "--src-tls-verify=false", reference, f"oci:{layout}"], skopeo.env, log)
    record("pull", "skopeo", pulled, meter.stop())
    shutil.rmtree(layout)


# The direct-upload design's two halves (docs/how-it-works.md#direct-layer-uploads-designed-not-built-yet):
# the client's parts straight to S3, then CompleteLayerUpload reading the object back and hashing it.
S3_UPLOAD = "import sys, boto3; boto3.client('s3').upload_file(sys.argv[1], sys.argv[2], sys.argv[3])"
S3_READ_AND_HASH = """
import hashlib, sys, botocore.session
body = botocore.session.get_session().create_client("s3").get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"]
digest = hashlib.sha256()
while chunk := body.read(1024 * 1024):
    digest.update(chunk)
"""


def _s3_upload_round(ctx, archive: Path, meter: CpuMeter, record) -> None:
    """boto3's upload_file of the archive to the registry's S3 stand-in (its default multipart
    transfer: 8 MiB parts, 10 threads), then the object read back and hashed as the registry's
    function would (botocore's client, 1 MiB reads), each in a process of its own."""
    key, bucket = f"bench/raw-{nonce()}", ctx.backends.bucket
    env, log = {**os.environ, **ctx.environment}, ctx.scratch / "images" / "s3.log"
    for side, argv in (
        ("s3_upload", [S3_UPLOAD, archive, bucket, key]),
        ("s3_read_and_hash", [S3_READ_AND_HASH, bucket, key]),
    ):
        meter.start()
        finished = run_measured([sys.executable, "-c", *argv], env, log)
        record("push", side, finished, meter.stop())
    ctx.backends.client("s3").delete_object(Bucket=bucket, Key=key)


def _warm_up(ctx, root: Path, gateway: GatewayProcess) -> None:
    """A small push and pull first, not counted: the gateway starts its workers, DynamoDB Local's
    JVM compiles its hot paths."""
    small = write_docker_archive(root / "warm-up.tar", LAYERS, LAYERS)
    repository = f"bench/images-warm-{nonce()}"
    _imagectl(root, gateway, "push", "--create", f"docker-archive:{small}", f"{repository}:{TAG}")
    _imagectl(root, gateway, "pull", f"{repository}:{TAG}", f"oci:{root / 'warm-up'}")
    shutil.rmtree(root / "warm-up")
    small.unlink()


def _meter(ctx, gateway: GatewayProcess, distribution) -> CpuMeter:
    dynamodb = ctx.backends.dynamodb.process.pid
    return CpuMeter(
        {
            "gateway": lambda: [gateway.process.pid],
            "workers (handler)": gateway.worker_pids,
            "moto (S3)": lambda: [ctx.backends.moto.process.pid],
            "DynamoDB Local": lambda: [dynamodb, *children_of(dynamodb)],
            "docker-registry": lambda: [distribution.process.pid],
        }
    )
