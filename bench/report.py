"""The tables `make bench` prints (markdown), from the results document alone."""

from __future__ import annotations


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + " |"  # noqa: E731
    return "\n".join(
        [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in cells[1:])]
    )


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def render(results: dict) -> str:
    m = results["machine"]
    v = m["versions"]
    out = [
        f"# make bench{' --quick' if results.get('quick') else ''} -- {results['started']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}; boto3 {v['boto3']}, aws-lambda-powertools {v['aws-lambda-powertools']}, "
        f"moto {v['moto']}, {m['dynamodb_local']}, {m['java']}; load average "
        f"{m['load_average_at_start'][0]:.1f} at start, {m.get('load_average_at_end', [0])[0]:.1f} at end; "
        f"commit {str(m['git_commit'])[:10]}{' + local changes' if m['git_dirty'] else ''}.",
        "",
    ]
    sections = results["sections"]
    summary = []
    for name, render_section in (
        ("calls", _calls),
        ("size", _size),
        ("cold", _cold),
        ("layers", _layers),
        ("throughput", _throughput),
        ("v2", _v2),
        ("lifecycle", _lifecycle),
        ("proxy", _proxy),
        ("images", _images),
    ):
        if name not in sections:
            continue
        section = sections[name]
        if "error" in section:
            out += [f"## {name}: FAILED -- {section['error']}", ""]
            continue
        text, checks = render_section(section)
        out += [text, ""]
        summary += checks
    if summary:
        out += ["## Targets", "", table(["target", "measured", "verdict"], summary)]
    return "\n".join(out)


def _calls(s: dict):
    rows = []
    for c in s["cases"]:
        ops = ", ".join(f"{op.split('.', 1)[1]} {n}" for op, n in c["by_operation"].items())
        rows.append(
            [
                c["case"],
                c["references"],
                c["calls"],
                ops,
                c["read_request_units"],
                c["write_request_units"],
                f"${c['usd_per_million_put_image']:.2f}",
            ]
        )
    auth = next((c["auth_calls"] for c in s["cases"] if c.get("auth_calls")), None)
    text = "\n".join(
        [
            "## 1. Backend calls per PutImage (handler in-process; botocore hooks on its own clients)",
            "",
            table(["case", "references", "calls", "which", "RRU", "WRU", "per 1M PutImage"], rows),
            "",
            f"Prices: {s['price_note']}",
            "Not counted above: authentication, a GetItem of the access key and a KMS Decrypt, once per key "
            "per execution environment per REGISTRY_KEY_CACHE_SECONDS" + (f" (seen here: {auth})." if auth else "."),
        ]
    )
    by_image: dict[str, list[str]] = {}
    for c in s["cases"]:
        by_image.setdefault(c["case"].split(" (")[0].replace("image, ", ""), []).append(str(c["calls"]))
    measured = ", ".join(f"{k}: {'/'.join(v)}" for k, v in by_image.items()) + " (new/in-use layers)"
    checks = [
        [
            "≤ 3 backend calls per PutImage (1, 10, 100 layers; list of 10)",
            measured,
            verdict(all(c["calls"] <= 3 for c in s["cases"])),
        ]
    ]
    return text, checks


def _size(s: dict):
    small, big = s["latency_ms"]["small"], s["latency_ms"]["big"]
    text = "\n".join(
        [
            "## 2. PutImage latency vs repository size (one client, through the local gateway)",
            "",
            table(
                ["repository", "images at start", "median ms", "p99 ms", "samples"],
                [
                    ["small", 1, small["median"], small["p99"], small["n"]],
                    ["big", s["images"]["big"] - 1, big["median"], big["p99"], big["n"]],
                ],
            ),
            "",
            f"Ratio big/small: median {s['ratio_median']}x, p99 {s['ratio_p99']}x. The big repository was filled "
            f"in {s['fill_seconds']} s ({s['fill_method']}).",
        ]
    )
    worst = max(s["ratio_median"], s["ratio_p99"])
    return text, [
        [
            f"PutImage into {s['images']['big'] - 1:,} images ≤ 1.2x of into 1 (median, p99)",
            f"{s['ratio_median']}x / {s['ratio_p99']}x",
            verdict(worst <= 1.2),
        ]
    ]


