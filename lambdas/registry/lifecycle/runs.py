"""The two uses of a lifecycle policy over the stores, both through `evaluate`:

- `compute_preview`: a preview's results, for StartLifecyclePolicyPreview (within its request's time
  budget) and for the sweep (a preview left IN_PROGRESS);
- `apply_policy`: a run, for the sweep -- the images the policy expires now, each deleted by the
  stores' conditional `expire` (the same transaction as BatchDeleteImage's, with the decision's
  conditions added: docs/sweep.md#7-lifecycle-policies).

`tick` is called as the work goes (per image read, per deletion): a time budget raises from it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from ..records import PREVIEW_COMPLETE, PREVIEW_FAILED, LifecyclePolicy, Preview, PreviewResult
from ..storage import (
    ConcurrentUpdate,
    ImageChanged,
    ImagesRemoved,
    LifecyclePolicyChanged,
    LifecycleView,
    PreviewSuperseded,
    RegistryStore,
    RepositoryGone,
    TooBigToExpire,
)
from .evaluation import Candidate, evaluate
from .policy import PolicyInvalid, parse_policy

Tick = Callable[[], None]
# Readings of a repository per run: another reading follows each time an image or tag left the
# repository during the expiries (the decisions may no longer hold); past this the next run goes on.
MAX_READINGS = 3


def _never() -> None:
    pass


def candidates(view: LifecycleView) -> list[Candidate]:
    return [
        Candidate(digest, image.tags, image.pushed_at, digest in view.referenced)
        for digest, image in view.images.items()
    ]


def compute_preview(store: RegistryStore, preview: Preview, now: float, tick: Tick = _never) -> Preview | None:
    """Evaluate an in-progress preview's policy at time `now` over its repository's images as they
    are, store the results and complete the preview. Returns it completed (COMPLETE, or FAILED for
    a policy this registry no longer reads), or None when it is not ours to complete any more
    (another computation completed it, or the repository went)."""
    view = store.images.lifecycle_view(preview.registry_id, preview.repository, tick)
    repo = view.repository
    if repo is None:
        return None
    try:
        policy = parse_policy(preview.policy_text)
    except PolicyInvalid:
        completed = replace(preview, status=PREVIEW_FAILED, attempt=None, parts=0, evaluated_at=now)
    else:
        results = [
            PreviewResult(e.image.digest, tuple(sorted(e.image.tags)), e.image.pushed_at, e.rule_priority)
            for e in evaluate(policy, candidates(view), now)
        ]
        tick()
        attempt = uuid.uuid4().hex
        try:
            parts = store.lifecycle.store_results(repo, preview, attempt, results)
        except (PreviewSuperseded, RepositoryGone, ConcurrentUpdate):
            return None
        completed = replace(
            preview,
            status=PREVIEW_COMPLETE,
            attempt=attempt,
            parts=parts,
            expiring_count=len(results),
            evaluated_at=now,
        )
    try:
        store.lifecycle.complete_preview(repo, preview, completed)
    except PreviewSuperseded:
        return None
    return completed


def apply_policy(
    store: RegistryStore, policy: LifecyclePolicy, now: float, tick: Tick = _never, dry_run: bool = False
) -> Counter[str]:
    """Expire what `policy` expires at time `now` in its repository; record the run in the policy's
    last_evaluated_at. Counts: images_expired, and the expiries given up (lifecycle_images_changed:
    the image changed since it was read; lifecycle_too_big: more tags than one transaction deletes),
    lifecycle_readings (readings of the repository)."""
    report: Counter[str] = Counter()
    try:
        rules = parse_policy(policy.text)
    except PolicyInvalid:  # stored by an older version that read policies otherwise: leave it be
        report["lifecycle_unreadable"] += 1
        return report
    for _ in range(MAX_READINGS):
        view = store.images.lifecycle_view(policy.registry_id, policy.repository, tick)
        repo = view.repository
        if repo is None:
            return report
        report["lifecycle_readings"] += 1
        removals = view.removals
        try:
            for expiry in evaluate(rules, candidates(view), now):
                tick()
                if dry_run:
                    report["images_expired"] += 1
                    continue
                try:
                    store.images.expire(repo, view.images[expiry.image.digest], removals, policy)
                except ImageChanged:  # it was tagged, or a list references it now: it stays
                    report["lifecycle_images_changed"] += 1
                    continue
                except TooBigToExpire:
                    report["lifecycle_too_big"] += 1
                    continue
                removals += 1  # our own: the decisions of this reading stand
                report["images_expired"] += 1
        except (ImagesRemoved, ConcurrentUpdate):
            continue  # read again and decide again
        except (LifecyclePolicyChanged, RepositoryGone):
            return report  # the next run applies the policy there is then, if any
        if not dry_run:
            store.lifecycle.record_evaluation(policy, now)
        return report
    return report
