"""What SigV4 verification costs per request, measured in-process on the handler (not a test).

    .venv/bin/python -m bench.verification [iterations]

Starts the local backends (DynamoDB Local, moto KMS), loads the handler in this process with the
Lambda's environment, and times, for one boto3-signed DescribeRepositories request:
  - warm: `auth.authenticate` with the key in the cache (what a warm Lambda does per request),
    and the AWS calls it makes (counted with botocore's before-call event: expected 0);
  - cold: the same with the cache emptied before each request (GetItem + KMS Decrypt);
  - the whole handler, warm and with an empty key cache, for scale.
Round trips here go to loopback stand-ins; in a Region, add a few milliseconds each.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _Captured(Exception):
    pass


def signed_event(client, operation: str, **params) -> dict:
    from urllib.parse import urlsplit

    from local.gateway import proxy_event

    captured = {}

    def capture(request, **_):
        captured["request"] = request
        raise _Captured()

    client.meta.events.register_first("before-send.ecr", capture)
    try:
        getattr(client, operation)(**params)
    except _Captured:
        pass
    request = captured["request"]
    url = urlsplit(request.url)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    headers.setdefault("Host", url.netloc)
    body = request.body or b""
    return proxy_event(
        "POST", url.path or "/", headers, body if isinstance(body, bytes) else body.encode(), "127.0.0.1"
    )


def timed(run, iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def summary(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return (
        f"{name:<44} n={len(samples):<5} median {statistics.median(samples):9.1f} us   "
        f"p90 {p(0.9):9.1f} us   p99 {p(0.99):9.1f} us"
    )


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    from local.registry import Backends

    backends = Backends.start()
    try:
        os.environ.update(backends.environment())
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        import boto3

        from registry import auth, handler, wire

        client = boto3.client(
            "ecr",
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        event = signed_event(client, "describe_repositories")
        request = wire.http_request(event)
        store, keys = handler.store(), handler.access_keys()
        region = store.settings.region
        calls = []
        auth.authenticate(request, keys, region)  # creates the KMS client too
        for aws_client in store.clients():
            aws_client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))

        warm = timed(lambda: auth.authenticate(request, keys, region), iterations)
        warm_calls = len(calls)

        def cold_verify():
            keys.clear()
            auth.authenticate(request, keys, region)

        calls.clear()
        cold_iterations = max(20, iterations // 20)
        cold = timed(cold_verify, cold_iterations)
        cold_calls = sorted(set(calls)), len(calls) / cold_iterations

        class Context:
            function_name, memory_limit_in_mb, aws_request_id = "measure", 1024, "m"
            invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:measure"

        # the two round trips of a cold verification, one by one
        backend, kms_key = store.backend, store.access_keys.kms_key
        table = backend.table("keys")
        item = backend.dynamodb.get_item(TableName=table, Key={"access_key_id": {"S": "test"}}, ConsistentRead=True)[
            "Item"
        ]
        get_item = timed(
            lambda: backend.dynamodb.get_item(
                TableName=table, Key={"access_key_id": {"S": "test"}}, ConsistentRead=True
            ),
            cold_iterations,
        )
        decrypt = timed(
            lambda: backend.kms.decrypt(
                CiphertextBlob=item["secret_ciphertext"]["B"],
                KeyId=kms_key,
                EncryptionContext={"registry_id": item["registry_id"]["S"], "access_key_id": "test"},
            ),
            cold_iterations,
        )

        context = Context()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the handler's EMF lines
            assert handler.lambda_handler(event, context)["statusCode"] == 200
            whole_warm = timed(lambda: handler.lambda_handler(event, context), max(50, iterations // 10))

            def whole_cold():
                keys.clear()
                handler.lambda_handler(event, context)

            whole_cold_samples = timed(whole_cold, cold_iterations)
        print()
        print(summary("verify, warm (key cached)", warm))
        print(f"{'':<44} AWS calls during {iterations} warm verifications: {warm_calls}")
        print(summary("verify, cold (GetItem + KMS Decrypt)", cold))
        print(f"{'':<44} AWS calls per cold verification: {cold_calls[1]:.0f} {cold_calls[0]}")
        print(summary("  of which DynamoDB GetItem (DynamoDB Local)", get_item))
        print(summary("  of which KMS Decrypt (moto)", decrypt))
        print(summary("handler DescribeRepositories, key cached", whole_warm))
        print(summary("handler DescribeRepositories, key not cached", whole_cold_samples))
    finally:
        backends.stop()


if __name__ == "__main__":
    main()
