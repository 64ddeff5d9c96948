"""TagResource, UntagResource, ListTagsForResource: a repository's resource tags, named by its ARN.

ECR's limits: at most 50 tags, keys of 1-128 characters that do not start with `aws:` (reserved for
AWS), values of at most 256 characters, each key once. The limit holds under concurrent requests: each
change is decided on the tags as read and written only if they are still those (`retrying`).
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..arns import RepositoryArn, parse_repository_arn
from ..records import Repository
from .common import Context, Params, Result, retrying

MAX_RESOURCE_TAGS = 50
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256
Tags = tuple[tuple[str, str], ...]


def resource_tags(raw: list[dict[str, Any]] | None) -> Tags:
    """The tags of a request (CreateRepository's `tags`, TagResource's), checked against ECR's limits."""
    tags = tuple((t["Key"], t["Value"]) for t in raw or ())
    if len(tags) > MAX_RESOURCE_TAGS:
        raise _too_many_tags()
    for key, value in tags:
        _check_key(key)
        if len(value) > MAX_TAG_VALUE:
            raise errors.InvalidTagParameterException(
                f"Invalid tag {key!r}: values are at most {MAX_TAG_VALUE} characters"
            )
    if len({k for k, _ in tags}) != len(tags):
        raise errors.InvalidTagParameterException("Tag keys must be unique")
    return tags


def tag_resource(params: Params, ctx: Context) -> Result:
    arn = _repository_arn(params, ctx)
    added = dict(resource_tags(params["tags"]))

    def attempt() -> None:
        repo = _existing_repository(arn, ctx)
        tags = dict(repo.resource_tags) | added  # an existing key takes the new value
        if len(tags) > MAX_RESOURCE_TAGS:
            raise _too_many_tags()
        if tags != dict(repo.resource_tags):
            ctx.store.repositories.set_resource_tags(repo, tuple(tags.items()))

    retrying(attempt)
    return {}


def untag_resource(params: Params, ctx: Context) -> Result:
    arn = _repository_arn(params, ctx)
    removed = set(params["tagKeys"])
    for key in removed:
        _check_key(key)

    def attempt() -> None:
        repo = _existing_repository(arn, ctx)
        kept = tuple((k, v) for k, v in repo.resource_tags if k not in removed)  # absent keys: no error, as ECR
        if kept != repo.resource_tags:
            ctx.store.repositories.set_resource_tags(repo, kept)

    retrying(attempt)
    return {}


def list_tags_for_resource(params: Params, ctx: Context) -> Result:
    repo = _existing_repository(_repository_arn(params, ctx), ctx)
    return {"tags": [{"Key": k, "Value": v} for k, v in repo.resource_tags]}


def _repository_arn(params: Params, ctx: Context) -> RepositoryArn:
    """The repository `resourceArn` names; InvalidParameterException unless it is a repository ARN of
    this region (authorization has let the caller act in the ARN's registry)."""
    arn = parse_repository_arn(params["resourceArn"])
    if arn is None or arn.region != ctx.settings.region or arn.registry_id != ctx.registry_id:
        raise errors.InvalidParameterException(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: "
            f"'must be the ARN of a repository of this registry in {ctx.settings.region}'"
        )
    return arn


def _existing_repository(arn: RepositoryArn, ctx: Context) -> Repository:
    repo = ctx.store.repositories.get(arn.registry_id, arn.name)
    if repo is None:
        raise errors.repository_not_found(arn.registry_id, arn.name)
    return repo


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_TAG_KEY or key.lower().startswith("aws:"):
        raise errors.InvalidTagParameterException(
            f"Invalid tag key {key!r}: keys are 1-{MAX_TAG_KEY} characters and may not start with 'aws:'"
        )


def _too_many_tags() -> errors.TooManyTagsException:
    return errors.TooManyTagsException(f"A repository can have at most {MAX_RESOURCE_TAGS} tags")
