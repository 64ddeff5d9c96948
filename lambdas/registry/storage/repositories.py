"""Repository items and the per-registry repository counter.

Conditions that guard them:
- CreateRepository: the repository Put requires `attribute_not_exists(name)`; the registry counter
  Update requires `repository_count < :max` (or no counter yet) -- in one transaction.
- TagResource/UntagResource replace `resource_tags` only while `tags_version` (and `created_at`: the
  same repository, not one re-created under its name) is what they read, and add 1 to it: the tag
  limit is decided on the tags the write replaces.
- SetRepositoryPolicy: the `#policy:<name>` item's Put requires the repository live (a ConditionCheck
  of `LIVE` in the same transaction), so a policy never outlives its repository; the item is deleted
  in the transaction that deletes the repository.
- Every writer of repository contents checks `attribute_exists(name) AND attribute_not_exists(deleting)
  AND config_version = :read` on this item, so a deletion or a mutability change that lands first
  makes the writer read again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..config import KMS_KEY_REGISTRY_TAG
from ..records import Encryption, Quota, Repository
from . import codec
from .backend import Action, Backend, Cancelled, ConditionFailed, Item, action
from .errors import (
    ConcurrentUpdate,
    EncryptionKeyNotAssigned,
    EncryptionKeyUnusable,
    QuotaReached,
    RepositoryExists,
    RepositoryGone,
    RepositoryNotEmpty,
)
from .schema import (
    FIRST_REPOSITORY_NAME,
    REGISTRY_ITEM,
    REPOSITORY_POLICY_PREFIX,
    is_repository_item,
    lifecycle_policy_item,
    preview_item,
    repository_policy_item,
)

LIVE = "attribute_exists(#name) AND attribute_not_exists(deleting)"
NAMES = {"#name": "name"}


def _to_item(repo: Repository) -> dict[str, Any]:
    return codec.item(
        registry_id=repo.registry_id,
        name=repo.name,
        created_at=repo.created_at,
        tag_mutability=repo.tag_mutability,
        exclusion_filters=list(repo.exclusion_filters),
        encryption_type=repo.encryption.type,
        kms_key=repo.encryption.kms_key,
        scan_on_push=repo.scan_on_push,
        resource_tags=_tags_attribute(repo.resource_tags),
        tags_version=repo.tags_version,
        image_count=repo.image_count,
        config_version=repo.config_version,
    )


def _tags_attribute(tags: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags]


def repository_from_item(item: Item) -> Repository:
    return Repository(
        registry_id=item["registry_id"],
        name=item["name"],
        created_at=item["created_at"],
        tag_mutability=item.get("tag_mutability", "MUTABLE"),
        exclusion_filters=tuple(item.get("exclusion_filters") or ()),
        encryption=Encryption(item.get("encryption_type", "AES256"), item.get("kms_key")),
        scan_on_push=item.get("scan_on_push", False),
        resource_tags=tuple((t["Key"], t["Value"]) for t in item.get("resource_tags") or ()),
        tags_version=item.get("tags_version", 0),
        image_count=item.get("image_count", 0),
        config_version=item.get("config_version", 0),
        deleting_since=item.get("deleting"),
    )


def live_repository(items: list[Item]) -> Repository | None:
    """The repository a batch read found, unless it is being deleted."""
    repo = repository_from_item(items[0]) if items else None
    return None if repo is None or repo.deleting else repo


def with_policy(items: list[Item], name: str) -> tuple[Repository | None, str | None]:
    """The live repository `name` and its policy's text among the items read by `keys_with_policy`'s
    keys. The policy counts even while the repository is being deleted: it goes with the repository."""
    repo = live_repository([i for i in items if i["name"] == name])
    texts = [i["policy_text"] for i in items if i["name"] == repository_policy_item(name)]
    return repo, texts[0] if texts else None


class RepositoryStore:
    def __init__(self, backend: Backend):
        self.backend = backend

    def item_key(self, registry_id: str, name: str) -> dict[str, Any]:
        return self.backend.item_key("repositories", registry_id, name)

    def get(self, registry_id: str, name: str) -> Repository | None:
        """The live repository, or None (deleted, never created, or being deleted)."""
        repo = self.get_any(registry_id, name)
        return None if repo is None or repo.deleting else repo

    def get_any(self, registry_id: str, name: str) -> Repository | None:
        item = self.backend.get("repositories", registry_id, name)
        return repository_from_item(item) if item else None

    def get_many(self, registry_id: str, names: list[str]) -> dict[str, Repository]:
        keys = [self.item_key(registry_id, n) for n in dict.fromkeys(names)]
        found = self.backend.batch_get({"repositories": {"Keys": keys}})["repositories"]
        repos = (repository_from_item(i) for i in found)
        return {r.name: r for r in repos if not r.deleting}

    def policy_key(self, registry_id: str, name: str) -> dict[str, Any]:
        """The key of the repository policy's item (a read that authorizes a request reads it)."""
        return self.item_key(registry_id, repository_policy_item(name))

    def keys_with_policy(self, registry_id: str, name: str) -> list[dict[str, Any]]:
        """The keys of the repository's item and of its policy's, for a read that needs both (a pull's:
        its authorization and its data in one BatchGetItem; `with_policy` reads what it found)."""
        return [self.item_key(registry_id, name), self.policy_key(registry_id, name)]

    def with_item(self, registry_id: str, name: str, sort: str) -> tuple[Repository | None, Item | None]:
        """The live repository and one of its items (its policy, its lifecycle policy...), in one read."""
        keys = [self.item_key(registry_id, name), self.item_key(registry_id, sort)]
        found = self.backend.batch_get({"repositories": {"Keys": keys}})["repositories"]
        repo = live_repository([i for i in found if i["name"] == name])
        items = [i for i in found if i["name"] == sort]
        return repo, items[0] if items else None

    def list(self, registry_id: str, after: str | None) -> Iterator[Repository]:
        start, exclusive = (after, True) if after else (FIRST_REPOSITORY_NAME, False)
        for item in self.backend.query("repositories", registry_id, start=start, exclusive=exclusive):
            repo = repository_from_item(item)
            if not repo.deleting:
                yield repo

    def registries(self) -> Iterator[tuple[str, int]]:
        """(registry id, repository count) of every registry that has created a repository: its
        counter item, the one CreateRepository's quota condition reads (a scan: registries are
        the table's partitions, and no key lists them)."""
        counters = self.backend.scan(
            "repositories",
            "#name = :counter",
            codec.values(counter=REGISTRY_ITEM),
            projection="registry_id, repository_count",
            names=NAMES,
        )
        for item in counters:
            yield item["registry_id"], item.get("repository_count", 0)

    def deletions_begun(self) -> Iterator[Repository]:
        """Repositories of every registry marked `deleting` (a DeleteRepository began)."""
        for item in self.backend.scan("repositories", "attribute_exists(deleting)"):
            if is_repository_item(item["name"]):
                yield repository_from_item(item)

    def create(self, repo: Repository, max_repositories: int) -> None:
        table = self.backend.table("repositories")
        actions = [
            Action(
                "repository",
                {
                    "Put": {
                        "TableName": table,
                        "Item": _to_item(repo),
                        "ConditionExpression": "attribute_not_exists(#name)",
                        "ExpressionAttributeNames": NAMES,
                    }
                },
            ),
            Action(
                "counter",
                {
                    "Update": {
                        "TableName": table,
                        "Key": self.item_key(repo.registry_id, REGISTRY_ITEM),
                        "UpdateExpression": "ADD repository_count :one",
                        "ConditionExpression": "attribute_not_exists(repository_count) OR repository_count < :max",
                        "ExpressionAttributeValues": codec.values(one=1, max=max_repositories),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ),
        ]
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            if cancelled.reason("repository"):
                raise RepositoryExists() from None
            if cancelled.reason("counter") and not cancelled.conflict:
                raise QuotaReached(Quota.REPOSITORIES, max_repositories) from None
            raise ConcurrentUpdate() from None

    def resolve_kms_key(self, key: str, registry_id: str) -> str:
        """The ARN of a KMS key assigned to the registry (tagged KMS_KEY_REGISTRY_TAG = its id; never
        the registry's own access-key key); EncryptionKeyNotAssigned for any other key, or none, and
        EncryptionKeyUnusable when an assigned key cannot be used (disabled)."""
        kms = self.backend.kms
        try:
            metadata = kms.describe_key(KeyId=key)["KeyMetadata"]
            tags = kms.list_resource_tags(KeyId=metadata["KeyId"])["Tags"]
        except ClientError:  # not found, or our role may not see it (untagged): one answer for both
            raise EncryptionKeyNotAssigned() from None
        assigned = {t["TagKey"]: t["TagValue"] for t in tags}.get(KMS_KEY_REGISTRY_TAG)
        if (
            assigned != registry_id
            or metadata["Arn"] == self.backend.settings.access_keys_kms_key
            or metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT"
        ):
            raise EncryptionKeyNotAssigned()
        if metadata.get("KeyState", "Enabled") != "Enabled":
            raise EncryptionKeyUnusable("KMSInvalidStateException", f"The KMS key '{key}' is {metadata['KeyState']}")
        arn: str = metadata["Arn"]
        return arn

    def set_tag_mutability(self, repo: Repository, mutability: str, filters: tuple[str, ...]) -> None:
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self.item_key(repo.registry_id, repo.name),
                UpdateExpression="SET tag_mutability = :m, exclusion_filters = :f ADD config_version :one",
                ConditionExpression=LIVE,
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues=codec.values(m=mutability, f=list(filters), one=1),
            )
        except ConditionFailed:
            raise RepositoryGone(repo.registry_id, repo.name) from None

    def set_resource_tags(self, repo: Repository, tags: tuple[tuple[str, str], ...]) -> None:
        """Replace the repository's resource tags with `tags`, decided on `repo` as read: ConcurrentUpdate
        when they changed since, RepositoryGone when the repository did."""
        # A repository stored before tags were versioned has no tags_version: it is at version 0.
        unchanged = "tags_version = :version" + ("" if repo.tags_version else " OR attribute_not_exists(tags_version)")
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self.item_key(repo.registry_id, repo.name),
                UpdateExpression="SET resource_tags = :tags ADD tags_version :one",
                ConditionExpression=f"{LIVE} AND created_at = :created AND ({unchanged})",
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues=codec.values(
                    tags=_tags_attribute(tags), one=1, created=repo.created_at, version=repo.tags_version
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failure:
            old = repository_from_item(failure.old) if failure.old else None
            if old is None or old.deleting or old.created_at != repo.created_at:
                raise RepositoryGone(repo.registry_id, repo.name) from None
            raise ConcurrentUpdate() from None

    def set_scan_on_push(self, repo: Repository, scan_on_push: bool) -> None:
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self.item_key(repo.registry_id, repo.name),
                UpdateExpression="SET scan_on_push = :scan",
                ConditionExpression=LIVE,
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues=codec.values(scan=scan_on_push),
            )
        except ConditionFailed:
            raise RepositoryGone(repo.registry_id, repo.name) from None

    # --- repository policies --------------------------------------------------------------------

    def policy(self, registry_id: str, name: str) -> tuple[Repository | None, str | None]:
        """The live repository and its policy's text, in one read."""
        repo, item = self.with_item(registry_id, name, repository_policy_item(name))
        return repo, item["policy_text"] if repo is not None and item is not None else None

    def policy_texts(self, registry_id: str, names: Sequence[str]) -> dict[str, str]:
        """The policies of these repositories that have one, by name, in one read (what every
        request naming repositories is authorized against)."""
        keys = [self.policy_key(registry_id, n) for n in dict.fromkeys(names)]
        found = self.backend.batch_get({"repositories": {"Keys": keys}})["repositories"]
        return {i["name"][len(REPOSITORY_POLICY_PREFIX) :]: i["policy_text"] for i in found}

    def set_policy(self, repo: Repository, text: str) -> None:
        """Store the repository's policy (replacing any); RepositoryGone once it is not live."""
        table = self.backend.table("repositories")
        live = action(
            "repository",
            "ConditionCheck",
            table,
            key=self.item_key(repo.registry_id, repo.name),
            condition=LIVE,
            names=NAMES,
        )
        item = codec.item(registry_id=repo.registry_id, name=repository_policy_item(repo.name), policy_text=text)
        try:
            self.backend.transact([live, action("policy", "Put", table, item=item)])
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            raise RepositoryGone(repo.registry_id, repo.name) from None

    def delete_policy(self, registry_id: str, name: str) -> str | None:
        """Delete the repository's policy; the text deleted, None if it had none."""
        try:
            old = self.backend.write(
                "delete_item",
                "repositories",
                Key=self.item_key(registry_id, repository_policy_item(name)),
                ConditionExpression="attribute_exists(policy_text)",
                ReturnValues="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return old["policy_text"] if old else None

    def guard(
        self,
        repo: Repository,
        *,
        update: str | None = None,
        also: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Action:
        """The action every writer of a repository's contents adds to its transaction: the repository
        is live and configured as we read it (`also`: a further condition; `update`: a change to it)."""
        condition = f"{LIVE} AND config_version = :version" + (f" AND ({also})" if also else "")
        return action(
            "repository",
            "Update" if update else "ConditionCheck",
            self.backend.table("repositories"),
            key=self.item_key(repo.registry_id, repo.name),
            update=update,
            condition=condition,
            values={**codec.values(version=repo.config_version), **(values or {})},
            names=NAMES,
            return_old=True,
        )

    def begin_deletion(self, repo: Repository, force: bool, now: float) -> None:
        """Mark the repository as being deleted; from then on no writer can add to it."""
        condition = "attribute_exists(#name)"
        values: dict[str, Any] = {"now": now, "one": 1}
        if not force:
            condition += " AND (attribute_not_exists(image_count) OR image_count = :zero)"
            values["zero"] = 0
        try:
            self.backend.write(
                "update_item",
                "repositories",
                Key=self.item_key(repo.registry_id, repo.name),
                UpdateExpression="SET deleting = if_not_exists(deleting, :now) ADD config_version :one",
                ConditionExpression=condition,
                ExpressionAttributeNames=NAMES,
                ExpressionAttributeValues=codec.values(**values),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failure:
            if failure.old is None:
                raise RepositoryGone(repo.registry_id, repo.name) from None
            raise RepositoryNotEmpty() from None

    def finish_deletion(self, repo: Repository) -> None:
        table = self.backend.table("repositories")
        try:
            self._delete_with_counter(repo, table)
        except Cancelled:  # a concurrent DeleteRepository finished first
            raise RepositoryGone(repo.registry_id, repo.name) from None

    def _delete_with_counter(self, repo: Repository, table: str) -> None:
        # The repository's policy, lifecycle policy and preview go with it (the preview's results went
        # before: LifecycleStore.purge), so a repository created later under the name starts without them.
        belongings = [
            Action(name, {"Delete": {"TableName": table, "Key": self.item_key(repo.registry_id, sort)}})
            for name, sort in (
                ("repository_policy", repository_policy_item(repo.name)),
                ("policy", lifecycle_policy_item(repo.name)),
                ("preview", preview_item(repo.name)),
            )
        ]
        self.backend.transact(
            [
                *belongings,
                Action(
                    "repository",
                    {
                        "Delete": {
                            "TableName": table,
                            "Key": self.item_key(repo.registry_id, repo.name),
                            "ConditionExpression": "attribute_exists(deleting)",
                        }
                    },
                ),
                Action(
                    "counter",
                    {
                        "Update": {
                            "TableName": table,
                            "Key": self.item_key(repo.registry_id, REGISTRY_ITEM),
                            "UpdateExpression": "ADD repository_count :minus",
                            "ExpressionAttributeValues": codec.values(minus=-1),
                        }
                    },
                ),
            ]
        )
