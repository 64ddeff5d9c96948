"""Repository policies share a repository of registry A with keys of registry B, on both APIs: B's
key acts in A (registryId = A on the ECR API; a host `<A>.dkr.ecr...` on /v2) exactly when A's
policy allows it the action and its own grants do too. Deleting the policy or adding a Deny revokes
it on the very next request; an explicit Deny refuses A's own keys too; operations that name no
single repository stay in the caller's registry."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from auth_support import new_registry_id
from botocore.exceptions import ClientError
from distribution import Client, login_header
from support import DOCKER_MANIFEST, client_of, error_code, image_manifest, new_blobs, push_image, snapshot

pytestmark = pytest.mark.local_only  # keys are issued into the local stack's keys table

PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"]
PUSH = [*PULL, "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, actions=PULL, effect="Allow") -> dict:
    return {"Effect": effect, "Principal": {"AWS": principal}, "Action": actions}


class Tenants:
    """Registry A (the owner) with an admin key and a repository holding one image, and registry B
    with an admin key, a pull key and a push key."""

    def __init__(self, registry, issue_key):
        self.endpoint = registry.endpoint
        self.a, self.b = new_registry_id(), new_registry_id()
        self.owner = client_of(self.endpoint, issue_key(self.a, (("admin",), ("*",)), name="owner"))
        self.admin_b = client_of(self.endpoint, issue_key(self.b, (("admin",), ("*",)), name="admin-b"))
        self.puller_b = client_of(self.endpoint, issue_key(self.b, (("pull",), ("*",)), name="puller"))
        self.pusher_b = client_of(self.endpoint, issue_key(self.b, (("push",), ("*",)), name="pusher"))
        self.repo = "team/app"
        self.owner.create_repository(repositoryName=self.repo)
        self.image = push_image(self.owner, self.repo, tag="v1")

    def share(self, text: str, force: bool = False) -> None:
        self.owner.set_repository_policy(repositoryName=self.repo, policyText=text, force=force)

    def pull(self, client) -> str:
        """BatchGetImage of v1 in A's repository, as `client`: the manifest."""
        found = client.batch_get_image(registryId=self.a, repositoryName=self.repo, imageIds=[{"imageTag": "v1"}])
        return found["images"][0]["imageManifest"]

    def v2(self, client, registry_id: str) -> Client:
        """A /v2 client logged in as `client`'s key, naming `registry_id` in its host as ECR's do."""
        port = urlsplit(self.endpoint).port
        return Client(self.endpoint, login_header(client), host=f"{registry_id}.dkr.ecr.us-east-1.localhost:{port}")


@pytest.fixture
def tenants(registry, issue_key):
    return Tenants(registry, issue_key)


def assert_denied(excinfo, key_arn: str, operation: str, resource: str, because: str = "") -> None:
    assert error_code(excinfo) == "AccessDeniedException"
    message = excinfo.value.response["Error"]["Message"]
    assert message == f"User: {key_arn} is not authorized to perform: ecr:{operation} on resource: {resource}{because}"


NO_POLICY = " because no resource-based policy allows the ecr:BatchGetImage action"
EXPLICIT_DENY = " with an explicit deny in a resource-based policy"


def test_a_pull_shared_by_policy_then_revoked(tenants):
    t = tenants
    arn = f"arn:aws:ecr:us-east-1:{t.a}:repository/{t.repo}"
    with pytest.raises(ClientError) as excinfo:
        t.pull(t.admin_b)
    assert_denied(excinfo, f"arn:aws:iam::{t.b}:user/admin-b", "BatchGetImage", arn, NO_POLICY)
    t.share(policy(allow(t.b)))
    assert t.pull(t.admin_b) == t.image.manifest
    assert t.pull(t.puller_b) == t.image.manifest  # an account principal: every key of B
    described = t.admin_b.describe_images(registryId=t.a, repositoryName=t.repo)["imageDetails"]
    assert [(d["registryId"], d["imageDigest"]) for d in described] == [(t.a, t.image.digest)]
    layer = json.loads(t.image.manifest)["layers"][0]["digest"]
    url = t.admin_b.get_download_url_for_layer(registryId=t.a, repositoryName=t.repo, layerDigest=layer)
    assert url["downloadUrl"]
    with pytest.raises(ClientError) as excinfo:  # only what the policy lists
        t.admin_b.list_images(registryId=t.a, repositoryName=t.repo)
    assert error_code(excinfo) == "AccessDeniedException"
    t.owner.delete_repository_policy(repositoryName=t.repo)
    with pytest.raises(ClientError) as excinfo:  # the very next request
        t.pull(t.admin_b)
    assert_denied(excinfo, f"arn:aws:iam::{t.b}:user/admin-b", "BatchGetImage", arn, NO_POLICY)


