"""A lifecycle policy's text, read and checked as Amazon ECR's user guide documents it.

Pure: no I/O. `parse_policy(text)` returns the `Policy`, or raises `PolicyInvalid` naming the first
thing wrong (the operations make it InvalidParameterException, with ECR's wording around it).

What ECR documents, and is checked here (docs/compatibility.md#lifecycle-policies):

- the text is a JSON object `{"rules": [...]}` of 1 to 50 rules, each
  `{"rulePriority", "description"?, "selection", "action"}` -- no other property anywhere;
- `rulePriority`: a positive integer, unique within the policy;
- `selection.tagStatus`: `tagged` (with exactly one of `tagPrefixList`, `tagPatternList`: non-empty
  lists of non-empty strings, a pattern with at most four `*`), `untagged` or `any` (with neither);
- at most one rule selects `untagged` images; a rule of `any` has the highest `rulePriority`;
  no two rules have the same set of tag prefixes (or of patterns);
- `selection.countType`: `imageCountMoreThan`, or `sinceImagePushed` with `countUnit: "days"`
  (`countUnit` only then); `selection.countNumber`: an integer >= 1;
- `action.type`: `expire`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..records import wildcard_matches

TAGGED, UNTAGGED, ANY = "tagged", "untagged", "any"
IMAGE_COUNT_MORE_THAN, SINCE_IMAGE_PUSHED = "imageCountMoreThan", "sinceImagePushed"
DAYS = "days"
EXPIRE = "expire"
MAX_RULES = 50  # ECR's quota of rules per lifecycle policy
MAX_WILDCARDS = 4  # per tag pattern
MAX_INTEGER = 2**31 - 1  # ECR reads priorities and counts as 32-bit integers
DAY_SECONDS = 24 * 3600

RULE_PROPERTIES = ("rulePriority", "description", "selection", "action")
SELECTION_PROPERTIES = ("tagStatus", "tagPrefixList", "tagPatternList", "countType", "countUnit", "countNumber")
# Properties of newer ECR features (archiving to another storage class, last-pull times) that this
# registry does not serve: named as such rather than as unknown.
UNSUPPORTED = {
    "storageClass": "storage classes (archiving)",
    "targetStorageClass": "storage classes (archiving)",
}
UNSUPPORTED_VALUES = {
    "transition": "the transition action (archiving)",
    "sinceImagePulled": "countType sinceImagePulled",
    "sinceImageTransitioned": "countType sinceImageTransitioned",
}


class PolicyInvalid(ValueError):
    """The text is not a lifecycle policy ECR would accept; `problem` says why."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Rule:
    priority: int
    tag_status: str  # TAGGED, UNTAGGED or ANY
    count_type: str  # IMAGE_COUNT_MORE_THAN or SINCE_IMAGE_PUSHED
    count_number: int  # images kept, or days
    prefixes: tuple[str, ...] = ()  # tagged: every prefix starts some tag of the image
    patterns: tuple[str, ...] = ()  # tagged: every pattern matches some tag of the image whole

    def selects(self, tags: frozenset[str]) -> bool:
        """Whether an image with these tags meets the rule's tagging requirements."""
        if self.tag_status == ANY:
            return True
        if self.tag_status == UNTAGGED:
            return not tags
        if self.prefixes:
            return all(any(tag.startswith(prefix) for tag in tags) for prefix in self.prefixes)
        return all(any(wildcard_matches(pattern, tag) for tag in tags) for pattern in self.patterns)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]  # in priority order: lowest rulePriority first


