"""The registry's ECR API through boto3, as the AWS CLI reaches it (the AWS credential chain,
`--profile`, `--region`, `--endpoint-url` or AWS_ENDPOINT_URL_ECR), and what its errors mean to a user.

boto3's standard retry mode retries throttling and 5xx with exponential backoff and jitter; an
UploadLayerPart whose answer was lost comes back as InvalidLayerPartException, which the uploader
reads as where to go on from.
"""

from __future__ import annotations

import base64
import contextlib
import random
import re
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound
from botocore.loaders import Loader

from registry.service_model import EXTENSION_SERVICE, extension_service_description

from .errors import CredentialsError, RegistryError, RepositoryMissing, SourceError, TagTaken

ATTEMPTS = 9  # a call: the first and up to 8 retries
REJECTED_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "403",
}


@dataclass(frozen=True)
class Connection:
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


def ecr_client(connection: Connection, jobs: int) -> Any:
    """An ECR client; the registry's extension is reached through it (`call_extension`)."""
    with translated_errors():
        core = botocore.session.Session(profile=connection.profile)
        core.register_component("data_loader", _LoaderWithExtension())
        session = boto3.session.Session(botocore_session=core, region_name=connection.region)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": ATTEMPTS}, max_pool_connections=max(10, jobs * 2)
        )
        client = session.client("ecr", endpoint_url=connection.endpoint_url, config=config)
        # the same credentials, endpoint, retries and signing name (ecr) as the ECR client's
        _EXTENSIONS[client] = session.client(EXTENSION_SERVICE, endpoint_url=client.meta.endpoint_url, config=config)
    for made in (client, _EXTENSIONS[client]):
        quota_errors_are_final(made)
    splice_layer_parts(client)
    return client


def quota_errors_are_final(client: Any) -> None:
    """botocore's standard mode retries LimitExceededException as if it were throttling; ECR answers
    it for a quota that no retry frees (images in a repository, a layer over the direct upload
    limit), and 8 attempts took a minute to say so. Raised from the first answer instead (an event
    handler's exception ends the call; botocore's retry handler runs after this one)."""

    def final(response: Any = None, operation: Any = None, **_: Any) -> None:
        parsed = response[1] if response is not None else {}
        if parsed.get("Error", {}).get("Code") == "LimitExceededException":
            raise ClientError(parsed, operation.name)

    client.meta.events.register_first(f"needs-retry.{client.meta.service_model.service_id.hyphenize()}", final)


class _LoaderWithExtension(Loader):  # type: ignore[misc]  # botocore is untyped
    """botocore's loader, which also knows the registry's extension as a service (its description
    is the registry's own, registry.service_model)."""

    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        if service_name == EXTENSION_SERVICE and type_name == "service-2":
            return extension_service_description()
        return super().load_service_model(service_name, type_name, api_version)


_EXTENSIONS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


# What botocore serializes in place of a part: its base64 is a JSON string that needs no escaping,
# found once in the body and replaced by the part's own base64.
PART_PLACEHOLDER = b"imagectl: the layer part goes here"
_PLACEHOLDER_JSON = b'"' + base64.b64encode(PART_PLACEHOLDER) + b'"'