def _cold(s: dict):
    rows = []
    for name, c in s["conditions"].items():
        rows.append(
            [
                name,
                c["handler_ms"]["wall"],
                c["boto3_ms"]["wall"],
                f"{c['ratio']}x",
                c["handler_ms"]["cpu"],
                c["boto3_ms"]["cpu"],
                f"{c['cpu_ratio']}x",
                f"{c['handler_ms']['import']} + {c['handler_ms']['serve']}",
                f"{c['boto3_ms']['import']} + {c['boto3_ms']['serve']}",
            ]
        )
    primary = s["conditions"][s["primary"]]
    text = "\n".join(
        [
            f"## 3. Cold start: fresh process, import + one request (medians of {primary['runs']} alternating runs)",
            "",
            table(
                [
                    "bytecode",
                    "handler + PutImage ms",
                    "boto3 + GetItem ms",
                    "ratio",
                    "handler CPU ms",
                    "boto3 CPU ms",
                    "CPU ratio",
                    "handler import + serve ms",
                    "boto3 import + serve ms",
                ],
                rows,
            ),
            "",
            f"{s['environment_note']}. The handler's first request also authenticates: GetItem of the key "
            "and KMS Decrypt of its secret (a KMS client is made for it)."
            + (
                " First request, phase by phase (ms, median): "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in primary["first_request_phases_ms"].items())
                + "."
                if primary.get("first_request_phases_ms")
                else ""
            ),
            "Slowest imports of the handler (ms, cumulative): "
            + ", ".join(f"{n} {ms}" for n, ms in s["slowest_imports_ms"][:8]),
        ]
    )
    return text, [
        [
            "cold start ≤ 1.3x of boto3 + one DynamoDB call (bytecode cached)",
            f"{primary['ratio']}x wall ({primary['cpu_ratio']}x CPU)",
            verdict(primary["ratio"] <= 1.3),
        ]
    ]


def _layers(s: dict):
    rows = [
        [
            f"push {s['layer_mib']} MiB (Initiate + {s['parts']} parts + Complete)",
            s["push_seconds"],
            s["push_mib_per_s"],
        ],
        [
            f"plain S3 PutObject {s['layer_mib']} MiB (mean of 2)",
            round(sum(s["plain_put_seconds"]) / 2, 2),
            s["plain_put_mib_per_s"],
        ],
    ]
    for size, seconds in s["complete_seconds"].items():
        rows.append([f"CompleteLayerUpload {size}", seconds, None])
    cpu = s.get("cpu_ms_per_mib", {})
    lines = [
        "## 4. Layer push through the local gateway vs one S3 PutObject to the same moto",
        "",
        table(["", "seconds", "MiB/s"], rows),
        "",
        f"Throughput ratio push/plain: {s['throughput_ratio']}.",
    ]
    if cpu:
        lines.append(
            "CPU ms per MiB pushed, by process: "
            + ", ".join(f"{k} {v}" for k, v in cpu["push"].items())
            + f" (total {sum(cpu['push'].values()):.0f}); plain PutObject: "
            + ", ".join(f"{k} {v}" for k, v in cpu["plain_put"].items())
            + f" (total {sum(cpu['plain_put'].values()):.0f})."
        )
    big = s.get("complete_1gib_process")
    lines.append(
        f"Peak RSS of a gateway worker after the pushes: {s['gateway_worker_peak_rss_mib']} MiB"
        + (
            f"; of the process that completed 1 GiB: {big['peak_rss_mib']} MiB "
            f"({big['peak_rss_mib_after_import']} MiB before the request). Completing 1 GiB made "
            + ", ".join(f"{op} {n}" for op, n in big["backend_calls"].items())
            + f" ({big['http_attempts']} HTTP attempts)."
            if big
            else "."
        )
    )
    checks = [
        ["layer push ≥ 0.5 of plain PutObject", f"{s['throughput_ratio']}", verdict(s["throughput_ratio"] >= 0.5)]
    ]
    if big:
        checks.append(
            [
                "peak RSS completing 1 GiB < 256 MB",
                f"{big['peak_rss_mib']} MiB",
                verdict(big["peak_rss_mib"] * 1.048576 < 256),
            ]
        )
    return "\n".join(lines), checks


