"""The AWS clients and the few call patterns every store uses.

Nothing outside `storage/` sees a boto3 client or a ClientError: DynamoDB cancellations become
`Cancelled` (mapped to ECR errors by the store that built the transaction), KMS trouble inside S3
becomes KmsException, and a write that lost a race becomes `ConcurrentUpdate`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from ..config import Settings
from ..errors import KmsException, ServerException
from . import codec
from .schema import TABLES

BATCH_GET_LIMIT = 100  # keys per BatchGetItem
BATCH_WRITE_LIMIT = 25  # requests per BatchWriteItem
TRANSACTION_LIMIT = 100  # actions per TransactWriteItems


class ConcurrentUpdate(Exception):
    """What we read changed before our conditional write landed: read again and decide again."""


@dataclass
class Action:
    """One action of a transaction, named so that a cancellation reason can be told apart."""

    name: str
    request: dict


@dataclass
class Cancelled(Exception):
    """A transaction was cancelled; `failed` lists (action name, reason code, old item)."""

    failed: list[tuple[str, str, dict | None]] = field(default_factory=list)

    def reason(self, name: str) -> tuple[str, dict | None] | None:
        for action, code, old in self.failed:
            if action == name:
                return code, old
        return None

    @property
    def conflict(self) -> bool:
        return any(code != "ConditionalCheckFailed" for _, code, _ in self.failed)


class Backend:
    def __init__(self, settings: Settings, session: botocore.session.Session | None = None):
        self.settings = settings
        # botocore's session, not boto3's: the function uses clients only, and boto3 adds ~50 ms
        # of imports (its resource layer, S3's transfer manager) to every cold start.
        session = session or botocore.session.get_session()
        retries = Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=2,
            read_timeout=20,
            tcp_keepalive=True,
            max_pool_connections=32,
        )
        # DynamoDB checks every request itself; botocore's client-side copy of those checks costs
        # ~0.35 ms of CPU per call (~9% of a warm PutImage's handler CPU), for requests we build.
        self.dynamodb = session.create_client(
            "dynamodb", region_name=settings.region, config=retries.merge(Config(parameter_validation=False))
        )
        self._retries = retries
        self._session = session
        self._s3 = None
        self._kms = None

    @property
    def s3(self):
        # Only layer operations and manifests over 64 KiB need S3: its client (botocore's biggest
        # model, ~60 ms to make) is made at the first use, not at every cold start.
        if self._s3 is None:
            custom_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
            # Local stand-ins answer only path-style requests; real S3 prefers virtual-hosted.
            s3_config = self._retries.merge(
                Config(signature_version="s3v4", s3={"addressing_style": "path" if custom_endpoint else "virtual"})
            )
            self._s3 = self._session.create_client("s3", region_name=self.settings.region, config=s3_config)
        return self._s3

    @property
    def kms(self):
        # Only CreateRepository with a KMS key needs it: don't pay for it at cold start.
        if self._kms is None:
            self._kms = self._session.create_client("kms", region_name=self.settings.region)
        return self._kms

    def clients(self) -> list:
        """DynamoDB's and S3's clients (S3's made now if not yet), and KMS's once made."""
        return [c for c in (self.dynamodb, self.s3, self._kms) if c is not None]

    def table(self, logical: str) -> str:
        return self.settings.tables[logical]

    def key(self, logical: str, partition: str, sort: str | None = None) -> dict:
        spec = TABLES[logical]
        key = {spec.partition_key: {"S": partition}}
        if spec.sort_key:
            key[spec.sort_key] = {"S": sort}
        return key

    # --- DynamoDB ---------------------------------------------------------------------------

    def get(
        self,
        logical: str,
        partition: str,
        sort: str | None = None,
        projection: str | None = None,
        names: dict | None = None,
    ) -> dict | None:
        if not storable(self.key(logical, partition, sort)):
            return None
        request = {"TableName": self.table(logical), "Key": self.key(logical, partition, sort), "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        return codec.plain(self.dynamodb.get_item(**request).get("Item"))

    def batch_get(self, requests: dict[str, dict]) -> dict[str, list[dict]]:
        """Consistent BatchGetItem over several tables, chunked at 100 keys, unprocessed keys retried.

        `requests` maps a logical table to {"Keys": [...], optional projection}; duplicate keys
        must already be removed by the caller."""
        pending: list[tuple[str, dict]] = [(t, k) for t, r in requests.items() for k in r["Keys"] if storable(k)]
        found: dict[str, list[dict]] = {t: [] for t in requests}
        physical = {self.table(t): t for t in requests}
        while pending:
            chunk, pending = pending[:BATCH_GET_LIMIT], pending[BATCH_GET_LIMIT:]
            request_items: dict[str, dict] = {}
            for logical, key in chunk:
                entry = request_items.setdefault(
                    self.table(logical),
                    {"Keys": [], "ConsistentRead": True, **{k: v for k, v in requests[logical].items() if k != "Keys"}},
                )
                entry["Keys"].append(key)
            for attempt in range(10):
                response = self.dynamodb.batch_get_item(RequestItems=request_items)
                for table, items in response.get("Responses", {}).items():
                    found[physical[table]].extend(codec.plain(i) for i in items)
                request_items = response.get("UnprocessedKeys") or {}
                if not request_items:
                    break
                _backoff(attempt)
            else:
                raise ServerException("DynamoDB kept keys unprocessed; retry the request")
        return found

    def query(
        self,
        logical: str,
        partition: str,
        *,
        start: str | None = None,
        exclusive: bool = True,
        limit: int | None = None,
        projection: str | None = None,
        names: dict | None = None,
        filter_expression: str | None = None,
        filter_values: dict | None = None,
    ) -> Iterator[dict]:
        """Items of one partition in sort-key order, from `start` (exclusive or inclusive)."""
        spec = TABLES[logical]
        names = {"#pk": spec.partition_key, **(names or {})}
        values = {":pk": {"S": partition}, **(filter_values or {})}
        condition = "#pk = :pk"
        if start is not None:
            names["#sk"] = spec.sort_key
            condition += " AND #sk > :start" if exclusive else " AND #sk >= :start"
            values[":start"] = {"S": start}
        request = {
            "TableName": self.table(logical),
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        if projection:
            request["ProjectionExpression"] = projection
        if filter_expression:
            request["FilterExpression"] = filter_expression
        if limit:
            request["Limit"] = limit
        return self.items("query", request)

    def items(self, method: str, request: dict, before_page: Callable[[], None] | None = None) -> Iterator[dict]:
        """Every item of a Query or Scan (`method`), page after page, as plain values."""
        while True:
            if before_page:
                before_page()
            response = getattr(self.dynamodb, method)(**request)
            for raw in response.get("Items", []):
                yield codec.plain(raw)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def transact(self, actions: list[Action]) -> None:
        """One TransactWriteItems; a cancellation becomes `Cancelled` with the old items."""
        if not actions:
            return
        if len(actions) > TRANSACTION_LIMIT:
            raise ServerException("internal error: transaction too large")
        try:
            # The token makes botocore's own retries of this very call idempotent (10 minutes).
            self.dynamodb.transact_write_items(
                TransactItems=[a.request for a in actions], ClientRequestToken=str(uuid.uuid4())
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or []
                failed = [
                    (a.name, r.get("Code"), codec.plain(r.get("Item")))
                    for a, r in zip(actions, reasons, strict=False)
                    if r.get("Code") not in (None, "None")
                ]
                if not failed:  # no per-action reason: treat like a conflict
                    failed = [("", "TransactionConflict", None)]
                raise Cancelled(failed) from None
            if code in ("TransactionConflictException", "TransactionInProgressException"):
                raise Cancelled([("", "TransactionConflict", None)]) from None
            raise

    def batch_delete(self, logical: str, keys: Iterable[dict]) -> None:
        table = self.table(logical)
        keys = list(keys)
        for start in range(0, len(keys), BATCH_WRITE_LIMIT):
            request = {table: [{"DeleteRequest": {"Key": k}} for k in keys[start : start + BATCH_WRITE_LIMIT]]}
            for attempt in range(10):
                response = self.dynamodb.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                _backoff(attempt)

    # --- S3 ------------------------------------------------------------------------------------

    def s3_call(self, method: str, **kwargs) -> Any:
        """Call S3, turning KMS failures into KmsException (with the KMS error code)."""
        try:
            return getattr(self.s3, method)(Bucket=self.settings.bucket, **kwargs)
        except ClientError as error:
            raise (kms_error(error) or error) from None


# DynamoDB's key size limits (UTF-8 bytes). A key beyond them names no item; asking for it is a
# ValidationException, so lookups by caller-supplied names (tags, digests) skip such keys.
MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES = 2048, 1024


def storable(key: dict) -> bool:
    sizes = [len(v["S"].encode("utf-8")) for v in key.values() if isinstance(v.get("S"), str)]
    limits = [MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES]
    return all(size <= limit for size, limit in zip(sizes, limits, strict=False))


def kms_error(error: ClientError) -> KmsException | None:
    err = error.response.get("Error", {})
    code, message = err.get("Code", ""), err.get("Message", "")
    if code.startswith("KMS."):
        return KmsException(f"KMS error: {message or code}", kms_error=code[4:])
    if code in ("KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException"):
        return KmsException(f"KMS error: {message or code}", kms_error=code)
    if code == "AccessDenied" and "kms" in message.lower():
        return KmsException(f"KMS error: {message}", kms_error="AccessDeniedException")
    return None


def sse_arguments(encryption) -> dict:
    """Server-side encryption arguments of S3 writes for a repository's encryption setting."""
    if encryption.type == "KMS":
        return {
            "ServerSideEncryption": "aws:kms",
            **({"SSEKMSKeyId": encryption.kms_key} if encryption.kms_key else {}),
            # An S3 Bucket Key: S3 asks KMS for a bucket-level key now and then instead of calling KMS
            # for every object written (and read). The encryption context becomes the bucket's ARN.
            # DSSE-KMS has no bucket keys.
            "BucketKeyEnabled": True,
        }
    if encryption.type == "KMS_DSSE":
        return {
            "ServerSideEncryption": "aws:kms:dsse",
            **({"SSEKMSKeyId": encryption.kms_key} if encryption.kms_key else {}),
        }
    return {"ServerSideEncryption": "AES256"}


def _backoff(attempt: int) -> None:
    import random
    import time

    time.sleep(min(0.5, 0.01 * (2**attempt)) * random.random())
