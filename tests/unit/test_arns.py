"""Repository ARNs: written and read in one place (registry/arns.py)."""

from __future__ import annotations

import pytest

from registry.arns import RepositoryArn, parse_repository_arn, repository_arn


@pytest.mark.parametrize("name", ["ab", "team/app", "a.b_c__d-e/f---g", "x" * 256])
def test_an_arn_reads_back_as_the_repository_it_names(name):
    arn = repository_arn("eu-west-1", "123456789012", name)
    assert parse_repository_arn(arn) == RepositoryArn("eu-west-1", "123456789012", name)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "team/app",
        "arn:aws:ecr:us-east-1:123456789012:repository/",  # no name
        "arn:aws:ecr:us-east-1:123456789012:repository/a",  # a name shorter than the model's minimum
        "arn:aws:ecr:us-east-1:123456789012:repository/" + "x" * 257,  # longer than its maximum
        "arn:aws:ecr:us-east-1:123456789012:repository/Team/App",  # not the model's pattern
        "arn:aws:ecr:us-east-1:123456789012:repository/team//app",
        "arn:aws:ecr:us-east-1:12345:repository/team/app",  # not an account id
        "arn:aws:ecr:us-east-1:123456789012:registry/team/app",  # another kind of resource
        "arn:aws:ecr-public::123456789012:repository/team/app",  # another service
        "arn:aws:ecr::123456789012:repository/team/app",  # no region
        " arn:aws:ecr:us-east-1:123456789012:repository/team/app",
    ],
)
def test_what_names_no_repository_reads_as_none(text):
    assert parse_repository_arn(text) is None
