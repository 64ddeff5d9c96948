"""`registry.manifests.parse`: one parser per media type, and what each manifest references.

What PutImage needs from a manifest: its media type (declared by
`imageManifestMediaType` or the document's own `mediaType`, never contradicting), the blobs that
must already be in the repository (config and distributable layers: a layer with `urls` lives
elsewhere), the images a list/index references, and, for OCI 1.1, the artifact type and subject.
Anything else that is not a valid instance of its media type is InvalidParameterException.
"""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import manifests
from registry.errors import InvalidParameterException

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # of b"{}"


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def descriptor(media_type: str, seed: str, size: int = 100, **extra) -> dict:
    return {"mediaType": media_type, "digest": digest(seed), "size": size, **extra}


def docker_manifest() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", "config", 1470),
        "layers": [
            descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", "layer-1", 2_000_000),
            descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", "layer-2", 300),
        ],
    }


def windows_manifest() -> dict:
    document = docker_manifest()
    document["layers"].insert(
        0,
        descriptor(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "windows-base",
            1_000_000_000,
            urls=["https://mcr.microsoft.com/v2/windows/blobs/x"],
        ),
    )
    return document


def docker_list() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            descriptor(DOCKER_MANIFEST, "amd64", 528, platform={"architecture": "amd64", "os": "linux"}),
            descriptor(
                DOCKER_MANIFEST, "arm64", 528, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}
            ),
        ],
    }


def oci_manifest() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", "oci-config", 700),
        "layers": [
            descriptor(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "oci-layer",
                32_654,
                annotations={"org.opencontainers.image.title": "layer.tar.gz"},
            )
        ],
        "annotations": {"org.opencontainers.image.created": "2026-11-26T00:00:00Z"},
    }


def oci_index() -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, "oci-amd64", 1000, platform={"architecture": "amd64", "os": "linux"}),
            # buildx attestations: an image manifest with an "unknown/unknown" platform
            descriptor(
                OCI_MANIFEST,
                "attestation",
                800,
                platform={"architecture": "unknown", "os": "unknown"},
                annotations={"vnd.docker.reference.type": "attestation-manifest"},
            ),
            descriptor(OCI_INDEX, "nested-index", 300),
        ],
    }


def oci_artifact(subject: bool) -> dict:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [descriptor("application/spdx+json", "sbom", 5000)],
    }
    if subject:
        document["subject"] = descriptor(OCI_MANIFEST, "the-image", 1000)
    return document


def parse(document, declared: str | None = None):
    return manifests.parse(document if isinstance(document, str) else json.dumps(document), declared)


# --- accepted kinds -------------------------------------------------------------------------------


def test_docker_v2_manifest_references_its_config_and_layers():
    manifest = parse(docker_manifest())
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.blob_digests == [digest("config"), digest("layer-1"), digest("layer-2")]
    assert [d.digest for d in manifest.layers] == [digest("layer-1"), digest("layer-2")]
    assert [d.size for d in manifest.layers] == [2_000_000, 300]
    assert manifest.child_digests == []
    assert manifest.artifact_media_type == "application/vnd.docker.container.image.v1+json"
    assert manifest.subject_digest is None


def test_foreign_layers_are_not_blobs_to_check_but_are_layers():
    manifest = parse(windows_manifest())
    assert digest("windows-base") not in manifest.blob_digests
    assert manifest.blob_digests == [digest("config"), digest("layer-1"), digest("layer-2")]
    assert next(d.digest for d in manifest.layers) == digest("windows-base")
    assert manifest.layers[0].foreign and not manifest.layers[1].foreign


def test_a_layer_with_an_empty_urls_list_is_not_foreign():
    document = docker_manifest()
    document["layers"][0]["urls"] = []
    assert digest("layer-1") in parse(document).blob_digests


def test_docker_manifest_list_references_its_images():
    manifest = parse(docker_list())
    assert manifest.media_type == DOCKER_LIST
    assert manifest.child_digests == [digest("amd64"), digest("arm64")]
    assert manifest.blob_digests == []


def test_oci_manifest_references_its_config_and_layers():
    manifest = parse(oci_manifest())
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.blob_digests == [digest("oci-config"), digest("oci-layer")]
    assert manifest.artifact_media_type == "application/vnd.oci.image.config.v1+json"


def test_oci_index_references_its_manifests_and_nested_indexes():
    manifest = parse(oci_index())
    assert manifest.media_type == OCI_INDEX
    assert manifest.child_digests == [digest("oci-amd64"), digest("attestation"), digest("nested-index")]
    assert manifest.blob_digests == []


