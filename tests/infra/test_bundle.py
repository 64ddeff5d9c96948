"""The Lambda asset carries everything the handler imports, for the function's platform."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from stack_synth import API_HANDLER, SWEEP_HANDLER, function_by_handler

from infra.bundling import BOTOCORE_SERVICES, BundleSpec, build_bundle, find_interpreter

ROOT = Path(__file__).resolve().parents[2]
ELF_MACHINE = {"aarch64": 183, "x86_64": 62}

# The importable top-level names of requirements.in's distributions (and what they pull in).
REQUIRED_TOP_LEVEL = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "wrapt",
    "rehashes",
}


def _requirement_names() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.in").read_text().splitlines():  # the top-level list (the lock's input)
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
    assert {p.name for p in asset.iterdir()} | {p.stem for p in asset.glob("*.py")} >= REQUIRED_TOP_LEVEL


def test_handler_package_is_at_the_asset_root(synthesized):
    asset = synthesized.asset_dir()
    assert (asset / "registry" / "handler.py").is_file()
    sources = {
        p.relative_to(ROOT / "lambdas")
        for p in (ROOT / "lambdas" / "registry").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources == {p.relative_to(asset) for p in (asset / "registry").rglob("*.py")}
    # Bytecode: see test_bytecode_is_the_runtimes_for_every_bundled_source_and_nothing_else.


def runtime_version(template) -> str:
    (_, function) = function_by_handler(template, API_HANDLER)
    return function["Properties"]["Runtime"].removeprefix("python")


# Run by an interpreter of the runtime's version: what its import system would make of the bundle.
CHECK_BYTECODE = r"""
import importlib.util, json, sys
from pathlib import Path
root = Path(sys.argv[1])
tag = sys.implementation.cache_tag
problems, checked = [], 0
for source in root.rglob("*.py"):
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        problems.append(f"no bytecode: {source.relative_to(root)}"); continue
    header = cached.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        problems.append(f"another Python's bytecode: {cached.relative_to(root)}")
    elif int.from_bytes(header[4:8], "little") != 0b01:
        problems.append(f"not unchecked-hash: {cached.relative_to(root)}")
    elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
        problems.append(f"stale (compiled from other source): {cached.relative_to(root)}")
    checked += 1
for pyc in root.rglob("*.pyc"):
    if pyc.parent.name != "__pycache__" or not pyc.name.endswith(f".{tag}.pyc"):
        problems.append(f"stray bytecode: {pyc.relative_to(root)}")
    elif not Path(importlib.util.source_from_cache(str(pyc))).is_file():
        problems.append(f"bytecode without its source: {pyc.relative_to(root)}")
print(json.dumps({"tag": tag, "checked": checked, "problems": problems[:50]}))
"""


def test_bytecode_is_the_runtimes_for_every_bundled_source_and_nothing_else(synthesized, template):
    """Every module has its .pyc, made by the runtime's Python version from exactly the bundled
    source, in the unchecked-hash form Lambda's read-only /var/task needs; no other bytecode (the
    developer's own Python, stale or orphaned files). Without an interpreter of that version on this
    machine the bundle must have no bytecode at all."""
    asset, version = synthesized.asset_dir(), runtime_version(template)
    compiler = find_interpreter(version)
    if compiler is None:
        assert not list(asset.rglob("*.pyc")), "bytecode in a bundle nobody could compile for the runtime"
        return
    result = subprocess.run(
        [compiler, "-S", "-E", "-c", CHECK_BYTECODE, str(asset)], check=False, capture_output=True, text=True, cwd="/"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["tag"] == f"cpython-{version.replace('.', '')}"
    assert report["problems"] == []
    assert report["checked"] == len(list(asset.rglob("*.py"))) > 500


def test_asset_hash_says_whether_the_bundle_has_bytecode():
    """CDK reuses cdk.out/asset.<hash>: a bundle with bytecode and one without must not share it."""
    without = BundleSpec(platform="manylinux2014_aarch64", python_version="3.13")
    with_bytecode = BundleSpec(platform="manylinux2014_aarch64", python_version="3.13", compiler="/any/python3.13")
    other_compiler = BundleSpec(platform="manylinux2014_aarch64", python_version="3.13", compiler="/usr/bin/python3.13")
    assert without.asset_hash() != with_bytecode.asset_hash() == other_compiler.asset_hash()


def test_native_code_matches_the_function_architecture(synthesized, template):
    asset = synthesized.asset_dir()
    (_, function) = function_by_handler(template, API_HANDLER)
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
        platform.machine().lower()
    ]
    output = tmp_path_factory.mktemp("bundle")
    build_bundle(
        BundleSpec(
            platform=f"manylinux2014_{machine}",
            python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
            compiler=sys.executable,
        ),
        output,
    )
    return output


IMPORT_EVERYTHING = r"""
import importlib, importlib._bootstrap_external as external, pkgutil, sys
sys.path[:0] = [sys.argv[1]]
compiled = []  # modules compiled from source on import: none, when the bundle's bytecode is used
_source_to_code = external.SourceLoader.source_to_code
def counting(self, data, path, *args, **kwargs):
    compiled.append(path)
    return _source_to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = counting
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
from_bundle = [p for p in compiled if p.startswith(sys.argv[1])]
assert not from_bundle, f"compiled at import: {from_bundle[:10]}"
print(len(loaded), "modules", len([m for m in sys.modules.values()
                                  if (getattr(m, "__file__", None) or "").startswith(sys.argv[1])]), "from the bundle")
"""


def test_bundle_alone_imports_the_handler_and_every_module(local_bundle):
    """In a bare interpreter (no site-packages, no PYTHONPATH): only the stdlib and the bundle; and
    not one module of the bundle is compiled on import (-B: as on Lambda, nothing can be written)."""
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-B", "-c", IMPORT_EVERYTHING, str(local_bundle)],
        check=False,
        capture_output=True,
        text=True,
        cwd="/",
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "registry",
            "HOME": str(local_bundle),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "modules" in result.stdout


def test_the_sweep_runs_from_the_same_asset(template):
    """One bundle, uploaded once: the sweep is a second handler of the registry package."""
    (_, api) = function_by_handler(template, API_HANDLER)
    (_, sweep) = function_by_handler(template, SWEEP_HANDLER)
    assert sweep["Properties"]["Code"] == api["Properties"]["Code"]
    for key in ("Runtime", "Architectures"):
        assert sweep["Properties"][key] == api["Properties"][key]