def _throughput(s: dict):
    rows, checks = [], []
    for level, row in s["levels"].items():
        reg, raw, moto = row["registry"], row["raw DynamoDB"], row["moto ECR"]
        rows.append(
            [
                level,
                raw["put_images_per_s"],
                reg["put_images_per_s"],
                f"{row['ratio_registry_to_raw']}x",
                moto["put_images_per_s"],
                f"{reg['latency_ms']['median']} / {reg['latency_ms']['p99']}",
                f"{raw['latency_ms']['median']} / {raw['latency_ms']['p99']}",
                round(sum(reg["cpu_ms_per_put_image"].values()), 1),
                round(sum(raw["cpu_ms_per_put_image"].values()), 1),
                reg["errors"] + raw["errors"] + moto["errors"],
            ]
        )
    ratios = [row["ratio_registry_to_raw"] for row in s["levels"].values()]
    top = list(s["levels"].values())[-1]["registry"]["cpu_ms_per_put_image"]
    text = "\n".join(
        [
            f"## 5. PutImage throughput (registry and raw DynamoDB: {s['window_s']:.0f} s each per level in 4 "
            f"alternating windows, after warm-up; moto: one window)",
            "",
            table(
                [
                    "clients",
                    "raw DynamoDB /s",
                    "registry /s",
                    "ratio",
                    "moto ECR /s",
                    "registry ms median / p99",
                    "raw ms median / p99",
                    "registry CPU ms/put",
                    "raw CPU ms/put",
                    "errors",
                ],
                rows,
            ),
            "",
            "Registry CPU per PutImage at the highest level, by process: "
            + ", ".join(f"{k} {v}" for k, v in top.items())
            + ".",
            f"Raw DynamoDB = the same {' + '.join(s['raw_requests'])} the handler sends, replayed directly. "
            f"moto ECR is not doing the same work: {s['moto_skips']}.",
        ]
    )
    checks.append(
        [
            "throughput ≥ 0.7 of raw DynamoDB Local (1, 8, 16 clients)",
            " / ".join(f"{r}x" for r in ratios),
            verdict(all(r is not None and r >= 0.7 for r in ratios)),
        ]
    )
    return text, checks


def _v2(s: dict):
    lines, checks = ["## 6. The Docker/OCI /v2 API (through the local gateway and its authorizer)", ""], []
    warm = s.get("warm_up", {})
    if "requests" in warm:
        lines += [
            f"Warm-up first: {warm['requests']} GETs of a manifest and a blob; median of the first 100 "
            f"{warm['first_100_ms']['median']} ms, of the last 100 {warm['last_100_ms']['median']} ms "
            "(DynamoDB Local's JVM compiling its hot paths).",
            "",
        ]
    elif "error" in warm:
        lines += [f"warm_up: FAILED -- {warm['error']}", ""]
    for part, render_part in (
        ("blob_pull", _v2_blob),
        ("docker_pull", _v2_docker),
        ("manifests", _v2_manifests),
        ("calls", _v2_calls),
    ):
        result = s.get(part, {})
        if "error" in result:
            lines += [f"{part}: FAILED -- {result['error']}", ""]
            continue
        text, part_checks = render_part(result)
        lines += [text, ""]
        checks += part_checks
    return "\n".join(lines).rstrip(), checks


def _v2_blob(b: dict):
    ways = (
        ("registry", "GET /v2 blob, its 307 followed to S3"),
        ("presigned", "GET of a presigned URL made without the registry"),
        ("boto3", "boto3 get_object, streamed"),
    )
    rows = [[label, b["mib_per_s"][way], b["seconds"][way]["median"], b["seconds"][way]["min"]] for way, label in ways]
    handler = b.get("handler_ms", {}).get("blob:307", {})
    text = "\n".join(
        [
            f"### Blob pull: {b['blob_mib']} MiB from moto (medians of {b['runs']} alternating runs)",
            "",
            table(["", "MiB/s", "median s", "fastest s"], rows),
            "",
            f"Ratio /v2 ÷ direct GET: {b['ratio']} (÷ boto3 get_object: {b['ratio_to_boto3']}; from the parts, "
            f"direct ÷ (direct + the 307): {b['ratio_from_parts']}). The 307 before "
            f"the bytes (the authorizer's answer cached): median {b['redirect_ms']['median']} ms, p99 "
            f"{b['redirect_ms']['p99']} ms, of which in the handler: median {handler.get('median')} ms; then the "
            f"S3 GET it points at: median {b['registry_transfer_seconds']['median']} s.",
        ]
    )
    return text, [["blob pull via /v2 ≥ 0.9 of a direct S3 GET", f"{b['ratio']}", verdict(b["ratio"] >= 0.9)]]