def splice_layer_parts(client: Any) -> None:
    """UploadLayerPart's body with the part's base64 put in after serialization: botocore's
    json.dumps escapes the ~5.6 MB of base64 character by character (~25 ms a 4 MiB part), though
    base64 is JSON as it is. The bytes sent, and signed, are the same as without."""

    def hold_part(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["imagectl_part"] = params["layerPartBlob"]
        params["layerPartBlob"] = PART_PLACEHOLDER

    def put_part(request: Any, **_: Any) -> None:
        part = request.context.get("imagectl_part")
        if part is not None and isinstance(request.data, bytes):  # a retry is signed again: put in once
            request.data = request.data.replace(_PLACEHOLDER_JSON, b'"' + base64.b64encode(part) + b'"', 1)
            del request.context["imagectl_part"]

    client.meta.events.register("before-parameter-build.ecr.UploadLayerPart", hold_part)
    client.meta.events.register("before-sign.ecr.UploadLayerPart", put_part)


def call_extension(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """One of the registry's own operations (docs/how-it-works.md#direct-layer-uploads) through the
    botocore client `ecr_client` made beside `client`: Amazon ECR, or a registry without it, answers
    UnknownOperationException, raised as ClientError as botocore raises any error."""
    extension = _EXTENSIONS[client]
    answer: dict[str, Any] = getattr(extension, xform_name(operation))(**params)
    return answer


# A direct part goes up in blocks of this size, read from its source as they are sent: an upload holds
# a block a part in flight, never the part (sixteen 16 MiB parts in flight were ~300 MB resident).
SEND_BLOCK = 1024 * 1024
PART_ATTEMPTS = 5  # S3 answers 500/503 (SlowDown) to be retried; each attempt reads the part afresh
PART_RETRY_BASE_SECONDS = 0.5


def put_presigned(
    url: str, open_part: Callable[[], BinaryIO], length: int, moved: Callable[[int], None] = lambda _: None
) -> None:
    """PUT one part of `length` bytes to a presigned S3 URL, streamed from `open_part()` (reopened
    for every attempt). A 5xx or a broken connection is retried with exponential backoff and jitter,
    as boto3's standard mode retries; a 4xx (an expired URL, a refused signature) is not. `moved` is
    told of every block sent, and of a failed attempt's blocks as one negative count."""
    sent = [0]  # this attempt's

    def count(nbytes: int) -> None:
        sent[0] += nbytes
        moved(nbytes)

    for attempt in range(1, PART_ATTEMPTS + 1):
        sent[0] = 0
        try:
            _put_part(url, open_part, length, count)
            return
        except urllib.error.HTTPError as error:
            moved(-sent[0])
            if error.code < 500 or attempt == PART_ATTEMPTS:
                raise RegistryError(f"S3 refused a part: HTTP {error.code} {_s3_error_code(error.read())}") from None
        except (urllib.error.URLError, OSError) as error:
            moved(-sent[0])
            if attempt == PART_ATTEMPTS:
                raise RegistryError(f"cannot upload a part to S3: {error}") from None
        time.sleep(random.uniform(0, PART_RETRY_BASE_SECONDS * 2**attempt))


def _put_part(url: str, open_part: Callable[[], BinaryIO], length: int, moved: Callable[[int], None]) -> None:
    stream = open_part()
    try:
        # urllib's default Content-Type (a form) would have some servers read the body as parameters;
        # an iterable body with its Content-Length goes as it is, block by block (not chunked)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        request = urllib.request.Request(url, data=_blocks(stream, length, moved), method="PUT", headers=headers)
        with urllib.request.urlopen(request, timeout=300):
            pass
    finally:
        stream.close()


def _blocks(stream: BinaryIO, length: int, moved: Callable[[int], None]) -> Iterator[bytes]:
    """Exactly `length` bytes of `stream`, SEND_BLOCK at a time; a source that ends sooner is a
    SourceError (S3 would otherwise wait for the bytes the Content-Length promised)."""
    left = length
    while left:
        block = stream.read(min(SEND_BLOCK, left))
        if not block:
            raise SourceError(f"the source ended {left} bytes before the end of a part")
        left -= len(block)
        yield block
        moved(len(block))  # sent: http.client asks for the next block once this one is written


def _s3_error_code(body: bytes) -> str:
    """The <Code> of S3's XML error answer, or nothing."""
    found = re.search(rb"<Code>([^<]{1,100})</Code>", body)
    return found.group(1).decode(errors="replace") if found else ""


@contextlib.contextmanager
def translated_errors(repository: str | None = None) -> Iterator[None]:
    """botocore's errors as ToolErrors that say what to do."""
    try:
        yield
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials: set a profile (--profile, AWS_PROFILE) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except ProfileNotFound as error:
        raise CredentialsError(f"{error}: name one of your AWS config's profiles (--profile, AWS_PROFILE)") from None
    except NoRegionError:
        raise CredentialsError("no AWS Region: give --region or set AWS_REGION / AWS_DEFAULT_REGION") from None
    except ClientError as error:
        raise client_error(error, repository) from None
    except BotoCoreError as error:
        raise RegistryError(f"cannot reach the registry: {error}") from None


def client_error(error: ClientError, repository: str | None) -> Exception:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "") or str(error)
    if code in REJECTED_CREDENTIALS:
        return CredentialsError(f"the registry refused the credentials ({code}): {message}")
    if code == "RepositoryNotFoundException":
        hint = f" Create it with --create, or: aws ecr create-repository --repository-name {repository}"
        return RepositoryMissing(f"{message}.{hint if repository else ''}")
    if code == "ImageTagAlreadyExistsException":
        return TagTaken(message)
    return RegistryError(f"{code}: {message}")


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_repository(client: Any, name: str, create: bool) -> str:
    """The repository's registry id; with `create`, the repository is made if it is not there."""
    with translated_errors(name):
        try:
            found = client.describe_repositories(repositoryNames=[name])["repositories"][0]
            return str(found["registryId"])
        except ClientError as error:
            if error_code(error) != "RepositoryNotFoundException" or not create:
                raise
        try:
            return str(client.create_repository(repositoryName=name)["repository"]["registryId"])
        except ClientError as error:
            if error_code(error) != "RepositoryAlreadyExistsException":  # another push made it meanwhile
                raise
            return str(client.describe_repositories(repositoryNames=[name])["repositories"][0]["registryId"])


@dataclass(frozen=True)
class Login:
    """The `/v2` login: GetAuthorizationToken's endpoint and its token as Basic credentials."""

    endpoint: str
    username: str
    password: str
    expires_at: float = 0.0  # epoch seconds (0: not said)

    @property
    def basic(self) -> str:
        """The Authorization header it makes."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def login(client: Any) -> Login:
    with translated_errors():
        data = client.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    expires = data.get("expiresAt")
    return Login(data["proxyEndpoint"].rstrip("/"), username, password, expires.timestamp() if expires else 0.0)
