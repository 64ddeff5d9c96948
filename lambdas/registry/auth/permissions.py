"""What a key may do: grants of ECR actions on repository name patterns, the repository's policy,
and the one check of both, in two steps: `check_grants` before anything is read, `check_policies`
with the policies' texts (`operations.run` sees that it happens; `authorize` does both at once).

Roles are names for sets of actions, expanded when a request is checked (so a key follows its
role as operations are added): `pull` reads images, repository policies, lifecycle policies and
their previews, and resource tags (as AWS's AmazonEC2ContainerRegistryReadOnly), `push` = pull +
uploads and PutImage (as AWS's AmazonEC2ContainerRegistryPowerUser), `admin` = every action
(`ecr:*`): it alone deletes, changes repository and lifecycle policies, resource tags and scanning
settings, starts previews and describes the registry (as only AmazonEC2ContainerRegistryFullAccess
does). Explicit `ecr:<Operation>` names and `*` wildcards (`ecr:Describe*`) are allowed too. A
repository pattern matches the whole name, `*` standing for any run of characters (also `/`), as in
IAM resource ARNs.

A repository policy (`repository_policy`) shares a repository with keys of other registries, as a
resource policy does across AWS accounts: such a key needs both its own grants and the policy's
Allow. An explicit Deny of the policy refuses any key, also the owning registry's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from .. import errors
from ..arns import parse_repository_arn
from ..records import Grant, wildcard_matches
from .repository_policy import ALLOW, DENY, RepositoryPolicy, parse_policy, principals_of

PULL = (
    "GetAuthorizationToken",
    "BatchGetImage",
    "BatchCheckLayerAvailability",
    "GetDownloadUrlForLayer",
    "DescribeImages",
    "ListImages",
    "DescribeRepositories",
    "GetLifecyclePolicy",
    "GetLifecyclePolicyPreview",
    "ListTagsForResource",
    "GetRepositoryPolicy",
)
PUSH = (*PULL, "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage")
ROLES: dict[str, tuple[str, ...]] = {
    "pull": tuple(f"ecr:{a}" for a in PULL),
    "push": tuple(f"ecr:{a}" for a in PUSH),
    "admin": ("ecr:*",),
}
ACTION = re.compile(r"ecr:[A-Za-z*]+")
REPOSITORY_PATTERN = re.compile(r"[a-z0-9._/*-]{1,256}")
# `<actions>[:<patterns>]`, e.g. `push:team/*`, `pull`, `ecr:PutImage,ecr:ListImages:app,tools/*`
GRANT = re.compile(
    r"(?P<actions>(?:pull|push|admin|ecr:[A-Za-z*]+)(?:,(?:pull|push|admin|ecr:[A-Za-z*]+))*)"
    r"(?::(?P<repositories>.+))?"
)


class Principal(Protocol):
    """Who is asking (operations.Caller): a key's registry, its principal and its grants."""

    @property
    def registry_id(self) -> str: ...
    @property
    def principal_arn(self) -> str: ...
    @property
    def grants(self) -> tuple[Grant, ...]: ...


def actions_of(grant: Grant) -> tuple[str, ...]:
    return tuple(a for action in grant.actions for a in ROLES.get(action, (action,)))


def allows(grants: Iterable[Grant], operation: str, repository: str | None) -> bool:
    """Whether some grant allows `ecr:<operation>` on `repository` (None: on some repository)."""
    action = f"ecr:{operation}"
    for grant in grants:
        if any(wildcard_matches(a, action) for a in actions_of(grant)) and (
            repository is None or any(wildcard_matches(p, repository) for p in grant.repositories)
        ):
            return True
    return False


# Operations on a repository that has no policy yet: never shared, and nothing to read for them.
OWN_REGISTRY_ONLY = frozenset({"CreateRepository"})
PolicyTexts = Callable[[str, Sequence[str]], dict[str, str]]  # (registry, names) -> their policies' texts, by name


def authorize(caller: Principal, operation: str, params: dict[str, Any], region: str, policy_texts: PolicyTexts) -> str:
    """The registry the request acts in, once the caller may act there (`check_grants`, then the
    policies of the repositories named, read once for all of them: `check_policies`);
    AccessDeniedException otherwise."""
    registry_id, names = check_grants(caller, operation, params, region)
    if names:
        check_policies(caller, operation, region, registry_id, names, policy_texts(registry_id, names))
    return registry_id


