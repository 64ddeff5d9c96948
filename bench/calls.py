"""1. Backend calls per PutImage, and what they cost.

The handler runs in-process in a child (bench.child calls); botocore event hooks on the handler's
own DynamoDB and S3 clients count API calls and HTTP attempts, and inject
ReturnConsumedCapacity=TOTAL (the bench's hook only: the handler never asks) so DynamoDB Local
reports the request units each call consumed -- transactional writes already counted at 2x."""

from __future__ import annotations

from bench.runner import run_child

# us-east-1 on-demand prices since the November 2024 reduction (USD per million request units).
PRICES = {"write_request_unit": 0.625, "read_request_unit": 0.125, "s3_put_request": 5.0, "s3_get_request": 0.4}
PRICE_NOTE = (
    "us-east-1 on-demand: $0.625 per million write request units, $0.125 per million read "
    "request units (strongly consistent read of <=4 KB = 1 RRU; transactional write of <=1 KB "
    "= 2 WRU, as DynamoDB Local reports them); S3 Standard $5/M PUT, $0.40/M GET. "
    "Lambda and API Gateway charges are not included."
)
S3_WRITES = {
    "PutObject",
    "CopyObject",
    "UploadPart",
    "UploadPartCopy",
    "CreateMultipartUpload",
    "CompleteMultipartUpload",
}


def run(ctx) -> dict:
    output = run_child("calls", {"layers": [1, 10, 100], "list": 10}, ctx.environment)
    for case in output["cases"]:
        s3_puts = sum(n for op, n in case["by_operation"].items() if op.startswith("s3.") and op[3:] in S3_WRITES)
        s3_gets = case["s3_calls"] - s3_puts
        dollars = (
            case["write_request_units"] * PRICES["write_request_unit"]
            + case["read_request_units"] * PRICES["read_request_unit"]
            + s3_puts * PRICES["s3_put_request"]
            + s3_gets * PRICES["s3_get_request"]
        )
        case["usd_per_million_put_image"] = round(dollars, 2)
    return {
        "cases": output["cases"],
        "prices_usd_per_million": PRICES,
        "price_note": PRICE_NOTE,
        "target": "<= 3 backend calls for up to 100 references",
    }