@pytest.mark.parametrize("subject", [False, True], ids=["no-subject", "subject"])
def test_oci_artifact_with_empty_config(subject):
    manifest = parse(oci_artifact(subject))
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.artifact_media_type == "application/vnd.example.sbom.v1+json"
    assert manifest.blob_digests == [EMPTY_DIGEST, digest("sbom")]
    # OCI 1.1: the subject need not exist, so it is reported, not required as a blob or child.
    assert manifest.subject_digest == (digest("the-image") if subject else None)
    assert manifest.child_digests == []


def test_oci_artifact_with_no_layers_but_the_empty_descriptor():
    document = oci_artifact(subject=True)
    document["layers"] = [{"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}]
    assert parse(document).blob_digests == [EMPTY_DIGEST]  # one blob, listed once


def test_oci_index_with_artifact_type_and_subject():
    document = {
        **oci_index(),
        "artifactType": "application/vnd.example+type",
        "subject": descriptor(OCI_MANIFEST, "subject", 10),
    }
    manifest = parse(document)
    assert manifest.artifact_media_type == "application/vnd.example+type"
    assert manifest.subject_digest == digest("subject")


def test_repeated_digests_are_reported_once():
    document = docker_manifest()
    document["layers"].append(copy.deepcopy(document["layers"][0]))
    assert parse(document).blob_digests == [digest("config"), digest("layer-1"), digest("layer-2")]


def test_sha512_digests_are_accepted():
    document = oci_manifest()
    document["layers"][0]["digest"] = "sha512:" + "ab" * 64
    assert "sha512:" + "ab" * 64 in parse(document).blob_digests


# --- the media type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,media_type",
    [
        (docker_manifest, DOCKER_MANIFEST),
        (docker_list, DOCKER_LIST),
        (oci_manifest, OCI_MANIFEST),
        (oci_index, OCI_INDEX),
    ],
)
def test_media_type_from_the_declaration_or_the_document(build, media_type):
    document = build()
    assert parse(document).media_type == media_type  # the document's own field
    assert parse(document, media_type).media_type == media_type  # both, agreeing
    del document["mediaType"]
    assert parse(document, media_type).media_type == media_type  # the declaration alone


def test_an_empty_declaration_is_no_declaration():
    assert parse(oci_manifest(), "").media_type == OCI_MANIFEST


def test_neither_declared_nor_in_the_document_is_invalid():
    document = oci_manifest()
    del document["mediaType"]
    with pytest.raises(InvalidParameterException):
        parse(document)


@pytest.mark.parametrize(
    "build,declared",
    [
        (docker_manifest, OCI_MANIFEST),
        (oci_manifest, DOCKER_MANIFEST),
        (docker_list, OCI_INDEX),
        (oci_index, DOCKER_MANIFEST),
    ],
)
def test_a_declaration_contradicting_the_document_is_invalid(build, declared):
    with pytest.raises(InvalidParameterException, match="imageManifestMediaType"):
        parse(build(), declared)


@pytest.mark.parametrize(
    "media_type",
    [
        # (Docker schema 1 is left out on purpose: ECR accepts it as legacy, whether we do is a product choice.)
        "text/plain",
        "application/json",
        "application/vnd.oci.image.config.v1+json",
        OCI_EMPTY,
        DOCKER_MANIFEST.upper(),
        DOCKER_MANIFEST + " ",
    ],
)
def test_unsupported_media_types_are_invalid(media_type):
    document = oci_manifest()
    del document["mediaType"]
    with pytest.raises(InvalidParameterException):
        parse(document, media_type)
    with pytest.raises(InvalidParameterException):
        parse({**document, "mediaType": media_type})


@pytest.mark.parametrize("value", [1, True, ["a"], {"a": "b"}])
def test_a_media_type_field_that_is_not_a_string_is_invalid(value):
    with pytest.raises(InvalidParameterException):
        parse({**oci_manifest(), "mediaType": value}, OCI_MANIFEST)


# --- documents that are not manifests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{",
        '{"schemaVersion": 2,}',
        "[]",
        '"manifest"',
        "2",
        "null",
        "true",
        '{"schemaVersion": NaN}',
        '{"schemaVersion": Infinity}',
        "[" * 100_000 + "]" * 100_000,
        '{"a":' + '{"a":' * 50_000 + "1" + "}" * 50_001,
    ],
    ids=[
        "empty",
        "text",
        "truncated",
        "trailing-comma",
        "array",
        "string",
        "number",
        "null",
        "bool",
        "nan",
        "infinity",
        "deep-array",
        "deep-object",
    ],
)
def test_text_that_is_not_a_json_object_is_invalid(text):
    with pytest.raises(InvalidParameterException):
        manifests.parse(text, OCI_MANIFEST)