def check_grants(caller: Principal, operation: str, params: dict[str, Any], region: str) -> tuple[str, tuple[str, ...]]:
    """The registry the request acts in (its registryId, else the caller's own) and the repositories
    whose policies must still allow it (`check_policies`), once the key's grants allow the operation
    on every repository the request names; AccessDeniedException otherwise. A request naming no
    single repository (listings, CreateRepository, GetAuthorizationToken) acts in the caller's own
    registry only, where DescribeRepositories without names needs the action on some repository
    (the operation then lists only the ones the key may describe)."""
    for named in params.get("registryIds") or ():  # GetAuthorizationToken's (deprecated) list
        if named != caller.registry_id:
            raise denied(caller, operation, region, named, "*")
    registry_id, names = _named_repositories(caller, operation, params)
    if registry_id != caller.registry_id and (not names or operation in OWN_REGISTRY_ONLY):
        raise denied(caller, operation, region, registry_id, (names or ["*"])[0])
    if not names:
        if not allows(caller.grants, operation, None):
            raise denied(caller, operation, region, registry_id, "*")
        return registry_id, ()
    for name in names:
        if not allows(caller.grants, operation, name):
            raise denied(caller, operation, region, registry_id, name)
    return registry_id, () if operation in OWN_REGISTRY_ONLY else tuple(dict.fromkeys(names))


def _named_repositories(caller: Principal, operation: str, params: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The registry a request acts in and the repositories it names (None: none by name)."""
    arn = parse_repository_arn(params["resourceArn"]) if "resourceArn" in params else None
    if arn is not None:  # the tagging operations; an ARN that names no repository is the operation's to refuse
        return arn.registry_id, [arn.name]
    names = params.get("repositoryNames") if operation == "DescribeRepositories" else None
    if names is None and "repositoryName" in params:
        names = [params["repositoryName"]]
    return params.get("registryId") or caller.registry_id, names


def check_policies(
    caller: Principal, operation: str, region: str, registry_id: str, names: Sequence[str], texts: dict[str, str]
) -> None:
    """AccessDeniedException unless the policy of each repository of `names` (`texts`: those that
    have one) lets the caller act: no Deny for it, and, for a caller of another registry, an Allow."""
    for name in names:
        policy = parse_policy(texts[name]) if name in texts else None
        verdict = policy_verdict(policy, caller, registry_id, operation)
        if verdict != ALLOW:
            raise denied(caller, operation, region, registry_id, name, verdict)


def policy_verdict(policy: RepositoryPolicy | None, caller: Principal, registry_id: str, operation: str) -> str | None:
    """What a repository's policy makes of the caller's `operation` on it: DENY for an explicit Deny,
    None when a caller of another registry is not allowed (nothing shares it), else ALLOW."""
    said = (
        policy.decision(principals_of(caller.registry_id, caller.principal_arn), f"ecr:{operation}") if policy else None
    )
    if said == DENY:
        return DENY
    return ALLOW if said == ALLOW or registry_id == caller.registry_id else None


def denied(
    caller: Principal, operation: str, region: str, registry_id: str, name: str, verdict: str | None = ALLOW
) -> errors.AccessDeniedException:
    """ECR's AccessDeniedException; `verdict` what the repository's policy said (AWS's wording of it)."""
    because = {
        DENY: " with an explicit deny in a resource-based policy",
        None: f" because no resource-based policy allows the ecr:{operation} action",
    }.get(verdict, "")
    return errors.AccessDeniedException(
        f"User: {caller.principal_arn} is not authorized to perform: ecr:{operation} on resource: "
        f"arn:aws:ecr:{region}:{registry_id}:repository/{name}{because}"
    )


def parse_grant(text: str, operations: Iterable[str]) -> Grant:
    """A grant as the operator writes it (registryctl --grant); ValueError says what is wrong."""
    match = GRANT.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"grant {text!r}: expected <role or ecr:Action>[,...][:<repository pattern>[,...]] "
            f"with roles {', '.join(ROLES)}"
        )
    actions = tuple(dict.fromkeys(match["actions"].split(",")))
    repositories = tuple(dict.fromkeys((match["repositories"] or "*").split(",")))
    grant = Grant(actions, repositories)
    check_grant(grant, operations)
    return grant


def check_grant(grant: Grant, operations: Iterable[str]) -> None:
    operations = set(operations)
    for action in grant.actions:
        if action in ROLES:
            continue
        if not ACTION.fullmatch(action):
            raise ValueError(f"action {action!r}: a role ({', '.join(ROLES)}) or ecr:<Operation>")
        if not any(wildcard_matches(action[4:], op) for op in operations):
            raise ValueError(f"action {action!r} names no operation of the ECR API")
    for pattern in grant.repositories:
        if not REPOSITORY_PATTERN.fullmatch(pattern):
            raise ValueError(f"repository pattern {pattern!r}: lower-case letters, digits, . _ - / and *")
