"""botocore's ECR service model: the single source of truth for operations, shapes and constraints.

botocore validates only required members, types and minimums on the client side; maxima, patterns,
enums and list sizes are ours to enforce, from the same model, never retyped here.
`read_input` walks an operation's input shape over the decoded JSON body and
- raises SerializationException when a value has the wrong JSON type or a blob is not base64,
- raises InvalidParameterException listing every violated constraint,
- returns the parameters with blobs decoded to bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape

from .errors import InvalidParameterException, SerializationException

SERVICE_NAME = "ecr"


@functools.cache
def ecr_model() -> ServiceModel:
    return ServiceModel(model_description(), SERVICE_NAME)


def model_description() -> dict[str, Any]:
    """ECR's latest `service-2` model, as `Loader.load_service_model` returns it.

    A bare Loader is far cheaper than a botocore Session at cold start. Asking it for the file by
    path also skips load_service_model's check that "ecr" is a known service, which lists every
    model folder botocore ships (~450 in a full install: ~30 ms of every cold start). ECR's model
    has no sdk-extras to merge; a unit test holds this against load_service_model."""
    loader = Loader()
    version = loader.determine_latest_version(SERVICE_NAME, "service-2")
    description: dict[str, Any] = loader.load_data(f"{SERVICE_NAME}/{version}/service-2")
    return description


def target_prefix() -> str:
    prefix: str = ecr_model().metadata["targetPrefix"]
    return prefix


# --- the registry's own extension (not ECR's): direct layer uploads (docs/how-it-works.md) ------

EXTENSION_TARGET_PREFIX = "ServerlessRegistry_20261130"
# Its operations, written as botocore writes ECR's, over ECR's own shapes where they exist: one
# validation for both. Its errors are ECR's shapes, so botocore-style clients read them as usual.
EXTENSION_OPERATIONS: dict[str, Any] = {
    "GetLayerPartUploadUrls": {
        "name": "GetLayerPartUploadUrls",
        "http": {"method": "POST", "requestUri": "/"},
        "input": {"shape": "GetLayerPartUploadUrlsRequest"},
        "output": {"shape": "GetLayerPartUploadUrlsResponse"},
        "errors": [
            {"shape": "ServerException"},
            {"shape": "InvalidParameterException"},
            {"shape": "InvalidLayerPartException"},
            {"shape": "RepositoryNotFoundException"},
            {"shape": "UploadNotFoundException"},
            {"shape": "LimitExceededException"},
            {"shape": "KmsException"},
        ],
    }
}
EXTENSION_SHAPES: dict[str, Any] = {
    "GetLayerPartUploadUrlsRequest": {
        "type": "structure",
        "required": ["repositoryName", "uploadId", "layerSize"],
        "members": {
            "registryId": {"shape": "RegistryId"},
            "repositoryName": {"shape": "RepositoryName"},
            "uploadId": {"shape": "UploadId"},
            "layerSize": {"shape": "DirectLayerSize"},
        },
    },
    "DirectLayerSize": {"type": "long", "min": 1},
    "GetLayerPartUploadUrlsResponse": {
        "type": "structure",
        "members": {
            "registryId": {"shape": "RegistryId"},
            "repositoryName": {"shape": "RepositoryName"},
            "uploadId": {"shape": "UploadId"},
            "partSize": {"shape": "PartSize"},
            "partUrls": {"shape": "DirectPartUrls"},
            "receivedParts": {"shape": "DirectReceivedParts"},
        },
    },
    "DirectPartUrls": {"type": "map", "key": {"shape": "DirectPartNumber"}, "value": {"shape": "Url"}},
    "DirectPartNumber": {"type": "string"},  # "1" … "10000": JSON object keys are strings
    "DirectReceivedParts": {"type": "list", "member": {"shape": "DirectReceivedPart"}},
    "DirectReceivedPart": {
        "type": "structure",
        "members": {"partNumber": {"shape": "DirectPartIndex"}, "size": {"shape": "DirectLayerSize"}},
    },
    "DirectPartIndex": {"type": "integer", "min": 1, "max": 10000},
}
EXTENSION_SERVICE = "serverlessregistry"  # the name a botocore client of the extension is created by


@functools.cache
def extension_model() -> ServiceModel:
    """ECR's model with the extension's operations and shapes added (the ECR API never sees them)."""
    description = model_description()
    extended = {
        **description,
        "operations": {**description["operations"], **EXTENSION_OPERATIONS},
        "shapes": {**description["shapes"], **EXTENSION_SHAPES},
    }
    return ServiceModel(extended, SERVICE_NAME)


def extension_service_description() -> dict[str, Any]:
    """The extension as a service of its own, a `service-2` description as botocore loads one, so
    that a client (imagectl) calls it through botocore's own serializer, SigV4 signer (signing
    name ecr, the client's credentials), retries and error parsing."""
    description = model_description()
    shapes = {**description["shapes"], **EXTENSION_SHAPES}
    used: dict[str, Any] = {}
    pending = [ref["shape"] for operation in EXTENSION_OPERATIONS.values() for ref in _shape_refs(operation)]
    while pending:  # the shapes the operations reach, and no more
        name = pending.pop()
        if name not in used:
            used[name] = shapes[name]
            pending.extend(ref["shape"] for ref in _shape_refs(shapes[name]))
    metadata = {
        **description["metadata"],
        "targetPrefix": EXTENSION_TARGET_PREFIX,
        "serviceId": "ServerlessRegistry",
        "serviceFullName": "Serverless Registry extensions to Amazon ECR",
        "serviceAbbreviation": "Serverless Registry",
        "uid": f"{EXTENSION_SERVICE}-2026-11-30",
        "apiVersion": "2026-11-30",
        "signingName": SERVICE_NAME,
    }
    return {"version": "2.0", "metadata": metadata, "operations": EXTENSION_OPERATIONS, "shapes": used}


