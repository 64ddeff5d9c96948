"""The sweep's policy: what abandoned work to reclaim, judged from the stores' records, and the
repositories' lifecycle policies, applied.

Each run reads `now` once and reclaims only what is older than `cutoff = now - grace`; every delete
is one of the stores' conditional deletes, conditional on exactly what was judged. Lifecycle
policies expire what they expire at `now` (their own ages, not the grace), last, so that a run out
of time never starves the reclaiming; then, with the time left, the registries' usage is measured
(usage.py). What each phase does, and why a concurrent request never loses what it is about to
use: docs/sweep.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..lifecycle.runs import apply_policy, compute_preview
from ..records import LifecyclePolicy, Preview, Upload
from ..storage import BlobEntry, RegistryStore, RepositoryGone
from ..storage.schema import upload_of_blob_object, upload_of_staged_part
from .usage import RegistryUsage, RepositoryUsage, Usage

GRACE_ENV = "REGISTRY_SWEEP_GRACE_SECONDS"
DEFAULT_GRACE_SECONDS = 24 * 3600
T = TypeVar("T")


class OutOfTime(Exception):
    """The run's time budget is spent: stop cleanly, the next run carries on."""


class Sweeper:
    def __init__(
        self,
        store: RegistryStore,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        dry_run: bool = False,
        log: Callable[[str, dict[str, Any]], None] | None = None,
        report_usage: Callable[[Usage], None] | None = None,
        report_repositories: bool = True,
    ):
        self.store = store
        self.grace, self.dry_run = grace_seconds, dry_run
        self.log = log or (lambda message, extra: None)
        # Called with each repository's usage as it is measured (unless report_repositories is
        # False), then with its registry's.
        self.report_usage = report_usage or (lambda usage: None)
        # A repository's bytes cost a Query of its own, and only its usage report needs them.
        self.report_repositories = report_repositories and report_usage is not None
        self.report: Counter[str] = Counter()
        self._deadline: float | None = None

    def run(self, now: float | None = None, budget_seconds: float | None = None) -> dict[str, Any]:
        self.now = time.time() if now is None else now
        self.cutoff = self.now - self.grace
        self.report = Counter()
        self._deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        self._uploads: dict[str, Upload | None] = {}
        # What this run removed (or, dry, would have): later phases judge as if it were gone.
        self._gone_repositories: set[str] = set()
        self._gone_layers: set[tuple[str, str]] = set()
        self._gone_objects: set[str] = set()
        complete = True
        try:
            self.finish_deletions()
            self.expired_uploads()
            self.unreferenced_layers()
            layer_objects, entries = self.unused_blobs()
            self.orphaned_objects(layer_objects, entries)
            self.unnamed_manifests()
            self.lifecycle()
        except OutOfTime:
            complete = False
        result = {
            **dict(sorted(self.report.items())),
            "complete": complete,
            # Measured only once the reclaiming finished: it never takes the time reclaiming needs.
            "usage": self.usage() if complete else {"complete": False, "registries": {}},
            "dry_run": self.dry_run,
            "now": self.now,
            "cutoff": self.cutoff,
        }
        self.log("sweep", result)
        return result

    # --- 1. repositories ------------------------------------------------------------------------

    def finish_deletions(self) -> None:
        for repo in self._paced(self.store.repositories.deletions_begun()):
            if repo.deleting_since is None or repo.deleting_since >= self.cutoff:
                continue
            self._count("repositories_finished")
            self._gone_repositories.add(repo.partition)
            if self.dry_run:
                continue
            self.store.images.purge(repo)
            self.store.layers.purge(repo)
            self.store.lifecycle.purge(repo)
            try:
                self.store.repositories.finish_deletion(repo)
            except RepositoryGone:  # a DeleteRepository finished it meanwhile
                pass

    # --- 2. uploads -----------------------------------------------------------------------------

    def expired_uploads(self) -> None:
        uploads = self.store.uploads
        for upload in self._paced(uploads.expired(self.cutoff)):
            if not self.dry_run and not uploads.delete_expired(upload.upload_id, self.cutoff):
                continue
            self._count("uploads_expired")
            self._uploads[upload.upload_id] = None
            for object_key, _ in uploads.staged_parts(upload.upload_id):
                self._delete_object(object_key)
            if upload.multipart_id and not upload.completed_digest:
                self._abort(upload.object_key, upload.multipart_id)

    # --- 3. layers ------------------------------------------------------------------------------

    def unreferenced_layers(self) -> None:
        layers = self.store.layers
        for layer in self._paced(layers.never_referenced()):
            if layer.created_at is None:
                self._count("layers_stamped")
                if not self.dry_run:
                    layers.stamp_created(layer, self.now)
                continue
            if layer.created_at >= self.cutoff or (layer.claimed_at or 0) >= self.cutoff:
                continue
            if layer.claimants and self.store.images.existing(layer.repository_partition, sorted(layer.claimants)):
                # A push committed its image and stopped before marking this layer: finish it.
                self._count("layers_marked")
                if not self.dry_run:
                    layers.mark_referenced(layer)
                continue
            if self.dry_run or layers.delete_never_referenced(layer, self.cutoff):
                self._count("layers_deleted")
                self._gone_layers.add((layer.repository_partition, layer.digest))

    # --- 4. blobs -------------------------------------------------------------------------------

    def unused_blobs(self) -> tuple[set[str], dict[str, BlobEntry]]:
        """Delete unused entries; returns the objects layers name and the entries left, by object."""
        layers = self.store.layers
        entries = {e.object_key: e for e in self._paced(layers.blob_entries())}
        layer_objects = {
            layer.object_key
            for layer in self._paced(layers.entries())
            if layer.repository_partition not in self._gone_repositories
            and (layer.repository_partition, layer.digest) not in self._gone_layers
        }
        for object_key, entry in list(entries.items()):
            self._tick()
            if entry.used_at is None:
                self._count("blobs_stamped")
                if not self.dry_run:
                    layers.stamp_blob_used(entry, self.now)
                continue
            if object_key in layer_objects or entry.used_at >= self.cutoff:
                continue
            if self.dry_run or layers.delete_unused_blob(entry, self.cutoff):
                self._count("blobs_deleted")
                del entries[object_key]
                self._delete_object(object_key)
        return layer_objects, entries

    # --- 5. objects and multipart uploads -------------------------------------------------------

    def orphaned_objects(self, layer_objects: set[str], entries: dict[str, BlobEntry]) -> None:
        ttl = self.store.settings.upload_ttl_seconds
        for object_key, modified in self._paced(self.store.uploads.staged_parts()):
            if modified >= self.cutoff or object_key in self._gone_objects:
                continue
            upload = self._upload(upload_of_staged_part(object_key))
            if upload and not upload.completed_digest and upload.tail_object_key == object_key:
                continue
            self._delete_object(object_key)
        for object_key, modified in self._paced(self.store.layers.blob_objects()):
            if (
                modified >= self.cutoff
                or object_key in entries
                or object_key in layer_objects
                or object_key in self._gone_objects
            ):
                continue
            if self._upload_may_still_register(upload_of_blob_object(object_key), modified, ttl):
                continue
            self._delete_object(object_key)
        for object_key, multipart_id, started in self._paced(self.store.uploads.multipart_uploads()):
            if started >= self.cutoff:
                continue
            # While its upload is live this is its multipart upload, or one a request of it is
            # about to record, or a loser of a race: the upload's expiry settles all three.
            if self._upload_may_still_register(upload_of_blob_object(object_key), started, ttl):
                continue
            self._abort(object_key, multipart_id)

    # --- 6. manifests ----------------------------------------------------------------------------

    def unnamed_manifests(self) -> None:
        """Manifest objects no image names: each is written by one PutImage, which names it in the
        transaction it commits within a request's lifetime, so one older than the cutoff that no
        image names (in a scan started after `now`) is the leftover of a refused or failed push."""
        images = self.store.images
        in_use = images.manifest_objects_in_use()
        for object_key, modified in self._paced(images.manifest_objects()):
            if modified >= self.cutoff or object_key in in_use:
                continue
            self._count("manifests_deleted")
            if not self.dry_run:
                images.delete_manifest_object(object_key)

    # --- 7. lifecycle policies --------------------------------------------------------------------

    def lifecycle(self) -> None:
        """Complete the previews left IN_PROGRESS (a request out of time, or one that died), then
        apply every repository's policy: previews first, so one completed by this run shows what
        this run expires. A dry run completes no preview and counts what the policies expire."""
        scheduled = list(self._paced(self.store.lifecycle.scheduled()))
        for preview in scheduled:
            if (
                isinstance(preview, Preview)
                and not self.dry_run
                and compute_preview(self.store, preview, self.now, self._tick) is not None
            ):
                self._count("previews_completed")
        for policy in scheduled:
            if isinstance(policy, LifecyclePolicy):
                self._count("lifecycle_policies")
                self.report.update(apply_policy(self.store, policy, self.now, self._tick, self.dry_run))

    # --- 8. usage ---------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """Measure every registry, repository by repository, reporting each as it is measured (a
        run out of time has reported those it reached), and each registry once all of its
        repositories were: its total would otherwise be short. Returns the registries measured
        and whether that is all of them."""
        registries: dict[str, dict[str, int]] = {}
        try:
            for registry_id, repository_count in self._paced(self.store.repositories.registries()):
                measured = self._registry_usage(registry_id, repository_count)
                self.report_usage(measured)
                registries[registry_id] = {
                    "repositories": measured.repository_count,
                    "images": measured.image_count,
                    "max_images_in_a_repository": measured.max_images_in_a_repository,
                    "stored_bytes": measured.stored_bytes,
                }
        except OutOfTime:
            return {"complete": False, "registries": registries}
        return {"complete": True, "registries": registries}

    def _registry_usage(self, registry_id: str, repository_count: int) -> RegistryUsage:
        image_counts, scopes = [], set()
        for repo in self._paced(self.store.repositories.list(registry_id, None)):
            if self.report_repositories:
                stored = self.store.layers.stored_bytes(repo)
                self.report_usage(RepositoryUsage(registry_id, repo.name, repo.image_count, stored))
            image_counts.append(repo.image_count)
            scopes.add(repo.encryption.scope)
        stored = self.store.layers.registry_stored_bytes(registry_id, sorted(scopes))
        return RegistryUsage(registry_id, repository_count, sum(image_counts), max(image_counts, default=0), stored)

    def _upload_may_still_register(self, upload_id: str, written: float, ttl: float) -> bool:
        """Whether a CompleteLayerUpload of this upload may still name an object written at `written`."""
        upload = self._upload(upload_id)
        if upload is None:  # its upload's expiry is unknown: assume the latest it can be
            return written >= self.cutoff - ttl
        return not upload.completed_digest and (upload.expires_at or 0) >= self.cutoff

    # --- helpers --------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise OutOfTime()

    def _paced(self, items: Iterable[T]) -> Iterator[T]:
        """The items, stopping the run when its time budget is spent."""
        for item in items:
            self._tick()
            yield item

    def _count(self, what: str) -> None:
        self.report[what] += 1

    def _upload(self, upload_id: str) -> Upload | None:
        if upload_id not in self._uploads:
            self._uploads[upload_id] = self.store.uploads.get(upload_id)
        return self._uploads[upload_id]

    def _delete_object(self, object_key: str) -> None:
        self._count("objects_deleted")
        self._gone_objects.add(object_key)
        if not self.dry_run:
            self.store.uploads.delete_object(object_key)

    def _abort(self, object_key: str, multipart_id: str) -> None:
        self._count("multipart_aborted")
        if not self.dry_run:
            self.store.uploads.abort_multipart(object_key, multipart_id)