def test_a_deny_statement_revokes_and_wins(tenants):
    t = tenants
    t.share(policy(allow("*", ["ecr:*"])))
    assert t.pull(t.puller_b) == t.image.manifest
    t.share(
        policy(
            allow("*", ["ecr:*"]),
            allow(f"arn:aws:iam::{t.b}:user/puller", ["ecr:BatchGetImage"], effect="Deny"),
        )
    )
    with pytest.raises(ClientError) as excinfo:
        t.pull(t.puller_b)
    arn = f"arn:aws:ecr:us-east-1:{t.a}:repository/{t.repo}"
    assert_denied(excinfo, f"arn:aws:iam::{t.b}:user/puller", "BatchGetImage", arn, EXPLICIT_DENY)
    assert t.pull(t.admin_b) == t.image.manifest  # another key of B, not named by the Deny


def test_a_deny_binds_the_owners_own_keys(tenants):
    t = tenants
    t.share(policy(allow(t.a, ["ecr:BatchGetImage", "ecr:PutImage"], effect="Deny")))
    for call in (
        lambda: t.owner.batch_get_image(repositoryName=t.repo, imageIds=[{"imageTag": "v1"}]),
        lambda: push_image(t.owner, t.repo, tag="v2"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == "AccessDeniedException"
        assert excinfo.value.response["Error"]["Message"].endswith(EXPLICIT_DENY)
    assert t.owner.list_images(repositoryName=t.repo)["imageIds"] == [{"imageDigest": t.image.digest, "imageTag": "v1"}]


def test_a_push_is_refused_when_only_pull_is_shared(tenants):
    t = tenants
    t.share(policy(allow(t.b)))
    before = snapshot(t.owner, t.repo)
    with pytest.raises(ClientError) as excinfo:
        t.pusher_b.initiate_layer_upload(registryId=t.a, repositoryName=t.repo)
    assert error_code(excinfo) == "AccessDeniedException"
    with pytest.raises(ClientError) as excinfo:
        t.pusher_b.put_image(registryId=t.a, repositoryName=t.repo, imageTag="v1", imageManifest=t.image.manifest)
    assert error_code(excinfo) == "AccessDeniedException"
    assert snapshot(t.owner, t.repo) == before


def test_a_shared_push_lands_in_the_owners_registry_and_needs_the_keys_grants_too(tenants):
    t = tenants
    t.share(policy(allow(t.b, PUSH)))
    with pytest.raises(ClientError) as excinfo:  # the policy allows it, the pull key's grants do not
        t.puller_b.initiate_layer_upload(registryId=t.a, repositoryName=t.repo)
    assert error_code(excinfo) == "AccessDeniedException"
    upload = t.pusher_b.initiate_layer_upload(registryId=t.a, repositoryName=t.repo)
    assert upload["uploadId"]
    pushed = push_image(ShareClient(t.pusher_b, t.a), t.repo, tag="from-b")
    assert (
        t.owner.batch_get_image(repositoryName=t.repo, imageIds=[{"imageTag": "from-b"}])["images"][0]["imageManifest"]
        == pushed.manifest
    )
    with pytest.raises(t.admin_b.exceptions.RepositoryNotFoundException):  # nothing landed in B
        t.admin_b.describe_repositories(repositoryNames=[t.repo])


class ShareClient:
    """A boto3 ECR client that sends every call to another registry (registryId), for the helpers."""

    def __init__(self, client, registry_id: str):
        self.client, self.registry_id = client, registry_id

    def __getattr__(self, name):
        call = getattr(self.client, name)
        return lambda **params: call(registryId=self.registry_id, **params)


def test_a_key_of_another_registry_learns_nothing_of_what_is_not_shared(tenants):
    """Refused before the operation's own answer: a missing repository, image or layer looks the
    same as one that exists, including where the policy is read with the pull's data."""
    t = tenants
    for name in (t.repo, "team/missing"):
        for operation, params in (
            ("batch_get_image", {"imageIds": [{"imageTag": "nope"}]}),
            ("list_images", {}),
        ):
            with pytest.raises(ClientError) as excinfo:
                getattr(t.admin_b, operation)(registryId=t.a, repositoryName=name, **params)
            assert error_code(excinfo) == "AccessDeniedException"
        v2 = t.v2(t.admin_b, t.a)
        for path in (f"/v2/{name}/manifests/nope", f"/v2/{name}/blobs/sha256:{'0' * 64}"):
            answer = v2.request("GET", path)
            assert (answer.status, answer.error_code) == (403, "DENIED"), path


def test_a_user_principal_shares_with_one_key_only(tenants):
    t = tenants
    t.share(policy(allow(f"arn:aws:iam::{t.b}:user/puller")))
    assert t.pull(t.puller_b) == t.image.manifest
    with pytest.raises(ClientError) as excinfo:
        t.pull(t.admin_b)
    assert error_code(excinfo) == "AccessDeniedException"


def test_operations_without_a_single_repository_stay_in_the_callers_registry(tenants):
    t = tenants
    t.share(policy(allow("*", ["ecr:*"])))
    with pytest.raises(ClientError) as excinfo:
        t.admin_b.describe_repositories(registryId=t.a)
    assert error_code(excinfo) == "AccessDeniedException"
    with pytest.raises(ClientError) as excinfo:
        t.admin_b.create_repository(registryId=t.a, repositoryName="team/intruder")
    assert error_code(excinfo) == "AccessDeniedException"
    with pytest.raises(ClientError) as excinfo:
        t.admin_b.get_authorization_token(registryIds=[t.a])
    assert error_code(excinfo) == "AccessDeniedException"
    named = t.admin_b.describe_repositories(registryId=t.a, repositoryNames=[t.repo])["repositories"]
    assert [(r["registryId"], r["repositoryName"]) for r in named] == [(t.a, t.repo)]


def test_a_shared_key_reads_and_changes_the_policy_only_if_shared(tenants):
    t = tenants
    text = policy(allow(t.b, ["ecr:GetRepositoryPolicy", *PULL]))
    t.share(text)
    assert t.puller_b.get_repository_policy(registryId=t.a, repositoryName=t.repo)["policyText"] == text
    with pytest.raises(ClientError) as excinfo:
        t.admin_b.set_repository_policy(registryId=t.a, repositoryName=t.repo, policyText=policy(allow("*", ["ecr:*"])))
    assert error_code(excinfo) == "AccessDeniedException"
    assert t.owner.get_repository_policy(repositoryName=t.repo)["policyText"] == text


# --- /v2 ---------------------------------------------------------------------------------------------


def test_v2_pull_of_another_registry_by_its_host_then_revoked(tenants):
    t = tenants
    v2 = t.v2(t.puller_b, t.a)
    path = f"/v2/{t.repo}/manifests/v1"
    refused = v2.request("GET", path, headers={"Accept": DOCKER_MANIFEST})
    assert (refused.status, refused.error_code) == (403, "DENIED")
    assert refused.json()["errors"][0]["message"].endswith(NO_POLICY)
    t.share(policy(allow(t.b)))
    pulled = v2.request("GET", path, headers={"Accept": DOCKER_MANIFEST})
    assert (pulled.status, pulled.body) == (200, t.image.manifest.encode())
    layer = json.loads(t.image.manifest)["layers"][0]["digest"]
    assert v2.request("GET", f"/v2/{t.repo}/blobs/{layer}").status == 307
    # the same login without the host serves B's own registry, where there is no such repository
    own = Client(t.endpoint, v2.authorization).request("GET", path, headers={"Accept": DOCKER_MANIFEST})
    assert (own.status, own.error_code) == (404, "NAME_UNKNOWN")
    # revoked: the authorizer's answer for this login is cached, the function checks every request
    t.owner.delete_repository_policy(repositoryName=t.repo)
    revoked = v2.request("GET", path, headers={"Accept": DOCKER_MANIFEST})
    assert (revoked.status, revoked.error_code) == (403, "DENIED")
    t.share(policy(allow(t.b, ["ecr:*"]), allow(t.b, ["ecr:GetDownloadUrlForLayer"], effect="Deny")))
    assert v2.request("GET", path, headers={"Accept": DOCKER_MANIFEST}).status == 200
    denied = v2.request("GET", f"/v2/{t.repo}/blobs/{layer}")
    assert (denied.status, denied.error_code) == (403, "DENIED")
    assert denied.json()["errors"][0]["message"].endswith(EXPLICIT_DENY)


def test_v2_push_to_another_registry_is_refused_when_only_pull_is_shared(tenants):
    t = tenants
    t.share(policy(allow(t.b)))
    v2 = t.v2(t.pusher_b, t.a)
    before = snapshot(t.owner, t.repo)
    refused = v2.request("POST", f"/v2/{t.repo}/blobs/uploads/")
    assert (refused.status, refused.error_code) == (403, "DENIED")
    manifest = v2.push_manifest(t.repo, "v2", t.image.manifest, DOCKER_MANIFEST)
    assert (manifest.status, manifest.error_code) == (403, "DENIED")
    assert snapshot(t.owner, t.repo) == before


def test_v2_push_to_another_registry_when_push_is_shared(tenants):
    t = tenants
    t.share(policy(allow(t.b, PUSH)))
    v2 = t.v2(t.pusher_b, t.a)
    config, layers = new_blobs(1)
    for blob in (config, *layers):
        v2.push_blob(t.repo, blob)  # its Locations keep the host that names A
    manifest = image_manifest(config, layers)
    assert v2.push_manifest(t.repo, "from-b", manifest, DOCKER_MANIFEST).status == 201
    got = t.owner.batch_get_image(repositoryName=t.repo, imageIds=[{"imageTag": "from-b"}])["images"][0]
    assert got["imageManifest"] == manifest


def test_a_shared_push_revoked_between_parts(tenants):
    """UploadLayerPart reads its repository's policy with its upload (one read): revoking the
    policy refuses the very next part, which changes nothing; shared again, the part goes on from
    the byte where the upload stood."""
    t = tenants
    t.share(policy(allow(t.b, PUSH)))
    upload_id = t.pusher_b.initiate_layer_upload(registryId=t.a, repositoryName=t.repo)["uploadId"]

    def part(first: int, data: bytes) -> dict:
        return t.pusher_b.upload_layer_part(
            registryId=t.a,
            repositoryName=t.repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(data) - 1,
            layerPartBlob=data,
        )

    assert part(0, b"first")["lastByteReceived"] == 4
    t.owner.delete_repository_policy(repositoryName=t.repo)
    with pytest.raises(ClientError) as excinfo:
        part(5, b"second")
    arn = f"arn:aws:ecr:us-east-1:{t.a}:repository/{t.repo}"
    because = " because no resource-based policy allows the ecr:UploadLayerPart action"
    assert_denied(excinfo, f"arn:aws:iam::{t.b}:user/pusher", "UploadLayerPart", arn, because)
    t.share(policy(allow(t.b, PUSH)))
    assert part(5, b"second")["lastByteReceived"] == 10
