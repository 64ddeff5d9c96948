"""What every operation shares: the request context, retries and page tokens."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import errors, tokens
from ..auth.permissions import allows, check_grants, check_policies
from ..config import MAX_RETURNED_BYTES, Settings
from ..records import AccessKey, Grant, Repository
from ..storage import ConcurrentUpdate, RegistryStore

T = TypeVar("T")
Params = dict[str, Any]  # an operation's input, checked against its shape in the ECR model
Result = dict[str, Any]  # an operation's output, as its output shape names the members
MAX_ATTEMPTS = 12  # reads-and-decides per request when conditional writes keep losing races


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the verified access key -- its registry (the tenant) and grants."""

    access_key: AccessKey

    @classmethod
    def of(cls, key: AccessKey) -> Caller:
        return cls(key)

    @property
    def registry_id(self) -> str:
        return self.access_key.registry_id

    @property
    def principal_arn(self) -> str:
        return self.access_key.principal_arn

    @property
    def grants(self) -> tuple[Grant, ...]:
        return self.access_key.grants

    @property
    def access_key_id(self) -> str:
        return self.access_key.access_key_id

    def may(self, operation: str, repository: str) -> bool:
        return allows(self.grants, operation, repository)


@dataclass
class Context:
    operation: str
    caller: Caller
    store: RegistryStore
    settings: Settings
    registry_id: str  # the registry the request acts in, as authorized: the caller's, or one shared with it
    endpoint: str = ""  # the registry's base URL, as clients reach it (GetAuthorizationToken's proxyEndpoint)
    clock: Callable[[], float] = field(default=time.time)
    # The repositories whose policies must still allow the request: the grants allowed it already.
    unchecked_policies: tuple[str, ...] = ()

    @classmethod
    def authorized(
        cls, operation: str, caller: Caller, params: Params, store: RegistryStore, settings: Settings, endpoint: str
    ) -> Context:
        """The context of a request whose key's grants allow it (AccessDeniedException otherwise),
        in the registry it names; the policies of its repositories are checked by `operations.run`."""
        registry_id, names = check_grants(caller, operation, params, settings.region)
        return cls(operation, caller, store, settings, registry_id, endpoint, unchecked_policies=names)

    def now(self) -> float:
        return round(self.clock(), 3)

    def policy_read(self, text: str | None) -> None:
        """What an operation that reads its repository's policy with its data (one read, a pull's)
        calls first with that policy's text (None: it has none), before it decides anything."""
        if self.unchecked_policies:
            (name,) = self.unchecked_policies  # such operations name one repository
            self._check_policies({name: text} if text is not None else {})

    def check_policies(self) -> None:
        """Read the policies still unchecked, and check them: AccessDeniedException if one refuses."""
        if self.unchecked_policies:
            self._check_policies(self.store.repositories.policy_texts(self.registry_id, self.unchecked_policies))

    def _check_policies(self, texts: dict[str, str]) -> None:
        names, self.unchecked_policies = self.unchecked_policies, ()
        check_policies(self.caller, self.operation, self.settings.region, self.registry_id, names, texts)


def existing_repository(params: Params, ctx: Context) -> Repository:
    registry_id = ctx.registry_id
    name = params["repositoryName"]
    repo = ctx.store.repositories.get(registry_id, name)
    if repo is None:
        raise errors.repository_not_found(registry_id, name)
    return repo


def retrying(attempt: Callable[[], T]) -> T:
    """Run read-decide-write until the conditional write lands on the state it was decided on."""
    for number in range(MAX_ATTEMPTS):
        try:
            return attempt()
        except ConcurrentUpdate:
            time.sleep(min(0.2, 0.005 * 2**number) * (0.5 + random.random()))
    raise errors.ServerException("The request kept conflicting with concurrent changes; retry it")


def no_paging_with_ids(params: Params, ids_member: str) -> None:
    if params.get(ids_member) and ("nextToken" in params or "maxResults" in params):
        raise errors.InvalidParameterException(
            f"Invalid parameter: nextToken and maxResults cannot be used together with {ids_member}"
        )


def page_size(params: Params) -> int:
    return params.get("maxResults") or 100


class ResponseBudget:
    """What a response may still hold, in bytes as the function returns them (config.MAX_RETURNED_BYTES),
    less room for the envelope around the entries."""

    ENVELOPE = 64 * 1024

    def __init__(self) -> None:
        self.limit = MAX_RETURNED_BYTES - self.ENVELOPE
        self.left = self.limit

    def take(self, entry: Result) -> bool:
        """Whether `entry` still fits (it is then counted): its JSON, escaped once more, as returned."""
        size = len(json.dumps(json.dumps(entry, ensure_ascii=False, separators=(",", ":"))))
        if size > self.left:
            return False
        self.left -= size
        return True


PAGE_TOKEN = "page"


def issue_page_token(params: Params, ctx: Context, position: dict[str, Any]) -> str:
    """A nextToken that continues this very listing (operation, registry, repository, filter) at
    `position`, sealed: the caller can hand it back, not alter or forge it."""
    return tokens.seal(ctx.store.token_key.get(), {**_page_binding(params, ctx), "position": position})


def page_position(params: Params, ctx: Context) -> dict[str, Any] | None:
    """Where the listing continues (the position of the nextToken given), None without a token;
    InvalidParameterException for a token this listing did not issue."""
    token = params.get("nextToken")
    if token is None:
        return None
    payload = tokens.unseal(ctx.store.token_key.get(), token)
    if payload is None or {k: v for k, v in payload.items() if k != "position"} != _page_binding(params, ctx):
        raise errors.InvalidParameterException("Invalid parameter at 'nextToken': the token is not valid")
    position: dict[str, Any] = payload["position"]
    return position


def _page_binding(params: Params, ctx: Context) -> dict[str, Any]:
    return {
        "use": PAGE_TOKEN,
        "operation": ctx.operation,
        "registry": ctx.registry_id,
        "repository": params.get("repositoryName"),
        "filter": params.get("filter"),
    }
