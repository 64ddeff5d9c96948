"""The Lambda asset, built on this machine without Docker.

`pip install --target` with `--platform/--python-version/--only-binary=:all:` fetches the wheels the
Lambda runtime needs (manylinux, the runtime's CPython), whatever Python and CPU run the synth; then
the `registry` package is copied next to them. `requirements.txt` is the hashed lock of the runtime
set (`make lock`, from requirements.in), resolved for every platform, so `--require-hashes` holds
for the runtime's arm64 wheels too. CDK never calls Docker: `try_bundle` returns True.

The asset hash is computed here from everything that decides the bundle's content (sources,
requirements, platform, Python version, trimming), so CDK reuses `cdk.out/asset.<hash>` on a re-synth
instead of running pip again, and a change to the lock `requirements.txt` makes a new asset.

Only packages with wheels for the target platform can be bundled this way (every runtime dependency
has them today; `rehashes` ships abi3 wheels for manylinux x86_64 and aarch64).

Bytecode. Lambda's /var/task is read-only, so a bundle without `.pyc` files makes every cold start
compile every module it imports (measured: about twice as slow; see
bench/bytecode.py). When an interpreter of the bundle's Python version is on this
machine, the bundle is precompiled with it: `compileall --invalidation-mode unchecked-hash`, whose
`.pyc` files are used without looking at the sources' timestamps (a zip's are unreliable) or
hashing them (the asset is immutable). Bytecode depends only on the minor version (its magic
number), never on the CPU, so an x86_64 interpreter precompiles an arm64 bundle. Without such an
interpreter the bundle has no bytecode, and the synth says so (a warning on the function).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parent.parent
ASSET_ROOT = ROOT / "lambdas"  # Lambda's /var/task: the handler is registry.handler.lambda_handler
PACKAGE = "registry"  # the one package copied from ASSET_ROOT into the bundle
REQUIREMENTS = ROOT / "requirements.txt"  # the lock: every distribution pinned, with its hashes
BUNDLER_VERSION = "2"  # bump when this module changes what it produces

# botocore ships the models of ~450 services (~29 MB of the ~40 MB bundle). The function creates
# clients for these only (ecr: the model we validate against; sts: credential providers; xray: the
# X-Ray SDK's sampling client, created when Powertools' Tracer starts); the top-level files of
# botocore/data (endpoints, partitions, retry, defaults) are always kept.
BOTOCORE_SERVICES = ("ecr", "dynamodb", "s3", "kms", "sts", "xray")

PLATFORMS = {
    lambda_.Architecture.ARM_64.name: "manylinux2014_aarch64",
    lambda_.Architecture.X86_64.name: "manylinux2014_x86_64",
}


# `.pyc` files that never need their source: the import system trusts them as they are.
INVALIDATION_MODE = "unchecked-hash"
TASK_ROOT = "/var/task"  # where Lambda unpacks the asset: the paths in tracebacks


def python_version_of(runtime: lambda_.Runtime) -> str:
    """'python3.13' -> '3.13'."""
    name = runtime.name
    if not name.startswith("python"):
        raise ValueError(f"not a Python runtime: {name}")
    return name.removeprefix("python")


@dataclass(frozen=True)
class BundleSpec:
    """What decides the bundle's content."""

    platform: str  # pip --platform, e.g. manylinux2014_aarch64
    python_version: str  # pip --python-version, e.g. 3.13
    keep_botocore_services: tuple[str, ...] | None = BOTOCORE_SERVICES  # None: keep every model
    requirements: Path = REQUIREMENTS
    source: Path = ASSET_ROOT / PACKAGE
    extra_pip_args: tuple[str, ...] = field(default_factory=tuple)
    # An interpreter of `python_version` that precompiles the bundle; None: no bytecode. Not part of
    # the hash (any interpreter of that minor version writes equivalent bytecode); its presence is.
    compiler: str | None = None

    @property
    def bytecode(self) -> str:
        return f"cpython-{self.python_version}/{INVALIDATION_MODE}" if self.compiler else "none"

    def asset_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (
            BUNDLER_VERSION,
            self.platform,
            self.python_version,
            ",".join(self.keep_botocore_services or ("*",)),
            " ".join(self.extra_pip_args),
            self.bytecode,
        ):
            digest.update(part.encode() + b"\0")
        digest.update(self.requirements.read_bytes())
        for path in sorted(_source_files(self.source)):
            digest.update(str(path.relative_to(self.source)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()


def _source_files(folder: Path):
    for path in folder.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            yield path


def build_bundle(spec: BundleSpec, output_dir: str | Path) -> None:
    """Fill `output_dir` with the wheels for the target platform and the handler package."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--require-hashes",  # a lock, not a list of names: nothing unpinned or unverified gets in
        "--requirement",
        str(spec.requirements),
        "--target",
        str(output),
        "--platform",
        spec.platform,
        "--implementation",
        "cp",
        "--python-version",
        spec.python_version,
        "--only-binary=:all:",
        *spec.extra_pip_args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"bundling the Lambda dependencies failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}"
        )
    shutil.rmtree(output / "bin", ignore_errors=True)  # console scripts: never used in Lambda
    if spec.keep_botocore_services is not None:
        trim_botocore(output, spec.keep_botocore_services)
    shutil.copytree(
        spec.source,
        output / spec.source.name,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
    )
    if spec.compiler:
        precompile(output, spec.compiler)


def precompile(output: Path, compiler: str) -> None:
    """Write `__pycache__/<module>.cpython-XY.pyc` next to every module of the bundle (the ones pip
    installed and ours), as the runtime's interpreter would on a writable disk."""
    command = [
        compiler,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        INVALIDATION_MODE,
        "-s",
        str(output),
        "-p",
        TASK_ROOT,
        str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"precompiling the Lambda bundle failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}"
        )


# --- the interpreter that precompiles --------------------------------------------------------------

_PROBE = "import sys; print(sys.implementation.name, *sys.version_info[:2])"


def interpreter_version(executable: str) -> str | None:
    """'3.13' if `executable` runs CPython 3.13; None if it doesn't run (a pyenv shim of a version
    that isn't selected fails) or isn't CPython."""
    try:
        result = subprocess.run(
            [executable, "-S", "-c", _PROBE], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = result.stdout.split()
    if result.returncode != 0 or len(words) != 3 or words[0] != "cpython":
        return None
    return f"{words[1]}.{words[2]}"


def _pyenv_candidates(version: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pattern = re.compile(rf"{re.escape(version)}\.\d+")  # 3.13.0, 3.13.1 (not 3.13.0t, 3.13-dev)

    def patch(path: Path) -> int:
        return int(path.name.rsplit(".", 1)[1])

    found = [p for p in root.glob(f"{version}.*") if pattern.fullmatch(p.name)] if root.is_dir() else []
    return [p / "bin" / f"python{version}" for p in sorted(found, key=patch, reverse=True)]


def find_interpreter(version: str) -> str | None:
    """A CPython `version` ('3.13') on this machine: this one, `python3.13` on the PATH, or pyenv's."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version and sys.implementation.name == "cpython":
        return sys.executable
    candidates = [shutil.which(f"python{version}"), *_pyenv_candidates(version)]
    for candidate in candidates:
        if candidate and interpreter_version(str(candidate)) == version:
            return str(candidate)
    return None


def bytecode_compiler(setting: str, version: str) -> str | None:
    """The registry:bytecodePython setting: 'auto' (found or None), 'none', or an interpreter path."""
    if setting in ("", "auto"):
        return find_interpreter(version)
    if setting == "none":
        return None
    if interpreter_version(setting) != version:
        raise ValueError(
            f"registry:bytecodePython {setting!r} is not a CPython {version} interpreter (the bundle's Python version)"
        )
    return setting


def trim_botocore(output: Path, keep: tuple[str, ...]) -> None:
    data = output / "botocore" / "data"
    if not data.is_dir():
        return
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in keep:
            shutil.rmtree(entry)


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundler:
    """CDK's local-bundling hook: builds the bundle with pip on this machine."""

    def __init__(self, spec: BundleSpec):
        self.spec = spec

    def try_bundle(self, output_dir: str, options=None) -> bool:
        build_bundle(self.spec, output_dir)
        return True


def lambda_code(spec: BundleSpec) -> lambda_.Code:
    """The asset of the registry function: `lambdas/registry` + its runtime dependencies."""
    return lambda_.Code.from_asset(
        str(ASSET_ROOT),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=spec.asset_hash(),
        bundling=cdk.BundlingOptions(
            # Never pulled: the local bundler always succeeds or raises. CDK requires an image.
            image=cdk.DockerImage.from_registry("docker-is-not-used"),
            local=LocalPipBundler(spec),
        ),
    )
