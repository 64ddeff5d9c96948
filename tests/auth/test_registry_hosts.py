"""Each registry's own host (REGISTRY_HOSTS_DOMAIN, set by the stack's registry:registryHostnames):
`<registry>.<domain>` names the registry as ECR's `<registry>.dkr.ecr.<region>.amazonaws.com` does.
repositoryUri and GetAuthorizationToken's proxyEndpoint name that host, so what they print is what
docker pulls from and logs in to; a host of another registry pulls what that registry shares.

A registry started with the variable set, on the shared backends; requests reach it with the Host
that DNS would route there (`*.<domain>` resolves to the API's wildcard custom domain)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from auth_support import new_registry_id
from distribution import Client, login_header
from support import DOCKER_MANIFEST, aws, client_of, push_image

from registry.config import REGISTRY_HOSTS_DOMAIN_ENV

pytestmark = pytest.mark.local_only  # a registry of its own settings, keys issued into the keys table

DOMAIN = "registry.example.test"
PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]


class Hosts:
    """A registry with its hosts under DOMAIN: registry A owns a repository with an image, registry B
    has a pull key."""

    def __init__(self, start_registry, issue_key):
        self.local = start_registry(**{REGISTRY_HOSTS_DOMAIN_ENV: DOMAIN.upper() + "."})  # normalized
        self.a, self.b = new_registry_id(), new_registry_id()
        self.owner = client_of(self.local.endpoint, issue_key(self.a, (("admin",), ("*",)), name="owner"))
        self.puller_b = client_of(self.local.endpoint, issue_key(self.b, (("pull",), ("*",)), name="puller-b"))
        self.repo = "team/app"
        self.created = self.owner.create_repository(repositoryName=self.repo)["repository"]
        self.image = push_image(self.owner, self.repo, tag="v1")

    def v2(self, ecr, host: str) -> Client:
        """A /v2 client logged in as `ecr`'s key, reaching the registry by `host` (DNS would route it)."""
        return Client(self.local.endpoint, login_header(ecr), host=f"{host}:{urlsplit(self.local.endpoint).port}")

    def share_with_b(self) -> None:
        statement = {"Effect": "Allow", "Principal": {"AWS": self.b}, "Action": PULL}
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        self.owner.set_repository_policy(repositoryName=self.repo, policyText=json.dumps(policy))


@pytest.fixture
def hosts(start_registry, issue_key):
    return Hosts(start_registry, issue_key)


def pull(v2: Client, repo: str, tag: str):
    return v2.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": DOCKER_MANIFEST})


def test_repository_uri_names_the_registrys_own_host(hosts):
    h = hosts
    expected = f"{h.a}.{DOMAIN}/{h.repo}"
    assert h.created["repositoryUri"] == expected
    (described,) = h.owner.describe_repositories(repositoryNames=[h.repo])["repositories"]
    (listed,) = h.owner.describe_repositories()["repositories"]
    assert described["repositoryUri"] == listed["repositoryUri"] == expected
    assert described["repositoryArn"] == f"arn:aws:ecr:us-east-1:{h.a}:repository/{h.repo}", "ARNs stay ECR's"


def test_the_aws_cli_prints_the_registry_host_as_repository_uri(start_registry):
    local = start_registry(**{REGISTRY_HOSTS_DOMAIN_ENV: DOMAIN})
    name = f"cli/{new_registry_id()}"
    created = aws(local, "create-repository", "--repository-name", name)["repository"]
    assert created["repositoryUri"] == f"000000000000.{DOMAIN}/{name}"


def test_proxy_endpoint_is_the_callers_registry_host_with_the_endpoints_scheme(hosts):
    h = hosts
    (data,) = h.puller_b.get_authorization_token()["authorizationData"]
    scheme = urlsplit(h.local.endpoint).scheme  # http locally; https behind the custom domain
    assert data["proxyEndpoint"] == f"{scheme}://{h.b}.{DOMAIN}"
    (own,) = h.owner.get_authorization_token(registryIds=[h.a])["authorizationData"]
    assert own["proxyEndpoint"] == f"{scheme}://{h.a}.{DOMAIN}"


def test_the_repository_uri_is_where_docker_pulls_from(hosts):
    h = hosts
    host, _, repo = h.created["repositoryUri"].partition("/")
    pulled = pull(h.v2(h.owner, host), repo, "v1")
    assert (pulled.status, pulled.body) == (200, h.image.manifest.encode())


def test_another_registrys_host_pulls_what_it_shares_and_nothing_else(hosts):
    h = hosts
    host, _, repo = h.created["repositoryUri"].partition("/")
    v2 = h.v2(h.puller_b, host)
    refused = pull(v2, repo, "v1")
    assert (refused.status, refused.error_code) == (403, "DENIED")
    h.share_with_b()
    pulled = pull(v2, repo, "v1")
    assert (pulled.status, pulled.body) == (200, h.image.manifest.encode())
    # B's own host: B's registry, which has no such repository
    own = pull(h.v2(h.puller_b, f"{h.b}.{DOMAIN}"), repo, "v1")
    assert (own.status, own.error_code) == (404, "NAME_UNKNOWN")


def test_a_login_the_authorizer_let_through_on_one_host_gets_no_more_on_another(hosts, issue_key):
    """API Gateway caches the authorizer's answer per Authorization header, whatever the Host (the
    local gateway does the same): that answer only says the login is valid. The function decides
    every request in the registry its host names, with the key's grants and that registry's policies."""
    h = hosts
    h.share_with_b()
    c = new_registry_id()  # registry C has the same repository, shared with nobody
    owner_c = client_of(h.local.endpoint, issue_key(c, (("admin",), ("*",)), name="owner-c"))
    owner_c.create_repository(repositoryName=h.repo)
    push_image(owner_c, h.repo, tag="v1")
    authorization = login_header(h.puller_b)
    port = urlsplit(h.local.endpoint).port
    on_a = Client(h.local.endpoint, authorization, host=f"{h.a}.{DOMAIN}:{port}")
    assert pull(on_a, h.repo, "v1").status == 200  # the authorizer allowed this login, now cached
    on_c = Client(h.local.endpoint, authorization, host=f"{c}.{DOMAIN}:{port}")
    refused = pull(on_c, h.repo, "v1")
    assert (refused.status, refused.error_code) == (403, "DENIED")
    assert refused.json()["errors"][0]["message"].endswith(
        "because no resource-based policy allows the ecr:BatchGetImage action"
    )
