"""The Lambda asset carries everything the handler imports, for the function's platform."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.bundling import BOTOCORE_SERVICES, BundleSpec, build_bundle

ROOT = Path(__file__).resolve().parents[2]
ELF_MACHINE = {"aarch64": 183, "x86_64": 62}

# The importable top-level names of requirements.txt's distributions (and what they pull in).
REQUIRED_TOP_LEVEL = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3",
                      "aws_lambda_powertools", "aws_xray_sdk", "wrapt", "rehashes"}


def _requirement_names() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[\[=<>~! ]", line)[0].lower().replace("-", "_"))
    return names


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


def test_requirements_are_all_bundled(synthesized):
    asset = synthesized.asset_dir()
    dist_infos = {p.name.split("-")[0].lower() for p in asset.glob("*.dist-info")}
    assert _requirement_names() <= dist_infos
    assert REQUIRED_TOP_LEVEL <= {p.name for p in asset.iterdir()} | {p.stem for p in asset.glob("*.py")}


def test_handler_package_is_at_the_asset_root(synthesized):
    asset = synthesized.asset_dir()
    assert (asset / "registry" / "handler.py").is_file()
    sources = {p.relative_to(ROOT / "lambdas") for p in (ROOT / "lambdas" / "registry").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources == {p.relative_to(asset) for p in (asset / "registry").rglob("*.py")}
    assert not list(asset.rglob("__pycache__")), "no stale bytecode from the developer's machine"


def test_native_code_matches_the_function_architecture(synthesized, template):
    asset = synthesized.asset_dir()
    (function,) = template.find_resources("AWS::Lambda::Function").values()
    architecture = function["Properties"]["Architectures"][0]
    runtime = function["Properties"]["Runtime"].removeprefix("python").replace(".", "")
    machine = ELF_MACHINE["aarch64" if architecture == "arm64" else "x86_64"]
    libraries = list(asset.rglob("*.so"))
    assert libraries, "rehashes (Rust) is native code"
    for library in libraries:
        assert _elf_machine(library) == machine, library
        assert library.name.endswith(".abi3.so") or f"cpython-{runtime}" in library.name, library


def test_botocore_keeps_only_the_models_the_function_uses(synthesized):
    data = synthesized.asset_dir() / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == set(BOTOCORE_SERVICES)
    assert (data / "endpoints.json").exists() and (data / "ecr").is_dir()


def test_asset_size(synthesized, tmp_path):
    """Far below Lambda's 250 MB (unzipped) and 50 MB (zipped upload) limits; cold starts like it small."""
    asset = synthesized.asset_dir()
    unzipped = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
    archive = tmp_path / "asset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in asset.rglob("*"):
            zipped.write(path, path.relative_to(asset))
    assert unzipped < 40 * 1024 * 1024, unzipped
    assert archive.stat().st_size < 10 * 1024 * 1024, archive.stat().st_size


@pytest.fixture(scope="module")
def local_bundle(tmp_path_factory) -> Path:
    """The same bundle, built for this machine's CPU and Python so that it can be imported here."""
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[
        platform.machine().lower()]
    output = tmp_path_factory.mktemp("bundle")
    build_bundle(BundleSpec(platform=f"manylinux2014_{machine}",
                            python_version=f"{sys.version_info.major}.{sys.version_info.minor}"), output)
    return output


IMPORT_EVERYTHING = r"""
import importlib, pkgutil, sys
sys.path[:0] = [sys.argv[1]]
import registry
loaded = []
for info in pkgutil.walk_packages(registry.__path__, "registry."):
    importlib.import_module(info.name); loaded.append(info.name)
import registry.handler, rehashes, boto3, botocore.session
registry.handler.tracer.put_annotation  # Tracer started (its X-Ray client needs botocore's xray model)
for name in ("boto3", "botocore", "aws_lambda_powertools", "rehashes", "registry"):
    module = sys.modules[name]
    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)
session = botocore.session.get_session()
session.get_service_model("ecr")
for service in ("dynamodb", "s3", "kms", "sts", "xray"):
    boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
print(len(loaded), "modules")
"""


def test_bundle_alone_imports_the_handler_and_every_module(local_bundle):
    """In a bare interpreter (no site-packages, no PYTHONPATH): only the stdlib and the bundle."""
    result = subprocess.run([sys.executable, "-S", "-E", "-c", IMPORT_EVERYTHING, str(local_bundle)],
                            check=False, capture_output=True, text=True, cwd="/",
                            env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1",
                                 "AWS_LAMBDA_FUNCTION_NAME": "registry", "HOME": str(local_bundle)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules" in result.stdout
