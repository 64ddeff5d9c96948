"""GetAuthorizationToken: a login for container tools (`aws ecr get-login-password | docker login`)."""

from __future__ import annotations

from ..auth import login
from .common import Context, Params, Result


def get_authorization_token(params: Params, ctx: Context) -> Result:
    # `registryIds` (deprecated by ECR) may name only the caller's registry: authorization checked it.
    key = ctx.caller.access_key
    password, expires = login.issue(ctx.store.token_key.get(), key, ctx.now())
    return {
        "authorizationData": [
            {
                "authorizationToken": login.basic_credentials(login.USER, password),
                "expiresAt": expires,
                "proxyEndpoint": ctx.endpoint,
            }
        ]
    }
