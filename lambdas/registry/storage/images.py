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

A condition that fails on a quota is the ECR error; any other failure means the state we read is
gone, and the operation reads again (ConcurrentUpdate). Deletions are transactions of the same kind.
Each image item keeps its tag set in step with the tag items, in the same transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import errors
from ..model import Image, Layer, Repository
from . import codec
from .backend import TRANSACTION_LIMIT, Action, Backend, Cancelled, ConcurrentUpdate, sse_arguments
from .layers import layer_from_item
from .repositories import RepositoryStore, repository_from_item

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
    "parent_count",
    "manifest_key",
    "children",
)
IMAGE_PROJECTION = ", ".join(f"#{f}" for f in IMAGE_FIELDS)
IMAGE_NAMES = {f"#{f}": f for f in IMAGE_FIELDS}


def image_from_item(item: dict) -> Image:
    return Image(
        digest=item["digest"],
        media_type=item["media_type"],
        size=item.get("size", 0),
        pushed_at=item["pushed_at"],
        tags=item.get("tags", frozenset()),
        artifact_media_type=item.get("artifact_media_type"),
        subject_digest=item.get("subject_digest"),
        parent_count=item.get("parent_count", 0),
        manifest=item.get("manifest"),
        manifest_key=item.get("manifest_key"),
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
class ImageCommit:
    repository: Repository
    image: Image  # the new image, or the existing one that gets the tag
    new: bool
    tag: str | None
    tag_was: str | None  # where the tag was when we read it (None: nowhere)
    blobs_to_mark: tuple[str, ...] = ()  # layers no image referenced yet
    children: tuple[str, ...] = ()  # distinct images a new list references


class ImageStore:
    def __init__(self, backend: Backend, repositories: RepositoryStore):
        self.backend = backend
        self.repositories = repositories

    def _key(self, table: str, repo_key: str, sort: str) -> dict:
        return self.backend.key(table, repo_key, sort)

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
        repo_key = f"{registry_id}/{name}"
        image_digests = list(dict.fromkeys([digest, *child_digests]))
        requests = {
            "repositories": {"Keys": [self.repositories.key(registry_id, name)]},
            "images": {
                "Keys": [self._key("images", repo_key, d) for d in image_digests],
                "ProjectionExpression": IMAGE_PROJECTION,
                "ExpressionAttributeNames": IMAGE_NAMES,
            },
        }
        if tag is not None:
            requests["tags"] = {"Keys": [self._key("tags", repo_key, tag)]}
        if blob_digests:
            requests["layers"] = {"Keys": [self._key("layers", repo_key, d) for d in blob_digests]}
        found = self.backend.batch_get(requests)
        repos = [repository_from_item(i) for i in found["repositories"]]
        repo = repos[0] if repos and not repos[0].deleting else None
        images = {i["digest"]: image_from_item(i) for i in found["images"]}
        tags = found.get("tags") or []
        return PushView(
            repository=repo,
            image=images.get(digest),
            tag_digest=tags[0]["digest"] if tags else None,
            layers={i["digest"]: layer_from_item(i) for i in found.get("layers", [])},
            children={d: images[d] for d in child_digests if d in images},
        )

    def get(self, repo: Repository, digests: list[str], with_manifest: bool = False) -> dict[str, Image]:
        if not digests:
            return {}
        request = {"Keys": [self._key("images", repo.key, d) for d in dict.fromkeys(digests)]}
        if not with_manifest:
            request |= {"ProjectionExpression": IMAGE_PROJECTION, "ExpressionAttributeNames": IMAGE_NAMES}
        found = self.backend.batch_get({"images": request})["images"]
        return {i["digest"]: image_from_item(i) for i in found}

    def resolve_tags(self, repo: Repository, tags: list[str]) -> dict[str, str]:
        if not tags:
            return {}
        keys = [self._key("tags", repo.key, t) for t in dict.fromkeys(tags)]
        return {i["tag"]: i["digest"] for i in self.backend.batch_get({"tags": {"Keys": keys}})["tags"]}

    def iterate(
        self, repo: Repository, start: str | None = None, inclusive: bool = False, filter_expression: str | None = None
    ) -> Iterator[Image]:
        for item in self.backend.query(
            "images",
            repo.key,
            start=start,
            exclusive=not inclusive,
            projection=IMAGE_PROJECTION,
            names=IMAGE_NAMES,
            filter_expression=filter_expression,
        ):
            yield image_from_item(item)

    def manifest_bytes(self, image: Image) -> bytes:
        if image.manifest is not None:
            return image.manifest
        return self.backend.s3_call("get_object", Key=image.manifest_key)["Body"].read()

    # --- PutImage -------------------------------------------------------------------------------

    def store_manifest_object(self, repo: Repository, digest: str, manifest: bytes) -> str:
        """Write a manifest too big for its item to S3 before the transaction (content-addressed,
        so a retry or a concurrent push of the same bytes writes the same object)."""
        key = f"manifests/{repo.registry_id}/{repo.encryption.scope}/{digest.replace(':', '/')}"
        self.backend.s3_call(
            "put_object",
            Key=key,
            Body=manifest,
            ContentType="application/octet-stream",
            **sse_arguments(repo.encryption),
        )
        return key

    def commit(self, plan: ImageCommit, max_images: int, max_tags: int) -> None:
        repo, image = plan.repository, plan.image
        table_images, table_tags = self.backend.table("images"), self.backend.table("tags")
        guard = self.repositories.guard(repo)
        actions: list[Action] = []
        if plan.new:
            actions.append(
                Action(
                    "repository",
                    {
                        "Update": {
                            **guard,
                            "UpdateExpression": "ADD image_count :one",
                            "ConditionExpression": guard["ConditionExpression"]
                            + " AND (attribute_not_exists(image_count) OR image_count < :max)",
                            "ExpressionAttributeValues": {
                                **guard["ExpressionAttributeValues"],
                                **codec.values(one=1, max=max_images),
                            },
                        }
                    },
                )
            )
            actions.append(
                Action(
                    "image",
                    {
                        "Put": {
                            "TableName": table_images,
                            "Item": codec.item(
                                repository=repo.key,
                                digest=image.digest,
                                media_type=image.media_type,
                                artifact_media_type=image.artifact_media_type,
                                subject_digest=image.subject_digest,
                                size=image.size,
                                pushed_at=image.pushed_at,
                                tags={plan.tag} if plan.tag is not None else None,
                                manifest=image.manifest,
                                manifest_key=image.manifest_key,
                                children=list(plan.children) or None,
                            ),
                            "ConditionExpression": "attribute_not_exists(digest)",
                        }
                    },
                )
            )
        else:
            actions.append(Action("repository", {"ConditionCheck": guard}))
            actions.append(
                Action(
                    "image",
                    {
                        "Update": {
                            "TableName": table_images,
                            "Key": self._key("images", repo.key, image.digest),
                            "UpdateExpression": "ADD tags :tag",
                            "ConditionExpression": "attribute_exists(digest) AND "
                            "(attribute_not_exists(tags) OR size(tags) < :max)",
                            "ExpressionAttributeValues": codec.values(tag={plan.tag}, max=max_tags),
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                )
            )
        if plan.tag is not None:
            tag_put = {
                "TableName": table_tags,
                "Item": codec.item(
                    repository=repo.key,
                    tag=plan.tag,
                    digest=image.digest,
                    pushed_at=image.pushed_at if plan.new else None,
                ),
            }
            if plan.tag_was is None:
                tag_put["ConditionExpression"] = "attribute_not_exists(tag)"
            else:
                tag_put |= {
                    "ConditionExpression": "digest = :was",
                    "ExpressionAttributeValues": codec.values(was=plan.tag_was),
                }
            actions.append(Action("tag", {"Put": tag_put}))
            if plan.tag_was is not None and plan.tag_was != image.digest:
                actions.append(
                    Action(
                        "previous",
                        {
                            "Update": {
                                "TableName": table_images,
                                "Key": self._key("images", repo.key, plan.tag_was),
                                "UpdateExpression": "DELETE tags :tag",
                                "ConditionExpression": "attribute_exists(digest)",
                                "ExpressionAttributeValues": codec.values(tag={plan.tag}),
                            }
                        },
                    )
                )
        for child in plan.children:
            actions.append(
                Action(
                    f"child:{child}",
                    {
                        "Update": {
                            "TableName": table_images,
                            "Key": self._key("images", repo.key, child),
                            "UpdateExpression": "ADD parent_count :one",
                            "ConditionExpression": "attribute_exists(digest)",
                            "ExpressionAttributeValues": codec.values(one=1),
                        }
                    },
                )
            )
        if len(actions) > TRANSACTION_LIMIT:
            # Every child is updated in the same transaction as the list (ADD parent_count).
            most = TRANSACTION_LIMIT - (len(actions) - len(plan.children))
            raise errors.LimitExceededException(
                f"A manifest list may reference at most {most} distinct images in this registry"
            )
        marks = [self._mark_referenced(repo, d) for d in plan.blobs_to_mark]
        room = TRANSACTION_LIMIT - len(actions)
        # Marks that do not fit go first, in transactions of their own: a mark is only a flag that
        # some image uses the layer, so setting it early is harmless if the commit then fails.
        overflow, inline = marks[: max(0, len(marks) - room)], marks[max(0, len(marks) - room) :]
        for start in range(0, len(overflow), TRANSACTION_LIMIT):
            self._run(overflow[start : start + TRANSACTION_LIMIT], repo, image, max_images, max_tags)
        self._run(actions + inline, repo, image, max_images, max_tags)

    def _mark_referenced(self, repo: Repository, digest: str) -> Action:
        return Action(
            f"blob:{digest}",
            {
                "Update": {
                    "TableName": self.backend.table("layers"),
                    "Key": self._key("layers", repo.key, digest),
                    "UpdateExpression": "SET referenced = :yes",
                    "ConditionExpression": "attribute_exists(digest)",
                    "ExpressionAttributeValues": codec.values(yes=True),
                }
            },
        )

    def _run(self, actions: list[Action], repo: Repository, image: Image, max_images: int, max_tags: int) -> None:
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            raise self._explain(cancelled, repo, image, max_images, max_tags) from None

    def _explain(
        self, cancelled: Cancelled, repo: Repository, image: Image, max_images: int, max_tags: int
    ) -> Exception:
        if cancelled.conflict:
            return ConcurrentUpdate()
        failed_repo = cancelled.reason("repository")
        if failed_repo:
            old = failed_repo[1]
            if not old or "deleting" in old:
                return errors.repository_not_found(repo.registry_id, repo.name)
            if old.get("config_version", 0) == repo.config_version and old.get("image_count", 0) >= max_images:
                return errors.LimitExceededException(
                    f"The number of images in the repository with name '{repo.name}' would exceed the "
                    f"limit of {max_images} images per repository"
                )
            return ConcurrentUpdate()
        failed_image = cancelled.reason("image")
        if failed_image and failed_image[1] and len(failed_image[1].get("tags", ())) >= max_tags:
            return errors.LimitExceededException(
                f"Adding a tag to the image with digest '{image.digest}' exceeds the maximum allowed "
                f"number of tags per image which is '{max_tags}'"
            )
        return ConcurrentUpdate()

    # --- deletion -------------------------------------------------------------------------------

    def untag(self, repo: Repository, tag: str, digest: str) -> None:
        """Remove one tag from an image that keeps at least one other tag."""
        self._run_deletion(
            [
                Action(
                    "tag",
                    {
                        "Delete": {
                            "TableName": self.backend.table("tags"),
                            "Key": self._key("tags", repo.key, tag),
                            "ConditionExpression": "digest = :d",
                            "ExpressionAttributeValues": codec.values(d=digest),
                        }
                    },
                ),
                Action(
                    "image",
                    {
                        "Update": {
                            "TableName": self.backend.table("images"),
                            "Key": self._key("images", repo.key, digest),
                            "UpdateExpression": "DELETE tags :tag",
                            "ConditionExpression": "contains(tags, :t) AND size(tags) > :one",
                            "ExpressionAttributeValues": codec.values(tag={tag}, t=tag, one=1),
                        }
                    },
                ),
            ]
        )

    def delete(self, repo: Repository, image: Image) -> None:
        """Delete an image with all its tags; refused while a manifest list references it."""
        tags = sorted(image.tags)
        # Keep every transaction within the action limit: strip surplus tags first, each batch
        # atomically with the image's tag set, then delete the image with the tags left.
        fixed = 2 + len(image.children)
        while len(tags) + fixed > TRANSACTION_LIMIT:
            batch, tags = tags[: TRANSACTION_LIMIT - 1], tags[TRANSACTION_LIMIT - 1 :]
            self._run_deletion(
                [
                    *(self._delete_tag(repo, t, image.digest) for t in batch),
                    Action(
                        "image",
                        {
                            "Update": {
                                "TableName": self.backend.table("images"),
                                "Key": self._key("images", repo.key, image.digest),
                                "UpdateExpression": "DELETE tags :batch",
                                "ConditionExpression": "attribute_exists(digest)",
                                "ExpressionAttributeValues": codec.values(batch=set(batch)),
                            }
                        },
                    ),
                ]
            )
        condition = "attribute_exists(digest) AND (attribute_not_exists(parent_count) OR parent_count = :zero)"
        values = {"zero": 0}
        if tags:
            condition += " AND tags = :tags"
            values["tags"] = set(tags)
        else:
            condition += " AND attribute_not_exists(tags)"
        actions = [
            *(self._delete_tag(repo, t, image.digest) for t in tags),
            Action(
                "image",
                {
                    "Delete": {
                        "TableName": self.backend.table("images"),
                        "Key": self._key("images", repo.key, image.digest),
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": codec.values(**values),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ),
            Action(
                "repository",
                {
                    "Update": {
                        "TableName": self.backend.table("repositories"),
                        "Key": self.repositories.key(repo.registry_id, repo.name),
                        "UpdateExpression": "ADD image_count :minus",
                        "ConditionExpression": "attribute_exists(#name)",
                        "ExpressionAttributeNames": {"#name": "name"},
                        "ExpressionAttributeValues": codec.values(minus=-1),
                    }
                },
            ),
            *(
                Action(
                    f"child:{c}",
                    {
                        "Update": {
                            "TableName": self.backend.table("images"),
                            "Key": self._key("images", repo.key, c),
                            "UpdateExpression": "ADD parent_count :minus",
                            "ConditionExpression": "attribute_exists(digest)",
                            "ExpressionAttributeValues": codec.values(minus=-1),
                        }
                    },
                )
                for c in image.children
            ),
        ]
        self._run_deletion(actions)

    def _delete_tag(self, repo: Repository, tag: str, digest: str) -> Action:
        return Action(
            f"tag:{tag}",
            {
                "Delete": {
                    "TableName": self.backend.table("tags"),
                    "Key": self._key("tags", repo.key, tag),
                    "ConditionExpression": "digest = :d",
                    "ExpressionAttributeValues": codec.values(d=digest),
                }
            },
        )

    def _run_deletion(self, actions: list[Action]) -> None:
        try:
            self.backend.transact(actions)
        except Cancelled as cancelled:
            failed = cancelled.reason("image")
            if not cancelled.conflict and failed and failed[1] and failed[1].get("parent_count", 0) > 0:
                raise ReferencedByManifestList() from None
            raise ConcurrentUpdate() from None

    def purge(self, repo: Repository) -> None:
        """Remove every image and tag item of a repository being deleted."""
        for logical, sort in (("tags", "tag"), ("images", "digest")):
            keys = [
                self._key(logical, repo.key, item[sort])
                for item in self.backend.query(logical, repo.key, projection="#s", names={"#s": sort})
            ]
            self.backend.batch_delete(logical, keys)


class ReferencedByManifestList(Exception):
    """The image is a child of a manifest list or index in the repository."""
