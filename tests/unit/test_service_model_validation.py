"""`service_model.read_input`: the server-side half of botocore's validation, driven by the model.

botocore checks required members, types and minimums on the client; a caller that is not botocore
(or a botocore with validation off) reaches us with anything. The cases below are generated from the
input shapes of every operation we serve, so a member added to the model is covered without
retyping its limits here; only a valid example per *pattern* is written by hand (EXAMPLES), and a
test fails when the model grows a pattern-constrained shape that has none.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterator

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import service_model
from registry.errors import InvalidParameterException, SerializationException
from registry.operations import OPERATIONS


@functools.cache
def _model():
    """The same model as the `ecr_model` fixture, for parametrisation at collection time."""
    return botocore.session.get_session().get_service_model("ecr")


# A key that is not a model operation is reported by test_operation_table, not as a collection error.
SERVED = sorted(op for op in OPERATIONS if op in _model().operation_names)

# One valid value per pattern-constrained string shape (by shape name), written by hand.
EXAMPLES = {
    "RegistryId": "123456789012",
    "RepositoryName": "team/app-1",
    "UploadId": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "LayerDigest": "sha256:" + "a" * 64,
    "ImageTagMutabilityExclusionFilterValue": "release-*",
}


# --- walking the model -------------------------------------------------------------------------


def _walk(shape, path: tuple = (), seen: frozenset = frozenset()) -> Iterator[tuple[tuple, object]]:
    """(path, shape) of every member below `shape`; a list's element is the path step "[]"."""
    if shape.name in seen:  # recursive shapes: visit once per branch
        return
    seen = seen | {shape.name}
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            yield (*path, name), member
            yield from _walk(member, (*path, name), seen)
    elif shape.type_name == "list":
        yield (*path, "[]"), shape.member
        yield from _walk(shape.member, (*path, "[]"), seen)
    elif shape.type_name == "map":
        yield (*path, "{}"), shape.value
        yield from _walk(shape.value, (*path, "{}"), seen)


def _input_shape(ecr_model, op):
    return ecr_model.operation_model(op).input_shape