def _v2_docker(d: dict):
    if "skipped" in d:
        return f"### docker pull: skipped -- {d['skipped']}", [["docker pull ≥ 0.8 of Distribution", "skipped", "n/a"]]
    rows = [
        [
            name,
            d["median_seconds"][name],
            d["mib_per_s"][name],
            " / ".join(f"{x:.2f}" for x in d["pull_seconds"][name]),
            ", ".join(f"{k} {v:.2f}" for k, v in d["cpu_seconds_per_pull"][name].items()),
        ]
        for name in ("registry", "distribution")
    ]
    requests = ", ".join(
        f"{route} {round(x['n'] / d['runs'], 1):g} (handler median {x['median']} ms)"
        for route, x in d["handler_ms"].items()
    )
    text = "\n".join(
        [
            f"### docker pull of a {d['image_mib']} MiB image of {d['layers']} random layers, cold "
            f"(docker {d['docker']}, Distribution {d['distribution']}; {d['runs']} alternating pulls each)",
            "",
            table(["from", "median s", "MiB/s", "each pull, s", "CPU s per pull, by process"], rows),
            "",
            f"Throughput ratio registry ÷ Distribution: {d['ratio']}. Requests per pull that reached the handler: "
            f"{requests}. First pulls (workers starting, not counted): "
            + ", ".join(f"{k} {v} s" for k, v in d["first_pull_seconds"].items())
            + f". Seeding: docker push to Distribution {d['seed_seconds']['docker_push_to_distribution']} s, "
            f"the same blobs and manifest into the registry through the ECR API {d['seed_seconds']['ecr_api']} s.",
        ]
    )
    return text, [["docker pull ≥ 0.8 of Distribution", f"{d['ratio']}", verdict(d["ratio"] >= 0.8)]]


def _v2_manifests(m: dict):
    rows = [[kind, x["median"], x["p99"], x["n"]] for kind, x in m["latency_ms"].items()]
    handler = ", ".join(f"{op} {x['median']} ms" for op, x in m["handler_ms"].items())
    text = "\n".join(
        [
            "### Manifest latency, one client on a keep-alive connection (kinds interleaved)",
            "",
            table(["request", "p50 ms", "p99 ms", "requests"], rows),
            "",
            f"Inside the handler (its log's `ms`, median): {handler}.",
        ]
    )
    return text, []


def _v2_calls(c: dict):
    rows = [
        [
            case["request"],
            _fmt_number(case["calls"]),
            _fmt_number(case["http_requests"]),
            ", ".join(f"{op.split('.', 1)[1]} {_fmt_number(n)}" for op, n in case["by_operation"].items()),
            ", ".join(f"{op.split('.', 1)[1]} {_fmt_number(n)}" for op, n in case["presigned_urls"].items()) or None,
            case["read_request_units"],
        ]
        for case in c["cases"]
    ]
    text = "\n".join(
        [
            f"### Backend calls per /v2 request (handler in-process, warm; mean of {c['repeats']} requests)",
            "",
            table(["request", "calls", "HTTP requests", "which", "presigned URLs (no request)", "RRU"], rows),
            "",
            "Not counted: the authorizer's (its answer cached by API Gateway) and the key lookup (GetItem + "
            "KMS Decrypt), once per key per REGISTRY_KEY_CACHE_SECONDS.",
        ]
    )
    return text, []


def _fmt_number(value: float) -> str:
    return f"{value:g}"


if __name__ == "__main__":
    import json
    import sys

    with open(sys.argv[1]) as results:
        print(render(json.load(results)))