def _shape_refs(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The shape references an operation or a shape holds."""
    refs = [node[key] for key in ("input", "output", "member", "key", "value") if key in node]
    return refs + list(node.get("members", {}).values()) + list(node.get("errors", []))


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def read_input(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    model = extension_model() if operation in EXTENSION_OPERATIONS else ecr_model()
    shape = model.operation_model(operation).input_shape
    if not isinstance(body, dict):
        raise SerializationException("Start of structure or map found where not expected.")
    if shape is None:
        return {}
    problems: list[str] = []
    params: dict[str, Any] = _read(shape, body, "", problems)
    if problems:
        count = len(problems)
        head = problems[0] if count == 1 else f"{count} validation errors detected: " + "; ".join(problems)
        raise InvalidParameterException(head)
    return params


def satisfies(shape_name: str, value: str) -> bool:
    """Whether `value` meets every constraint of the model's string shape `shape_name` (for a value
    that arrives inside another, as a repository name inside an ARN)."""
    problems: list[str] = []
    _read_string(ecr_model().shape_for(shape_name), value, shape_name, problems)
    return not problems


def _problem(path: str, constraint: str) -> str:
    return f"Invalid parameter at '{path}' failed to satisfy constraint: '{constraint}'"


def _read(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    kind = shape.type_name
    reader = _READERS.get(kind)
    if reader is None:  # pragma: no cover - the ECR model uses only the kinds below
        raise SerializationException(f"Unsupported shape type {kind} at '{path}'")
    return reader(shape, value, path, problems)


def _type_error(path: str, expected: str, value: Any) -> SerializationException:
    return SerializationException(f"Expected {expected} at '{path or 'body'}' but found {type(value).__name__}")


def _read_structure(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict):
        raise _type_error(path, "structure", value)
    out = {}
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None:  # JSON null is an absent member, as in AWS's own deserializers
            if name in shape.required_members:
                problems.append(_problem(_join(path, name), "Member must not be null"))
            continue
        out[name] = _read(member, item, _join(path, name), problems)
    return out


def _read_list(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, list):
        raise _type_error(path, "list", value)
    items = [
        _read(shape.member, item, f"{path}.{i + 1}.member", problems)
        for i, item in enumerate(value)
        if item is not None
    ]
    _check_length(shape, len(items), path, problems)  # on what the operation gets: [null] is empty
    return items


def _read_map(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, dict):
        raise _type_error(path, "map", value)
    _check_length(shape, len(value), path, problems)
    return {
        _read(shape.key, k, f"{path}.key", problems): _read(shape.value, v, f"{path}.{k}", problems)
        for k, v in value.items()
    }


def _read_string(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, str):
        raise _type_error(path, "string", value)
    if not _is_utf8(value):  # a lone surrogate ("\ud800") cannot be stored, hashed or echoed
        raise SerializationException(f"Value at '{path}' is not valid UTF-8")
    _check_length(shape, len(value), path, problems)
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        problems.append(_problem(path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        problems.append(_problem(path, f"must satisfy regular expression '{pattern}'"))
    return value


def _read_integer(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _type_error(path, "an integer", value)
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        problems.append(_problem(path, f"Member must have value greater than or equal to {low}"))
    if high is not None and value > high:
        problems.append(_problem(path, f"Member must have value less than or equal to {high}"))
    return value


def _read_boolean(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, bool):
        raise _type_error(path, "a boolean", value)
    return value


def _read_number(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(path, "a number", value)
    return value


def _read_blob(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(value, str):
        raise _type_error(path, "a base64 string", value)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationException(f"Value at '{path}' is not valid base64") from None
    _check_length(shape, len(data), path, problems)
    return data


def _check_length(shape: Shape, length: int, path: str, problems: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        problems.append(_problem(path, f"Member must have length greater than or equal to {low}"))
    if high is not None and length > high:
        problems.append(_problem(path, f"Member must have length less than or equal to {high}"))


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_READERS = {
    "structure": _read_structure,
    "list": _read_list,
    "map": _read_map,
    "string": _read_string,
    "integer": _read_integer,
    "long": _read_integer,
    "boolean": _read_boolean,
    "double": _read_number,
    "float": _read_number,
    "timestamp": _read_number,
    "blob": _read_blob,
}
