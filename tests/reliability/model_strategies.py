"""Hypothesis strategies for ECR requests, derived from botocore's ECR model (the same model the
server validates against -- but walked independently here, so a constraint the server forgets
shows up as an invalid request it accepts).

`valid_params(op, world)` draws parameters that satisfy every constraint of the operation's input
shape -- types, required members, min/max lengths and ranges, patterns, enums -- often at the
boundaries, and often naming things that exist (`world`: repositories, images, tags, layers,
uploads), so requests get past "not found" into the operation.

`invalid_request(op, world)` draws a request the model (or the protocol) refuses: one member of a
valid request replaced by a value of the wrong JSON type, one that breaks a constraint (too long,
too short, bad pattern or enum, a list over its maximum, a huge list, null for a required member),
or the whole body broken (not JSON, not UTF-8, not an object, NaN, deep nesting), or the target or
the signature wrong. Each comes with the error it must get.
"""

from __future__ import annotations

import base64
import json
import re
import string
import uuid
from dataclasses import dataclass, field

from botocore.model import Shape
from harness import REGION
from hypothesis import strategies as st

from registry.arns import repository_arn
from registry.operations import OPERATIONS
from registry.service_model import ecr_model

MODEL = ecr_model()
UNSERVED = min(set(MODEL.operation_names) - set(OPERATIONS))  # an operation of the model this registry lacks
SERIALIZATION, INVALID = "SerializationException", "InvalidParameterException"
# Text as clients send it: ASCII mostly, and the awkward rest -- 2-, 3- and 4-byte UTF-8.
ALPHABET = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "-_.:/@+*"),
    st.characters(codec="utf-8"),
    st.sampled_from('é€😀\u0000\n"\\'),
)
LIST_CAP = 6  # longest list drawn below the model's maximum (besides exact-maximum draws)


@dataclass
class World:
    """Names that exist in the registry under test, to aim requests at."""

    repositories: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)  # manifests whose layers exist (pushable)
    registry_id: str = "000000000000"


def _pattern(shape: Shape) -> str | None:
    return shape.metadata.get("pattern")


def _bounds(shape: Shape) -> tuple[int, int | None]:
    return shape.metadata.get("min", 0), shape.metadata.get("max")


# --- valid values ---------------------------------------------------------------------------------


def _string(shape: Shape, name: str, world: World) -> st.SearchStrategy:
    enum = shape.metadata.get("enum")
    if enum:
        return st.sampled_from(enum)
    low, high = _bounds(shape)
    pattern = _pattern(shape)
    hinted = _hint(name, world)
    if pattern:
        compiled = re.compile(pattern)
        builder = _PATTERNED.get(shape.name)
        free = (
            builder()
            if builder
            else st.from_regex(pattern if pattern.startswith("^") else f"^(?:{pattern})$", fullmatch=True)
        )
        drawn = free.filter(lambda s: low <= len(s) <= (high or 10**9) and bool(compiled.fullmatch(s)))
    else:
        top = high if high is not None and high <= 32 else 32
        drawn = st.one_of(
            st.text(ALPHABET, min_size=low, max_size=max(low, top)),
            *([exactly(high), exactly(high, WIDE)] if high and high <= 4096 else []),
            *([st.integers(1000, 3000).map(lambda n: "x" * n)] if high is None else []),
            *([st.just("x" * low)] if low else []),
        )
    return st.one_of(hinted, drawn) if hinted is not None else drawn


def _repository_name() -> st.SearchStrategy:
    part = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
    component = st.tuples(
        part, st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "---"]), part), max_size=3)
    ).map(lambda t: t[0] + "".join(a + b for a, b in t[1]))
    return st.lists(component, min_size=1, max_size=4).map("/".join)


# Cheap builders for the model's patterns (from_regex is slow); every draw is still checked
# against the model's own pattern.
_PATTERNED = {
    "RepositoryName": _repository_name,
    "RegistryId": lambda: st.integers(0, 10**12 - 1).map(lambda n: f"{n:012d}"),
    "UploadId": lambda: st.uuids().map(str),
    "LayerDigest": lambda: st.tuples(
        st.sampled_from(["sha256", "sha512", "md5", "a+b.c-d_e"]),
        st.one_of(
            st.text("0123456789abcdefABCDEF", min_size=1, max_size=130), st.integers(1000, 2100).map(lambda n: "a" * n)
        ),
    ).map(":".join),
    "ImageTagMutabilityExclusionFilterValue": lambda: st.text(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._*-", min_size=1, max_size=128
    ),
}


