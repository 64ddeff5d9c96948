"""GetAuthorizationToken: a login for container tools (`aws ecr get-login-password | docker login`)."""

from __future__ import annotations

from urllib.parse import urlsplit

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
                "proxyEndpoint": proxy_endpoint(ctx),
            }
        ]
    }


def proxy_endpoint(ctx: Context) -> str:
    """Where docker logs in to the caller's registry: as on ECR, the registry's own host when each
    registry has one (`https://<registry>.<domain>`), else the registry's URL."""
    if not ctx.settings.registry_hosts_domain:
        return ctx.endpoint
    scheme = urlsplit(ctx.endpoint).scheme or "https"
    return f"{scheme}://{ctx.settings.registry_host(ctx.registry_id)}"