def minimal(shape):
    """The smallest valid JSON value of a shape: required members only, shortest lists."""
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        return {name: minimal(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [minimal(shape.member)] * max(meta.get("min", 0), 1)
    if kind == "map":
        return {}
    if kind == "string":
        if "enum" in meta:
            return meta["enum"][0]
        if "pattern" in meta:
            assert shape.name in EXAMPLES, f"add a valid example of {shape.name} (pattern {meta['pattern']})"
            return EXAMPLES[shape.name]
        return "a" * max(meta.get("min", 0), 1)
    if kind in ("integer", "long"):
        return max(meta.get("min", 1), 1) if meta.get("max", 1) >= 1 else meta["max"]
    if kind == "boolean":
        return True
    if kind == "blob":
        return base64.b64encode(b"x" * max(meta.get("min", 0), 1)).decode()
    if kind in ("double", "float", "timestamp"):
        return 1.0
    raise AssertionError(f"no minimal value for {kind}")


def with_value(shape, path: tuple, value):
    """A minimal valid input of `shape` with the member at `path` set to `value`."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if shape.type_name == "structure":
        return {**minimal(shape), step: with_value(shape.members[step], rest, value)}
    if shape.type_name == "list":
        return [with_value(shape.member, rest, value)]
    raise AssertionError(f"cannot descend into {shape.type_name} at {path}")


def _cases(ecr_model, wanted) -> list:
    cases = []
    for op in SERVED:
        for path, shape in _walk(_input_shape(ecr_model, op)):
            cases.extend(
                pytest.param(op, path, shape, *extra, id=f"{op}.{'.'.join(path)}-{label}")
                for label, *extra in wanted(shape)
            )
    return cases


def _violations(shape) -> Iterator[tuple]:
    """(label, violating JSON value, text the message must contain) for each constraint."""
    meta, kind = shape.metadata, shape.type_name
    if kind == "string":
        if meta.get("min", 0) > 0:
            yield "short", "a" * (meta["min"] - 1), f"greater than or equal to {meta['min']}"
        if "max" in meta:
            yield "long", "a" * (meta["max"] + 1), f"less than or equal to {meta['max']}"
        if "enum" in meta:
            yield "enum", "NOT_A_MEMBER_OF_THE_ENUM", "enum"
            yield "enum-case", meta["enum"][0].lower(), "enum"
        if "pattern" in meta:
            # Every pattern of the ECR input shapes excludes '!': a valid value plus '!' fails.
            bad = minimal(shape) + "!"
            assert not re.fullmatch(meta["pattern"], bad)
            yield "pattern", bad, "regular expression"
    elif kind in ("integer", "long"):
        if "min" in meta:
            yield "below", meta["min"] - 1, f"greater than or equal to {meta['min']}"
        if "max" in meta:
            yield "above", meta["max"] + 1, f"less than or equal to {meta['max']}"
    elif kind == "list":
        if meta.get("min", 0) > 0:
            yield "empty", [], f"greater than or equal to {meta['min']}"
        if "max" in meta:
            yield "long", [minimal(shape.member)] * (meta["max"] + 1), f"less than or equal to {meta['max']}"
    elif kind == "blob" and "max" in meta:
        yield "long", base64.b64encode(bytes(meta["max"] + 1)).decode(), f"less than or equal to {meta['max']}"


def _wrong_types(shape) -> Iterator[tuple]:
    """(label, value of the wrong JSON type) for a member's shape."""
    kind = shape.type_name
    wrong = {
        "string": [("number", 1), ("bool", True), ("list", ["a"]), ("object", {"a": "b"})],
        "integer": [("string", "1"), ("bool", True), ("fraction", 1.5), ("list", [1])],
        "long": [("string", "1"), ("bool", False), ("fraction", 0.5), ("object", {})],
        "boolean": [("string", "true"), ("number", 1), ("list", [])],
        "list": [("object", {}), ("string", "a"), ("number", 1)],
        "structure": [("list", []), ("string", "a"), ("number", 1)],
        "blob": [("number", 1), ("list", []), ("bool", True)],
        "map": [("list", []), ("string", "a")],
    }
    yield from wrong.get(kind, [])


# --- every operation we serve ------------------------------------------------------------------


def test_every_pattern_shape_we_serve_has_an_example_that_matches_it(ecr_model):
    for op in SERVED:
        for _, shape in _walk(_input_shape(ecr_model, op)):
            pattern = shape.metadata.get("pattern")
            if pattern:
                assert shape.name in EXAMPLES, f"{op}: add a valid example of {shape.name}"
                assert re.fullmatch(pattern, EXAMPLES[shape.name]), shape.name


@pytest.mark.parametrize("op", SERVED)
def test_minimal_input_from_the_model_is_accepted_and_returned_unchanged(ecr_model, op):
    body = minimal(_input_shape(ecr_model, op))
    params = service_model.read_input(op, json.loads(json.dumps(body)))
    expected = {
        k: base64.b64decode(v) if _input_shape(ecr_model, op).members[k].type_name == "blob" else v
        for k, v in body.items()
    }
    assert params == expected


@pytest.mark.parametrize("op", SERVED)
def test_each_missing_required_member_is_named(ecr_model, op):
    shape = _input_shape(ecr_model, op)
    body = minimal(shape)
    for name in shape.required_members:
        for missing in ({k: v for k, v in body.items() if k != name}, {**body, name: None}):
            with pytest.raises(InvalidParameterException, match=re.escape(f"'{name}'")):
                service_model.read_input(op, missing)


@pytest.mark.parametrize(
    "op", [op for op in SERVED if len(_model().operation_model(op).input_shape.required_members) > 1]
)
def test_every_missing_required_member_is_listed_at_once(ecr_model, op):
    required = _input_shape(ecr_model, op).required_members
    with pytest.raises(InvalidParameterException) as caught:
        service_model.read_input(op, {})
    for name in required:
        assert f"'{name}'" in caught.value.message
    assert f"{len(required)} validation errors" in caught.value.message


@pytest.mark.parametrize(("op", "path", "shape", "value", "expected"), _cases(_model(), _violations))
def test_constraint_violation_is_invalid_parameter(op, path, shape, value, expected, ecr_model):
    body = with_value(_input_shape(ecr_model, op), path, value)
    with pytest.raises(InvalidParameterException) as caught:
        service_model.read_input(op, body)
    leaf = [step for step in path if step not in ("[]", "{}")][-1]
    assert leaf in caught.value.message
    assert expected in caught.value.message
    assert caught.value.status == 400


def _boundaries(shape) -> Iterator[tuple]:
    """(label, valid JSON value on a limit) for each constraint a value can sit on."""
    meta, kind = shape.metadata, shape.type_name
    if kind == "string" and "enum" not in meta:
        for limit in {meta.get("min", 1) or 1, meta.get("max")} - {None}:
            value = "a" * limit
            if "pattern" not in meta or re.fullmatch(meta["pattern"], value):
                yield f"len{limit}", value
    elif kind == "string":
        for member in meta["enum"]:
            yield member, member
    elif kind in ("integer", "long"):
        for limit in {meta.get("min"), meta.get("max")} - {None}:
            yield f"value{limit}", limit
    elif kind == "list" and "max" in meta:
        yield f"len{meta['max']}", [minimal(shape.member)] * meta["max"]
    elif kind == "blob" and "max" in meta:
        yield f"len{meta['max']}", base64.b64encode(bytes(meta["max"])).decode()


@pytest.mark.parametrize(("op", "path", "shape", "value"), _cases(_model(), _boundaries))
def test_value_on_a_limit_is_accepted(op, path, shape, value, ecr_model):
    service_model.read_input(op, with_value(_input_shape(ecr_model, op), path, value))


@pytest.mark.parametrize(("op", "path", "shape", "value"), _cases(_model(), _wrong_types))
def test_wrong_json_type_is_a_serialization_error(op, path, shape, value, ecr_model):
    with pytest.raises(SerializationException):
        service_model.read_input(op, with_value(_input_shape(ecr_model, op), path, value))


@pytest.mark.parametrize("op", SERVED)
@pytest.mark.parametrize("body", [[], "a", 1, None, True], ids=["list", "string", "number", "null", "bool"])
def test_a_body_that_is_not_an_object_is_a_serialization_error(op, body):
    with pytest.raises(SerializationException):
        service_model.read_input(op, body)


# --- specific rules ------------------------------------------------------------------------------


def test_several_violations_are_all_listed():
    body = {"repositoryName": "UPPER", "imageManifest": "{}", "imageTag": "t" * 301, "registryId": "12"}
    with pytest.raises(InvalidParameterException) as caught:
        service_model.read_input("PutImage", body)
    message = caught.value.message
    assert "3 validation errors" in message
    for name in ("repositoryName", "imageTag", "registryId"):
        assert f"'{name}'" in message


def test_violations_inside_lists_are_all_listed():
    body = {"repositoryName": "ab", "imageIds": [{"imageTag": ""}, {"imageTag": "t" * 301}], "acceptedMediaTypes": []}
    with pytest.raises(InvalidParameterException) as caught:
        service_model.read_input("BatchGetImage", body)
    assert "3 validation errors" in caught.value.message
    assert caught.value.message.count("imageTag") == 2
    assert "acceptedMediaTypes" in caught.value.message


@pytest.mark.parametrize(
    "registry_id",
    ["1234567890123", "x123456789012", "123456789012x", "12345678901", "12345678901\n", "１２３４５６７８９０１２"],
)
def test_patterns_must_match_the_whole_value(registry_id):
    # A prefix or substring match (re.match / re.search) would let these through.
    with pytest.raises(InvalidParameterException, match="registryId"):
        service_model.read_input("DescribeRepositories", {"registryId": registry_id})


@pytest.mark.parametrize("name", ["UPPER", "-ab", "ab-", "a//b", "/ab", "ab/", "a..b", "a b", "ab\n", "ａb"])
def test_repository_names_outside_the_model_pattern_are_rejected(name):
    with pytest.raises(InvalidParameterException, match="repositoryName"):
        service_model.read_input("CreateRepository", {"repositoryName": name})


@pytest.mark.parametrize("name", ["ab", "a-b", "a--b", "a__b", "a.b", "team/app", "a/b/c-d_e.f", "0" * 256])
def test_repository_names_inside_the_model_pattern_are_accepted(name):
    assert service_model.read_input("CreateRepository", {"repositoryName": name})["repositoryName"] == name


def test_unknown_members_are_ignored():
    params = service_model.read_input(
        "ListImages", {"repositoryName": "ab", "bogus": [1, {"x": None}], "filter": {"tagStatus": "ANY", "extra": 1}}
    )
    assert params == {"repositoryName": "ab", "filter": {"tagStatus": "ANY"}}


def test_json_null_is_an_absent_member():
    params = service_model.read_input(
        "DescribeImages",
        {"repositoryName": "ab", "registryId": None, "maxResults": None, "filter": {"tagStatus": None}},
    )
    assert params == {"repositoryName": "ab", "filter": {}}


def test_null_does_not_escape_validation_of_a_required_nested_member():
    body = {
        "repositoryName": "ab",
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": None}],
    }
    with pytest.raises(InvalidParameterException, match="filter"):
        service_model.read_input("PutImageTagMutability", body)


def test_integral_floats_are_integers_and_booleans_are_not():
    params = service_model.read_input("ListImages", {"repositoryName": "ab", "maxResults": 5.0})
    assert params["maxResults"] == 5 and type(params["maxResults"]) is int
    with pytest.raises(SerializationException):
        service_model.read_input("ListImages", {"repositoryName": "ab", "maxResults": True})


def test_large_integers_are_range_checked_not_truncated():
    with pytest.raises(InvalidParameterException, match="maxResults"):
        service_model.read_input("ListImages", {"repositoryName": "ab", "maxResults": 2**64 + 1})


# --- blobs -----------------------------------------------------------------------------------------


def _upload_part(blob):
    return {
        "repositoryName": "ab",
        "uploadId": EXAMPLES["UploadId"],
        "partFirstByte": 0,
        "partLastByte": 3,
        "layerPartBlob": blob,
    }


def test_blob_is_decoded_from_base64():
    assert service_model.read_input("UploadLayerPart", _upload_part("YWJjZA=="))["layerPartBlob"] == b"abcd"
    assert service_model.read_input("UploadLayerPart", _upload_part(""))["layerPartBlob"] == b""


@pytest.mark.parametrize(
    "blob", ["YWJjZA=", "YWJjZA", "not base64!", "YWJj ZA==", "YW Jj", "é", "\ud800", "YWJjZA==YWJj", "-_-_"]
)
def test_invalid_base64_is_a_serialization_error(blob):
    with pytest.raises(SerializationException, match="layerPartBlob"):
        service_model.read_input("UploadLayerPart", _upload_part(blob))


@settings(max_examples=50, deadline=None, database=None)
@given(st.binary(max_size=64))
def test_any_bytes_round_trip_through_base64(data):
    # botocore sends blobs with base64.b64encode: whatever bytes a client uploads arrive unchanged.
    params = service_model.read_input("UploadLayerPart", _upload_part(base64.b64encode(data).decode()))
    assert params["layerPartBlob"] == data


# --- strings that cannot be stored --------------------------------------------------------------


@pytest.mark.parametrize(
    "op,body",
    [
        ("CreateRepository", {"repositoryName": "ab\ud800"}),
        ("PutImage", {"repositoryName": "ab", "imageManifest": "{}", "imageTag": "v\udfff"}),
        ("PutImage", {"repositoryName": "ab", "imageManifest": '{"a":"\ud83d"}'}),
        (
            "BatchGetImage",
            {"repositoryName": "ab", "imageIds": [{"imageTag": "a"}], "acceptedMediaTypes": ["\udc00application/json"]},
        ),
        ("CreateRepository", {"repositoryName": "ab", "tags": [{"Key": "k", "Value": "\ud800\ud800"}]}),
    ],
    ids=["pattern-member", "tag", "manifest", "nested-list", "nested-struct"],
)
def test_lone_surrogates_are_rejected(op, body):
    with pytest.raises(SerializationException):
        service_model.read_input(op, body)


def test_a_surrogate_pair_is_one_character_and_accepted():
    body = json.loads('{"repositoryName":"ab","imageManifest":"{}","imageTag":"\\ud83d\\ude00"}')
    assert service_model.read_input("PutImage", body)["imageTag"] == "\U0001f600"


def test_string_lengths_count_characters_not_bytes():
    # 300 characters of 4 UTF-8 bytes each are still 300 characters: within ImageTag's max.
    body = {"repositoryName": "ab", "imageManifest": "{}", "imageTag": "\U0001f600" * 300}
    assert service_model.read_input("PutImage", body)["imageTag"] == body["imageTag"]


# --- agreement with botocore's own validator, over generated valid inputs -------------------------


def _strategy(shape):
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        required = {n: _strategy(shape.members[n]) for n in shape.required_members}
        optional = {n: _strategy(m) for n, m in shape.members.items() if n not in shape.required_members}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        low = meta.get("min", 0)
        return st.lists(_strategy(shape.member), min_size=low, max_size=min(meta.get("max", 2), low + 1))
    if kind == "string":
        if "enum" in meta:
            return st.sampled_from(meta["enum"])
        low, high = meta.get("min", 0), min(meta.get("max", 40), 40)
        if "pattern" in meta:  # generating from the pattern is slow: see the pattern test below
            return st.sampled_from(VALID.get(shape.name, [EXAMPLES[shape.name]]))
        return st.text(min_size=low, max_size=max(low, high))
    if kind in ("integer", "long"):
        return st.integers(min_value=meta.get("min"), max_value=meta.get("max"))
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(min_size=meta.get("min", 0), max_size=16)
    raise AssertionError(kind)


# More valid values of the pattern shapes, for generated inputs.
VALID = {
    "RegistryId": [EXAMPLES["RegistryId"], "000000000000"],
    "RepositoryName": [EXAMPLES["RepositoryName"], "ab", "a.b_c__d---e/f0/9", "x" * 256],
    "UploadId": [EXAMPLES["UploadId"], "ABCDEF01-2345-6789-abcd-ef0123456789"],
    "LayerDigest": [EXAMPLES["LayerDigest"], "sha512:" + "0" * 128, "a-b_c+d.e:F"],
    "ImageTagMutabilityExclusionFilterValue": [
        EXAMPLES["ImageTagMutabilityExclusionFilterValue"],
        "*",
        "a" * 128,
        "v1.*-rc_*",
    ],
}


def _pattern_shapes():
    found = {}
    for op in SERVED:
        for _, shape in _walk(_model().operation_model(op).input_shape):
            if "pattern" in shape.metadata:
                found[shape.name] = shape
    return [found[name] for name in sorted(found)]


@pytest.mark.parametrize("shape", _pattern_shapes(), ids=lambda shape: shape.name)
def test_values_generated_from_a_pattern_are_accepted(shape):
    """hypothesis parses each pattern itself: an engine independent of the one under test."""
    meta = shape.metadata
    op, path = next(
        (op, path)
        for op in SERVED
        for path, s in _walk(_model().operation_model(op).input_shape)
        if s.name == shape.name
    )
    strings = st.from_regex(meta["pattern"], fullmatch=True, alphabet="az09AZ._-/*:+")
    strings = strings.filter(lambda v: meta.get("min", 0) <= len(v) <= meta.get("max", 10**9))

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(strings)
    def accepted(value):
        body = with_value(_model().operation_model(op).input_shape, path, value)
        service_model.read_input(op, body)

    for value in VALID.get(shape.name, [EXAMPLES[shape.name]]):
        service_model.read_input(op, with_value(_model().operation_model(op).input_shape, path, value))
    accepted()


@functools.cache
def _input_strategy(op):
    return _strategy(_model().operation_model(op).input_shape)


def _to_json(shape, value):
    """botocore's serialisation of a Python value: blobs become base64 strings."""
    if shape.type_name == "blob":
        return base64.b64encode(value).decode()
    if shape.type_name == "structure":
        return {k: _to_json(shape.members[k], v) for k, v in value.items()}
    if shape.type_name == "list":
        return [_to_json(shape.member, v) for v in value]
    return value


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(op=st.sampled_from(SERVED), data=st.data())
def test_generated_valid_inputs_are_accepted_as_botocore_accepts_them(op, data):
    shape = _model().operation_model(op).input_shape
    value = data.draw(_input_strategy(op), label=op)
    report = ParamValidator().validate(value, shape)
    assert not report.has_errors(), report.generate_report()
    wire_body = json.loads(json.dumps(_to_json(shape, value)))
    assert service_model.read_input(op, wire_body) == value


# --- nulls inside lists ---------------------------------------------------------------------------


def test_null_list_entries_are_dropped():
    digest = EXAMPLES["LayerDigest"]
    params = service_model.read_input(
        "BatchCheckLayerAvailability", {"repositoryName": "ab", "layerDigests": [None, digest, None]}
    )
    assert params["layerDigests"] == [digest]


def test_a_list_of_nulls_does_not_satisfy_a_minimum_length():
    # Otherwise CompleteLayerUpload would receive no digest to check the upload against.
    body = {"repositoryName": "ab", "uploadId": EXAMPLES["UploadId"], "layerDigests": [None]}
    with pytest.raises(InvalidParameterException, match="layerDigests"):
        service_model.read_input("CompleteLayerUpload", body)
