"""The handler in this very process: a boto3 ECR client whose requests are handed to
`registry.handler.lambda_handler` as API Gateway proxy events (signed with test/test, like any
client's), and botocore event hooks on the handler's own clients that count what each request
costs DynamoDB and S3.

Importing this module imports the handler: the environment must already point at the backends."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field

import boto3
from botocore.awsrequest import AWSResponse

from bench.common import CREDENTIALS, REGION, event_of
from local.gateway import proxy_event
from local.worker import LambdaContext
from registry import handler


class _Raw(io.BytesIO):
    def stream(self, **kwargs):
        yield self.getvalue()


def ecr_client(**config):
    """An ECR client served by the handler in-process (no HTTP)."""
    client = boto3.client("ecr", endpoint_url="http://127.0.0.1:4566", region_name=REGION, **CREDENTIALS, **config)

    def send(request, **kwargs):
        result = handler.lambda_handler(event_of(request), LambdaContext())
        body = (result.get("body") or "").encode("utf-8")
        headers = {**(result.get("headers") or {}), "Content-Length": str(len(body))}
        return AWSResponse(request.url, result["statusCode"], headers, _Raw(body))

    client.meta.events.register_first("before-send.ecr", send)
    return client


def v2_request(method: str, path: str, headers: dict[str, str]) -> dict:
    """The handler's proxy response to one `/v2` request without a body (what the gateway passes on
    once its authorizer has let the request through)."""
    event = proxy_event(method, path, {"Host": "127.0.0.1:4566", **headers}, b"", "127.0.0.1")
    return handler.lambda_handler(event, LambdaContext())


@dataclass
class Tally:
    """What the handler asked of DynamoDB, S3 and KMS while the tally was open. Calls that only
    authenticate the caller (the access key's item, KMS Decrypt of its secret) are counted apart:
    a warm function makes them once per key per REGISTRY_KEY_CACHE_SECONDS."""

    calls: Counter = field(default_factory=Counter)  # (service, operation) -> API calls
    auth_calls: Counter = field(default_factory=Counter)  # the same, for key lookups
    presigned: Counter = field(default_factory=Counter)  # URLs signed locally: no request is sent
    attempts: Counter = field(default_factory=Counter)  # HTTP requests, retries included
    read_units: float = 0.0
    write_units: float = 0.0
    auth_read_units: float = 0.0
    requests: list = field(default_factory=list)  # (service, operation, params) when recording

    def as_dict(self) -> dict:
        return {
            "calls": sum(self.calls.values()),
            "dynamodb_calls": sum(n for (s, _), n in self.calls.items() if s == "dynamodb"),
            "s3_calls": sum(n for (s, _), n in self.calls.items() if s == "s3"),
            "http_attempts": sum(self.attempts.values()),
            "by_operation": {f"{s}.{o}": n for (s, o), n in sorted(self.calls.items())},
            "read_request_units": round(self.read_units, 2),
            "write_request_units": round(self.write_units, 2),
            "auth_calls": {f"{s}.{o}": n for (s, o), n in sorted(self.auth_calls.items())},
            "presigned_urls": {f"{s}.{o}": n for (s, o), n in sorted(self.presigned.items())},
            "auth_read_request_units": round(self.auth_read_units, 2),
        }


# Operations that return per-table capacity, and whether they read or write.
_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class Hooks:
    """botocore event hooks on the handler's clients (fault-free cousin of local/faults.py)."""

    def __init__(self, record: bool = False, store=None):
        """On the clients of `store`, by default the handler's."""
        self.tally: Tally | None = None
        self.record = record
        store = store if store is not None else handler.store()
        self.keys_table = store.settings.tables.get("keys")
        store.backend.kms  # noqa: B018 - made now, so that its calls are counted too
        for client in store.clients():
            service = client.meta.service_model.service_name
            events = client.meta.events
            events.register(f"before-parameter-build.{service}", self._before_build)
            events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}", self._before_send)
            events.register(f"after-call.{service}", self._after_call)

    def open(self) -> Tally:
        self.tally = Tally()
        return self.tally

    def close(self) -> Tally:
        tally, self.tally = self.tally, None
        return tally

    def _before_build(self, params, model, context, **kwargs):
        service = model.service_model.service_name
        # Ask DynamoDB what each call consumed (the handler never asks; this is the bench's own).
        if (
            service == "dynamodb"
            and model.input_shape is not None
            and "ReturnConsumedCapacity" in model.input_shape.members
        ):
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        auth = service == "kms" or (self.keys_table is not None and params.get("TableName") == self.keys_table)
        context["bench_auth"] = auth
        if self.tally is None:
            return
        if context.get("is_presign_request"):  # botocore builds a presigned URL's parameters too
            self.tally.presigned[(service, model.name)] += 1
            return
        (self.tally.auth_calls if auth else self.tally.calls)[(service, model.name)] += 1
        if self.record:
            self.tally.requests.append((service, model.name, _copy(params)))

    def _before_send(self, request, event_name, **kwargs):
        if self.tally is not None:
            self.tally.attempts[event_name] += 1

    def _after_call(self, model, context, parsed=None, **kwargs):
        if self.tally is None or not parsed:
            return
        consumed = parsed.get("ConsumedCapacity")
        if consumed is None:
            return
        units = sum(c.get("CapacityUnits", 0) for c in (consumed if isinstance(consumed, list) else [consumed]))
        if context.get("bench_auth"):
            self.tally.auth_read_units += units
        elif model.name in _READS:
            self.tally.read_units += units
        elif model.name in _WRITES:
            self.tally.write_units += units


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
