"""The registry's ECR API through boto3, as the AWS CLI reaches it (the AWS credential chain,
`--profile`, `--region`, `--endpoint-url` or AWS_ENDPOINT_URL_ECR), and what its errors mean to a user.

boto3's standard retry mode retries throttling and 5xx with exponential backoff and jitter; an
UploadLayerPart whose answer was lost comes back as InvalidLayerPartException, which the uploader
reads as where to go on from.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from .errors import CredentialsError, RegistryError, RepositoryMissing, TagTaken

RETRIES = {"mode": "standard", "max_attempts": 8}
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
    with translated_errors():
        session = boto3.session.Session(profile_name=connection.profile, region_name=connection.region)
        config = Config(retries=RETRIES, max_pool_connections=max(10, jobs * 2))
        client = session.client("ecr", endpoint_url=connection.endpoint_url, config=config)
    splice_layer_parts(client)
    return client


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


# The registry's own operations (not ECR's): Amazon ECR, or a registry without them, answers
# UnknownOperationException (docs/how-it-works.md#direct-layer-uploads)
EXTENSION_TARGET_PREFIX = "ServerlessRegistry_20261130"


def call_extension(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """One of the registry's own operations, signed with the client's credentials as the client
    signs ECR's (SigV4, service ecr); an error answer raises ClientError as botocore would."""
    data = json.dumps(params).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{EXTENSION_TARGET_PREFIX}.{operation}"}
    request = AWSRequest(method="POST", url=client.meta.endpoint_url.rstrip("/") + "/", data=data, headers=headers)
    # botocore keeps a client's resolved credentials (profile, SSO, role) only there
    SigV4Auth(client._get_credentials(), "ecr", client.meta.region_name).add_auth(request)
    sent = urllib.request.Request(request.url, data=data, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        status, body = error.code, _json_object(error.read())
    except (urllib.error.URLError, OSError) as error:
        raise RegistryError(f"cannot reach the registry: {error}") from None
    code = str(body.get("__type", status)).rpartition("#")[2]
    raise ClientError({"Error": {"Code": code, "Message": body.get("message", "")}, **body}, operation)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        found = json.loads(data)
    except ValueError:  # not the registry's answer (a gateway's page): its status says it all
        return {}
    return found if isinstance(found, dict) else {}


def put_presigned(url: str, data: bytes) -> None:
    """PUT bytes to a presigned S3 URL (a direct upload's part)."""
    # urllib's default Content-Type (a form) would have some servers read the body as parameters
    headers = {"Content-Type": "application/octet-stream"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT", headers=headers), timeout=300):
            pass
    except (urllib.error.URLError, OSError) as error:
        raise RegistryError(f"cannot upload a part to S3: {error}") from None


@contextlib.contextmanager
def translated_errors(repository: str | None = None) -> Iterator[None]:
    """botocore's errors as ToolErrors that say what to do."""
    try:
        yield
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials: set a profile (--profile, AWS_PROFILE) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
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
