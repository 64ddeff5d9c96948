"""The sweep: reclaim what abandoned work leaves behind.

    python -m registry.sweep [--dry-run] [--grace-seconds N] [--now EPOCH]   (from lambdas/, with
                                                                            the function's environment)
    registry.sweep.lambda_handler                       (a scheduled Lambda; event {"dryRun": true})

Each run, with `now` read once at the start and `cutoff = now - grace` (default one day,
REGISTRY_SWEEP_GRACE_SECONDS):

1. Repository deletions that stopped half-way (marked `deleting` before the cutoff) are finished,
   as the next DeleteRepository of that name would finish them.
2. Expired uploads (`expires_at` before the cutoff) are deleted -- DynamoDB's TTL would delete the
   item some day, but not its bytes -- with their staged tail objects and multipart upload.
3. Layer items no image ever referenced (`referenced` unset) created before the cutoff are deleted
   (ECR: "unassociated image layers may be cleaned up at any time"). Layer items older than this
   sweep carry no `created_at`: the first run stamps it, a later run judges them.
4. `blobs` entries no layer item uses, last used before the cutoff, are deleted with their object.
   Entries without `used_at` (older than this sweep) are stamped first, as in 3.
5. Objects and multipart uploads nothing records any more: staged tails no upload names, blob
   objects no `blobs` entry or layer names (a Complete that stopped between writing the object and
   registering it; a discard that failed), multipart uploads no upload in progress names. Large
   manifests (`manifests/`) are content-addressed and rewritten by every push of the same bytes,
   so their age says nothing: they are left alone (S3 cannot delete "if not modified since").

Why a concurrent request never loses something it is about to use. Let D be the longest a request
can run (the function's timeout, at most 29 s behind API Gateway) plus the clock skew between the
sweep and the function; the grace period must exceed D by a wide margin (the default: one day).
`now` must not be ahead of the real clock (tests pass a later `now` only when no request runs).

- Layers (3): PutImage marks every not-yet-referenced layer it uses with `SET referenced` under
  `attribute_exists(digest)`, in the transaction that creates the image; the sweep deletes under
  `attribute_not_exists(referenced) AND created_at < cutoff`. Both are conditional writes of the one
  item, so DynamoDB orders them: if the delete lands first, PutImage's transaction is cancelled and
  it reads again -- LayersNotFoundException, the client uploads the layer again; if the mark lands
  first, the delete fails. Layers once referenced are never swept (an image may use them without
  writing to them again).
- Blobs (4): CompleteLayerUpload creates a layer item in a transaction that also sets the entry's
  `used_at = now` under `blob_key = <the object the layer names>`, so it cannot create a layer on an
  entry that is gone. The sweep deletes an entry under `used_at < cutoff AND blob_key = <key>` only
  if its consistent scan of the layers table, started after `now`, found no layer naming the key.
  Suppose a layer L names the key when the entry is deleted. L's transaction landed before the
  delete (else its condition fails). If it landed before the scan read L's partition, the scan saw
  L and the entry was kept. Otherwise it landed after `now`, and stamped `used_at >= now - D` (its
  clock was read at most D before it landed; any later stamp likewise) -- not before the cutoff
  `now - grace`: the delete's condition fails. A
  registration (`_register_blob`) writes `used_at` too, so an entry is never swept between being
  registered and being used.
- Uploads (2): a request refuses an upload whose `expires_at` has passed (UploadNotFound), so after
  `expires_at + D` nothing uses it; the sweep deletes only uploads that expired before the cutoff.
- Objects (5): a staged tail is named by its upload only by the request that wrote it, within D of
  the tail's LastModified. A multipart upload is kept while its upload is live (not completed, not
  expired before the cutoff), whatever the upload records, so its Initiated time never matters
  while a request may still record it. A blob object `blobs/<registry>/<scope>/<upload id>` is
  registered only by a CompleteLayerUpload of that upload, which must find the upload unexpired and
  not completed -- so no later than `expires_at + D` (once the upload is completed, a Complete
  still in flight finds an entry for the digest and registers nothing new). The upload is created
  before its object, so its `expires_at` is at most LastModified + TTL. Hence a blob object older
  than the cutoff whose upload is completed, expired before the cutoff, or gone while the object
  is older than cutoff - TTL, and that nothing names in the scans taken after `now`, will never be
  named again. (S3's lifecycle rules -- abort multipart uploads, expire `uploads/` after 7 days --
  reclaim the same staged bytes later, and are the backstop if the sweep is not scheduled.)
- Repositories (1): a repository marked `deleting` accepts no writer (every writer's transaction
  checks `attribute_not_exists(deleting)`); finishing its deletion is what DeleteRepository does.

Every delete is conditional on exactly what was judged, so a sweep racing another sweep, or one
that crashes half-way, leaves nothing inconsistent: the next run finishes what this one began.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator

from botocore.exceptions import ClientError

from .config import Settings
from .errors import RepositoryNotFoundException
from .storage import RegistryStore, codec
from .storage.repositories import repository_from_item
from .storage.schema import REGISTRY_ITEM

GRACE_ENV = "REGISTRY_SWEEP_GRACE_SECONDS"
DEFAULT_GRACE_SECONDS = 24 * 3600
STAGED_PREFIX = "uploads/"  # tails of uploads in progress (storage/layers.py)
BLOB_PREFIX = "blobs/"  # blob objects and the multipart uploads that become them


class OutOfTime(Exception):
    """The run's time budget is spent: stop cleanly, the next run carries on."""


