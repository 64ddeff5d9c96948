"""The operations we serve, keyed by the ECR model's operation names (a test checks the keys), and
`run`: the one place where what storage reports in common to every operation becomes an ECR error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import errors
from ..config import Settings
from ..storage import BackendBusy, EncryptionKeyUnusable, RepositoryGone
from . import images, layers, lifecycle, login, repositories, repository_policies, resource_tags
from .common import Caller, Context

Operation = Callable[[dict[str, Any], Context], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": repositories.describe_repositories,
    "DeleteRepository": repositories.delete_repository,
    "PutImageTagMutability": repositories.put_image_tag_mutability,
    "PutImageScanningConfiguration": repositories.put_image_scanning_configuration,
    "DescribeRegistry": repositories.describe_registry,
    "TagResource": resource_tags.tag_resource,
    "UntagResource": resource_tags.untag_resource,
    "ListTagsForResource": resource_tags.list_tags_for_resource,
    "InitiateLayerUpload": layers.initiate_layer_upload,
    "UploadLayerPart": layers.upload_layer_part,
    "CompleteLayerUpload": layers.complete_layer_upload,
    "BatchCheckLayerAvailability": layers.batch_check_layer_availability,
    "GetDownloadUrlForLayer": layers.get_download_url_for_layer,
    "PutImage": images.put_image,
    "BatchGetImage": images.batch_get_image,
    "DescribeImages": images.describe_images,
    "ListImages": images.list_images,
    "BatchDeleteImage": images.batch_delete_image,
    "GetAuthorizationToken": login.get_authorization_token,
    "PutLifecyclePolicy": lifecycle.put_lifecycle_policy,
    "GetLifecyclePolicy": lifecycle.get_lifecycle_policy,
    "DeleteLifecyclePolicy": lifecycle.delete_lifecycle_policy,
    "StartLifecyclePolicyPreview": lifecycle.start_lifecycle_policy_preview,
    "GetLifecyclePolicyPreview": lifecycle.get_lifecycle_policy_preview,
    "SetRepositoryPolicy": repository_policies.set_repository_policy,
    "GetRepositoryPolicy": repository_policies.get_repository_policy,
    "DeleteRepositoryPolicy": repository_policies.delete_repository_policy,
}

# The registry's extension (service_model.EXTENSION_OPERATIONS), not ECR's: served when enabled.
EXTENSIONS: dict[str, Operation] = {"GetLayerPartUploadUrls": layers.get_layer_part_upload_urls}
# The ECR action an extension is authorized as (grants and repository policies alike).
AUTHORIZED_AS = {"GetLayerPartUploadUrls": "UploadLayerPart"}


def served(operation: str, settings: Settings) -> Operation | None:
    """The function serving `operation`, None if this registry does not serve it."""
    if operation in EXTENSIONS:
        return EXTENSIONS[operation] if settings.direct_upload_max_bytes > 0 else None
    return OPERATIONS.get(operation)


# Operations that read their repository's policy in their own read and hand it to Context.policy_read
# (a pull's manifest and blob requests, a push's parts: one DynamoDB read each); every other is
# checked before it runs.
READ_THEIR_POLICY: frozenset[Operation] = frozenset(
    {images.batch_get_image, layers.get_blob_location, layers.upload_layer_part, layers.get_layer_part_upload_urls}
)


def run(operation: Operation, params: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Run an authorized operation: the policies of its repositories are checked before it, or by
    the operation itself with its read, and else after it (fail closed): a refusal replaces whatever
    it answered or raised, so that a key of another registry learns nothing of a repository not shared."""
    if operation not in READ_THEIR_POLICY:
        ctx.check_policies()
    try:
        return operation(params, ctx)
    except RepositoryGone as gone:  # deleted (or being deleted) between our reads and our write
        raise errors.repository_not_found(gone.registry_id, gone.name) from None
    except EncryptionKeyUnusable as refused:
        raise errors.kms_error(refused.code, refused.message) from None
    except BackendBusy:
        raise errors.ServerException("The registry is busy; retry the request") from None
    finally:
        ctx.check_policies()  # nothing left to check, unless the operation failed before its read


__all__ = ["AUTHORIZED_AS", "EXTENSIONS", "OPERATIONS", "Caller", "Context", "Operation", "run", "served"]
