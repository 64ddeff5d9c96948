"""The Lambda-like Python runtime image of `make sam`, built offline and cached in the daemon's data
root (.local/sam/docker/data): a later start finds it by the digest of its inputs and builds nothing.

Its inputs: the Debian root filesystem `make install` made (debootstrap), this machine's CPython of
the runtime's version (pyenv's: copied without its tests and GUI modules, site-packages but pip),
the runtime interface client's wheels, local/sam/Dockerfile and local/sam/bootstrap. SAM builds its
own image on top (`<repository>:rapid-x86_64`, its emulator added): removed whenever ours changes,
so that SAM builds it again on the new one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from infra.bundling import find_interpreter
from tests.tools.engines import DockerEngine

from . import ARCHITECTURE, ROOTFS, RUNTIME_REQUIREMENTS, STATE, WHEELS

HERE = Path(__file__).resolve().parent
REPOSITORY = "registry-sam/python"
INPUTS_LABEL = "registry.sam.inputs"
# Not needed to run a function: CPython's own tests, its GUI and demos.
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip"}


def image_name(python_version: str) -> str:
    return f"{REPOSITORY}:{python_version}-{ARCHITECTURE}"


def sam_image_name() -> str:
    """The image SAM builds FROM ours (`--invoke-image`): its repository, tag rapid-<architecture>."""
    return f"{REPOSITORY}:rapid-{ARCHITECTURE}"


def interpreter(python_version: str) -> Path:
    found = find_interpreter(python_version)
    if found is None:
        raise SystemExit(
            f"make sam: no CPython {python_version} on this machine (the runtime's version; pyenv's is found)"
        )
    return Path(found)


def ensure_image(engine: DockerEngine, python_version: str) -> tuple[str, bool]:
    """The image's name, and whether it was built now (False: found in the cache)."""
    python = interpreter(python_version)
    name, digest = image_name(python_version), inputs_digest(python)
    label = f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}'
    found = engine.run("image", "inspect", "--format", label, name, check=False)
    if found.returncode == 0 and found.stdout.strip() == digest:
        return name, False
    build(engine, name, digest, python)
    engine.run("rmi", "--force", sam_image_name(), check=False)
    return name, True


def inputs_digest(python: Path) -> str:
    probe = [python, "-c", "import sys; print(sys.version)"]
    version = subprocess.run(probe, capture_output=True, text=True, check=True)
    digest = hashlib.sha256()
    for part in (
        f"{ROOTFS.stat().st_size}:{ROOTFS.stat().st_mtime_ns}",
        f"{python.resolve()}:{version.stdout.strip()}",
        *(p.read_text() for p in (HERE / "Dockerfile", HERE / "bootstrap", RUNTIME_REQUIREMENTS)),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:32]


def build(engine: DockerEngine, name: str, digest: str, python: Path) -> None:
    base = f"{REPOSITORY}-base:{digest}"
    print(f"Building the runtime image {name} (first start only: about a minute)...", flush=True)
    engine.run("import", ROOTFS, base, timeout=600)
    STATE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=STATE, prefix="image.") as work:
        context = Path(work)
        prefix = python.resolve().parent.parent
        shutil.copytree(prefix, context / "python", symlinks=True, ignore=_runtime_only(prefix))
        shutil.copytree(WHEELS, context / "wheels", ignore=shutil.ignore_patterns(".*"))
        for source in (HERE / "Dockerfile", HERE / "bootstrap", RUNTIME_REQUIREMENTS):
            shutil.copy2(source, context / source.name)
        engine.run(
            "build", "--quiet", "--build-arg", f"BASE={base}", "--label", f"{INPUTS_LABEL}={digest}",
            "--tag", name, context, timeout=900,
        )  # fmt: skip
    engine.run("rmi", base, check=False)  # the tag only: its layer stays, under ours


def _runtime_only(prefix: Path):
    stdlib = next((prefix / "lib").glob("python3.*/os.py")).parent

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == stdlib:
            return STDLIB_LEFT_OUT & set(names)
        if here == stdlib / "site-packages":
            return {n for n in names if not n.startswith("pip")}
        return set()

    return ignore
