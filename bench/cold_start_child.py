"""One cold start, run as `python bench/cold_start_child.py handler|handler-phases|boto3 <job.json> <out.json>` by
bench/cold_start.py: a fresh interpreter that either imports the handler and serves one PutImage
(the proxy event was signed by the parent), or only imports boto3 and makes one DynamoDB call.
Nothing else is imported before the measured work; the parent times the whole process."""

import json
import sys
import time

started = time.perf_counter()
mode, source, target = sys.argv[1:4]
with open(source) as handle:
    job = json.load(handle)

if mode.startswith("handler"):
    sys.path.insert(0, job["lambdas"])
    from registry import handler

    imported = time.perf_counter()

    class Context:  # the attributes of Lambda's context object that Powertools reads
        function_name, function_version, memory_limit_in_mb = "registry-bench", "$LATEST", 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:registry-bench"
        aws_request_id, log_group_name, log_stream_name = "cold-start", "/aws/lambda/bench", "bench"

        @staticmethod
        def get_remaining_time_in_millis():
            return 29_000

    phases = {}
    if mode == "handler-phases":  # where the first request's time goes (diagnostic)
        mark = time.perf_counter()
        handler.store()  # settings and the DynamoDB client
        phases["store_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        handler.access_keys().get(job["access_key_id"])  # GetItem of the key, KMS client, Decrypt
        phases["key_lookup_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
    response = handler.lambda_handler(job["event"], Context())
    if phases:
        phases["request_s"] = time.perf_counter() - mark
    ok = response["statusCode"] == 200
else:
    import boto3

    imported = time.perf_counter()
    client = boto3.client("dynamodb")
    item = client.get_item(TableName=job["table"], Key=job["key"], ConsistentRead=True)
    ok = "Item" in item
done = time.perf_counter()
with open(target, "w") as handle:
    json.dump(
        {
            "ok": ok,
            "import_s": imported - started,
            "serve_s": done - imported,
            "phases": locals().get("phases"),
            "modules": len(sys.modules),
            "detail": None if ok else str(locals().get("response")),
        },
        handle,
    )