def _lifecycle(s: dict):
    rows = []
    for case in s["cases"]:
        p, idle, r = case["preview"], case["idle_run"], case["run"]
        rows.append(
            [
                f"{case['images']:,}",
                p["seconds"],
                p["ms_per_1000_images"],
                p["dynamodb_calls"],
                p["read_request_units"],
                f"{p['results']:,} in {p['parts']}",
                idle["seconds"],
                idle["dynamodb_calls"],
                r["seconds"],
                r["dynamodb_calls"],
                r["ms_per_expiry"],
            ]
        )
    headers = [
        "images",
        "preview s",
        "ms / 1,000 images",
        "calls",
        "read units",
        "results in parts",
        "run, none expire: s",
        "calls",
        "run, 100 expire: s",
        "calls",
        "ms / expiry",
    ]
    text = "\n".join(
        [
            "## 7. Lifecycle policies: previews and runs over a repository (the sweep's store, in-process)",
            "",
            table(headers, rows),
            "",
            f"Time per image, largest over smaller: preview {s['preview_ratio']}x, run {s['run_ratio']}x. "
            f"Within StartLifecyclePolicyPreview's 20 s budget a preview covers about "
            f"{s['cases'][-1]['preview']['images_in_20_s']:,} images here (DynamoDB Local); calls are DynamoDB "
            f"calls: one Query page per ~1 MB of image items, one transaction per expiry.",
        ]
    )
    worst = max(s["preview_ratio"], s["run_ratio"])
    return text, [
        [
            f"lifecycle: time per image at {s['cases'][-1]['images']:,} images ≤ 1.5x of at "
            f"{s['cases'][0]['images']:,}",
            f"{s['preview_ratio']}x / {s['run_ratio']}x",
            verdict(worst <= 1.5),
        ]
    ]


def _proxy(s: dict):
    target = f"imagectl proxy's peak RSS < {s.get('bound_mb', 256)} MB during a docker push"
    if "skipped" in s:
        return f"## 8. imagectl proxy: skipped -- {s['skipped']}", [[target, "skipped", "n/a"]]
    text = "\n".join(
        [
            f"## 8. docker push of a {s['layer_mib']} MiB layer of random bytes through `imagectl proxy`",
            "",
            f"docker {s['docker']}: the push took {s['push_seconds']} s ({s['mib_per_s']} MiB/s, docker's gzip "
            f"included); the proxy's peak resident set (VmHWM) was {s['proxy_peak_rss_mb']} MB.",
        ]
    )
    if s.get("way"):
        text += f" The proxy sent the layer {s['way']}."
    if s.get("distribution_push_seconds"):
        text += (
            f" The same push into docker-registry on loopback took {s['distribution_push_seconds']} s: "
            f"through the proxy is {s['ratio_to_distribution']} of its throughput."
        )
    measured = f"{s['proxy_peak_rss_mb']} MB ({s['layer_mib']} MiB layer)"
    return text, [[target, measured, verdict(s["proxy_peak_rss_mb"] < s["bound_mb"])]]


def _images(s: dict):
    push_target, pull_target = "imagectl push ≥ 0.5 of skopeo's", "imagectl pull ≥ 0.8 of skopeo's"
    if "skipped" in s:
        return f"## 9. imagectl push and pull: skipped -- {s['skipped']}", [
            [push_target, "skipped", "n/a"],
            [pull_target, "skipped", "n/a"],
        ]
    rows = []
    for kind in ("push", "pull"):
        k = s[kind]
        for side, seconds in k["median_seconds"].items():
            cpu = ", ".join(f"{p} {ms}" for p, ms in k["cpu_ms_per_mib"][side].items())
            rows.append([kind, side, seconds, k["mib_per_s"][side], k["peak_rss_mib"][side], cpu])
    text = "\n".join(
        [
            f"## 9. imagectl push and pull of a {s['image_mib']} MiB image of {s['layers']} random layers "
            f"÷ skopeo {s['skopeo']} with Distribution {s['distribution']} (medians of {s['rounds']})",
            "",
            table(["", "client", "s", "MiB/s", "client peak RSS MiB", "CPU ms per MiB by process"], rows),
            "",
            f"Push: {s['push']['ratio_to_skopeo']} of skopeo's throughput, {s['push']['ratio_to_s3_upload']} of a "
            f"raw S3 upload_file of the archive; pull: {s['pull']['ratio_to_skopeo']} of skopeo's. The direct-upload "
            f"design (S3 upload, then the object read back and hashed): {s['push']['direct_design']['seconds']} s, "
            f"{s['push']['direct_design']['ratio_to_skopeo']} of skopeo's (a projection from its two halves).",
        ]
    )
    push, pull = s["push"]["ratio_to_skopeo"], s["pull"]["ratio_to_skopeo"]
    return text, [[push_target, push, verdict(push >= 0.5)], [pull_target, pull, verdict(pull >= 0.8)]]
