"""What a key may do: grants of ECR actions on repository name patterns, and the one check.

Roles are names for sets of actions, expanded when a request is checked (so a key follows its
role as operations are added): `pull` reads images, lifecycle policies and their previews, and
resource tags (as AWS's AmazonEC2ContainerRegistryReadOnly), `push` = pull + uploads and PutImage (as
AWS's AmazonEC2ContainerRegistryPowerUser), `admin` = every action (`ecr:*`): it alone deletes,
changes lifecycle policies, resource tags and scanning settings, starts previews and describes the
registry (as only AmazonEC2ContainerRegistryFullAccess does). Explicit `ecr:<Operation>`
names and `*` wildcards (`ecr:Describe*`) are allowed too. A repository pattern matches the whole
name, `*` standing for any run of characters (also `/`), as in IAM resource ARNs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from .. import errors
from ..arns import parse_repository_arn
from ..records import Grant, wildcard_matches

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


def authorize(caller: Principal, operation: str, params: dict[str, Any], region: str) -> None:
    """AccessDeniedException unless the caller's key allows the operation on every repository the
    request names, in its own registry. DescribeRepositories without names needs the action on
    some repository; the operation then lists only the ones the key may describe."""
    for named in params.get("registryIds") or ():  # GetAuthorizationToken's (deprecated) list
        if named != caller.registry_id:
            raise denied(caller, operation, region, named, "*")
    registry_id, names = _named_repositories(caller, operation, params)
    if registry_id != caller.registry_id:
        raise denied(caller, operation, region, registry_id, (names or ["*"])[0])
    if not names:
        if not allows(caller.grants, operation, None):
            raise denied(caller, operation, region, registry_id, "*")
        return
    for name in names:
        if not allows(caller.grants, operation, name):
            raise denied(caller, operation, region, registry_id, name)


def _named_repositories(caller: Principal, operation: str, params: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The registry a request acts in and the repositories it names (None: none by name)."""
    arn = parse_repository_arn(params["resourceArn"]) if "resourceArn" in params else None
    if arn is not None:  # the tagging operations; an ARN that names no repository is the operation's to refuse
        return arn.registry_id, [arn.name]
    names = params.get("repositoryNames") if operation == "DescribeRepositories" else None
    if names is None and "repositoryName" in params:
        names = [params["repositoryName"]]
    return params.get("registryId") or caller.registry_id, names


def denied(caller: Principal, operation: str, region: str, registry_id: str, name: str) -> errors.AccessDeniedException:
    return errors.AccessDeniedException(
        f"User: {caller.principal_arn} is not authorized to perform: ecr:{operation} on resource: "
        f"arn:aws:ecr:{region}:{registry_id}:repository/{name}"
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
