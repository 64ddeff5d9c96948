"""Property-based fuzzing of the `/v2` API on every route, logged in: methods, paths (names,
references, digests, upload ids, garbage), queries, headers (Content-Range, Accept, Content-Type)
and bodies (random bytes, broken and real-looking manifests) drawn by hypothesis.

Every answer: never a 5xx; an error is the spec's JSON error body with one of its codes and the
status that code goes with; every answer carries Docker-Distribution-Api-Version. A refused
request made no successful write to DynamoDB or S3 (the handler's own clients, journaled by
local/faults.py), but for ending its upload (a refused POST or PUT ?digest=, as Distribution). Afterwards
every invariant of invariants.py holds. `make test` runs 900 requests; `make fuzz`
(REGISTRY_FUZZ_PROFILE=fuzz) fifteen times as many.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
from distribution import Client, login_header, sha256
from harness import WRITES, IsolatedRegistry
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from invariants import ObjectReader, assert_invariants, read_state
from support import OCI_MANIFEST, image_manifest, new_blobs, push_image, upload_blob

pytestmark = pytest.mark.local_only
# The spec's codes (and those we add for what ECR answers), each with the statuses it may come with.
CODES = {
    "BLOB_UNKNOWN": {404},
    "BLOB_UPLOAD_INVALID": {400, 416},
    "BLOB_UPLOAD_UNKNOWN": {404},
    "DIGEST_INVALID": {400},
    "MANIFEST_BLOB_UNKNOWN": {400},
    "MANIFEST_INVALID": {400},
    "MANIFEST_UNKNOWN": {404},
    "NAME_INVALID": {400},
    "NAME_UNKNOWN": {404},
    "SIZE_INVALID": {413},
    "UNAUTHORIZED": {401},
    "DENIED": {403},
    "UNSUPPORTED": {400, 404, 405},
    "TAG_INVALID": {400},
}
_common = {
    "deadline": None,
    "print_blob": True,
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("distribution-ci", max_examples=300, derandomize=True, **_common)
settings.register_profile("distribution-fuzz", max_examples=4500, **_common)
PROFILE = settings.get_profile("distribution-" + os.environ.get("REGISTRY_FUZZ_PROFILE", "ci"))


@pytest.fixture(scope="module")
def world(backends, tmp_path_factory):
    stack = IsolatedRegistry(backends, workers=4, faults_dir=tmp_path_factory.mktemp("fuzz-v2"))
    ecr = stack.ecr()
    for name in ("fz/v2", "fz/v2-immutable"):
        ecr.create_repository(repositoryName=name)
    ecr.put_image_tag_mutability(repositoryName="fz/v2-immutable", imageTagMutability="IMMUTABLE")
    pushed = push_image(ecr, "fz/v2", tag="v1", oci=True)
    config, layers = new_blobs(1)
    blobs = [upload_blob(ecr, "fz/v2", b) for b in (config, *layers)]
    pushable = image_manifest(config, layers, oci=True)
    upload = ecr.initiate_layer_upload(repositoryName="fz/v2")["uploadId"]
    stack.client = Client(stack.endpoint, login_header(ecr))
    stack.facts = {
        "names": ["fz/v2", "fz/v2-immutable", "fz/missing", "Bad!", "a" * 300, "fz/v2/blobs", ""],
        "references": ["v1", "latest", pushed.digest, sha256(b"none"), "bad@tag", "sha256:xyz", "-x", "é"],
        "digests": [*blobs, pushed.digest, sha256(b"none"), "md5:abc", "sha256:" + "A" * 64, "sha256:", "x"],
        "uploads": [upload, "00000000-0000-4000-8000-000000000000", "../x", "x" * 300],
        "manifests": [pushable, pushed.manifest, "{}", "[1]", '{"schemaVersion": 2', ""],
    }
    yield stack
    stack.stop()


def requests(facts: dict) -> st.SearchStrategy:
    name, reference = st.sampled_from(facts["names"]), st.sampled_from(facts["references"])
    digest, upload = st.sampled_from(facts["digests"]), st.sampled_from(facts["uploads"])
    text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
    # Header values travel as Latin-1 and paths as percent-encoded UTF-8, as every HTTP client sends them.
    header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
    path = st.one_of(
        st.just("/v2/"),
        st.just("/v2/_catalog"),
        st.builds(lambda n, r: f"/v2/{n}/manifests/{r}", name, reference),
        st.builds(lambda n, d: f"/v2/{n}/blobs/{d}", name, digest),
        st.builds(lambda n: f"/v2/{n}/blobs/uploads/", name),
        st.builds(lambda n, u: f"/v2/{n}/blobs/uploads/{u}", name, upload),
        st.builds(lambda n: f"/v2/{n}/tags/list", name),
        st.builds(lambda n, d: f"/v2/{n}/referrers/{d}", name, digest),
        text.map(lambda t: "/v2/" + "".join(c for c in t if c.isprintable() and c not in " ?#%")),
    ).map(lambda p: quote(p, safe="/:@!$&'()*+,;=-._~"))
    name, reference, digest = (s.map(lambda v: quote(v, safe="/:@")) for s in (name, reference, digest))
    query = st.one_of(
        st.just(""),
        st.builds(lambda d: f"?digest={d}", digest),
        st.builds(lambda d, n: f"?mount={d}&from={n}", digest, name),
        st.builds(
            lambda n, last: f"?n={n}&last={last}",
            st.sampled_from(["1", "0", "-1", "1001", "x", "999999999999"]),
            reference,
        ),
        st.builds(lambda t: f"?artifactType={t}", st.sampled_from(["text/plain", "", "x"])),
    )
    headers = st.fixed_dictionaries(
        {},
        optional={
            "Content-Range": st.one_of(
                st.sampled_from(["0-2", "3-5", "0-0", "5-1", "bytes=0-2", "x", "0-99999999999"]), header_text
            ),
            "Accept": st.one_of(st.sampled_from([OCI_MANIFEST, "*/*", "a/b, c/d;q=0.5", "garbage"]), header_text),
            "Content-Type": st.sampled_from(
                [OCI_MANIFEST, "application/octet-stream", "application/json", "text/plain"]
            ),
        },
    )
    body = st.one_of(
        st.just(b""), st.binary(max_size=2048), st.sampled_from(facts["manifests"]).map(lambda m: m.encode())
    )
    method = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    return st.tuples(method, path, query, headers, body)


def staged(world) -> tuple:
    """What an upload leaves behind until it ends: open upload items, objects, multipart uploads."""
    state = read_state(world.backends)
    open_uploads = sorted(u["upload_id"] for u in state.uploads if "completed_digest" not in u)
    return open_uploads, sorted(state.objects), sorted(state.multipart)


@pytest.mark.parametrize("batch", range(3))
def test_every_route_answers_as_the_spec_says(world, batch):
    @PROFILE
    @given(requests(world.facts))
    def check(request):
        method, path, query, headers, body = request
        # A refused closing request (POST or PUT ?digest=) ends its upload: nothing staged may be left.
        before = staged(world) if method in ("POST", "PUT") and "digest=" in query else None
        world.clear_journal()
        answer = world.client.request(method, path + query, body=body or None, headers=headers)
        assert answer.status < 500, (request, answer.status, answer.body[:500])
        if path.startswith("/v2"):
            assert answer.header("docker-distribution-api-version") == "registry/2.0", (request, answer.headers)
        if answer.status >= 400 and method != "HEAD" and answer.body:
            document = json.loads(answer.body)
            if "errors" in document:
                (error,) = document["errors"]
                assert error["code"] in CODES and answer.status in CODES[error["code"]], (request, answer.status, error)
                written = [c for c in world.journal() if c.get("ok") and c["operation"] in WRITES]
                if written:
                    tables = {c["table"] for c in written if c["service"] == "dynamodb"}
                    assert before is not None and tables <= {world.backends.tables["uploads"]}, (request, written)
                    after = staged(world)
                    left = [sorted(set(a) - set(b)) for a, b in zip(after, before, strict=True)]
                    assert not any(left), (request, answer.status, [c["operation"] for c in written], left)
            else:  # API Gateway's own answer for what is no route
                assert answer.status in (403, 404), (request, answer.status, document)

    check()
    assert_invariants(world.backends, ObjectReader(world.backends))
