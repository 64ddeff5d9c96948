"""Lifecycle policies and their previews: items of the `repositories` table, in the partition of the
registry, beside the repository they belong to (schema.py), so that they go with it.

    item                            attributes                            written under (why)
    #lifecycle:<name>               policy_text, policy_id,               the repository live, at the
                                    last_evaluated_at                     config_version read (a policy
                                                                          never outlives its repository)
    #preview:<name>                 preview_id, status, policy_text,      the repository live, and no
                                    started_at, attempt, parts,           preview IN_PROGRESS (one at a
                                    expiring_count, evaluated_at          time); completed only while it
                                                                          is IN_PROGRESS with its id
    #preview:<name>#<attempt>#<n>   results (zlib of JSON)                the repository live, and the
                                                                          preview IN_PROGRESS with its id

A preview's results go in parts of at most PART_BYTES (an image may carry 1,000 tags of 300
characters: a part holds at least one image), written by one computation (`attempt`) before it
completes the preview with its attempt and part count; a computation that loses (another completed
the preview first, or the repository went) writes nothing more, and the parts of attempts that are
not the preview's are deleted by the next completion and by the repository's deletion. The policy
and the preview items are deleted in the transaction that deletes the repository's item
(repositories.py), the parts before it (`purge`).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

from ..records import (
    PREVIEW_COMPLETE,
    PREVIEW_IN_PROGRESS,
    LifecyclePolicy,
    Preview,
    PreviewResult,
    Repository,
)
from . import codec
from .backend import Action, Backend, Cancelled, ConditionFailed, Item, action
from .errors import ConcurrentUpdate, PreviewInProgress, PreviewSuperseded, RepositoryGone
from .repositories import LIVE, NAMES, RepositoryStore
from .schema import (
    LIFECYCLE_POLICY_PREFIX,
    PREVIEW_PREFIX,
    lifecycle_policy_item,
    preview_item,
    preview_part_item,
    preview_part_prefix,
)

PART_BYTES = 350_000  # of JSON before compression: within DynamoDB's 400 KB item with room to spare
CONFLICT_RETRIES = 3  # of a part's write that met another transaction on the repository's items


def policy_from_item(item: Item) -> LifecyclePolicy:
    return LifecyclePolicy(
        registry_id=item["registry_id"],
        repository=item["name"][len(LIFECYCLE_POLICY_PREFIX) :],
        text=item["policy_text"],
        policy_id=item["policy_id"],
        last_evaluated_at=item.get("last_evaluated_at"),
    )


def preview_from_item(item: Item) -> Preview:
    return Preview(
        registry_id=item["registry_id"],
        repository=item["name"][len(PREVIEW_PREFIX) :],
        preview_id=item["preview_id"],
        status=item["status"],
        policy_text=item["policy_text"],
        started_at=item["started_at"],
        attempt=item.get("attempt"),
        parts=item.get("parts", 0),
        expiring_count=item.get("expiring_count", 0),
        evaluated_at=item.get("evaluated_at"),
    )


def encode_results(results: list[PreviewResult]) -> list[bytes]:
    """The results in parts: each the zlib of a JSON list, of at most PART_BYTES before compression."""
    parts: list[bytes] = []
    chunk: list[str] = []
    size = 2
    for result in results:
        entry = json.dumps([result.digest, result.pushed_at, result.rule_priority, list(result.tags)])
        if chunk and size + len(entry) + 1 > PART_BYTES:
            parts.append(zlib.compress(("[" + ",".join(chunk) + "]").encode()))
            chunk, size = [], 2
        chunk.append(entry)
        size += len(entry) + 1
    if chunk:
        parts.append(zlib.compress(("[" + ",".join(chunk) + "]").encode()))
    return parts


def decode_results(part: bytes) -> list[PreviewResult]:
    return [
        PreviewResult(digest=d, pushed_at=p, rule_priority=r, tags=tuple(t))
        for d, p, r, t in json.loads(zlib.decompress(part))
    ]


class LifecycleStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore):
        self.backend = backend
        self.repositories = repositories

    def _key(self, registry_id: str, sort: str) -> dict[str, Any]:
        return self.backend.item_key("repositories", registry_id, sort)

    # --- policies -------------------------------------------------------------------------------

    def policy(self, registry_id: str, name: str) -> tuple[Repository | None, LifecyclePolicy | None]:
        """The live repository and its policy, in one read."""
        repo, item = self.repositories.with_item(registry_id, name, lifecycle_policy_item(name))
        return repo, policy_from_item(item) if repo is not None and item is not None else None

    def put_policy(self, repo: Repository, policy: LifecyclePolicy) -> None:
        item = codec.item(
            registry_id=repo.registry_id,
            name=lifecycle_policy_item(repo.name),
            policy_text=policy.text,
            policy_id=policy.policy_id,
        )
        table = self.backend.table("repositories")
        self._commit(repo, [self.repositories.guard(repo), action("policy", "Put", table, item=item)])

    def delete_policy(self, registry_id: str, name: str) -> LifecyclePolicy | None:
        """Delete the repository's policy; the policy deleted, None if it had none."""
        try:
            old = self.backend.write(
                "delete_item",
                "repositories",
                Key=self._key(registry_id, lifecycle_policy_item(name)),
                ConditionExpression="attribute_exists(policy_id)",
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return policy_from_item(old) if old else None

    def record_evaluation(self, policy: LifecyclePolicy, at: float) -> bool:
        """Set the policy's last_evaluated_at, unless it was replaced or deleted meanwhile."""
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self._key(policy.registry_id, lifecycle_policy_item(policy.repository)),
                UpdateExpression="SET last_evaluated_at = :at",
                ConditionExpression="policy_id = :id",
                ExpressionAttributeValues=codec.values(at=at, id=policy.policy_id),
            )
        except ConditionFailed:
            return False
        return True

    def scheduled(self) -> Iterator[LifecyclePolicy | Preview]:
        """Every registry's lifecycle policies and previews in progress: what the sweep does."""
        found = self.backend.scan(
            "repositories",
            "begins_with(#name, :policy) OR (begins_with(#name, :preview) AND #status = :in_progress)",
            values=codec.values(
                policy=LIFECYCLE_POLICY_PREFIX, preview=PREVIEW_PREFIX, in_progress=PREVIEW_IN_PROGRESS
            ),
            names={"#name": "name", "#status": "status"},
        )
        for item in found:
            yield (
                policy_from_item(item) if item["name"].startswith(LIFECYCLE_POLICY_PREFIX) else preview_from_item(item)
            )

    # --- previews -------------------------------------------------------------------------------

    def preview(self, registry_id: str, name: str) -> tuple[Repository | None, Preview | None]:
        """The live repository and its preview, in one read."""
        repo, item = self.repositories.with_item(registry_id, name, preview_item(name))
        return repo, preview_from_item(item) if repo is not None and item is not None else None

    def start_preview(self, repo: Repository, preview: Preview) -> None:
        """Record a new preview, IN_PROGRESS; PreviewInProgress while another one is."""
        item = codec.item(
            registry_id=repo.registry_id,
            name=preview_item(repo.name),
            preview_id=preview.preview_id,
            status=PREVIEW_IN_PROGRESS,
            policy_text=preview.policy_text,
            started_at=preview.started_at,
        )
        put = action(
            "preview",
            "Put",
            self.backend.table("repositories"),
            item=item,
            condition="attribute_not_exists(#status) OR #status <> :in_progress",
            names={"#status": "status"},
            values=codec.values(in_progress=PREVIEW_IN_PROGRESS),
        )
        self._commit(repo, [self.repositories.guard(repo), put])

    def store_results(self, repo: Repository, preview: Preview, attempt: str, results: list[PreviewResult]) -> int:
        """Write the results of one computation of an in-progress preview, in parts; how many.
        PreviewSuperseded (or RepositoryGone) once it is no longer the one to compute."""
        parts = encode_results(results)
        for number, data in enumerate(parts):
            write = action(
                "part",
                "Update",  # an Update creates the item too: the sweep's role needs no PutItem
                self.backend.table("repositories"),
                key=self._key(repo.registry_id, preview_part_item(repo.name, attempt, number)),
                update="SET results = :data",
                values=codec.values(data=data),
            )
            for attempt_number in range(CONFLICT_RETRIES):
                try:
                    self._transact_for(repo, preview, write)
                    break
                except ConcurrentUpdate:
                    if attempt_number == CONFLICT_RETRIES - 1:
                        raise
        return len(parts)

    def complete_preview(self, repo: Repository, preview: Preview, completed: Preview) -> None:
        """Record `completed` (status, attempt, parts, counts) as the outcome of `preview` while it is
        still the repository's in-progress one; then delete the parts of every other attempt."""
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self._key(repo.registry_id, preview_item(repo.name)),
                UpdateExpression="SET #status = :status, attempt = :attempt, parts = :parts, "
                "expiring_count = :count, evaluated_at = :at",
                ConditionExpression="preview_id = :id AND #status = :in_progress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=codec.values(
                    status=completed.status,
                    attempt=completed.attempt or "",
                    parts=completed.parts,
                    count=completed.expiring_count,
                    at=completed.evaluated_at,
                    id=preview.preview_id,
                    in_progress=PREVIEW_IN_PROGRESS,
                ),
            )
        except ConditionFailed:
            raise PreviewSuperseded() from None
        self.delete_parts(
            repo.registry_id, repo.name, keep=completed.attempt if completed.status == PREVIEW_COMPLETE else None
        )

    def results(self, preview: Preview) -> list[PreviewResult]:
        """A complete preview's results, oldest image first."""
        if not preview.attempt or not preview.parts:
            return []
        keys = [
            self._key(preview.registry_id, preview_part_item(preview.repository, preview.attempt, n))
            for n in range(preview.parts)
        ]
        found = self.backend.batch_get({"repositories": {"Keys": keys}})["repositories"]
        found.sort(key=lambda item: item["name"])  # the part number ends the key
        return [result for item in found for result in decode_results(item["results"])]

    def delete_parts(self, registry_id: str, name: str, keep: str | None = None) -> None:
        """Delete the stored results of a repository's previews, but those of attempt `keep`."""
        keep_prefix = f"{preview_part_prefix(name)}{keep}#" if keep else None
        keys = [
            self._key(registry_id, item["name"])
            for item in self.backend.query(
                "repositories", registry_id, prefix=preview_part_prefix(name), projection="#n", names={"#n": "name"}
            )
            if keep_prefix is None or not item["name"].startswith(keep_prefix)
        ]
        self.backend.batch_delete("repositories", keys)

    def purge(self, repo: Repository) -> None:
        """Before a repository's item is deleted (with its policy and preview items): its preview
        results. Nothing writes them once the repository is marked `deleting`."""
        self.delete_parts(repo.registry_id, repo.name)

    # --- helpers --------------------------------------------------------------------------------

    def _transact_for(self, repo: Repository, preview: Preview, write: Action) -> None:
        """One write on behalf of an in-progress preview: the repository live, the preview this one."""
        table = self.backend.table("repositories")
        actions = [
            action(
                "repository",
                "ConditionCheck",
                table,
                key=self.repositories.item_key(repo.registry_id, repo.name),
                condition=LIVE,
                names=NAMES,
            ),
            action(
                "preview",
                "ConditionCheck",
                table,
                key=self._key(repo.registry_id, preview_item(repo.name)),
                condition="preview_id = :id AND #status = :in_progress",
                names={"#status": "status"},
                values=codec.values(id=preview.preview_id, in_progress=PREVIEW_IN_PROGRESS),
            ),
            write,
        ]
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            if cancelled.reason("repository"):
                raise RepositoryGone(repo.registry_id, repo.name) from None
            raise PreviewSuperseded() from None

    def _commit(self, repo: Repository, actions: list[Action]) -> None:
        """A write guarded by the repository (live, configured as read): RepositoryGone,
        PreviewInProgress for a refused preview, ConcurrentUpdate to read again."""
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            failed = cancelled.reason("repository")
            if failed:
                if not failed[1] or "deleting" in failed[1]:
                    raise RepositoryGone(repo.registry_id, repo.name) from None
                raise ConcurrentUpdate() from None
            if cancelled.reason("preview"):
                raise PreviewInProgress() from None
            raise ConcurrentUpdate() from None
