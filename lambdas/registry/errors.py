"""The one error hierarchy of the API.

Every error a caller can see is an `EcrError`. The class name is the wire `__type`, so for the
modeled errors it must be the exact shape name in botocore's ECR model (a unit test checks this);
extra members of the shape (`kmsError`, `lastValidByteReceived`, ...) travel in `members`.
`wire.error_response` is the only place that turns these into HTTP.

The functions at the end make the errors more than one operation raises, in ECR's wording: the
operations call them when storage reports what happened to the data (`storage.errors`).
"""

from __future__ import annotations

from typing import Any

from .records import Quota


class EcrError(Exception):
    """Base of every error the API returns."""

    status = 400
    modeled = True  # False for protocol errors that are not shapes of the ECR model

    def __init__(self, message: str, **members: Any):
        super().__init__(message)
        self.message = message
        self.members = members

    @property
    def code(self) -> str:
        return type(self).__name__


# --- Protocol errors: common to every AWS JSON service, not shapes of the ECR model. ---


class ProtocolError(EcrError):
    modeled = False


class UnknownOperationException(ProtocolError):
    pass


class SerializationException(ProtocolError):
    pass


class AccessDeniedException(ProtocolError):
    pass


class MissingAuthenticationTokenException(ProtocolError):
    status = 403


class UnrecognizedClientException(ProtocolError):
    status = 403


class InvalidSignatureException(ProtocolError):
    status = 403


# --- Modeled ECR errors (shape names of botocore's ECR model). ---


class ServerException(EcrError):
    status = 500


class InvalidParameterException(EcrError):
    pass


class InvalidTagParameterException(EcrError):
    pass


class TooManyTagsException(EcrError):
    pass


class LimitExceededException(EcrError):
    pass


class KmsException(EcrError):
    def __init__(self, message: str, kms_error: str | None = None):
        super().__init__(message, **({"kmsError": kms_error} if kms_error else {}))


class RepositoryAlreadyExistsException(EcrError):
    pass


class RepositoryNotFoundException(EcrError):
    pass


class RepositoryNotEmptyException(EcrError):
    pass


class ImageAlreadyExistsException(EcrError):
    pass


class ImageTagAlreadyExistsException(EcrError):
    pass


class ImageDigestDoesNotMatchException(EcrError):
    pass


class ImageNotFoundException(EcrError):
    pass


class LayersNotFoundException(EcrError):
    pass


class ReferencedImagesNotFoundException(EcrError):
    pass


class LayerInaccessibleException(EcrError):
    pass


class LayerAlreadyExistsException(EcrError):
    pass


class InvalidLayerException(EcrError):
    pass


class InvalidLayerPartException(EcrError):
    def __init__(
        self, message: str, *, registry_id: str, repository_name: str, upload_id: str, last_valid_byte_received: int
    ):
        super().__init__(
            message,
            registryId=registry_id,
            repositoryName=repository_name,
            uploadId=upload_id,
            lastValidByteReceived=last_valid_byte_received,
        )


class UploadNotFoundException(EcrError):
    pass


class EmptyUploadException(EcrError):
    pass


class LifecyclePolicyNotFoundException(EcrError):
    pass


class LifecyclePolicyPreviewNotFoundException(EcrError):
    pass


class LifecyclePolicyPreviewInProgressException(EcrError):
    pass


class RepositoryPolicyNotFoundException(EcrError):
    pass


# --- ECR's wording of the errors several operations raise ---------------------------------------


def repository_not_found(registry_id: str, name: str) -> RepositoryNotFoundException:
    return RepositoryNotFoundException(
        f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
    )


def repository_already_exists(registry_id: str, name: str) -> RepositoryAlreadyExistsException:
    return RepositoryAlreadyExistsException(
        f"The repository with name '{name}' already exists in the registry with id '{registry_id}'"
    )


def layer_already_exists(registry_id: str, name: str, digest: str) -> LayerAlreadyExistsException:
    return LayerAlreadyExistsException(
        f"The layer with digest '{digest}' already exists in the repository with name "
        f"'{name}' in registry with id '{registry_id}'"
    )


def upload_not_found(registry_id: str, name: str, upload_id: str) -> UploadNotFoundException:
    return UploadNotFoundException(
        f"The upload with id '{upload_id}' does not exist in the repository with name "
        f"'{name}' in the registry with id '{registry_id}'"
    )


def lifecycle_policy_not_found(registry_id: str, name: str) -> LifecyclePolicyNotFoundException:
    return LifecyclePolicyNotFoundException(
        f"Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{registry_id}'"
    )


def invalid_lifecycle_policy(problem: str) -> InvalidParameterException:
    return InvalidParameterException(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        f"'Lifecycle policy validation failure: {problem}'"
    )


def repository_policy_not_found(registry_id: str, name: str) -> RepositoryPolicyNotFoundException:
    return RepositoryPolicyNotFoundException(
        f"Repository policy does not exist for the repository with name '{name}' in the registry with id "
        f"'{registry_id}'"
    )


def invalid_repository_policy(problem: str) -> InvalidParameterException:
    return InvalidParameterException(
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
        f"'Invalid repository policy provided: {problem}'"
    )


def response_too_large(what: str, limit: int) -> LimitExceededException:
    return LimitExceededException(
        f"{what} exceed the {limit:,} bytes a response of this registry can carry (the 6 MB a function "
        f"returns); request fewer at a time"
    )


def kms_error(code: str, message: str) -> KmsException:
    return KmsException(message, kms_error=code)


def limit_exceeded(
    quota: Quota, limit: int, *, registry_id: str, name: str, digest: str = ""
) -> LimitExceededException:
    messages = {
        Quota.REPOSITORIES: f"The number of repositories in registry '{registry_id}' would exceed the limit of {limit}",
        Quota.IMAGES: f"The number of images in the repository with name '{name}' would exceed "
        f"the limit of {limit} images per repository",
        Quota.TAGS_PER_IMAGE: f"Adding a tag to the image with digest '{digest}' exceeds the maximum allowed number "
        f"of tags per image which is '{limit}'",
        Quota.LAYER_PARTS: f"The upload has reached the limit of {limit} layer parts",
        Quota.LIST_CHILDREN: f"A manifest list may reference at most {limit} distinct images in this registry",
    }
    return LimitExceededException(messages[quota])
