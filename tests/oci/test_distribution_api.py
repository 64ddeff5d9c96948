"""The Docker/OCI Distribution API (`/v2`) on the wire: login, pull, push in every upload mode,
discovery, and every refusal with the spec's code -- through the local gateway, which does to these
requests what API Gateway does (the authorizer and its 401 challenge, binary bodies, remapped
headers, the payload limit)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from distribution import Client, login_header, sha256
from support import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, client_of, image_manifest, new_blobs, push_image

V2 = "registry/2.0"


@pytest.fixture
def v2(registry, ecr):
    return Client(registry.endpoint, login_header(ecr))


# Deployed, the challenge is API Gateway's UNAUTHORIZED response, whose realm is the stack's URL (its
# custom domain's or stage's): tests/e2e checks it against the stack's EndpointUrl.
@pytest.mark.local_only
def test_no_login_is_the_challenge_ecr_sends(registry):
    answer = Client(registry.endpoint).request("GET", "/v2/")
    assert answer.status == 401 and answer.error_code == "UNAUTHORIZED"
    assert answer.header("www-authenticate") == f'Basic realm="{registry.endpoint}/",service="ecr.amazonaws.com"'
    assert answer.header("docker-distribution-api-version") == V2


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"AWS:not-a-token").decode(),
        "Basic garbage!",
        "Bearer x",
        "Basic " + base64.b64encode(b"root:x").decode(),
    ],
)
def test_a_bad_login_is_denied(registry, authorization):
    """As ECR answers an expired login: 403 DENIED (the 401 challenge is for no credentials at all)."""
    answer = Client(registry.endpoint, authorization).request("GET", "/v2/")
    assert answer.status == 403 and answer.error_code == "DENIED"
    assert "get-login-password" in answer.json()["message"]  # what AWS SDKs show
    assert answer.header("docker-distribution-api-version") == V2


def test_a_login_opens_the_api(v2):
    answer = v2.request("GET", "/v2/")
    assert answer.status == 200 and answer.json() == {} and answer.header("docker-distribution-api-version") == V2


def test_an_image_pushed_through_the_ecr_api_pulls_through_v2(v2, ecr, repo):
    pushed = push_image(ecr, repo, tag="v1", layers=2)
    answer = v2.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert answer.status == 200 and answer.body == pushed.manifest.encode()
    assert answer.header("content-type") == DOCKER_MANIFEST
    assert answer.header("docker-content-digest") == pushed.digest
    by_digest = v2.request("GET", f"/v2/{repo}/manifests/{pushed.digest}")
    assert by_digest.status == 200 and by_digest.body == pushed.manifest.encode()
    head = v2.request("HEAD", f"/v2/{repo}/manifests/v1")
    assert head.status == 200 and head.body == b"" and head.header("content-type") == DOCKER_MANIFEST
    for layer in json.loads(pushed.manifest)["layers"]:
        blob = v2.request("GET", f"/v2/{repo}/blobs/{layer['digest']}")
        assert blob.status == 307 and blob.header("docker-content-digest") == layer["digest"]
        fetched = Client(blob.header("location")).request("GET", blob.header("location"))
        assert fetched.status == 200 and sha256(fetched.body) == layer["digest"]


def test_a_manifest_not_in_an_accepted_type_is_unknown(v2, ecr, repo):
    push_image(ecr, repo, tag="v1")
    answer = v2.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert answer.status == 404 and answer.error_code == "MANIFEST_UNKNOWN"


def test_a_push_through_v2_is_seen_by_the_ecr_api(v2, ecr, repo):
    config, layers = new_blobs(2, size=3000)
    for blob in (config, *layers):
        v2.push_blob(repo, blob)
    manifest = image_manifest(config, layers, oci=True)
    answer = v2.push_manifest(repo, "v1", manifest, OCI_MANIFEST)
    assert answer.status == 201, answer.body
    digest = sha256(manifest.encode())
    assert answer.header("docker-content-digest") == digest
    assert answer.header("location").endswith(f"/v2/{repo}/manifests/{digest}")
    (got,) = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"]
    assert got["imageManifest"] == manifest and got["imageId"]["imageDigest"] == digest
    again = v2.push_manifest(repo, "v1", manifest, OCI_MANIFEST)  # a repeated push is done, not refused
    assert again.status == 201 and again.header("docker-content-digest") == digest


def test_every_upload_mode(v2, ecr, repo):
    data = os.urandom(100_000)
    digest = sha256(data)
    # monolithic POST ?digest=
    answer = v2.request(
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status == 201 and answer.header("docker-content-digest") == digest
    # POST then monolithic PUT (containerd, oras)
    other = os.urandom(5000)
    started = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status == 202 and started.header("range") == "0-0"
    assert started.header("docker-upload-uuid") and int(started.header("oci-chunk-max-length")) >= 4 * 1024 * 1024
    put = v2.request(
        "PUT",
        f"{started.header('location')}?digest={sha256(other)}",
        body=other,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status == 201
    # chunks with Content-Range, status, a gap refused with the range so far
    chunked = os.urandom(7000)
    started = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    location = started.header("location")
    first = v2.request(
        "PATCH",
        location,
        body=chunked[:3000],
        headers={"Content-Range": "0-2999", "Content-Type": "application/octet-stream"},
    )
    assert first.status == 202 and first.header("range") == "0-2999"
    gap = v2.request(
        "PATCH",
        location,
        body=chunked[4000:],
        headers={"Content-Range": "4000-6999", "Content-Type": "application/octet-stream"},
    )
    assert gap.status == 416 and gap.header("range") == "0-2999"
    status = v2.request("GET", location)
    assert status.status == 204 and status.header("range") == "0-2999"
    rest = v2.request(
        "PATCH",
        location,
        body=chunked[3000:],
        headers={"Content-Range": "3000-6999", "Content-Type": "application/octet-stream"},
    )
    assert rest.status == 202 and rest.header("range") == "0-6999"
    assert v2.request("PUT", f"{location}?digest={sha256(chunked)}").status == 201
    availability = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest, sha256(other), sha256(chunked)]
    )
    assert len(availability["layers"]) == 3
    # A HEAD is sent on to S3, whose Content-Length is the blob's (API Gateway's would be 0)
    head = v2.request("HEAD", f"/v2/{repo}/blobs/{sha256(chunked)}")
    assert head.status == 307 and head.header("docker-content-digest") == sha256(chunked)
    at_s3 = Client(head.header("location")).request("HEAD", head.header("location"))
    assert at_s3.status == 200 and at_s3.header("content-length") == str(len(chunked))


def test_a_wrong_digest_stores_nothing(v2, ecr, repo):
    data = os.urandom(2000)
    started = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    wrong = sha256(b"something else")
    answer = v2.request(
        "PUT",
        f"{started.header('location')}?digest={wrong}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status == 400 and answer.error_code == "DIGEST_INVALID"
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[wrong, sha256(data)])["layers"] == []
    # As in Distribution, the upload ends with the refusal: its bytes are not kept for a retry
    gone = v2.request("GET", started.header("location"))
    assert gone.status == 404 and gone.error_code == "BLOB_UPLOAD_UNKNOWN"


def test_an_upload_can_be_cancelled(v2, repo):
    started = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    location = started.header("location")
    v2.request("PATCH", location, body=b"abc", headers={"Content-Type": "application/octet-stream"})
    assert v2.request("DELETE", location).status == 204
    gone = v2.request("GET", location)
    assert gone.status == 404 and gone.error_code == "BLOB_UPLOAD_UNKNOWN"


def test_a_blob_mounts_from_another_repository(v2, ecr, repo):
    source = repo + "-source"
    ecr.create_repository(repositoryName=source)
    data = os.urandom(4000)
    digest = v2.push_blob(source, data)
    mounted = v2.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}")
    assert mounted.status == 201 and mounted.header("docker-content-digest") == digest
    assert ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest])["layers"]
    missing = v2.request("POST", f"/v2/{repo}/blobs/uploads/?mount={sha256(b'none')}&from={source}")
    assert missing.status == 202, "nothing to mount: a normal upload starts"


def test_a_pull_key_pulls_and_may_not_push(registry, ecr, repo, issue_key):
    push_image(ecr, repo, tag="v1")
    key = issue_key("000000000000", (["pull"], ["*"]))
    reader = client_of(registry.endpoint, key)
    v2 = Client(registry.endpoint, login_header(reader))
    assert v2.request("GET", f"/v2/{repo}/manifests/v1").status == 200
    denied = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert denied.status == 403 and denied.error_code == "DENIED"


def test_an_immutable_tag_keeps_its_image(v2, ecr, repo):
    ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
    first = push_image(ecr, repo, tag="v1")
    config, layers = new_blobs(1)
    for blob in (config, *layers):
        v2.push_blob(repo, blob)
    refused = v2.push_manifest(repo, "v1", image_manifest(config, layers), DOCKER_MANIFEST)
    assert refused.status == 400 and refused.error_code == "TAG_INVALID"
    assert "cannot be overwritten because the tag is immutable" in refused.json()["errors"][0]["message"]
    assert v2.request("GET", f"/v2/{repo}/manifests/v1").body == first.manifest.encode()


def test_a_manifest_naming_a_missing_blob_is_refused(v2, repo):
    config, layers = new_blobs(1)
    v2.push_blob(repo, config)
    answer = v2.push_manifest(repo, "v1", image_manifest(config, layers), DOCKER_MANIFEST)
    assert answer.status == 400 and answer.error_code == "MANIFEST_BLOB_UNKNOWN"


def test_tags_list_pages_in_lexical_order(v2, ecr, repo):
    pushed = push_image(ecr, repo)
    tags = ["b", "a", "c", "a1", "B"]
    for tag in tags:
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=tag)
    first = v2.request("GET", f"/v2/{repo}/tags/list?n=2")
    assert first.status == 200 and first.json() == {"name": repo, "tags": ["B", "a"]}
    link = first.header("link")
    assert link.startswith("<") and link.endswith('>; rel="next"')
    rest = v2.request("GET", link[1 : link.index(">")])
    assert rest.json()["tags"] == ["a1", "b"]
    assert v2.request("GET", f"/v2/{repo}/tags/list").json()["tags"] == sorted(tags)
    assert v2.request("GET", f"/v2/{repo}/tags/list?n=1001").error_code == "UNSUPPORTED"


def test_referrers_of_a_subject(v2, ecr, repo):
    subject = push_image(ecr, repo, tag="v1", oci=True)
    config, layers = new_blobs(1)
    for blob in (config, *layers):
        v2.push_blob(repo, blob)
    document = json.loads(image_manifest(config, layers, oci=True))
    document["artifactType"] = "application/vnd.example.sbom"
    document["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest)}
    sbom = json.dumps(document)
    put = v2.push_manifest(repo, sha256(sbom.encode()), sbom, OCI_MANIFEST)
    assert put.status == 201 and put.header("oci-subject") == subject.digest
    answer = v2.request("GET", f"/v2/{repo}/referrers/{subject.digest}")
    assert answer.status == 200 and answer.header("content-type") == OCI_INDEX
    (entry,) = answer.json()["manifests"]
    assert entry == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(sbom.encode()),
        "size": len(sbom.encode()),
        "artifactType": "application/vnd.example.sbom",
    }
    filtered = v2.request("GET", f"/v2/{repo}/referrers/{subject.digest}?artifactType=text/plain")
    assert filtered.json()["manifests"] == [] and filtered.header("oci-filters-applied") == "artifactType"


def test_delete_a_manifest(v2, ecr, repo):
    pushed = push_image(ecr, repo, tag="v1")
    assert v2.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}").status == 202
    assert ecr.describe_images(repositoryName=repo)["imageDetails"] == []
    gone = v2.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}")
    assert gone.status == 404 and gone.error_code == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize(
    "method, path, code, status",
    [
        ("GET", "/v2/_catalog", "UNSUPPORTED", 405),
        ("DELETE", "/v2/{repo}/blobs/" + sha256(b"x"), "UNSUPPORTED", 405),
        ("GET", "/v2/{repo}-missing/manifests/v1", "NAME_UNKNOWN", 404),
        ("GET", "/v2/Bad_Name!/manifests/v1", "NAME_INVALID", 400),
        ("GET", "/v2/{repo}/manifests/v1", "MANIFEST_UNKNOWN", 404),
        ("GET", "/v2/{repo}/manifests/bad@tag", "TAG_INVALID", 400),
        ("GET", "/v2/{repo}/blobs/" + sha256(b"x"), "BLOB_UNKNOWN", 404),
        ("GET", "/v2/{repo}/blobs/sha256:xyz", "DIGEST_INVALID", 400),
        ("GET", "/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000", "BLOB_UPLOAD_UNKNOWN", 404),
        ("PATCH", "/v2/{repo}/manifests/v1", "UNSUPPORTED", 405),
    ],
)
def test_refusals_have_the_spec_code(v2, repo, method, path, code, status):
    answer = v2.request(method, path.format(repo=repo))
    assert (answer.status, answer.error_code) == (status, code), answer.body
    assert answer.header("docker-distribution-api-version") == V2


@pytest.mark.local_only  # the emulator's API Gateway applies no payload limit; AWS's does
def test_a_body_past_what_reaches_the_function_is_size_invalid(v2, repo):
    started = v2.request("POST", f"/v2/{repo}/blobs/uploads/")
    answer = v2.request(
        "PATCH",
        started.header("location"),
        body=os.urandom(5 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status == 413 and answer.error_code == "SIZE_INVALID"
    assert "4.4 MiB" in answer.json()["errors"][0]["message"]
