"""The AWS clients and the few call patterns every store uses.

Nothing outside `storage/` sees a boto3 client or a ClientError: a DynamoDB cancellation becomes
`Cancelled` and a failed condition `ConditionFailed` (each store turns them into what happened to
its data, `storage.errors`), KMS trouble inside S3 becomes `EncryptionKeyUnusable`.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from ..config import Settings
from ..records import Encryption
from . import codec
from .errors import BackendBusy, EncryptionKeyUnusable
from .schema import TABLES

BATCH_GET_LIMIT = 100  # keys per BatchGetItem
BATCH_WRITE_LIMIT = 25  # requests per BatchWriteItem
TRANSACTION_LIMIT = 100  # actions per TransactWriteItems
Item = dict[str, Any]  # an item as plain Python values (codec.plain)
ClientFactory = Callable[[str], Any]  # service name -> botocore client


@dataclass
class Action:
    """One action of a transaction, named so that a cancellation reason can be told apart."""

    name: str
    request: dict[str, Any]


@dataclass
class Cancelled(Exception):
    """A transaction was cancelled; `failed` lists (action name, reason code, old item)."""

    failed: list[tuple[str, str, Item | None]] = field(default_factory=list)

    def reason(self, name: str) -> tuple[str, Item | None] | None:
        for action, code, old in self.failed:
            if action == name:
                return code, old
        return None

    @property
    def conflict(self) -> bool:
        return any(code != "ConditionalCheckFailed" for _, code, _ in self.failed)


def action(
    name: str,
    kind: str,
    table: str,
    *,
    key: dict[str, Any] | None = None,
    item: dict[str, Any] | None = None,
    update: str | None = None,
    condition: str | None = None,
    values: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
    return_old: bool = False,
) -> Action:
    """A transaction action: `kind` is Put, Update, Delete or ConditionCheck; `values` are encoded
    already (codec.values); `return_old` asks DynamoDB for the item when the condition fails."""
    request: dict[str, Any] = {"TableName": table}
    for member, value in (
        ("Key", key),
        ("Item", item),
        ("UpdateExpression", update),
        ("ConditionExpression", condition),
        ("ExpressionAttributeValues", values),
        ("ExpressionAttributeNames", names),
    ):
        if value:
            request[member] = value
    if return_old:
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return Action(name, {kind: request})


class ConditionFailed(Exception):
    """A single conditional write's condition was false; `old` is the item as it was (when asked for)."""

    def __init__(self, old: Item | None):
        super().__init__()
        self.old = old


def function_clients(region: str) -> ClientFactory:
    """Clients as the function makes them: botocore's session, standard retries, short timeouts."""
    # botocore's session, not boto3's: the function uses clients only, and boto3 adds ~50 ms
    # of imports (its resource layer, S3's transfer manager) to every cold start.
    session = botocore.session.get_session()
    retries = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=2,
        read_timeout=20,
        tcp_keepalive=True,
        max_pool_connections=32,
    )
    custom_s3_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    configs = {
        # DynamoDB checks every request itself; botocore's client-side copy of those checks costs
        # ~0.35 ms of CPU per call (~9% of a warm PutImage's handler CPU), for requests we build.
        "dynamodb": retries.merge(Config(parameter_validation=False)),
        # Local stand-ins answer only path-style requests; real S3 prefers virtual-hosted.
        "s3": retries.merge(
            Config(signature_version="s3v4", s3={"addressing_style": "path" if custom_s3_endpoint else "virtual"})
        ),
    }

    def make(service: str) -> Any:
        return session.create_client(service, region_name=region, config=configs.get(service, retries))

    return make


