"""A stand-in Lambda execution environment: one process, one request at a time, warm between
requests -- so the local gateway runs the handler with real concurrency, as Lambda does."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_handler = None


class LambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "registry-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:registry-local"
    log_group_name = "/aws/lambda/registry-local"
    log_stream_name = "local"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def start(environment: dict[str, str], log_path: str | None) -> None:
    """Process initializer: the environment the Lambda would have, then the cold start."""
    global _handler
    os.environ.update(environment)
    if log_path:  # the handler's JSON logs and metrics go to a file, not the terminal
        sys.stdout = open(log_path, "a", buffering=1)
    sys.path.insert(0, str(ROOT / "lambdas"))
    from registry import handler

    _handler = handler
    faults = os.environ.get("REGISTRY_FAULTS_FILE")
    if faults:
        from local.faults import install

        install(handler.store().clients(), faults)


def invoke(event: dict) -> dict:
    return _handler.lambda_handler(event, LambdaContext())