@pytest.mark.parametrize("version", [None, 1, 3, "2", 2.5, True, [2]])
@pytest.mark.parametrize("build", [docker_manifest, docker_list, oci_manifest, oci_index])
def test_schema_version_must_be_2(build, version):
    document = build()
    if version is None:
        del document["schemaVersion"]
    else:
        document["schemaVersion"] = version
    with pytest.raises(InvalidParameterException):
        parse(document)


def test_schema_version_2_0_is_not_the_integer_2():
    # Docker and containerd decode schemaVersion into an int: 2.0 is not a schema version there.
    with pytest.raises(InvalidParameterException):
        manifests.parse(json.dumps(oci_manifest()).replace('"schemaVersion": 2', '"schemaVersion": 2.0'), None)


# --- descriptors -------------------------------------------------------------------------------------


BAD_DESCRIPTORS = {
    "digest-missing": {"digest": None},
    "digest-number": {"digest": 12},
    "digest-no-algorithm": {"digest": "a" * 64},
    "digest-empty-encoded": {"digest": "sha256:"},
    "digest-short": {"digest": "sha256:abc"},
    "digest-long": {"digest": "sha256:" + "a" * 65},
    "digest-uppercase-sha256": {"digest": "sha256:" + "A" * 64},
    "digest-not-hex": {"digest": "sha256:" + "g" * 64},
    "digest-space": {"digest": "sha256: " + "a" * 63},
    "digest-newline": {"digest": "sha256:" + "a" * 64 + "\n"},
    "digest-uppercase-algorithm": {"digest": "SHA256:" + "a" * 64},
    "size-missing": {"size": None},
    "size-negative": {"size": -1},
    "size-string": {"size": "100"},
    "size-float": {"size": 1.5},
    "size-bool": {"size": True},
    "media-type-missing": {"mediaType": None},
    "media-type-number": {"mediaType": 1},
    "media-type-empty": {"mediaType": ""},
    "media-type-no-slash": {"mediaType": "tar"},
    "media-type-space": {"mediaType": "application/x tar"},
    "media-type-two-slashes": {"mediaType": "application/x/tar"},
    "urls-string": {"urls": "https://example.com/x"},
    "urls-numbers": {"urls": [1]},
    "annotations-list": {"annotations": ["a"]},
    "annotations-number-value": {"annotations": {"a": 1}},
}


def _with(descriptor_value: dict, change: dict) -> dict:
    result = {**descriptor_value, **change}
    return {k: v for k, v in result.items() if v is not None}


@pytest.mark.parametrize("change", BAD_DESCRIPTORS.values(), ids=BAD_DESCRIPTORS.keys())
@pytest.mark.parametrize("where", ["config", "layer", "child", "subject"])
def test_bad_descriptors_are_invalid(where, change):
    if where == "config":
        document = oci_manifest()
        document["config"] = _with(document["config"], change)
    elif where == "layer":
        document = docker_manifest()
        document["layers"][1] = _with(document["layers"][1], change)
    elif where == "child":
        document = oci_index()
        document["manifests"][0] = _with(document["manifests"][0], change)
    else:
        document = oci_artifact(subject=True)
        document["subject"] = _with(document["subject"], change)
    with pytest.raises(InvalidParameterException):
        parse(document)


@pytest.mark.parametrize("value", [None, "sha256:x", [], 1])
def test_a_descriptor_that_is_not_an_object_is_invalid(value):
    document = docker_manifest()
    document["layers"].append(value)
    with pytest.raises(InvalidParameterException):
        parse(document)


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.in-toto+json",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        "application/octet-stream",
        "text/plain",
    ],
)
def test_real_world_layer_media_types_are_accepted(media_type):
    document = oci_manifest()
    document["layers"][0]["mediaType"] = media_type
    assert parse(document).layers[0].media_type == media_type


def test_unknown_digest_algorithms_follow_the_grammar_only():
    document = oci_manifest()
    document["layers"][0]["digest"] = "blake3+extra:" + "Zz09_-=" * 4
    assert parse(document).blob_digests[-1] == "blake3+extra:" + "Zz09_-=" * 4


