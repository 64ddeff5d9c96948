"""One `/v2` request in progress: who asks, in which registry, what they ask for, and the one way to
run an operation for it -- with the key's grants and the repository's policy checked and the
operation's input checked against the ECR model, exactly as the JSON 1.1 API does before it runs the
same functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import errors, operations, service_model
from ..auth import permissions
from ..config import Settings
from ..operations import Caller, Context, Operation
from ..storage import RegistryStore
from ..wire import HttpRequest
from .routes import Route

Params = dict[str, Any]


@dataclass
class Exchange:
    request: HttpRequest
    route: Route
    caller: Caller
    store: RegistryStore
    settings: Settings
    endpoint: str  # the registry's base URL, as the client reached it
    registry_id: str  # the registry the request names (its host), else the caller's own

    def call(self, action: str, function: Operation, params: Params, *, check_input: bool = True) -> dict[str, Any]:
        """Run `function` as the ECR action `action` (what grants and the repository's policy are
        checked against) in the request's registry. Input that is JSON (everything but layer bytes)
        is checked against the action's shape in the model."""
        params = {**params, "registryId": self.registry_id}
        if check_input:
            params = service_model.read_input(action, params)
        ctx = Context.authorized(action, self.caller, params, self.store, self.settings, self.endpoint)
        return operations.run(function, params, ctx)

    def may(self, action: str, name: str) -> bool:
        """Whether the caller may perform `action` on the repository `name` of the request's registry."""
        params = {"registryId": self.registry_id, "repositoryName": name}
        try:
            permissions.authorize(
                self.caller, action, params, self.settings.region, self.store.repositories.policy_texts
            )
        except errors.AccessDeniedException:
            return False
        return True

    def query(self, name: str) -> str | None:
        values = self.request.query.get(name)
        return values[-1] if values else None

    @property
    def name(self) -> str:
        return self.route.name

    def url(self, path: str) -> str:
        """An absolute URL under this repository: a Location that keeps any stage or base path."""
        return f"{self.endpoint}/v2/{self.name}/{path}"
