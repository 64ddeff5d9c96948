"""Measurements that need the handler inside the measuring process, each run as
`python -m bench.child <task> <input.json> <output.json>` with the handler's environment, so that
the handler's logs go to the child's stdout (the parent discards it) and the process's peak memory
is the handler's alone."""

from __future__ import annotations

import base64
import json
import sys
import time

from bench.common import nonce, peak_rss_mib


def calls(arguments: dict) -> dict:
    """Section 1: DynamoDB/S3 calls and consumed capacity of PutImage."""
    from bench import inproc
    from tests.support import image_manifest, index_manifest, new_blobs, push_image, upload_blob

    hooks = inproc.Hooks()
    ecr = inproc.ecr_client()
    repo = f"bench/calls-{nonce()}"
    ecr.create_repository(repositoryName=repo)
    cases = []

    def measure(case: str, references: int, manifest: str, tag: str) -> None:
        hooks.open()
        started = time.perf_counter()
        ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag=tag)
        elapsed = time.perf_counter() - started
        cases.append(
            {
                "case": case,
                "references": references,
                "in_process_ms": round(elapsed * 1000, 1),
                **hooks.close().as_dict(),
            }
        )

    for count in arguments.get("layers", (1, 10, 100)):
        config, blobs = new_blobs(count)
        for blob in (config, *blobs):
            upload_blob(ecr, repo, blob)
        measure(
            f"image, {count} layers (new layers)", count + 1, image_manifest(config, blobs, oci=True), f"layers-{count}"
        )
        # The same layers again (a rebuild that changed only metadata): no layer needs marking.
        measure(
            f"image, {count} layers (layers already in use)",
            count + 1,
            image_manifest(config, blobs, oci=True, extra={"annotations": {"n": nonce()}}),
            f"layers-{count}-again",
        )
    children = [push_image(ecr, repo, layers=1, oci=True) for _ in range(arguments.get("list", 10))]
    measure(f"manifest list of {len(children)}", len(children), index_manifest(children), "list")
    return {"repository": repo, "cases": cases}


