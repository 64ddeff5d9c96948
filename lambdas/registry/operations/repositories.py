"""CreateRepository, DescribeRepositories, DeleteRepository, PutImageTagMutability,
PutImageScanningConfiguration, and DescribeRegistry (the registry that holds them)."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..arns import repository_arn
from ..config import Settings
from ..records import WITH_EXCLUSION, Encryption, Repository
from ..storage import EncryptionKeyNotAssigned, QuotaReached, RepositoryExists, RepositoryNotEmpty
from .common import (
    Context,
    Params,
    Result,
    existing_repository,
    issue_page_token,
    no_paging_with_ids,
    page_position,
    page_size,
    retrying,
)
from .resource_tags import resource_tags


def repository_view(repo: Repository, settings: Settings) -> Result:
    encryption = {"encryptionType": repo.encryption.type}
    if repo.encryption.kms_key:
        encryption["kmsKey"] = repo.encryption.kms_key
    view = {
        "repositoryArn": repository_arn(settings.region, repo.registry_id, repo.name),
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "repositoryUri": f"{settings.registry_host(repo.registry_id)}/{repo.name}",
        "createdAt": repo.created_at,
        "imageTagMutability": repo.tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": repo.scan_on_push},
        "encryptionConfiguration": encryption,
    }
    if repo.exclusion_filters:
        view["imageTagMutabilityExclusionFilters"] = _filters_view(repo.exclusion_filters)
    return view


def _filters_view(filters: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"filterType": "WILDCARD", "filter": f} for f in filters]


def _exclusion_filters(mutability: str, raw: list[dict[str, Any]] | None) -> tuple[str, ...]:
    """Exclusion filters belong to the *_WITH_EXCLUSION settings, and those need at least one."""
    filters = tuple(dict.fromkeys(f["filter"] for f in raw or ()))
    if mutability in WITH_EXCLUSION and not filters:
        raise errors.InvalidParameterException(
            f"Invalid parameter: imageTagMutabilityExclusionFilters are required with {mutability}"
        )
    if mutability not in WITH_EXCLUSION and filters:
        raise errors.InvalidParameterException(
            f"Invalid parameter: imageTagMutabilityExclusionFilters can only be used with {' or '.join(WITH_EXCLUSION)}"
        )
    return filters


def _encryption(raw: dict[str, Any] | None, ctx: Context) -> Encryption:
    if not raw:
        return Encryption()
    kind, key = raw["encryptionType"], raw.get("kmsKey")
    if kind == "AES256":
        if key:
            raise errors.InvalidParameterException(
                "Invalid parameter: kmsKey can only be given with the KMS or KMS_DSSE encryption type"
            )
        return Encryption()
    if not key:
        return Encryption(kind)
    try:
        return Encryption(kind, ctx.store.repositories.resolve_kms_key(key, ctx.registry_id))
    except EncryptionKeyNotAssigned:
        raise errors.kms_error(
            "NotFoundException", f"The KMS key '{key}' is not assigned to registry {ctx.registry_id}"
        ) from None


def create_repository(params: Params, ctx: Context) -> Result:
    registry_id = ctx.registry_id
    mutability = params.get("imageTagMutability", "MUTABLE")
    repo = Repository(
        registry_id=registry_id,
        name=params["repositoryName"],
        created_at=ctx.now(),
        tag_mutability=mutability,
        exclusion_filters=_exclusion_filters(mutability, params.get("imageTagMutabilityExclusionFilters")),
        resource_tags=resource_tags(params.get("tags")),
        scan_on_push=bool((params.get("imageScanningConfiguration") or {}).get("scanOnPush")),
        encryption=_encryption(params.get("encryptionConfiguration"), ctx),
    )
    try:
        retrying(lambda: ctx.store.repositories.create(repo, ctx.settings.quotas.max_repositories))
    except RepositoryExists:
        raise errors.repository_already_exists(registry_id, repo.name) from None
    except QuotaReached as reached:
        raise errors.limit_exceeded(reached.quota, reached.limit, registry_id=registry_id, name=repo.name) from None
    return {"repository": repository_view(repo, ctx.settings)}


def describe_repositories(params: Params, ctx: Context) -> Result:
    registry_id = ctx.registry_id
    names = params.get("repositoryNames")
    no_paging_with_ids(params, "repositoryNames")
    if names:
        found = ctx.store.repositories.get_many(registry_id, names)
        for name in names:
            if name not in found:
                raise errors.repository_not_found(registry_id, name)
        return {"repositories": [repository_view(found[n], ctx.settings) for n in dict.fromkeys(names)]}
    position = page_position(params, ctx)
    limit = page_size(params)
    page: list[Result] = []
    for repo in ctx.store.repositories.list(registry_id, position["after"] if position else None):
        if not ctx.caller.may(ctx.operation, repo.name):  # a key lists only what it may describe
            continue
        if len(page) == limit:
            return {
                "repositories": page,
                "nextToken": issue_page_token(params, ctx, {"after": page[-1]["repositoryName"]}),
            }
        page.append(repository_view(repo, ctx.settings))
    return {"repositories": page}


def delete_repository(params: Params, ctx: Context) -> Result:
    registry_id = ctx.registry_id
    name = params["repositoryName"]
    store = ctx.store.repositories
    repo = store.get_any(registry_id, name)
    if repo is None:
        raise errors.repository_not_found(registry_id, name)
    # A deletion that stopped half-way (a fault, a timeout) is finished by the next request.
    try:
        store.begin_deletion(repo, force=bool(params.get("force")) or repo.deleting, now=ctx.now())
    except RepositoryNotEmpty:
        raise errors.RepositoryNotEmptyException(
            f"The repository with name '{name}' in registry with id '{registry_id}' "
            f"cannot be deleted because it still contains images"
        ) from None
    ctx.store.images.purge(repo)
    ctx.store.layers.purge(repo)
    ctx.store.lifecycle.purge(repo)
    store.finish_deletion(repo)
    return {"repository": repository_view(repo, ctx.settings)}


def put_image_tag_mutability(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    mutability = params["imageTagMutability"]
    filters = _exclusion_filters(mutability, params.get("imageTagMutabilityExclusionFilters"))
    ctx.store.repositories.set_tag_mutability(repo, mutability, filters)
    result = {"registryId": repo.registry_id, "repositoryName": repo.name, "imageTagMutability": mutability}
    if filters:
        result["imageTagMutabilityExclusionFilters"] = _filters_view(filters)
    return result


def put_image_scanning_configuration(params: Params, ctx: Context) -> Result:
    """Stores `scanOnPush`, which DescribeRepositories returns; no scanner runs (docs/compatibility.md)."""
    repo = existing_repository(params, ctx)
    scan_on_push = bool(params["imageScanningConfiguration"].get("scanOnPush"))
    ctx.store.repositories.set_scan_on_push(repo, scan_on_push)
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageScanningConfiguration": {"scanOnPush": scan_on_push},
    }


def describe_registry(params: Params, ctx: Context) -> Result:
    """The caller's registry; it replicates nowhere, so its replication configuration has no rules."""
    return {"registryId": ctx.registry_id, "replicationConfiguration": {"rules": []}}