class Sweeper:
    def __init__(
        self,
        store: RegistryStore,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        dry_run: bool = False,
        log: Callable[[str, dict], None] | None = None,
    ):
        self.store, self.backend = store, store.backend
        self.grace, self.dry_run = grace_seconds, dry_run
        self.log = log or (lambda message, extra: None)
        self.report: Counter = Counter()
        self._deadline: float | None = None

    def run(self, now: float | None = None, budget_seconds: float | None = None) -> dict:
        self.now = time.time() if now is None else now
        self.cutoff = self.now - self.grace
        self.report = Counter()
        self._deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        self._uploads: dict[str, dict | None] = {}
        # What this run removed (or, dry, would have): later phases judge as if it were gone.
        self._gone_repositories: set[str] = set()
        self._gone_layers: set[tuple[str, str]] = set()
        self._gone_objects: set[str] = set()
        complete = True
        try:
            self.finish_deletions()
            self.expired_uploads()
            self.unreferenced_layers()
            layer_keys, entries = self.unused_blobs()
            self.orphaned_objects(layer_keys, entries)
        except OutOfTime:
            complete = False
        result = {
            **dict(sorted(self.report.items())),
            "complete": complete,
            "dry_run": self.dry_run,
            "now": self.now,
            "cutoff": self.cutoff,
        }
        self.log("sweep", result)
        return result

    # --- 1. repositories ------------------------------------------------------------------------

    def finish_deletions(self) -> None:
        for item in self._scan("repositories", "attribute_exists(deleting)"):
            if item["name"] == REGISTRY_ITEM or item["deleting"] >= self.cutoff:
                continue
            self._count("repositories_finished")
            repo = repository_from_item(item)
            self._gone_repositories.add(repo.key)
            if self.dry_run:
                continue
            self.store.images.purge(repo)
            self.store.layers.purge(repo)
            try:
                self.store.repositories.finish_deletion(repo)
            except RepositoryNotFoundException:  # a DeleteRepository finished it meanwhile
                pass

    # --- 2. uploads -----------------------------------------------------------------------------

    def expired_uploads(self) -> None:
        for item in self._scan("uploads", "expires_at < :cutoff", codec.values(cutoff=self.cutoff)):
            upload_id = item["upload_id"]
            if not self.dry_run:
                try:
                    self.backend.dynamodb.delete_item(
                        TableName=self.backend.table("uploads"),
                        Key=self.backend.key("uploads", upload_id),
                        ConditionExpression="expires_at < :cutoff",
                        ExpressionAttributeValues=codec.values(cutoff=self.cutoff),
                    )
                except self.backend.dynamodb.exceptions.ConditionalCheckFailedException:
                    continue
            self._count("uploads_expired")
            self._uploads[upload_id] = None
            for key in self._list(f"{STAGED_PREFIX}{upload_id}/"):
                self._delete_object(key["Key"])
            if item.get("multipart_id") and not item.get("completed_digest"):
                self._abort(item["blob_key"], item["multipart_id"])

    # --- 3. layers ------------------------------------------------------------------------------

    def unreferenced_layers(self) -> None:
        never = "attribute_not_exists(referenced) OR referenced = :no"
        for item in self._scan("layers", never, codec.values(no=False)):
            key = self.backend.key("layers", item["repository"], item["digest"])
            if "created_at" not in item:
                self._stamp("layers", key, "created_at", "layers_stamped")
                continue
            if item["created_at"] >= self.cutoff:
                continue
            if self._delete_item(
                "layers", key, f"({never}) AND created_at < :cutoff", codec.values(no=False, cutoff=self.cutoff)
            ):
                self._count("layers_deleted")
                self._gone_layers.add((item["repository"], item["digest"]))

    # --- 4. blobs -------------------------------------------------------------------------------

    def unused_blobs(self) -> tuple[set[str], dict[str, dict]]:
        """Delete unused entries; returns the blob keys layers name and the entries left, by key."""
        entries = {e["blob_key"]: e for e in self._scan("blobs")}
        layer_keys = {
            layer["blob_key"]
            for layer in self._scan("layers", projection="repository, digest, blob_key")
            if layer["repository"] not in self._gone_repositories
            and (layer["repository"], layer["digest"]) not in self._gone_layers
        }
        for blob_key, entry in list(entries.items()):
            key = self.backend.key("blobs", entry["scope"], entry["digest"])
            if "used_at" not in entry:
                self._stamp("blobs", key, "used_at", "blobs_stamped")
                continue
            if blob_key in layer_keys or entry["used_at"] >= self.cutoff:
                continue
            if self._delete_item(
                "blobs", key, "used_at < :cutoff AND blob_key = :key", codec.values(cutoff=self.cutoff, key=blob_key)
            ):
                self._count("blobs_deleted")
                del entries[blob_key]
                self._delete_object(blob_key)
        return layer_keys, entries

    # --- 5. objects and multipart uploads -------------------------------------------------------

    def orphaned_objects(self, layer_keys: set[str], entries: dict[str, dict]) -> None:
        ttl = self.backend.settings.upload_ttl_seconds
        for obj in self._list(STAGED_PREFIX):
            if obj["LastModified"].timestamp() >= self.cutoff or obj["Key"] in self._gone_objects:
                continue
            upload = self._upload(obj["Key"].split("/")[1])
            if upload and not upload.get("completed_digest") and upload.get("tail_key") == obj["Key"]:
                continue
            self._delete_object(obj["Key"])
        for obj in self._list(BLOB_PREFIX):
            modified = obj["LastModified"].timestamp()
            if (
                modified >= self.cutoff
                or obj["Key"] in entries
                or obj["Key"] in layer_keys
                or obj["Key"] in self._gone_objects
            ):
                continue
            upload = self._upload(obj["Key"].rsplit("/", 1)[-1])
            if upload is None:
                if modified >= self.cutoff - ttl:  # its upload's expiry is unknown: assume the latest
                    continue
            elif not upload.get("completed_digest") and upload.get("expires_at", 0) >= self.cutoff:
                continue  # a CompleteLayerUpload of that upload may still register it
            self._delete_object(obj["Key"])
        for page in self._pages("list_multipart_uploads", Prefix=BLOB_PREFIX):
            for multipart in page.get("Uploads", []):
                started = multipart["Initiated"].timestamp()
                if started >= self.cutoff:
                    continue
                upload = self._upload(multipart["Key"].rsplit("/", 1)[-1])
                if upload is None:
                    if started >= self.cutoff - ttl:
                        continue
                elif not upload.get("completed_digest") and upload.get("expires_at", 0) >= self.cutoff:
                    # The upload is live: this is its multipart upload, or one a request of it
                    # is about to record, or a loser of a race -- its expiry settles all three.
                    continue
                self._abort(multipart["Key"], multipart["UploadId"])

    # --- helpers --------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise OutOfTime()

    def _count(self, what: str) -> None:
        self.report[what] += 1

    def _scan(
        self,
        logical: str,
        filter_expression: str | None = None,
        values: dict | None = None,
        projection: str | None = None,
    ) -> Iterator[dict]:
        request = {"TableName": self.backend.table(logical), "ConsistentRead": True}
        if filter_expression:
            request["FilterExpression"] = filter_expression
        if values:
            request["ExpressionAttributeValues"] = values
        if projection:
            request["ProjectionExpression"] = projection
        return self.backend.items("scan", request, before_page=self._tick)

    def _pages(self, method: str, **kwargs) -> Iterator[dict]:
        paginator = self.backend.s3.get_paginator(method)
        for page in paginator.paginate(Bucket=self.backend.settings.bucket, **kwargs):
            self._tick()
            yield page

    def _list(self, prefix: str) -> Iterator[dict]:
        for page in self._pages("list_objects_v2", Prefix=prefix):
            yield from page.get("Contents", [])

    def _upload(self, upload_id: str) -> dict | None:
        if upload_id not in self._uploads:
            self._uploads[upload_id] = self.backend.get("uploads", upload_id)
        return self._uploads[upload_id]

    def _stamp(self, logical: str, key: dict, attribute: str, counter: str) -> None:
        """Give an item from before the sweep existed the timestamp it is judged by, from now on."""
        self._count(counter)
        if self.dry_run:
            return
        try:
            self.backend.dynamodb.update_item(
                TableName=self.backend.table(logical),
                Key=key,
                UpdateExpression="SET #a = :now",
                ConditionExpression="attribute_exists(#k) AND attribute_not_exists(#a)",
                ExpressionAttributeNames={"#a": attribute, "#k": next(iter(key))},
                ExpressionAttributeValues=codec.values(now=self.now),
            )
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException:
            pass

    def _delete_item(self, logical: str, key: dict, condition: str, values: dict) -> bool:
        self._tick()
        if self.dry_run:
            return True
        try:
            self.backend.dynamodb.delete_item(
                TableName=self.backend.table(logical),
                Key=key,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
            return True
        except self.backend.dynamodb.exceptions.ConditionalCheckFailedException:
            return False  # it changed since we judged it: it stays

    def _delete_object(self, key: str) -> None:
        self._count("objects_deleted")
        self._gone_objects.add(key)
        if not self.dry_run:
            self.backend.s3_call("delete_object", Key=key)

    def _abort(self, key: str, multipart_id: str) -> None:
        self._count("multipart_aborted")
        if self.dry_run:
            return
        try:
            self.backend.s3_call("abort_multipart_upload", Key=key, UploadId=multipart_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise


# --- entry points ---------------------------------------------------------------------------------


def grace_from_environment() -> float:
    raw = os.environ.get(GRACE_ENV)
    return float(raw) if raw not in (None, "") else DEFAULT_GRACE_SECONDS


def lambda_handler(event: dict | None, context) -> dict:
    """The scheduled sweep. It stops 30 s before the function's timeout; the next run carries on.

    Each real run emits the metric SweepIncomplete (EMF; 1: it ran out of time, 0: it finished):
    an alarm watches for runs that never finish."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    logger = Logger(service="ecr-registry-sweep")
    budget = context.get_remaining_time_in_millis() / 1000 - 30 if context is not None else None
    sweeper = Sweeper(
        RegistryStore(Settings.from_environment()),
        grace_seconds=grace_from_environment(),
        dry_run=bool((event or {}).get("dryRun")),
        log=lambda message, extra: logger.info(message, extra=extra),
    )
    result = sweeper.run(budget_seconds=budget)
    if not sweeper.dry_run:  # an operator's dry run says nothing about the schedule keeping up
        with single_metric(
            name="SweepIncomplete",
            unit=MetricUnit.Count,
            value=0 if result["complete"] else 1,
            namespace="ServerlessEcrRegistry",
            default_dimensions={"service": "ecr-registry-sweep"},
        ):
            pass  # written (to stdout, as EMF) when the block ends
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registry.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=None,
        help=f"minimum age of what is reclaimed (default ${GRACE_ENV} or one day)",
    )
    parser.add_argument("--now", type=float, default=None, help="the clock, epoch seconds (tests)")
    args = parser.parse_args(argv)
    grace = args.grace_seconds if args.grace_seconds is not None else grace_from_environment()
    report = Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=grace, dry_run=args.dry_run).run(
        now=args.now
    )
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
