"""`registry.config`: quotas from `REGISTRY_MAX_*`, ECR's defaults otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from registry.config import QUOTA_ENV, Quotas, Settings

# ECR's current default quotas (the Amazon ECR service quotas page).
ECR_DEFAULTS = {
    "max_images_per_repository": 100_000,
    "max_tags_per_image": 1_000,
    "max_repositories": 100_000,
    "max_layer_parts": 4_200,
}


@pytest.fixture
def clean_env(monkeypatch):
    for variable in QUOTA_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_every_quota_has_its_environment_variable():
    assert set(QUOTA_ENV) == {f.name for f in dataclasses.fields(Quotas)}
    assert all(v.startswith("REGISTRY_MAX_") for v in QUOTA_ENV.values())
    assert len(set(QUOTA_ENV.values())) == len(QUOTA_ENV)


def test_defaults_are_ecrs(clean_env):
    assert dataclasses.asdict(Quotas.from_environment()) == ECR_DEFAULTS
    assert dataclasses.asdict(Quotas()) == ECR_DEFAULTS


@pytest.mark.parametrize("field", sorted(ECR_DEFAULTS))
def test_each_quota_is_read_from_its_variable(clean_env, field):
    clean_env.setenv(QUOTA_ENV[field], "3")
    quotas = dataclasses.asdict(Quotas.from_environment())
    assert quotas == {**ECR_DEFAULTS, field: 3}


def test_the_variable_names(clean_env):
    clean_env.setenv("REGISTRY_MAX_IMAGES_PER_REPOSITORY", "5")
    clean_env.setenv("REGISTRY_MAX_TAGS_PER_IMAGE", "6")
    clean_env.setenv("REGISTRY_MAX_REPOSITORIES", "7")
    clean_env.setenv("REGISTRY_MAX_LAYER_PARTS", "8")
    assert Quotas.from_environment() == Quotas(
        max_images_per_repository=5, max_tags_per_image=6, max_repositories=7, max_layer_parts=8
    )


def test_an_empty_variable_means_the_default(clean_env):
    clean_env.setenv("REGISTRY_MAX_TAGS_PER_IMAGE", "")
    assert Quotas.from_environment().max_tags_per_image == 1_000


def test_a_malformed_quota_fails_loudly(clean_env):
    clean_env.setenv("REGISTRY_MAX_TAGS_PER_IMAGE", "lots")
    with pytest.raises(ValueError):
        Quotas.from_environment()


def test_settings_carry_the_quotas(clean_env):
    clean_env.setenv("REGISTRY_MAX_LAYER_PARTS", "9")
    assert Settings.from_environment().quotas.max_layer_parts == 9


def test_the_part_size_fits_a_lambda_request():
    # A part travels base64-encoded in a JSON body; a Lambda request is at most 6 MB.
    part = Settings(region="r", tables={}, bucket="b", quotas=Quotas()).part_size
    assert part * 4 / 3 + 1024 < 6 * 1000 * 1000


@pytest.mark.parametrize(("raw", "expected"), [(None, 16 << 20), ("1048576", 5 << 20), (str(64 << 20), 64 << 20)])
def test_direct_part_size_is_never_below_s3s_minimum(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("REGISTRY_DIRECT_PART_SIZE", raising=False)
    else:
        monkeypatch.setenv("REGISTRY_DIRECT_PART_SIZE", raw)
    assert Settings.from_environment().direct_part_size == expected
