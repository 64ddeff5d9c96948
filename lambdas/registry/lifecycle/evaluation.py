"""Which images a lifecycle policy expires: ONE pure function, `evaluate`, behind both the preview
(StartLifecyclePolicyPreview) and the run (the sweep), so a preview is what the next run expires
if nothing changes meanwhile.

ECR's evaluation rules (user guide, "Lifecycle policy evaluation rules"), as applied here:

- every rule is evaluated at once over all the images, whatever the other rules mark: a rule of
  `imageCountMoreThan` N sorts the images its selection matches youngest first (by push time) and
  marks all but the first N; a rule of `sinceImagePushed` N days marks those it matches that were
  pushed more than N x 24 hours before `now`;
- then the rules apply in priority order: an image is governed by the first rule whose tagging
  requirements it meets, and expired only if that rule marked it. So an image is expired by one
  rule or none, and an image a higher-priority rule selects is never expired by a lower one
  (though lower rules still count it, "as if it had not been expired");
- where ECR is silent: images pushed at the same instant are ordered by digest; an image that a
  manifest list or index of the repository references is counted like any other but never
  expired (the list would break), so it is not in the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .policy import DAY_SECONDS, IMAGE_COUNT_MORE_THAN, Policy, Rule


@dataclass(frozen=True)
class Candidate:
    """What the evaluation knows of an image."""

    digest: str
    tags: frozenset[str]
    pushed_at: float  # epoch seconds
    referenced: bool = False  # a manifest list or index of the repository references it


@dataclass(frozen=True)
class Expiry:
    image: Candidate
    rule_priority: int  # the rule that expires it (appliedRulePriority)


def evaluate(policy: Policy, images: Iterable[Candidate], now: float) -> list[Expiry]:
    """The images `policy` expires at time `now`, oldest first (ties by digest)."""
    youngest_first = sorted(images, key=lambda image: (-image.pushed_at, image.digest))
    selected: dict[int, list[Candidate]] = {rule.priority: [] for rule in policy.rules}
    governing: dict[str, Rule] = {}
    for image in youngest_first:
        for rule in policy.rules:
            if rule.selects(image.tags):
                selected[rule.priority].append(image)
                governing.setdefault(image.digest, rule)
    marked = {rule.priority: _marks(rule, selected[rule.priority], now) for rule in policy.rules}
    expired = [
        Expiry(image, governor.priority)
        for image in youngest_first
        if (governor := governing.get(image.digest)) is not None
        and image.digest in marked[governor.priority]
        and not image.referenced
    ]
    return sorted(expired, key=lambda expiry: (expiry.image.pushed_at, expiry.image.digest))


def _marks(rule: Rule, selected: list[Candidate], now: float) -> set[str]:
    """The digests `rule` marks among the images it selects (youngest first)."""
    if rule.count_type == IMAGE_COUNT_MORE_THAN:
        return {image.digest for image in selected[rule.count_number :]}
    cutoff = now - rule.count_number * DAY_SECONDS
    return {image.digest for image in selected if image.pushed_at < cutoff}
