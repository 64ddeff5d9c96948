"""One `/v2` request in progress: who asks, what they ask for, and the one way to run an operation
for it -- with the key's grants checked and the operation's input checked against the ECR model,
exactly as the JSON 1.1 API does before it runs the same functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import operations, service_model
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

    def call(self, action: str, function: Operation, params: Params, *, check_input: bool = True) -> dict[str, Any]:
        """Run `function` as the ECR action `action` (what grants are checked against). Input that
        is JSON (everything but layer bytes) is checked against the action's shape in the model."""
        if check_input:
            params = service_model.read_input(action, params)
        permissions.authorize(self.caller, action, params, self.settings.region)
        ctx = Context(
            operation=action, caller=self.caller, store=self.store, settings=self.settings, endpoint=self.endpoint
        )
        return operations.run(function, params, ctx)

    def query(self, name: str) -> str | None:
        values = self.request.query.get(name)
        return values[-1] if values else None

    @property
    def name(self) -> str:
        return self.route.name

    def url(self, path: str) -> str:
        """An absolute URL under this repository: a Location that keeps any stage or base path."""
        return f"{self.endpoint}/v2/{self.name}/{path}"
