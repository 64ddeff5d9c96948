"""Repository policies: IAM resource policies that share one repository with other registries (or
deny actions on it), read as ECR reads them, and the one decision that evaluates them.

A policy is `{"Version"?, "Id"?, "Statement": statement or [statements]}`; a statement has `Effect`
(Allow|Deny), `Principal` and `Action` or `NotAction`, and an optional `Sid` (unique). Principals are
`*`, or `{"AWS": ...}` naming account ids, account roots (`arn:aws:iam::<id>:root`: every key of
that registry) or users (`arn:aws:iam::<id>:user/<key name>`: one key), or `{"Service": ...}`,
accepted as ECR does but matching no key (no service calls this registry). What this registry cannot
evaluate is refused rather than ignored: `Condition` (ignoring one would grant more than it says),
`NotPrincipal`, and `Resource`/`NotResource` (ECR refuses those too). Matching of actions is
case-insensitive, as IAM's, with `*` for any run of characters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from ..records import wildcard_matches

ALLOW, DENY = "Allow", "Deny"
VERSIONS = ("2012-10-17", "2008-10-17")
ANYONE = "*"
ACCOUNT = re.compile(r"[0-9]{12}")
# What a principal of `AWS` may name: an account root, or one of its users (a key, by name).
PRINCIPAL_ARN = re.compile(r"arn:aws:iam::(?P<account>[0-9]{12}):(?:root|user/[\w+=,.@/-]{1,512})")
SERVICE = re.compile(r"[a-z0-9.-]{1,128}\.amazonaws\.com(?:\.cn)?")
ACTION = re.compile(r"ecr:[a-z*]{1,128}|\*", re.IGNORECASE)
POLICY_KEYS = {"Version", "Id", "Statement"}
STATEMENT_KEYS = {"Sid", "Effect", "Principal", "Action", "NotAction"}
REFUSED_KEYS = {
    "Condition": "conditions are not evaluated by this registry, so a policy with one is refused rather than "
    "applied without it",
    "NotPrincipal": "NotPrincipal is not supported: name the principals in Principal",
    "Resource": "a repository policy applies to its repository: Resource is not allowed",
    "NotResource": "a repository policy applies to its repository: NotResource is not allowed",
}


class PolicyInvalid(Exception):
    """The text is not a repository policy this registry accepts; `problem` says why."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Statement:
    effect: str
    principals: frozenset[str]  # ANYONE, account root ARNs, user ARNs, `service:<name>`
    actions: tuple[str, ...]  # lower-case patterns
    not_action: bool = False

    def applies(self, principals: Collection[str], action: str) -> bool:
        if ANYONE not in self.principals and not self.principals & set(principals):
            return False
        matched = any(wildcard_matches(pattern, action.lower()) for pattern in self.actions)
        return matched != self.not_action


@dataclass(frozen=True)
class RepositoryPolicy:
    statements: tuple[Statement, ...]

    def decision(self, principals: Collection[str], action: str) -> str | None:
        """DENY if a statement denies `action` to one of `principals` (a Deny always wins), else
        ALLOW if one allows it, else None: the policy says nothing about it."""
        applying = [s.effect for s in self.statements if s.applies(principals, action)]
        return DENY if DENY in applying else ALLOW if ALLOW in applying else None


def principals_of(registry_id: str, principal_arn: str) -> frozenset[str]:
    """What a key is, to a policy: its registry's root (every key of it) and its own user ARN."""
    return frozenset({f"arn:aws:iam::{registry_id}:root", principal_arn})


