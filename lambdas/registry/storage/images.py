"""Images (manifests) and tags, changed only by conditional transactions.

PutImage commits ONE TransactWriteItems whose conditions are the rules themselves:

    action      item                       condition (why)
    repository  repositories/<name>        live, config_version as read (mutability unchanged),
                                           and for a new image image_count < quota (ADD 1)
    image       images/<digest>            new: attribute_not_exists      (no double create)
                                           existing: size(tags) < quota   (tags per image; ADD tag)
    tag         tags/<tag>                 attribute_not_exists, or digest = the digest we read:
                                           nobody moved or took the tag since we decided
    previous    images/<previous digest>   exists (DELETE the moved tag from its tag set)
    blob:<d>    layers/<d>                 exists (SET referenced): the layer cannot vanish under us
    child:<d>   images/<child>             exists (ADD parent_count 1): a list's children stay put

A transaction holds 100 actions. The layers an image uses that do not fit are claimed before it,
in transactions of their own (exists; SET claimed_at, ADD claimants <image>), and marked
referenced after it: a claim keeps the sweep off the layer for its grace period, but makes it
neither referenced nor downloadable -- so a push refused at the commit leaves its layers as they
were for every reader, and the sweep reclaims them later (or, finding the claimant image, finishes
the marking a push that stopped right after its commit left undone).

A tag item carries a copy of its image's manifest (and media type) when it fits in the item: a
pull by tag is then one read. Manifests never change, and the tag item is written and deleted in
the same transactions as its image, so the copy is never stale.

A condition that fails on a quota is QuotaReached; any other failure means the state we read is
gone, and the operation reads again (ConcurrentUpdate). Deletions are transactions of the same kind.
Each image item keeps its tag set in step with the tag items, in the same transactions.

Every transaction that takes something away -- deletes an image, takes a tag off an image (a tag
moved by a push, an untag), or tags an untagged image (it leaves the untagged ones) -- also adds 1
to the repository's `removals`. Nothing else can make a lifecycle rule keep an image it would expire:
so a lifecycle expiry (`expire`) asserts `removals` unchanged since its run read the images
(docs/sweep.md#7-lifecycle-policies).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..records import Image, Layer, LifecyclePolicy, Quota, Repository, repository_partition
from . import codec
from .backend import TRANSACTION_LIMIT, Action, Backend, Cancelled, Item, action, sse_arguments
from .errors import (
    ConcurrentUpdate,
    ImageChanged,
    ImagesRemoved,
    LifecyclePolicyChanged,
    QuotaReached,
    ReferencedByManifestList,
    RepositoryGone,
    StorageError,
    TooBigToExpire,
)
from .layers import layer_from_item
from .repositories import LIVE, RepositoryStore, live_repository, repository_from_item, with_policy
from .schema import MANIFESTS_PREFIX, lifecycle_policy_item, manifest_object_key

# Manifests up to this size live in the image item; bigger ones in S3 (content-addressed). The
# item must also hold up to 1,000 tags of up to 300 characters, within DynamoDB's 400 KB.
INLINE_MANIFEST_LIMIT = 64 * 1024

IMAGE_FIELDS = (
    "digest",
    "media_type",
    "artifact_media_type",
    "subject_digest",
    "size",
    "pushed_at",
    "tags",
    "manifest_key",
    "children",
)
IMAGE_PROJECTION = ", ".join(f"#{f}" for f in IMAGE_FIELDS)
IMAGE_NAMES = {f"#{f}": f for f in IMAGE_FIELDS}
# What a lifecycle evaluation reads of each image: the image without its manifest, and whether a
# list references it
LIFECYCLE_PROJECTION = IMAGE_PROJECTION + ", #parent_count"
LIFECYCLE_NAMES = {**IMAGE_NAMES, "#parent_count": "parent_count"}
MANIFEST_PROJECTION = {
    "ProjectionExpression": "#d, #m, #t, #k",
    "ExpressionAttributeNames": {"#d": "digest", "#m": "manifest", "#t": "media_type", "#k": "manifest_key"},
}
# A tag item without the manifest copy it may carry
TAG_PROJECTION = {"ProjectionExpression": "#g, #d", "ExpressionAttributeNames": {"#g": "tag", "#d": "digest"}}
# DescribeImages/ListImages `filter.tagStatus`, as a filter on image items
TAG_STATUS_FILTERS = {"TAGGED": "attribute_exists(tags)", "UNTAGGED": "attribute_not_exists(tags)", "ANY": None}


def image_from_item(item: Item) -> Image:
    return Image(
        digest=item["digest"],
        media_type=item["media_type"],
        size=item.get("size", 0),
        pushed_at=item["pushed_at"],
        tags=item.get("tags", frozenset()),
        artifact_media_type=item.get("artifact_media_type"),
        subject_digest=item.get("subject_digest"),
        manifest=item.get("manifest"),
        manifest_object_key=item.get("manifest_key"),
        children=tuple(item.get("children") or ()),
    )


@dataclass(frozen=True)
class PushView:
    """Everything PutImage decides on, read in one consistent batch."""

    repository: Repository | None
    image: Image | None  # the image with the pushed digest, if already in the repository
    tag_digest: str | None  # the image the tag is on now
    layers: dict[str, Layer] = field(default_factory=dict)
    children: dict[str, Image] = field(default_factory=dict)


@dataclass(frozen=True)
class LifecycleView:
    """A repository's images as a lifecycle evaluation reads them: `removals` read before the images."""

    repository: Repository | None  # None: gone, or being deleted
    removals: int = 0
    images: dict[str, Image] = field(default_factory=dict)  # by digest
    referenced: frozenset[str] = frozenset()  # the digests a manifest list or index references