def parse_policy(text: str) -> Policy:
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; deep nesting recurses
        raise PolicyInvalid("the text is not valid JSON") from None
    top = _object(document, "the policy", ("rules",), required=("rules",))
    raw_rules = top["rules"]
    if not isinstance(raw_rules, list) or not 1 <= len(raw_rules) <= MAX_RULES:
        raise PolicyInvalid(f"'rules' must be a list of 1 to {MAX_RULES} rules")
    rules = [_rule(raw, f"rules[{i}]") for i, raw in enumerate(raw_rules)]
    _check_together(rules)
    return Policy(tuple(sorted(rules, key=lambda r: r.priority)))


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _object(value: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyInvalid(f"{where} must be a JSON object")
    for name in value:
        if name in UNSUPPORTED:
            raise PolicyInvalid(f"{where}: '{name}': {UNSUPPORTED[name]} are not supported by this registry")
        if name not in allowed:
            raise PolicyInvalid(f"{where}: property '{name}' is not allowed (allowed: {', '.join(allowed)})")
    missing = [name for name in required if name not in value]
    if missing:
        raise PolicyInvalid(f"{where}: missing required properties {', '.join(missing)}")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INTEGER:
        raise PolicyInvalid(f"{where} must be an integer from 1 to {MAX_INTEGER}")
    return value


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in UNSUPPORTED_VALUES:
        raise PolicyInvalid(f"{where}: {UNSUPPORTED_VALUES[value]} is not supported by this registry")
    if not isinstance(value, str) or value not in choices:
        raise PolicyInvalid(f"{where} must be one of {', '.join(choices)}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PolicyInvalid(f"{where} must be a non-empty list of non-empty strings")
    return tuple(value)


def _rule(raw: Any, where: str) -> Rule:
    rule = _object(raw, where, RULE_PROPERTIES, required=("rulePriority", "selection", "action"))
    priority = _integer(rule["rulePriority"], f"{where}.rulePriority")
    if "description" in rule and not isinstance(rule["description"], str):
        raise PolicyInvalid(f"{where}.description must be a string")
    action = _object(rule["action"], f"{where}.action", ("type",), required=("type",))
    _choice(action["type"], f"{where}.action.type", (EXPIRE,))
    selection = _object(
        rule["selection"],
        f"{where}.selection",
        SELECTION_PROPERTIES,
        required=("tagStatus", "countType", "countNumber"),
    )
    at = f"{where}.selection"
    tag_status = _choice(selection["tagStatus"], f"{at}.tagStatus", (TAGGED, UNTAGGED, ANY))
    prefixes = _strings(selection["tagPrefixList"], f"{at}.tagPrefixList") if "tagPrefixList" in selection else ()
    patterns = _strings(selection["tagPatternList"], f"{at}.tagPatternList") if "tagPatternList" in selection else ()
    has_prefixes, has_patterns = "tagPrefixList" in selection, "tagPatternList" in selection
    if tag_status == TAGGED and has_prefixes == has_patterns:
        raise PolicyInvalid(f"{at}: a tagged rule must specify exactly one of tagPrefixList or tagPatternList")
    if tag_status != TAGGED and (has_prefixes or has_patterns):
        raise PolicyInvalid(f"{at}: tagPrefixList and tagPatternList are only allowed with tagStatus tagged")
    for pattern in patterns:
        if pattern.count("*") > MAX_WILDCARDS:
            raise PolicyInvalid(f"{at}.tagPatternList: '{pattern}' has more than {MAX_WILDCARDS} wildcards (*)")
    count_type = _choice(selection["countType"], f"{at}.countType", (IMAGE_COUNT_MORE_THAN, SINCE_IMAGE_PUSHED))
    if count_type == SINCE_IMAGE_PUSHED:
        if "countUnit" not in selection:
            raise PolicyInvalid(f"{at}: countUnit is required with countType {SINCE_IMAGE_PUSHED}")
        _choice(selection["countUnit"], f"{at}.countUnit", (DAYS,))
    elif "countUnit" in selection:
        raise PolicyInvalid(f"{at}: countUnit is only allowed with countType {SINCE_IMAGE_PUSHED}")
    count_number = _integer(selection["countNumber"], f"{at}.countNumber")
    return Rule(priority, tag_status, count_type, count_number, prefixes, patterns)


def _check_together(rules: list[Rule]) -> None:
    priorities = [rule.priority for rule in rules]
    duplicates = sorted({p for p in priorities if priorities.count(p) > 1})
    if duplicates:
        raise PolicyInvalid(f"rulePriority must be unique; {duplicates[0]} is used more than once")
    if sum(rule.tag_status == UNTAGGED for rule in rules) > 1:
        raise PolicyInvalid("only one rule may select untagged images")
    highest = max(priorities)
    for rule in rules:
        if rule.tag_status == ANY and rule.priority != highest:
            raise PolicyInvalid(
                f"the rule with tagStatus any (rulePriority {rule.priority}) must have the highest rulePriority"
            )
    seen: set[tuple[str, frozenset[str]]] = set()
    for rule in rules:
        if rule.tag_status != TAGGED:
            continue
        key = (
            ("tagPrefixList", frozenset(rule.prefixes))
            if rule.prefixes
            else ("tagPatternList", frozenset(rule.patterns))
        )
        if key in seen:
            raise PolicyInvalid(f"two rules have the same {key[0]} {sorted(key[1])}: each set must be unique")
        seen.add(key)
