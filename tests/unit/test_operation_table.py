"""`registry.operations.OPERATIONS`: the explicit operation table."""

from __future__ import annotations

import inspect

import pytest
from botocore import xform_name

from registry.operations import OPERATIONS


def test_every_key_is_an_operation_of_the_ecr_model(ecr_model):
    assert set(OPERATIONS) <= set(ecr_model.operation_names), set(OPERATIONS) - set(ecr_model.operation_names)


def test_the_push_and_pull_operations_are_served():
    # What `docker push`/`pull`-style clients call through the API.
    assert {
        "CreateRepository",
        "DescribeRepositories",
        "DeleteRepository",
        "InitiateLayerUpload",
        "UploadLayerPart",
        "CompleteLayerUpload",
        "BatchCheckLayerAvailability",
        "GetDownloadUrlForLayer",
        "PutImage",
        "BatchGetImage",
        "DescribeImages",
        "ListImages",
        "BatchDeleteImage",
    } <= set(OPERATIONS)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_function_name_is_the_snake_case_of_the_operation(operation):
    function = OPERATIONS[operation]
    assert function.__name__ == xform_name(operation)
    assert function.__module__.startswith("registry.operations.")


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_function_takes_params_and_context(operation):
    parameters = list(inspect.signature(OPERATIONS[operation]).parameters)
    assert len(parameters) == 2, parameters


def test_each_function_serves_one_operation():
    assert len({id(f) for f in OPERATIONS.values()}) == len(OPERATIONS)