# --- shapes of the documents -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,declared,change",
    [
        (docker_manifest, None, {"config": None}),
        (docker_manifest, None, {"layers": None}),
        (docker_manifest, None, {"layers": {"a": 1}}),
        (docker_manifest, None, {"config": [1]}),
        (oci_manifest, None, {"annotations": ["a"]}),
        (oci_manifest, None, {"annotations": {"a": None}}),
        (oci_artifact, None, {"artifactType": 7}),
        (oci_artifact, None, {"artifactType": "not a media type"}),
        (docker_list, None, {"manifests": None}),
        (docker_list, None, {"manifests": {"a": 1}}),
        (oci_index, None, {"manifests": "x"}),
        (oci_index, None, {"annotations": {"a": 1}}),
        (oci_index, None, {"artifactType": ["x"]}),
    ],
    ids=[
        "no-config",
        "no-layers",
        "layers-object",
        "config-list",
        "annotations-list",
        "annotations-null",
        "artifact-type-number",
        "artifact-type-not-a-media-type",
        "no-manifests",
        "manifests-object",
        "manifests-string",
        "index-annotations",
        "index-artifact-type",
    ],
)
def test_malformed_documents_are_invalid(build, declared, change):
    document = build(subject=True) if build is oci_artifact else build()
    for key, value in change.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    with pytest.raises(InvalidParameterException):
        parse(document, declared)


@pytest.mark.parametrize(
    "platform", ["linux/amd64", {"os": "linux"}, {"architecture": "amd64"}, {"architecture": 1, "os": "linux"}, []]
)
def test_index_platforms_need_architecture_and_os(platform):
    document = docker_list()
    document["manifests"][0]["platform"] = platform
    with pytest.raises(InvalidParameterException):
        parse(document)


def test_a_list_declared_as_a_manifest_is_invalid():
    document = docker_list()
    del document["mediaType"]
    with pytest.raises(InvalidParameterException):
        parse(document, DOCKER_MANIFEST)


def test_a_manifest_declared_as_a_list_is_invalid():
    document = oci_manifest()
    del document["mediaType"]
    with pytest.raises(InvalidParameterException):
        parse(document, OCI_INDEX)


@pytest.mark.parametrize(
    "build,extra",
    [
        (docker_manifest, {"manifests": []}),
        (oci_manifest, {"manifests": docker_list()["manifests"]}),
        (docker_list, {"config": docker_manifest()["config"]}),
        (oci_index, {"layers": []}),
    ],
)
def test_mixing_list_and_manifest_members_is_invalid(build, extra):
    with pytest.raises(InvalidParameterException):
        parse({**build(), **extra})


def test_the_document_is_parsed_as_sent_not_reserialized():
    # Key order and whitespace are the client's: parsing must not depend on a canonical form.
    text = (
        '{\n  "layers": [],\n  "config": '
        + json.dumps(oci_manifest()["config"])
        + ',\n  "mediaType": "'
        + OCI_MANIFEST
        + '",   "schemaVersion": 2\n}\n'
    )
    assert parse(text).blob_digests == [digest("oci-config")]


# --- robustness: whatever the document, InvalidParameterException or a manifest ----------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from([DOCKER_MANIFEST, OCI_INDEX, digest("x"), 2]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["mediaType", "digest", "size", "urls", "platform", "os", "architecture", "a"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replace(document, path, new):
    if not path:
        return new
    document = copy.deepcopy(document)
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return document


BUILDERS = [docker_manifest, windows_manifest, docker_list, oci_manifest, oci_index, lambda: oci_artifact(True)]


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_valid_manifest_parses_or_is_invalid_parameter(data):
    document = data.draw(st.sampled_from(BUILDERS))()
    path = data.draw(st.sampled_from(list(_paths(document))))
    mutated = _replace(document, path, data.draw(_JSON))
    declared = data.draw(st.sampled_from([None, "", DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX]))
    try:
        manifest = parse(mutated, declared)
    except InvalidParameterException as error:
        error.message.encode("utf-8")  # the message goes on the wire
        return
    assert manifest.media_type in manifests.PARSERS
    for blob in manifest.blobs + manifest.children:
        assert isinstance(blob.digest, str) and isinstance(blob.size, int)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(max_size=64))
def test_any_text_parses_or_is_invalid_parameter(text):
    try:
        manifests.parse(text, OCI_MANIFEST)
    except InvalidParameterException:
        pass


def test_error_messages_with_lone_surrogates_from_the_document_can_be_encoded():
    # json.loads turns the escape "\\ud800" into a lone surrogate; a message quoting it raw could not
    # be sent as UTF-8.
    text = json.dumps(oci_manifest()).replace(OCI_MANIFEST, "application/vnd.x\\ud800+json")
    with pytest.raises(InvalidParameterException) as caught:
        manifests.parse(text, OCI_MANIFEST)
    caught.value.message.encode("utf-8")
