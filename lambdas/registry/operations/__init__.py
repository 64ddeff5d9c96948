"""The operations we serve, keyed by the ECR model's operation names (a test checks the keys)."""

from __future__ import annotations

from collections.abc import Callable

from . import images, layers, repositories
from .common import Caller, Context

Operation = Callable[[dict, Context], dict]

OPERATIONS: dict[str, Operation] = {
    "CreateRepository": repositories.create_repository,
    "DescribeRepositories": repositories.describe_repositories,
    "DeleteRepository": repositories.delete_repository,
    "PutImageTagMutability": repositories.put_image_tag_mutability,
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
}

__all__ = ["OPERATIONS", "Caller", "Context", "Operation"]