WIDE = st.characters(min_codepoint=0x10000, codec="utf-8")  # four bytes each in UTF-8


def exactly(length: int, alphabet=ALPHABET) -> st.SearchStrategy:
    """A string of exactly `length` characters (a short random run, repeated: cheap to draw)."""
    return st.text(alphabet, min_size=1, max_size=8).map(lambda seed: (seed * (length // len(seed) + 1))[:length])


def _hint(name: str, world: World) -> st.SearchStrategy | None:
    """What exists, for the members that name things."""
    choices = {
        "repositoryName": world.repositories,
        "uploadId": world.uploads,
        "imageTag": world.tags,
        "imageDigest": world.digests,
        "layerDigest": world.layers,
        "registryId": [world.registry_id],
        "imageManifest": world.manifests,
    }.get(name)
    if name == "nextToken":
        return page_tokens(world)
    if name == "imageDigest":  # no constraint in the model: any algorithm, any length
        return st.one_of(
            st.sampled_from(world.digests) if world.digests else st.nothing(),
            st.integers(1000, 2100).map(lambda n: "blake3:" + "a" * n),
        )
    if name == "kmsKey":
        return st.sampled_from(["alias/aws/ecr", "arn:aws:kms:us-east-1:000000000000:key/" + str(uuid.UUID(int=1))])
    if name in ("partFirstByte", "partLastByte"):
        return st.integers(-1, 8).map(lambda n: max(n, 0))
    if name == "imageManifestMediaType":
        return st.sampled_from(
            [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v1+json",
                "text/plain",
            ]
        )
    if name == "resourceArn":  # the tagging operations name a repository by its ARN
        return st.sampled_from([repository_arn(REGION, world.registry_id, r) for r in world.repositories] or [""])
    if name == "lifecyclePolicyText":
        return lifecycle_policy_texts()
    if name == "imageManifest":
        return st.one_of(
            st.sampled_from(world.manifests) if world.manifests else st.nothing(), json_documents().map(json.dumps)
        )
    if choices:
        return st.sampled_from(choices)
    return None


def page_tokens(world: World) -> st.SearchStrategy:
    """Page tokens as the server makes them (base64url of JSON), with any content -- and garbage."""
    positions = st.dictionaries(
        st.sampled_from(["after", "at", "skip", "x"]),
        st.one_of(
            st.sampled_from(world.repositories + world.digests + [""]),
            st.integers(-3, 10**6),
            st.text(ALPHABET, max_size=20),
            st.none(),
            st.lists(st.integers(), max_size=2),
            st.booleans(),
        ),
        max_size=3,
    )
    encoded = st.one_of(positions.map(json.dumps), json_documents().map(json.dumps)).map(
        lambda text: base64.urlsafe_b64encode(text.encode()).decode()
    )
    return st.one_of(encoded, st.text(ALPHABET, max_size=40))


def json_documents() -> st.SearchStrategy:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(ALPHABET, max_size=20),
    )
    manifestish = st.fixed_dictionaries(
        {},
        optional={
            "schemaVersion": st.one_of(st.just(2), st.just(1), st.just(2.0), st.just("2"), st.just(True)),
            "mediaType": st.sampled_from(
                [
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.index.v1+json",
                    "x/y",
                    "",
                ]
            ),
            "config": st.dictionaries(st.sampled_from(["mediaType", "digest", "size", "urls"]), leaves, max_size=4),
            "layers": st.lists(
                st.dictionaries(st.sampled_from(["mediaType", "digest", "size", "urls"]), leaves), max_size=3
            ),
            "manifests": st.lists(
                st.dictionaries(st.sampled_from(["mediaType", "digest", "size"]), leaves), max_size=3
            ),
            "subject": st.dictionaries(st.sampled_from(["mediaType", "digest", "size"]), leaves, max_size=3),
            "annotations": st.dictionaries(st.text(max_size=5), leaves, max_size=3),
        },
    )
    return st.one_of(
        manifestish,
        st.recursive(
            leaves,
            lambda inner: st.one_of(
                st.lists(inner, max_size=3), st.dictionaries(st.text(ALPHABET, max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    )


ODD_VALUES = st.one_of(
    st.integers(-2, 3),
    st.just(2**31),
    st.text(ALPHABET, max_size=5),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.just({}),
    st.sampled_from(["tagged", "untagged", "any", "days", "expire", "transition", "sinceImagePulled", "", "*"]),
)
POLICY_KEYS = ["tagPrefixList", "tagPatternList", "countUnit", "storageClass", "description", "rulePriority", "x"]


@st.composite
def lifecycle_policy_documents(draw) -> dict:
    """Lifecycle policies as ECR's user guide describes them -- 1 to 4 rules of every kind, in any
    order -- and, one time in two, with one thing changed: a property removed, added, or given an
    odd value."""
    count = draw(st.integers(1, 4))
    priorities = sorted(draw(st.lists(st.integers(1, 60), min_size=count, max_size=count, unique=True)))
    rules: list[dict] = []
    for index, priority in enumerate(priorities):
        kinds = ["tagged", "tagged", "untagged"] + (["any"] if index == count - 1 else [])
        status = draw(st.sampled_from(kinds))
        if status == "untagged" and any(r["selection"]["tagStatus"] == "untagged" for r in rules):
            status = "tagged"
        selection: dict = {"tagStatus": status}
        if status == "tagged":
            key = draw(st.sampled_from(["tagPrefixList", "tagPatternList"]))
            alphabet = "abv-*" if key == "tagPatternList" else "abv-"
            selection[key] = draw(st.lists(st.text(alphabet, min_size=1, max_size=6), min_size=1, max_size=3))
        selection["countType"] = draw(st.sampled_from(["imageCountMoreThan", "sinceImagePushed"]))
        if selection["countType"] == "sinceImagePushed":
            selection["countUnit"] = "days"
        selection["countNumber"] = draw(st.integers(1, 30))
        rule = {"rulePriority": priority, "selection": selection, "action": {"type": "expire"}}
        if draw(st.booleans()):
            rule["description"] = draw(st.text(ALPHABET, max_size=12))
        rules.append(rule)
    document = {"rules": draw(st.permutations(rules))}
    if draw(st.booleans()):
        places: list[tuple] = [(document, "rules")]
        for rule in document["rules"]:
            places += [(rule, k) for k in rule] + [(rule["selection"], k) for k in rule["selection"]]
            places.append((rule["action"], "type"))
        container, key = draw(st.sampled_from(places))
        change = draw(st.sampled_from(["remove", "odd", "add"]))
        if change == "remove":
            del container[key]
        elif change == "odd":
            container[key] = draw(ODD_VALUES)
        else:
            container[draw(st.sampled_from(POLICY_KEYS))] = draw(st.one_of(ODD_VALUES, st.just(["v"])))
    return document


def lifecycle_policy_texts() -> st.SearchStrategy:
    """Policy texts of at least the model's 100 characters (JSON allows trailing whitespace), now
    and then cut short or with a byte changed."""
    texts = lifecycle_policy_documents().map(lambda d: json.dumps(d).ljust(100))
    broken = st.tuples(texts, st.integers(0, 99), st.sampled_from(["", "}", "\\", '"', "\u0000"])).map(
        lambda t: (t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]).ljust(100)
    )
    return st.one_of(texts, texts, broken)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_value(shape: Shape, name: str, world: World) -> st.SearchStrategy:
    kind = shape.type_name
    if kind == "structure":
        return valid_structure(shape, world)
    if kind == "list":
        low, high = _bounds(shape)
        member = valid_value(shape.member, name, world)
        sizes = [st.lists(member, min_size=low, max_size=max(low, min(high or LIST_CAP, LIST_CAP)))]
        if high and high <= 100:  # exactly the maximum: a few members, repeated
            sizes.append(st.lists(member, min_size=1, max_size=3).map(lambda xs: (xs * high)[:high]))
        return st.one_of(*sizes)
    if kind == "string":
        return _string(shape, name, world)
    if kind in ("integer", "long"):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        hinted = _hint(name, world)
        edges = [v for v in (low, high) if v is not None]
        drawn = st.one_of(st.integers(low, high), *(st.just(v) for v in edges))
        return st.one_of(hinted, drawn) if hinted is not None else drawn
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        low, high = _bounds(shape)
        return st.binary(min_size=low, max_size=min(high or 64, 64)).map(lambda b: base64.b64encode(b).decode())
    if kind in ("timestamp", "double", "float"):
        return st.floats(0, 2e9)
    raise AssertionError(f"no strategy for {kind}")


def valid_structure(shape: Shape, world: World) -> st.SearchStrategy:
    required = {n: valid_value(m, n, world) for n, m in shape.members.items() if n in shape.required_members}
    optional = {n: valid_value(m, n, world) for n, m in shape.members.items() if n not in shape.required_members}
    return st.fixed_dictionaries(required, optional=optional)


def valid_params(operation: str, world: World) -> st.SearchStrategy:
    return valid_structure(MODEL.operation_model(operation).input_shape, world)


# --- invalid requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    operation: str | None  # None: no X-Amz-Target at all
    body: bytes
    expect: frozenset[str]  # the error types this request may get
    why: str
    target: str | None = None  # a raw X-Amz-Target instead of the operation's
    sign: str = "ok"  # "ok" | "tamper" (body changed after signing) | "unknown-key" | "none"

    def __repr__(self) -> str:
        body = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return f"Request({self.operation}, {self.why}, {body!r}, target={self.target}, sign={self.sign})"

    def _repr_pretty_(self, printer, cycle) -> None:  # how Hypothesis prints a failing example
        printer.text(repr(self))


def _paths(shape: Shape, prefix: tuple = ()) -> list[tuple[tuple, Shape, bool]]:
    """Every member path of an input shape: (path, shape, required)."""
    found = []
    for name, member in shape.members.items():
        path = (*prefix, name)
        found.append((path, member, name in shape.required_members))
        if member.type_name == "structure":
            found.extend(_paths(member, path))
        elif member.type_name == "list" and member.member.type_name == "structure":
            found.extend(_paths(member.member, (*path, 0)))
        elif member.type_name == "list":
            found.append(((*path, 0), member.member, True))
    return found


def _wrong_type(shape: Shape) -> st.SearchStrategy:
    kind = shape.type_name
    others = {
        "string": st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2), st.just({})),
        "integer": st.one_of(st.text(max_size=5), st.just(1.5), st.booleans(), st.just([]), st.just({})),
        "long": st.one_of(st.text(max_size=5), st.just(2.25), st.booleans(), st.just([1])),
        "boolean": st.one_of(st.just("true"), st.integers(0, 1), st.just([]), st.just({})),
        "list": st.one_of(st.text(max_size=5), st.just({}), st.integers(), st.just(True)),
        "structure": st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2), st.integers()),
        "blob": st.one_of(st.integers(), st.just("***"), st.just("YW=Jj"), st.just([]), st.just("a b=")),
    }
    return others[kind]


def _constraint_violation(shape: Shape, name: str) -> st.SearchStrategy | None:
    kind = shape.type_name
    low, high = _bounds(shape)
    if kind == "string":
        options = []
        if shape.metadata.get("enum"):
            options.append(
                st.text(ALPHABET, max_size=12).filter(lambda s: s not in shape.metadata["enum"] and _utf8(s))
            )
        if high:
            options.append(st.integers(high + 1, high + 40).map(lambda n: "a" * n))
            options.append(st.just("a" * min(high * 10 + 7, high + 100_000)))  # API Gateway: 10 MB at most
        if low:
            options.append(st.just("" if low == 1 else "a"[: low - 1]))
        pattern = _pattern(shape)
        if pattern:
            compiled = re.compile(pattern)
            options.append(
                st.text(ALPHABET, min_size=max(low, 1), max_size=20).filter(
                    lambda s: _utf8(s) and not compiled.fullmatch(s)
                )
            )
        return st.one_of(*options) if options else None
    if kind in ("integer", "long"):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        options = []
        if low is not None:
            options.append(st.integers(max_value=low - 1))
        if high is not None:
            options.append(st.integers(min_value=high + 1))
        return st.one_of(*options) if options else None
    if kind == "list":
        options = []
        structured = shape.member.type_name == "structure"
        if high:
            options.append(st.integers(high + 1, high + 3).map(lambda n: [{} if structured else "x"] * n))
            options.append(st.integers(1000, 5000).map(lambda n: [{} if structured else f"x{i}" for i in range(n)]))
        if low:
            options.append(st.just([]))
        return st.one_of(*options) if options else None
    if kind == "blob" and high:
        return None  # over 20 MiB cannot even reach the function (6 MB payload): the gateway's 413
    return None


def _set(params: dict, path: tuple, value) -> dict:
    """A copy of params with the member at path set (creating structures and lists on the way)."""
    params = json.loads(json.dumps(params))
    node = params
    for i, step in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(step, int):
            while len(node) <= step:
                node.append({} if not isinstance(nxt, int) else [])
            node = node[step]
        else:
            if not isinstance(node.get(step), (dict, list)):
                node[step] = [] if isinstance(nxt, int) else {}
            node = node[step]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value
    return params


class InvalidRequests:
    """The strategy of invalid requests of one operation (built once: building is the slow part)."""

    def __init__(self, operation: str, world: World):
        self.operation = operation
        self.valid = valid_params(operation, world)
        self.paths = _paths(MODEL.operation_model(operation).input_shape)
        self.wrong_types = {p: _wrong_type(m) for p, m, _ in self.paths}
        self.violations = {p: v for p, m, _ in self.paths if (v := _constraint_violation(m, str(p[-1]))) is not None}
        self.required = [p for p, _, r in self.paths if r and len(p) == 1]
        self.strings = [p for p, m, _ in self.paths if m.type_name == "string"]
        self.strategy = self._draw()

    def _draw(self):
        operation = self.operation

        @st.composite
        def draw_request(draw) -> Request:
            params = draw(self.valid)
            kind = draw(
                st.sampled_from(
                    [
                        "type",
                        "type",
                        "constraint",
                        "constraint",
                        "constraint",
                        "null",
                        "body",
                        "surrogate",
                        "target",
                        "signature",
                    ]
                )
            )
            if kind == "type" and self.wrong_types:  # DescribeRegistry's input has no members
                path = draw(st.sampled_from(sorted(self.wrong_types, key=repr)))
                value = draw(self.wrong_types[path])
                return Request(
                    operation,
                    json.dumps(_set(params, path, value)).encode(),
                    frozenset({SERIALIZATION}),
                    f"wrong type at {path}",
                )
            if kind == "constraint" and self.violations:
                path = draw(st.sampled_from(sorted(self.violations, key=repr)))
                value = draw(self.violations[path])
                return Request(
                    operation,
                    json.dumps(_set(params, path, value)).encode(),
                    frozenset({INVALID}),
                    f"constraint at {path}",
                )
            if kind == "null" and self.required:
                path = draw(st.sampled_from(self.required))
                return Request(
                    operation,
                    json.dumps(_set(params, path, None)).encode(),
                    frozenset({INVALID}),
                    f"null required member {path}",
                )
            if kind == "surrogate" and self.strings:
                path = draw(st.sampled_from(self.strings))
                marker = "SURROGATE-" + uuid.uuid4().hex
                text = json.dumps(_set(params, path, marker)).replace(marker, "a\\ud800b")
                return Request(operation, text.encode(), frozenset({SERIALIZATION}), f"lone surrogate at {path}")
            if kind == "target":
                target = draw(
                    st.sampled_from(
                        [
                            "AmazonEC2ContainerRegistry_V20150921.NoSuchOperation",
                            "AmazonEC2ContainerRegistry_V20150921.",
                            "DynamoDB_20120810.ListTables",
                            operation,
                            f"AmazonEC2ContainerRegistry_V20150921.{operation.lower()}",
                            f"AmazonEC2ContainerRegistry_V20150921.{UNSERVED}",
                            "AmazonEC2ContainerRegistry_V20150921.x.y",
                        ]
                    )
                )
                return Request(
                    None,
                    json.dumps(params).encode(),
                    frozenset({"UnknownOperationException"}),
                    f"target {target}",
                    target=target,
                )
            if kind == "signature":
                sign = draw(st.sampled_from(["tamper", "unknown-key", "none"]))
                return Request(
                    operation,
                    json.dumps(params).encode(),
                    frozenset(
                        {
                            "InvalidSignatureException",
                            "UnrecognizedClientException",
                            "MissingAuthenticationTokenException",
                            "IncompleteSignatureException",
                        }
                    ),
                    f"signature {sign}",
                    sign=sign,
                )
            valid = json.dumps(params).encode()
            body = draw(
                st.sampled_from(
                    [
                        valid[: max(1, len(valid) // 2)],
                        b"\xff\xfe" + valid,
                        b"[" + valid + b"]",
                        b'"text"',
                        b"42",
                        b"null",
                        b'{"a": NaN}',
                        b'{"maxResults": Infinity}',
                        b"[" * 20000 + b"]" * 20000,
                        b'{"a":' * 5000 + b"1" + b"}" * 5000,
                        valid.replace(b"{", b"{\x00", 1),
                        b"\xc3\x28",
                        valid + b"garbage",
                    ]
                )
            )
            expect = {SERIALIZATION}
            if not _is_utf8_bytes(body):
                # API Gateway hands the function the body as text: bytes that are not UTF-8 do not
                # survive, so the signature over the original bytes cannot match (403) -- or, when
                # they do survive (the local gateway), the body is not JSON (400).
                expect.add("InvalidSignatureException")
            return Request(operation, body, frozenset(expect), f"broken body {body[:40]!r}")

        return draw_request()


def _is_utf8_bytes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def invalid_request(operation: str, world: World) -> st.SearchStrategy:
    return InvalidRequests(operation, world).strategy