@dataclass(frozen=True)
class StoredManifest:
    """An image's manifest as BatchGetImage returns it: in the item (inline) or in an S3 object."""

    digest: str
    media_type: str
    inline: bytes | None
    object_key: str | None


@dataclass(frozen=True)
class ManifestLookup:
    """What a manifest read needs: the repository, where the tags point, and the manifests."""

    repository: Repository | None
    tag_digests: dict[str, str]
    manifests: dict[str, StoredManifest]  # by digest
    policy_text: str | None = None  # the repository's policy, read with the rest for authorization


def stored_manifest(item: Item) -> StoredManifest:
    return StoredManifest(item["digest"], item["media_type"], item.get("manifest"), item.get("manifest_key"))


@dataclass(frozen=True)
class ManifestPlace:
    """Where a new image's manifest bytes live: in its item, or in an S3 object."""

    inline: bytes | None
    object_key: str | None


@dataclass(frozen=True)
class ImageCommit:
    repository: Repository
    image: Image  # the new image, or the existing one that gets the tag
    new: bool
    tag: str | None
    tag_was: str | None  # where the tag was when we read it (None: nowhere)
    manifest: bytes = b""  # the image's manifest bytes (a small one is copied into the tag item)
    blobs_to_mark: tuple[str, ...] = ()  # layers no image referenced yet
    children: tuple[str, ...] = ()  # distinct images a new list references


class ImageStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore):
        self.backend = backend
        self.repositories = repositories

    def _key(self, logical: str, partition: str, sort: str) -> dict[str, Any]:
        return self.backend.item_key(logical, partition, sort)

    # --- reads ----------------------------------------------------------------------------------

    def push_view(
        self,
        registry_id: str,
        name: str,
        digest: str,
        tag: str | None,
        blob_digests: list[str],
        child_digests: list[str],
    ) -> PushView:
        partition = repository_partition(registry_id, name)
        image_digests = list(dict.fromkeys([digest, *child_digests]))
        requests: dict[str, dict[str, Any]] = {
            "repositories": {"Keys": [self.repositories.item_key(registry_id, name)]},
            "images": {
                "Keys": [self._key("images", partition, d) for d in image_digests],
                "ProjectionExpression": IMAGE_PROJECTION,
                "ExpressionAttributeNames": IMAGE_NAMES,
            },
        }
        if tag is not None:
            requests["tags"] = {"Keys": [self._key("tags", partition, tag)], **TAG_PROJECTION}
        if blob_digests:
            requests["layers"] = {"Keys": [self._key("layers", partition, d) for d in blob_digests]}
        found = self.backend.batch_get(requests)
        repo = live_repository(found["repositories"])
        images = {i["digest"]: image_from_item(i) for i in found["images"]}
        tags = found.get("tags") or []
        return PushView(
            repository=repo,
            image=images.get(digest),
            tag_digest=tags[0]["digest"] if tags else None,
            layers={i["digest"]: layer_from_item(i) for i in found.get("layers", [])},
            children={d: images[d] for d in child_digests if d in images},
        )

    def get(self, repo: Repository, digests: list[str]) -> dict[str, Image]:
        """The images of `digests` the repository has, without their manifests."""
        if not digests:
            return {}
        keys = [self._key("images", repo.partition, d) for d in dict.fromkeys(digests)]
        request = {"Keys": keys, "ProjectionExpression": IMAGE_PROJECTION, "ExpressionAttributeNames": IMAGE_NAMES}
        found = self.backend.batch_get({"images": request})["images"]
        return {i["digest"]: image_from_item(i) for i in found}

    def resolve_tags(self, repo: Repository, tags: list[str]) -> dict[str, str]:
        if not tags:
            return {}
        keys = [self._key("tags", repo.partition, t) for t in dict.fromkeys(tags)]
        found = self.backend.batch_get({"tags": {"Keys": keys, **TAG_PROJECTION}})["tags"]
        return {i["tag"]: i["digest"] for i in found}

    def manifests(self, registry_id: str, name: str, digests: list[str], tags: list[str]) -> ManifestLookup:
        """The repository, its policy, the tags' digests and the manifests of `digests` and of the tags'
        images, in one BatchGetItem: a tag item carries its image's manifest when that fits in the item.
        A tag whose item doesn't (a big manifest) costs a second read, of its image."""
        partition = repository_partition(registry_id, name)
        requests: dict[str, dict[str, Any]] = {
            "repositories": {"Keys": self.repositories.keys_with_policy(registry_id, name)}
        }
        if digests:
            keys = [self._key("images", partition, d) for d in dict.fromkeys(digests)]
            requests["images"] = {"Keys": keys, **MANIFEST_PROJECTION}
        if tags:
            requests["tags"] = {"Keys": [self._key("tags", partition, t) for t in dict.fromkeys(tags)]}
        found = self.backend.batch_get(requests)
        repo, policy_text = with_policy(found["repositories"], name)
        stored = {i["digest"]: stored_manifest(i) for i in found.get("images", [])}
        tag_items = found.get("tags", [])
        stored |= {i["digest"]: stored_manifest(i) for i in tag_items if "manifest" in i}
        unread = [i["digest"] for i in tag_items if i["digest"] not in stored]
        if repo is not None and unread:
            keys = [self._key("images", partition, d) for d in dict.fromkeys(unread)]
            more = self.backend.batch_get({"images": {"Keys": keys, **MANIFEST_PROJECTION}})["images"]
            stored |= {i["digest"]: stored_manifest(i) for i in more}
        return ManifestLookup(repo, {i["tag"]: i["digest"] for i in tag_items}, stored, policy_text)

    def iterate(
        self, repo: Repository, start: str | None = None, inclusive: bool = False, tag_status: str = "ANY"
    ) -> Iterator[Image]:
        """The repository's images in digest order, from `start`; `tag_status`: TAGGED, UNTAGGED or ANY."""
        for item in self.backend.query(
            "images",
            repo.partition,
            start=start,
            exclusive=not inclusive,
            projection=IMAGE_PROJECTION,
            names=IMAGE_NAMES,
            filter_expression=TAG_STATUS_FILTERS[tag_status],
        ):
            yield image_from_item(item)

    def tags(self, repo: Repository, after: str | None, limit: int) -> tuple[list[str], bool]:
        """The repository's tags in lexical order after `after`: (at most `limit`, whether more follow)."""
        found: list[str] = []
        for item in self.backend.query(
            "tags", repo.partition, start=after, exclusive=True, projection="#t", names={"#t": "tag"}
        ):
            if len(found) == limit:
                return found, True
            found.append(item["tag"])
        return found, False

    def referrers(self, repo: Repository, subject: str) -> list[Image]:
        """The images of the repository whose manifest names `subject` (OCI 1.1), with their manifests.
        A filtered query of the repository's images: linear in its size."""
        found = self.backend.query(
            "images",
            repo.partition,
            filter_expression="subject_digest = :subject",
            filter_values=codec.values(subject=subject),
        )
        return [image_from_item(item) for item in found]

    def manifest_bytes(self, image: Image | StoredManifest) -> bytes:
        if isinstance(image, Image):
            image = StoredManifest(image.digest, image.media_type, image.manifest, image.manifest_object_key)
        return image.inline if image.inline is not None else self.backend.read_object(image.object_key or "")

    # --- PutImage -------------------------------------------------------------------------------

    def place_manifest(self, repo: Repository, digest: str, manifest: bytes) -> ManifestPlace:
        """Keep a new image's manifest in its item, or -- too big for the item -- write it to an S3
        object of its own now, before the transaction. If the transaction is refused, no image
        names the object, and the sweep reclaims it (it knows no request will name it later)."""
        if len(manifest) <= INLINE_MANIFEST_LIMIT:
            return ManifestPlace(inline=manifest, object_key=None)
        object_key = manifest_object_key(repo.registry_id, repo.encryption.scope, digest, uuid.uuid4().hex)
        self.backend.s3_call(
            "put_object",
            Key=object_key,
            Body=manifest,
            ContentType="application/octet-stream",
            **sse_arguments(repo.encryption),
        )
        return ManifestPlace(inline=None, object_key=object_key)

    def commit(self, plan: ImageCommit, max_images: int, max_tags: int) -> None:
        repo, image = plan.repository, plan.image
        actions = [*self._image_actions(plan, max_images, max_tags), *self._tag_actions(plan)]
        actions.extend(self._parent_count(repo, child, +1) for child in plan.children)
        if len(actions) > TRANSACTION_LIMIT:
            # Every child is updated in the same transaction as the list (ADD parent_count).
            raise QuotaReached(Quota.LIST_CHILDREN, TRANSACTION_LIMIT - (len(actions) - len(plan.children)))
        room = TRANSACTION_LIMIT - len(actions)
        inline, overflow = plan.blobs_to_mark[:room], plan.blobs_to_mark[room:]
        for chunk in _chunks(overflow):
            self._commit(
                [self._claim(repo, d, image.digest, image.pushed_at) for d in chunk], repo, max_images, max_tags
            )
        self._commit(actions + [self._mark_referenced(repo, d) for d in inline], repo, max_images, max_tags)
        for chunk in _chunks(overflow):
            self.backend.transact([self._mark_referenced(repo, d) for d in chunk])

    def _image_actions(self, plan: ImageCommit, max_images: int, max_tags: int) -> list[Action]:
        """The repository's guard (its image count for a new image, its removals) and the image: put
        new, or given the tag."""
        repo, image = plan.repository, plan.image
        # The tag leaves the image it was on, or an untagged image gets its first tag: a removal
        removal = plan.tag is not None and (
            (plan.tag_was is not None and plan.tag_was != image.digest) or (not plan.new and not image.tags)
        )
        images = self.backend.table("images")
        if plan.new:
            guard = self.repositories.guard(
                repo,
                update="ADD image_count :one" + (", removals :one" if removal else ""),
                also="attribute_not_exists(image_count) OR image_count < :max",
                values=codec.values(one=1, max=max_images),
            )
            item = codec.item(
                repository=repo.partition,
                digest=image.digest,
                media_type=image.media_type,
                artifact_media_type=image.artifact_media_type,
                subject_digest=image.subject_digest,
                size=image.size,
                pushed_at=image.pushed_at,
                tags={plan.tag} if plan.tag is not None else None,
                manifest=image.manifest,
                manifest_key=image.manifest_object_key,
                children=list(plan.children) or None,
            )
            return [guard, action("image", "Put", images, item=item, condition="attribute_not_exists(digest)")]
        if removal:
            guard = self.repositories.guard(repo, update="ADD removals :one", values=codec.values(one=1))
        else:
            guard = self.repositories.guard(repo)
        tagged = action(
            "image",
            "Update",
            images,
            key=self._key("images", repo.partition, image.digest),
            update="ADD tags :tag",
            condition="attribute_exists(digest) AND (attribute_not_exists(tags) OR size(tags) < :max)",
            values=codec.values(tag={plan.tag}, max=max_tags),
            return_old=True,
        )
        return [guard, tagged]

    def _tag_actions(self, plan: ImageCommit) -> list[Action]:
        """The tag item, put where nobody moved or took the tag since we read it, and the image the
        tag leaves."""
        repo, image, tags = plan.repository, plan.image, self.backend.table("tags")
        if plan.tag is None:
            return []
        small = len(plan.manifest) <= INLINE_MANIFEST_LIMIT
        tag_item = codec.item(
            repository=repo.partition,
            tag=plan.tag,
            digest=image.digest,
            pushed_at=image.pushed_at if plan.new else None,
            # A pull by tag reads the tag item alone (manifests are immutable, and the tag item
            # goes in the same transactions as its image's)
            media_type=image.media_type if small and plan.manifest else None,
            manifest=plan.manifest if small and plan.manifest else None,
        )
        if plan.tag_was is None:
            return [action("tag", "Put", tags, item=tag_item, condition="attribute_not_exists(tag)")]
        was = codec.values(was=plan.tag_was)
        actions = [action("tag", "Put", tags, item=tag_item, condition="digest = :was", values=was)]
        if plan.tag_was != image.digest:
            actions.append(
                action(
                    "previous",
                    "Update",
                    self.backend.table("images"),
                    key=self._key("images", repo.partition, plan.tag_was),
                    update="DELETE tags :tag",
                    condition="attribute_exists(digest)",
                    values=codec.values(tag={plan.tag}),
                )
            )
        return actions

    def _claim(self, repo: Repository, digest: str, image_digest: str, now: float) -> Action:
        return action(
            f"blob:{digest}",
            "Update",
            self.backend.table("layers"),
            key=self._key("layers", repo.partition, digest),
            update="SET claimed_at = :now ADD claimants :image",
            condition="attribute_exists(digest)",
            values=codec.values(now=now, image={image_digest}),
        )

    def _mark_referenced(self, repo: Repository, digest: str) -> Action:
        return action(
            f"blob:{digest}",
            "Update",
            self.backend.table("layers"),
            key=self._key("layers", repo.partition, digest),
            update="SET referenced = :yes REMOVE claimed_at, claimants",
            condition="attribute_exists(digest)",
            values=codec.values(yes=True),
        )

    def _parent_count(self, repo: Repository, child: str, change: int) -> Action:
        return action(
            f"child:{child}",
            "Update",
            self.backend.table("images"),
            key=self._key("images", repo.partition, child),
            update="ADD parent_count :change",
            condition="attribute_exists(digest)",
            values=codec.values(change=change),
        )

    def _commit(self, actions: list[Action], repo: Repository, max_images: int, max_tags: int) -> None:
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            raise self._explain(cancelled, repo, max_images, max_tags) from None

    def _explain(self, cancelled: Cancelled, repo: Repository, max_images: int, max_tags: int) -> StorageError:
        if cancelled.conflict:
            return ConcurrentUpdate()
        failed_repo = cancelled.reason("repository")
        if failed_repo:
            old = failed_repo[1]
            if not old or "deleting" in old:
                return RepositoryGone(repo.registry_id, repo.name)
            if old.get("config_version", 0) == repo.config_version and old.get("image_count", 0) >= max_images:
                return QuotaReached(Quota.IMAGES, max_images)
            return ConcurrentUpdate()
        failed_image = cancelled.reason("image")
        if failed_image and failed_image[1] and len(failed_image[1].get("tags", ())) >= max_tags:
            return QuotaReached(Quota.TAGS_PER_IMAGE, max_tags)
        return ConcurrentUpdate()

    # --- deletion -------------------------------------------------------------------------------

    def untag(self, repo: Repository, tag: str, digest: str) -> None:
        """Remove one tag from an image that keeps at least one other tag."""
        self._delete(
            [
                self._removal(repo),
                self._delete_tag(repo, tag, digest, name="tag"),
                action(
                    "image",
                    "Update",
                    self.backend.table("images"),
                    key=self._key("images", repo.partition, digest),
                    update="DELETE tags :tag",
                    condition="contains(tags, :t) AND size(tags) > :one",
                    values=codec.values(tag={tag}, t=tag, one=1),
                ),
            ]
        )

    def delete(self, repo: Repository, image: Image) -> None:
        """Delete an image with all its tags; refused while a manifest list references it."""
        images = self.backend.table("images")
        image_key = self._key("images", repo.partition, image.digest)
        tags = sorted(image.tags)
        # Keep every transaction within the action limit: strip surplus tags first, each batch
        # atomically with the image's tag set (and the repository's removals), then delete the
        # image with the tags left.
        fixed = 2 + len(image.children)
        while len(tags) + fixed > TRANSACTION_LIMIT:
            batch, tags = tags[: TRANSACTION_LIMIT - 2], tags[TRANSACTION_LIMIT - 2 :]
            strip = action(
                "image",
                "Update",
                images,
                key=image_key,
                update="DELETE tags :batch",
                condition="attribute_exists(digest)",
                values=codec.values(batch=set(batch)),
            )
            self._delete([*(self._delete_tag(repo, t, image.digest) for t in batch), strip, self._removal(repo)])
        condition, values = _unreferenced_with_tags(tags)
        counter = self._removal(repo, image_count=-1)
        image_delete = action(
            "image",
            "Delete",
            images,
            key=image_key,
            condition=condition,
            values=codec.values(**values),
            return_old=True,
        )
        self._delete(
            [
                *(self._delete_tag(repo, t, image.digest) for t in tags),
                image_delete,
                counter,
                *(self._parent_count(repo, c, -1) for c in image.children),
            ]
        )

    def _removal(self, repo: Repository, image_count: int = 0, seen: int | None = None) -> Action:
        """The repository's side of a removal: `removals` + 1 (and `image_count` changed by
        `image_count`). With `seen` (a lifecycle expiry): only while the repository is live and its
        `removals` is still `seen`, the old item returned when not."""
        update = "ADD removals :one" + (", image_count :change" if image_count else "")
        values: dict[str, Any] = {"one": 1, **({"change": image_count} if image_count else {})}
        condition = "attribute_exists(#name)"
        if seen is not None:
            same = "removals = :seen" if seen else "(attribute_not_exists(removals) OR removals = :seen)"
            condition, values["seen"] = f"{LIVE} AND {same}", seen
        return action(
            "repository",
            "Update",
            self.backend.table("repositories"),
            key=self.repositories.item_key(repo.registry_id, repo.name),
            update=update,
            condition=condition,
            names={"#name": "name"},
            values=codec.values(**values),
            return_old=seen is not None,
        )

    def _delete_tag(self, repo: Repository, tag: str, digest: str, name: str | None = None) -> Action:
        return action(
            name or f"tag:{tag}",
            "Delete",
            self.backend.table("tags"),
            key=self._key("tags", repo.partition, tag),
            condition="digest = :d",
            values=codec.values(d=digest),
        )

    def _delete(self, actions: list[Action]) -> None:
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            failed = cancelled.reason("image")
            if not cancelled.conflict and failed and failed[1] and failed[1].get("parent_count", 0) > 0:
                raise ReferencedByManifestList() from None
            raise ConcurrentUpdate() from None

    # --- lifecycle policies -------------------------------------------------------------------------

    def lifecycle_view(self, registry_id: str, name: str, tick: Callable[[], None] = lambda: None) -> LifecycleView:
        """The repository's item, then every image of it (consistent reads, in that order: a removal
        that the images do not show moved `removals` past the value returned). `tick` is called
        for every image read (a time budget's check)."""
        item = self.backend.get("repositories", registry_id, name)
        repo = repository_from_item(item) if item else None
        if item is None or repo is None or repo.deleting:
            return LifecycleView(None)
        images: dict[str, Image] = {}
        referenced = set()
        for found in self.backend.query(
            "images", repo.partition, projection=LIFECYCLE_PROJECTION, names=LIFECYCLE_NAMES
        ):
            tick()
            image = image_from_item(found)
            images[image.digest] = image
            if found.get("parent_count", 0) > 0:
                referenced.add(image.digest)
        return LifecycleView(repo, int(item.get("removals", 0)), images, frozenset(referenced))

    def expire(self, repo: Repository, image: Image, removals: int, policy: LifecyclePolicy) -> None:
        """Delete an image a lifecycle policy expires, with all its tags, in ONE transaction whose
        conditions are what the decision was based on: `policy` is still the repository's policy,
        the image has exactly the tags it was read with and no list references it, and the
        repository's `removals` is still `removals` (no image or tag left it since its images were
        read, but for this run's own expiries). Raises what failed: LifecyclePolicyChanged,
        ImagesRemoved, ImageChanged, RepositoryGone, ConcurrentUpdate (a conflict: try again), or
        TooBigToExpire before writing anything."""
        tags = sorted(image.tags)
        if len(tags) + len(image.children) + 3 > TRANSACTION_LIMIT:
            raise TooBigToExpire()
        condition, values = _unreferenced_with_tags(tags)
        actions = [
            action(
                "policy",
                "ConditionCheck",
                self.backend.table("repositories"),
                key=self.backend.item_key("repositories", repo.registry_id, lifecycle_policy_item(repo.name)),
                condition="policy_id = :policy",
                values=codec.values(policy=policy.policy_id),
            ),
            self._removal(repo, image_count=-1, seen=removals),
            action(
                "image",
                "Delete",
                self.backend.table("images"),
                key=self._key("images", repo.partition, image.digest),
                condition=condition,
                values=codec.values(**values),
            ),
            *(self._delete_tag(repo, t, image.digest) for t in tags),
            *(self._parent_count(repo, c, -1) for c in image.children),
        ]
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            if cancelled.conflict:
                raise ConcurrentUpdate() from None
            if cancelled.reason("policy"):
                raise LifecyclePolicyChanged() from None
            failed_repo = cancelled.reason("repository")
            if failed_repo:
                old = failed_repo[1]
                if not old or "deleting" in old:
                    raise RepositoryGone(repo.registry_id, repo.name) from None
                raise ImagesRemoved() from None
            if cancelled.reason("image"):
                raise ImageChanged() from None
            raise ConcurrentUpdate() from None

    # --- for the sweep ----------------------------------------------------------------------------

    def existing(self, partition: str, digests: list[str]) -> set[str]:
        """Which of these images exist in the repository of `partition`."""
        keys = [self._key("images", partition, d) for d in dict.fromkeys(digests)]
        found = self.backend.batch_get({"images": {"Keys": keys, "ProjectionExpression": "digest"}})["images"]
        return {item["digest"] for item in found}

    def manifest_objects(self) -> Iterator[tuple[str, float]]:
        """(object key, last modified) of every manifest object."""
        return self.backend.objects(MANIFESTS_PREFIX)

    def manifest_objects_in_use(self) -> set[str]:
        """The manifest objects that images of every repository name."""
        found = self.backend.scan("images", "attribute_exists(manifest_key)", projection="manifest_key")
        return {item["manifest_key"] for item in found}

    def delete_manifest_object(self, object_key: str) -> None:
        self.backend.delete_object(object_key)

    def purge(self, repo: Repository) -> None:
        """Remove every image and tag item of a repository being deleted."""
        for logical, sort in (("tags", "tag"), ("images", "digest")):
            keys = [
                self._key(logical, repo.partition, item[sort])
                for item in self.backend.query(logical, repo.partition, projection="#s", names={"#s": sort})
            ]
            self.backend.batch_delete(logical, keys)


def _chunks(items: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for start in range(0, len(items), TRANSACTION_LIMIT):
        yield items[start : start + TRANSACTION_LIMIT]


def _unreferenced_with_tags(tags: list[str]) -> tuple[str, dict[str, Any]]:
    """The condition (and its values) of deleting an image: it is there, no list or index
    references it, and its tag set is exactly `tags` (none: no tag set at all)."""
    condition = "attribute_exists(digest) AND (attribute_not_exists(parent_count) OR parent_count = :zero)"
    values: dict[str, Any] = {"zero": 0}
    if tags:
        return condition + " AND tags = :tags", {**values, "tags": set(tags)}
    return condition + " AND attribute_not_exists(tags)", values