class Backend:
    def __init__(self, settings: Settings, clients: ClientFactory | None = None):
        self.settings = settings
        self._make = clients or function_clients(settings.region)
        self.dynamodb = self._make("dynamodb")
        self._s3: Any = None
        self._kms: Any = None

    @property
    def s3(self) -> Any:
        # Only layer operations and manifests over 64 KiB need S3: its client (botocore's biggest
        # model, ~60 ms to make) is made at the first use, not at every cold start.
        if self._s3 is None:
            self._s3 = self._make("s3")
        return self._s3

    @property
    def kms(self) -> Any:
        # Only access key lookups and CreateRepository with a KMS key need it.
        if self._kms is None:
            self._kms = self._make("kms")
        return self._kms

    def clients(self) -> list[Any]:
        """DynamoDB's and S3's clients (S3's made now if not yet), and KMS's once made."""
        return [c for c in (self.dynamodb, self.s3, self._kms) if c is not None]

    def table(self, logical: str) -> str:
        return self.settings.tables[logical]

    def item_key(self, logical: str, partition: str, sort: str | None = None) -> dict[str, Any]:
        """The DynamoDB primary key of an item of table `logical`, in the low-level client's form."""
        spec = TABLES[logical]
        key: dict[str, Any] = {spec.partition_key: {"S": partition}}
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
        names: dict[str, str] | None = None,
    ) -> Item | None:
        key = self.item_key(logical, partition, sort)
        if not storable(key):
            return None
        request: dict[str, Any] = {"TableName": self.table(logical), "Key": key, "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        return codec.plain(self.dynamodb.get_item(**request).get("Item"))

    def batch_get(self, requests: dict[str, dict[str, Any]]) -> dict[str, list[Item]]:
        """Consistent BatchGetItem over several tables, chunked at 100 keys, unprocessed keys retried.

        `requests` maps a logical table to {"Keys": [...], optional projection}; duplicate keys
        must already be removed by the caller."""
        pending = [(t, k) for t, r in requests.items() for k in r["Keys"] if storable(k)]
        found: dict[str, list[Item]] = {t: [] for t in requests}
        physical = {self.table(t): t for t in requests}
        while pending:
            chunk, pending = pending[:BATCH_GET_LIMIT], pending[BATCH_GET_LIMIT:]
            request_items: dict[str, Any] = {}
            for logical, key in chunk:
                options = {k: v for k, v in requests[logical].items() if k != "Keys"}
                entry = request_items.setdefault(self.table(logical), {"Keys": [], "ConsistentRead": True, **options})
                entry["Keys"].append(key)
            for attempt in range(10):
                response = self.dynamodb.batch_get_item(RequestItems=request_items)
                for table, items in response.get("Responses", {}).items():
                    found[physical[table]].extend(codec.plain(i) or {} for i in items)
                request_items = response.get("UnprocessedKeys") or {}
                if not request_items:
                    break
                _backoff(attempt)
            else:
                raise BackendBusy("DynamoDB kept keys unprocessed")
        return found

    def query(
        self,
        logical: str,
        partition: str,
        *,
        start: str | None = None,
        exclusive: bool = True,
        prefix: str | None = None,
        limit: int | None = None,
        projection: str | None = None,
        names: dict[str, str] | None = None,
        filter_expression: str | None = None,
        filter_values: dict[str, Any] | None = None,
    ) -> Iterator[Item]:
        """Items of one partition in sort-key order, from `start` (exclusive or inclusive), or those
        whose sort key begins with `prefix`."""
        spec = TABLES[logical]
        names = {"#pk": spec.partition_key, **(names or {})}
        values = {":pk": {"S": partition}, **(filter_values or {})}
        condition = "#pk = :pk"
        if start is not None:
            names["#sk"] = spec.sort_key or ""
            condition += " AND #sk > :start" if exclusive else " AND #sk >= :start"
            values[":start"] = {"S": start}
        elif prefix is not None:
            names["#sk"] = spec.sort_key or ""
            condition += " AND begins_with(#sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        request: dict[str, Any] = {
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

    def scan(
        self,
        logical: str,
        filter_expression: str | None = None,
        values: dict[str, Any] | None = None,
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Iterator[Item]:
        """Every item of a table (consistent), optionally filtered: for maintenance and small tables."""
        request: dict[str, Any] = {"TableName": self.table(logical), "ConsistentRead": True}
        if filter_expression:
            request["FilterExpression"] = filter_expression
        if values:
            request["ExpressionAttributeValues"] = values
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = names
        return self.items("scan", request)

    def items(self, method: str, request: dict[str, Any]) -> Iterator[Item]:
        """Every item of a Query or Scan (`method`), page after page, as plain values."""
        while True:
            response = getattr(self.dynamodb, method)(**request)
            for raw in response.get("Items", []):
                yield codec.plain(raw) or {}
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def write(self, method: str, logical: str, **request: Any) -> Item | None:
        """One PutItem/UpdateItem/DeleteItem on table `logical`; ConditionFailed when its condition
        is false (with the old item if the request asks for ALL_OLD). Returns the attributes the
        request asked for with ReturnValues, if any."""
        try:
            response = getattr(self.dynamodb, method)(TableName=self.table(logical), **request)
        except self.dynamodb.exceptions.ConditionalCheckFailedException as failure:
            raise ConditionFailed(codec.plain(failure.response.get("Item"))) from None
        return codec.plain(response.get("Attributes"))

    def transact(self, actions: list[Action]) -> None:
        """One TransactWriteItems; a cancellation becomes `Cancelled` with the old items."""
        if not actions:
            return
        if len(actions) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction of {len(actions)} actions: DynamoDB takes {TRANSACTION_LIMIT}")
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

    def batch_delete(self, logical: str, keys: Iterable[dict[str, Any]]) -> None:
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

    def s3_call(self, method: str, **kwargs: Any) -> Any:
        """Call S3 on the registry's bucket; KMS failures become EncryptionKeyUnusable."""
        try:
            return getattr(self.s3, method)(Bucket=self.settings.bucket, **kwargs)
        except ClientError as error:
            raise (encryption_key_error(error) or error) from None

    def read_object(self, object_key: str) -> bytes:
        body: bytes = self.s3_call("get_object", Key=object_key)["Body"].read()
        return body

    def delete_object(self, object_key: str) -> None:
        self.s3_call("delete_object", Key=object_key)

    def abort_multipart(self, object_key: str, multipart_id: str) -> None:
        """Abort an S3 multipart upload; one already gone (completed or aborted) is no error."""
        try:
            self.s3_call("abort_multipart_upload", Key=object_key, UploadId=multipart_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def presigned_get(self, object_key: str, expires_seconds: int, method: str = "get_object") -> str:
        """A URL that lets its holder GET (or, with `head_object`, HEAD) the object until it expires."""
        return self.presigned(method, expires_seconds, Key=object_key)

    def presigned(self, method: str, expires_seconds: int, **params: Any) -> str:
        """A URL that lets its holder make this one S3 call on the bucket until it expires."""
        url: str = self.s3.generate_presigned_url(
            method, Params={"Bucket": self.settings.bucket, **params}, ExpiresIn=expires_seconds
        )
        return url

    def objects(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, last modified, epoch seconds) of every object under `prefix`."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["LastModified"].timestamp()

    def multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, float]]:
        """(key, multipart upload id, initiated, epoch seconds) of the S3 multipart uploads under `prefix`."""
        paginator = self.s3.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for multipart in page.get("Uploads", []):
                yield multipart["Key"], multipart["UploadId"], multipart["Initiated"].timestamp()


# DynamoDB's key size limits (UTF-8 bytes). A key beyond them names no item; asking for it is a
# ValidationException, so lookups by caller-supplied names (tags, digests) skip such keys.
MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES = 2048, 1024


def storable(key: dict[str, Any]) -> bool:
    sizes = [len(v["S"].encode("utf-8")) for v in key.values() if isinstance(v.get("S"), str)]
    limits = [MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES]
    return all(size <= limit for size, limit in zip(sizes, limits, strict=False))


def encryption_key_error(error: ClientError) -> EncryptionKeyUnusable | None:
    err = error.response.get("Error", {})
    code, message = err.get("Code", ""), err.get("Message", "")
    if code.startswith("KMS."):
        return EncryptionKeyUnusable(code[4:], f"KMS error: {message or code}")
    if code in ("KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException"):
        return EncryptionKeyUnusable(code, f"KMS error: {message or code}")
    if code == "AccessDenied" and "kms" in message.lower():
        return EncryptionKeyUnusable("AccessDeniedException", f"KMS error: {message}")
    return None


def sse_arguments(encryption: Encryption) -> dict[str, Any]:
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
    time.sleep(min(0.5, 0.01 * (2**attempt)) * random.random())
