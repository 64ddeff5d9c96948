"""`service_model` loads ECR's model by path (a cold-start saving): it must be exactly the model
botocore's own `load_service_model` returns, sdk-extras included."""

from __future__ import annotations

from botocore.loaders import Loader

from registry import service_model


def test_model_loaded_by_path_is_the_model_botocore_loads():
    assert service_model.model_description() == Loader().load_service_model("ecr", "service-2")