def lifecycle(arguments: dict) -> dict:
    """Section 6: a lifecycle policy over repositories of each size -- a preview computed (as
    StartLifecyclePolicyPreview and the sweep compute it) and a run applied (as the sweep applies
    it), with the sweep's own store: time, DynamoDB calls and request units."""
    from types import SimpleNamespace

    from bench import inproc
    from bench.repo_size import _fill
    from registry.config import Settings
    from registry.lifecycle.runs import apply_policy, compute_preview
    from registry.records import PREVIEW_IN_PROGRESS, LifecyclePolicy, Preview, Repository
    from registry.storage import RegistryStore

    store = RegistryStore(Settings.from_environment())
    hooks = inproc.Hooks(store=store)
    backends = SimpleNamespace(client=lambda service: store.backend.dynamodb, tables=store.settings.tables)
    shim = SimpleNamespace(backends=backends)  # what section 2's filling uses of its context
    blobs = (("sha256:" + "c" * 64, 30), ("sha256:" + "d" * 64, 1000))

    def policy(keep: int) -> str:
        selection = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep}
        return json.dumps({"rules": [{"rulePriority": 1, "selection": selection, "action": {"type": "expire"}}]})

    def measured(work, *args):
        tally = hooks.open()
        started = time.perf_counter()
        outcome = work(store, *args, time.time())
        seconds = time.perf_counter() - started
        hooks.close()
        return outcome, round(seconds, 2), tally.as_dict()

    cases = []
    for count in arguments["sizes"]:
        name = f"bench/lifecycle-{count}-{nonce()}"
        store.repositories.create(Repository("000000000000", name, created_at=time.time()), 10**6)
        _fill(shim, name, blobs, count)
        repo = store.repositories.get("000000000000", name)
        text = policy(count // 2)  # half the images expire: the results are stored in parts
        repeats = arguments.get("repeats", 3)  # the best of a few: the machine is shared
        previews, idles, runs = [], [], []
        for _ in range(repeats):
            preview = Preview(repo.registry_id, name, nonce(), PREVIEW_IN_PROGRESS, text, time.time())
            store.lifecycle.start_preview(repo, preview)
            previews.append(measured(compute_preview, preview))
            idle = LifecyclePolicy(repo.registry_id, name, policy(count), nonce())  # expires nothing
            store.lifecycle.put_policy(repo, idle)
            idles.append(measured(apply_policy, idle))
        expiries = arguments["expiries"]
        for repeat in range(repeats):  # each run expires `expiries` more of the oldest images
            applied = LifecyclePolicy(repo.registry_id, name, policy(count - expiries * (repeat + 1)), nonce())
            store.lifecycle.put_policy(repo, applied)
            runs.append(measured(apply_policy, applied))
        if count == arguments["sizes"][0] and arguments.get("warm_up"):
            continue  # the first repository warms the process up (clients, imports): not reported
        completed, preview_seconds, preview_tally = min(previews, key=lambda m: m[1])
        _, idle_seconds, idle_tally = min(idles, key=lambda m: m[1])
        report, run_seconds, run_tally = min(runs, key=lambda m: m[1])
        cases.append(
            {
                "images": count,
                "repeats": repeats,
                "preview": {
                    "seconds": preview_seconds,
                    "results": completed.expiring_count,
                    "parts": completed.parts,
                    **preview_tally,
                },
                "idle_run": {"seconds": idle_seconds, **idle_tally},
                "run": {"seconds": run_seconds, "expired": report["images_expired"], **run_tally},
            }
        )
    return {"cases": cases}


def capture(arguments: dict) -> dict:
    """Section 5: the exact DynamoDB requests of one steady-state PutImage, to replay them raw."""
    from bench import inproc

    hooks = inproc.Hooks(record=True)
    ecr = inproc.ecr_client()
    tally = hooks.open()
    ecr.put_image(
        repositoryName=arguments["repository"], imageManifest=arguments["manifest"], imageTag=arguments["tag"]
    )
    hooks.close()
    return {"requests": [(s, o, _jsonable(p)) for s, o, p in tally.requests], "tally": tally.as_dict()}


def complete(arguments: dict) -> dict:
    """Section 4: CompleteLayerUpload of a big layer, in a process that does nothing else."""
    from bench import inproc

    hooks = inproc.Hooks()
    ecr = inproc.ecr_client()
    ready_rss = peak_rss_mib()
    tally = hooks.open()
    started = time.perf_counter()
    result = ecr.complete_layer_upload(
        repositoryName=arguments["repository"], uploadId=arguments["upload_id"], layerDigests=[arguments["digest"]]
    )
    elapsed = time.perf_counter() - started
    hooks.close()
    assert result["layerDigest"] == arguments["digest"]
    return {
        "seconds": round(elapsed, 3),
        "peak_rss_mib_after_import": ready_rss,
        "peak_rss_mib": peak_rss_mib(),
        "backend_calls": tally.as_dict()["by_operation"],
        "auth_calls": tally.as_dict()["auth_calls"],
        "http_attempts": tally.as_dict()["http_attempts"],
    }


def v2_calls(arguments: dict) -> dict:
    """Section 6: DynamoDB/S3 calls of one `/v2` request, per route, in a warm function (every route
    asked once before counting: clients made, the key and the token key cached)."""
    from bench import inproc
    from bench.common import DOCKER_ACCEPT
    from tests.oci.distribution import login_header
    from tests.support import push_image

    hooks = inproc.Hooks()
    ecr = inproc.ecr_client()
    repo = f"bench/v2-calls-{nonce()}"
    ecr.create_repository(repositoryName=repo)
    pushed = push_image(ecr, repo, tag="v1", layers=2)
    layer = json.loads(pushed.manifest)["layers"][0]["digest"]
    headers = {"Authorization": login_header(ecr), "Accept": DOCKER_ACCEPT}
    requests = {
        "GET manifest by tag": ("GET", f"/v2/{repo}/manifests/v1", 200),
        "GET manifest by digest": ("GET", f"/v2/{repo}/manifests/{pushed.digest}", 200),
        "HEAD manifest by tag": ("HEAD", f"/v2/{repo}/manifests/v1", 200),
        "HEAD manifest by digest": ("HEAD", f"/v2/{repo}/manifests/{pushed.digest}", 200),
        "GET blob (the 307)": ("GET", f"/v2/{repo}/blobs/{layer}", 307),
    }
    repeats = arguments.get("repeats", 5)
    cases = [_v2_case(hooks, name, request, headers, repeats) for name, request in requests.items()]
    return {"repeats": repeats, "cases": cases}


def _v2_case(hooks, name: str, request: tuple[str, str, int], headers: dict[str, str], repeats: int) -> dict:
    """What one kind of `/v2` request asks of the backends: the mean of `repeats` requests, after one."""
    from bench import inproc

    method, path, status = request
    inproc.v2_request(method, path, headers)
    tally = hooks.open()
    for _ in range(repeats):
        answer = inproc.v2_request(method, path, headers)
        if answer["statusCode"] != status:
            raise RuntimeError(f"{name}: {answer['statusCode']} {answer.get('body', '')[:300]}")
    hooks.close()
    counted = tally.as_dict()
    return {
        "request": name,
        "calls": counted["calls"] / repeats,
        "http_requests": counted["http_attempts"] / repeats,
        "by_operation": {op: n / repeats for op, n in counted["by_operation"].items()},
        "presigned_urls": {op: n / repeats for op, n in counted["presigned_urls"].items()},
        "read_request_units": round(counted["read_request_units"] / repeats, 2),
        "auth_calls": counted["auth_calls"],
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    return value


TASKS = {"calls": calls, "capture": capture, "complete": complete, "v2_calls": v2_calls, "lifecycle": lifecycle}

if __name__ == "__main__":
    task, source, target = sys.argv[1:4]
    with open(source) as handle:
        arguments = json.load(handle)
    output = TASKS[task](arguments)
    with open(target, "w") as handle:
        json.dump(output, handle)
