"""PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy, StartLifecyclePolicyPreview,
GetLifecyclePolicyPreview. The rules are read and evaluated by `registry.lifecycle`; the sweep
applies the policies (docs/sweep.md)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from .. import errors
from ..lifecycle import PolicyInvalid, parse_policy
from ..lifecycle.runs import compute_preview
from ..records import PREVIEW_COMPLETE, PREVIEW_IN_PROGRESS, LifecyclePolicy, Preview, PreviewResult, Repository
from ..storage import ConcurrentUpdate, PreviewInProgress
from .common import (
    Context,
    Params,
    ResponseBudget,
    Result,
    existing_repository,
    issue_page_token,
    no_paging_with_ids,
    page_position,
    page_size,
    retrying,
)


def _check(text: str) -> None:
    try:
        parse_policy(text)
    except PolicyInvalid as invalid:
        raise errors.invalid_lifecycle_policy(invalid.problem) from None


def _identity(repo: Repository) -> Result:
    return {"registryId": repo.registry_id, "repositoryName": repo.name}


def _policy_view(repo: Repository, policy: LifecyclePolicy) -> Result:
    view = {**_identity(repo), "lifecyclePolicyText": policy.text}
    if policy.last_evaluated_at is not None:
        view["lastEvaluatedAt"] = policy.last_evaluated_at
    return view


def put_lifecycle_policy(params: Params, ctx: Context) -> Result:
    text = params["lifecyclePolicyText"]
    _check(text)

    def attempt() -> Repository:
        repo = existing_repository(params, ctx)
        ctx.store.lifecycle.put_policy(repo, LifecyclePolicy(repo.registry_id, repo.name, text, uuid.uuid4().hex))
        return repo

    return {**_identity(retrying(attempt)), "lifecyclePolicyText": text}


def get_lifecycle_policy(params: Params, ctx: Context) -> Result:
    name = params["repositoryName"]
    repo, policy = ctx.store.lifecycle.policy(ctx.registry_id, name)
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, name)
    if policy is None:
        raise errors.lifecycle_policy_not_found(ctx.registry_id, name)
    return _policy_view(repo, policy)


def delete_lifecycle_policy(params: Params, ctx: Context) -> Result:
    repo = existing_repository(params, ctx)
    policy = ctx.store.lifecycle.delete_policy(repo.registry_id, repo.name)
    if policy is None:
        raise errors.lifecycle_policy_not_found(repo.registry_id, repo.name)
    return _policy_view(repo, policy)


# --- previews --------------------------------------------------------------------------------------


class _BudgetSpent(Exception):
    pass


def start_lifecycle_policy_preview(params: Params, ctx: Context) -> Result:
    """Record the preview IN_PROGRESS, then compute it within the request's budget: COMPLETE when
    that sufficed (most repositories), else it stays IN_PROGRESS and the sweep completes it."""
    name = params["repositoryName"]
    repo, stored = ctx.store.lifecycle.policy(ctx.registry_id, name)
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, name)
    text = params.get("lifecyclePolicyText")
    if text is None:
        if stored is None:
            raise errors.lifecycle_policy_not_found(ctx.registry_id, name)
        text = stored.text
    _check(text)
    preview = Preview(repo.registry_id, repo.name, uuid.uuid4().hex, PREVIEW_IN_PROGRESS, text, ctx.now())
    read = [repo]

    def attempt() -> None:
        current = read.pop() if read else existing_repository(params, ctx)
        ctx.store.lifecycle.start_preview(current, preview)

    try:
        retrying(attempt)
    except PreviewInProgress:
        raise errors.LifecyclePolicyPreviewInProgressException(
            f"A lifecycle policy preview is in progress for the repository with name '{name}' in the registry "
            f"with id '{ctx.registry_id}': wait for it to complete"
        ) from None
    return {**_identity(repo), "lifecyclePolicyText": text, "status": _compute(preview, ctx)}


def _compute(preview: Preview, ctx: Context) -> str:
    """The preview's status once this request has computed it as far as its budget allowed."""
    deadline = time.monotonic() + ctx.settings.preview_budget_seconds

    def tick() -> None:
        if time.monotonic() > deadline:
            raise _BudgetSpent()

    try:
        completed = compute_preview(ctx.store, preview, ctx.now(), tick)
    except (_BudgetSpent, ConcurrentUpdate):
        return PREVIEW_IN_PROGRESS
    if completed is not None:
        return completed.status
    _, current = ctx.store.lifecycle.preview(preview.registry_id, preview.repository)  # completed elsewhere?
    return current.status if current is not None and current.preview_id == preview.preview_id else PREVIEW_IN_PROGRESS


def get_lifecycle_policy_preview(params: Params, ctx: Context) -> Result:
    no_paging_with_ids(params, "imageIds")
    name = params["repositoryName"]
    repo, preview = ctx.store.lifecycle.preview(ctx.registry_id, name)
    if repo is None:
        raise errors.repository_not_found(ctx.registry_id, name)
    if preview is None:
        raise errors.LifecyclePolicyPreviewNotFoundException(
            f"There is no lifecycle policy preview for the repository with name '{name}' in the registry "
            f"with id '{ctx.registry_id}'"
        )
    result: Result = {**_identity(repo), "lifecyclePolicyText": preview.policy_text, "status": preview.status}
    if preview.status != PREVIEW_COMPLETE:
        return result
    tag_status = (params.get("filter") or {}).get("tagStatus", "ANY")
    chosen = [
        r
        for r in ctx.store.lifecycle.results(preview)
        if (tag_status == "ANY" or (tag_status == "TAGGED") == bool(r.tags)) and _wanted(r, params.get("imageIds"))
    ]
    position = page_position(params, ctx)
    start = 0
    if position is not None:
        if position.get("preview") != preview.preview_id or not isinstance(position.get("at"), int):
            raise errors.InvalidParameterException(
                "Invalid parameter at 'nextToken': the token belongs to another preview of the repository"
            )
        start = position["at"]
    limit = page_size(params)
    budget = ResponseBudget()
    page: list[Result] = []
    for index in range(start, len(chosen)):
        entry = _result_view(chosen[index])
        if len(page) == limit or not budget.take(entry):
            result["nextToken"] = issue_page_token(params, ctx, {"preview": preview.preview_id, "at": index})
            break
        page.append(entry)
    result["previewResults"] = page
    result["summary"] = {"expiringImageTotalCount": preview.expiring_count}
    return result


def _wanted(result: PreviewResult, image_ids: list[dict[str, Any]] | None) -> bool:
    if not image_ids:
        return True
    return any(
        ("imageDigest" in i or "imageTag" in i)
        and i.get("imageDigest", result.digest) == result.digest
        and ("imageTag" not in i or i["imageTag"] in result.tags)
        for i in image_ids
    )


def _result_view(result: PreviewResult) -> Result:
    view: Result = {
        "imageDigest": result.digest,
        "imagePushedAt": result.pushed_at,
        "action": {"type": "EXPIRE"},
        "appliedRulePriority": result.rule_priority,
    }
    if result.tags:
        view["imageTags"] = list(result.tags)
    return view
