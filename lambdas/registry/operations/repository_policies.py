"""SetRepositoryPolicy, GetRepositoryPolicy, DeleteRepositoryPolicy. A policy is read by
`auth.repository_policy`, and every request that names a repository is authorized against it
(`auth.permissions.authorize`)."""

from __future__ import annotations

from .. import errors
from ..auth.permissions import policy_verdict
from ..auth.repository_policy import ALLOW, PolicyInvalid, RepositoryPolicy, parse_policy
from ..records import Repository
from ..service_model import ecr_model
from .common import Context, Params, Result, existing_repository, retrying


def _view(registry_id: str, name: str, text: str) -> Result:
    return {"registryId": registry_id, "repositoryName": name, "policyText": text}


def _parsed(text: str) -> RepositoryPolicy:
    try:
        return parse_policy(text, ecr_model().operation_names)
    except PolicyInvalid as invalid:
        raise errors.invalid_repository_policy(invalid.problem) from None


def set_repository_policy(params: Params, ctx: Context) -> Result:
    """Without `force`, a policy that would keep the caller from setting the next one is refused
    (ECR's guard against locking oneself out)."""
    text = params["policyText"]
    policy = _parsed(text)
    if not params.get("force") and policy_verdict(policy, ctx.caller, ctx.registry_id, ctx.operation) != ALLOW:
        raise errors.invalid_repository_policy(
            "it would prevent you from setting another policy on the repository; set force to apply it anyway"
        )

    def attempt() -> Repository:
        repo = existing_repository(params, ctx)
        ctx.store.repositories.set_policy(repo, text)
        return repo

    repo = retrying(attempt)
    return _view(repo.registry_id, repo.name, text)


def get_repository_policy(params: Params, ctx: Context) -> Result:
    name = params["repositoryName"]
    repo, text = ctx.store.repositories.policy(ctx.registry_id, name)
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, name)
    if text is None:
        raise errors.repository_policy_not_found(ctx.registry_id, name)
    return _view(repo.registry_id, repo.name, text)


def delete_repository_policy(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    text = ctx.store.repositories.delete_policy(repo.registry_id, repo.name)
    if text is None:
        raise errors.repository_policy_not_found(repo.registry_id, repo.name)
    return _view(repo.registry_id, repo.name, text)