def parse_policy(text: str, operations: Iterable[str] | None = None) -> RepositoryPolicy:
    """The policy that `text` holds; PolicyInvalid naming the first problem. With `operations` (the
    ECR API's), every action must name at least one of them."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise PolicyInvalid("the policy text is not valid JSON") from None
    if not isinstance(document, dict):
        raise PolicyInvalid("the policy must be a JSON object")
    _no_other_keys(document, POLICY_KEYS, "the policy")
    version = document.get("Version", VERSIONS[1])  # IAM's default when it is left out
    if version not in VERSIONS:
        raise PolicyInvalid(f"Version must be one of {', '.join(VERSIONS)}")
    if "Id" in document and not isinstance(document["Id"], str):
        raise PolicyInvalid("Id must be a string")
    raw = document.get("Statement")
    raw_statements = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyInvalid("Statement must be a statement object or a non-empty list of them")
    statements = tuple(_statement(s, n, operations) for n, s in enumerate(raw_statements, 1))
    sids = [s["Sid"] for s in raw_statements if "Sid" in s]
    if len(set(sids)) != len(sids):
        raise PolicyInvalid("each statement's Sid must be unique")
    return RepositoryPolicy(statements)


def _statement(raw: Any, number: int, operations: Iterable[str] | None) -> Statement:
    where = f"statement {number}"
    if not isinstance(raw, dict):
        raise PolicyInvalid(f"{where} must be a JSON object")
    for key, reason in REFUSED_KEYS.items():
        if key in raw:
            raise PolicyInvalid(f"{where}: {reason}")
    _no_other_keys(raw, STATEMENT_KEYS, where)
    if "Sid" in raw and not isinstance(raw["Sid"], str):
        raise PolicyInvalid(f"{where}: Sid must be a string")
    if raw.get("Effect") not in (ALLOW, DENY):
        raise PolicyInvalid(f"{where}: Effect must be Allow or Deny")
    if "Principal" not in raw:
        raise PolicyInvalid(f"{where}: Principal is required")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyInvalid(f"{where}: exactly one of Action and NotAction is required")
    member = "Action" if "Action" in raw else "NotAction"
    return Statement(
        effect=raw["Effect"],
        principals=_principals(raw["Principal"], where),
        actions=_actions(raw[member], f"{where}: {member}", operations),
        not_action=member == "NotAction",
    )


def _principals(raw: Any, where: str) -> frozenset[str]:
    if raw == ANYONE:
        return frozenset({ANYONE})
    if not isinstance(raw, dict) or not raw or set(raw) - {"AWS", "Service"}:
        raise PolicyInvalid(f'{where}: Principal must be "*" or an object of "AWS" and "Service" principals')
    found: set[str] = set()
    for value in _strings(raw.get("AWS", []), f"{where}: Principal AWS"):
        found.add(_aws_principal(value, where))
    for value in _strings(raw.get("Service", []), f"{where}: Principal Service"):
        if not SERVICE.fullmatch(value):
            raise PolicyInvalid(f"{where}: Principal Service {value[:200]!r} is not a service principal")
        found.add(f"service:{value}")
    if not found:
        raise PolicyInvalid(f"{where}: Principal names no principal")
    return frozenset(found)


def _aws_principal(value: str, where: str) -> str:
    if value == ANYONE:
        return ANYONE
    if ACCOUNT.fullmatch(value):
        return f"arn:aws:iam::{value}:root"
    if not PRINCIPAL_ARN.fullmatch(value):
        raise PolicyInvalid(
            f"{where}: Principal not found: {value[:200]!r} (an account id, arn:aws:iam::<account>:root or "
            f"arn:aws:iam::<account>:user/<name>)"
        )
    return value


def _actions(raw: Any, where: str, operations: Iterable[str] | None) -> tuple[str, ...]:
    actions = _strings(raw, where)
    if not actions:
        raise PolicyInvalid(f"{where} names no action")
    known = [f"ecr:{op}".lower() for op in operations] if operations is not None else None
    for action in actions:
        if not ACTION.fullmatch(action):
            raise PolicyInvalid(f"{where}: {action[:200]!r} is not an ECR action (ecr:<Operation>, wildcards allowed)")
        if known is not None and not any(wildcard_matches(action.lower(), k) for k in known):
            raise PolicyInvalid(f"{where}: {action[:200]!r} names no action of Amazon ECR")
    return tuple(a.lower() for a in actions)


def _strings(raw: Any, where: str) -> list[str]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PolicyInvalid(f"{where} must be a string or a list of strings")
    return values


def _no_other_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise PolicyInvalid(f"{where} has an unknown element {unknown[0][:100]!r}")
