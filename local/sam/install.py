"""What `make sam` needs, fetched when `make install` runs (`python -m local.sam.install`), so that
`make sam` itself downloads nothing:

1. AWS SAM CLI into its own venv (.sam-venv), from the hashed lock local/sam/requirements.txt;
2. a Debian root filesystem of this machine's release (debootstrap, minbase, with the shared
   libraries CPython's modules link against), from the mirror apt uses here, as one tarball;
3. the wheels of the function's bundle for the local template (x86_64, the runtime's CPython) and
   of the runtime interface client, into .local/sam/wheels.

Each step is skipped while its output is newer than its inputs. Step 2 needs root (CI runs as root).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.api import RUNTIME
from infra.bundling import PLATFORMS, REQUIREMENTS, python_version_of

from . import ARCHITECTURE, ROOTFS, RUNTIME_REQUIREMENTS, SAM_VENV, STATE, WHEELS

SAM_REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))  # deb822 files, one-line list
# What the runtime image's CPython (lib-dynload, libpython) links against beyond minbase: ssl,
# ctypes, sqlite3, readline, pyexpat, curses, bz2, lzma, zlib, uuid.
RUNTIME_LIBRARIES = (
    "libssl3",
    "libffi8",
    "libsqlite3-0",
    "libreadline8",
    "libexpat1",
    "libncursesw6",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libuuid1",
)


def main() -> None:
    install_sam_cli()
    install_root_filesystem()
    download_wheels()


def up_to_date(output: Path, *inputs: Path) -> bool:
    return output.exists() and all(output.stat().st_mtime >= path.stat().st_mtime for path in inputs)


def run(command: list[str]) -> None:
    subprocess.run([str(part) for part in command], check=True)


def install_sam_cli() -> None:
    stamp = SAM_VENV / ".installed"
    if up_to_date(stamp, SAM_REQUIREMENTS):
        return
    print(f"==> AWS SAM CLI into {SAM_VENV.name} (its own venv: it pins click below the dev set's)", flush=True)
    shutil.rmtree(SAM_VENV, ignore_errors=True)
    run(["python3", "-m", "venv", SAM_VENV])
    pip = [SAM_VENV / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    # --no-deps: the lock is complete, and pip takes boto3-stubs[...] (an extra) for an unpinned requirement
    run([*pip, "install", "--require-hashes", "--no-deps", "-r", SAM_REQUIREMENTS])
    stamp.touch()


def os_release() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return {key: value.strip('"') for key, value in pairs}


def debian_mirror(codename: str) -> str | None:
    """The URI apt installs `codename` from on this machine (deb822 .sources or sources.list), if any."""
    folder, sources_list = APT_SOURCES
    for path in sorted(folder.glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if codename in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                return fields["URIs"].split()[0]
    for line in sources_list.read_text().splitlines() if sources_list.exists() else []:
        words = line.split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == codename:
            return words[1]
    return None  # debootstrap's own default


def install_root_filesystem() -> None:
    if ROOTFS.exists():
        return
    if os.geteuid() != 0:
        raise SystemExit("local/sam/install.py: debootstrap needs root (run `make install` as root)")
    codename = os_release()["VERSION_CODENAME"]
    mirror = debian_mirror(codename)
    print(f"==> A Debian {codename} root filesystem (debootstrap, minbase) for `make sam`'s runtime image", flush=True)
    STATE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=STATE, prefix="rootfs.") as work:
        target = Path(work) / "root"
        include = f"--include={','.join(RUNTIME_LIBRARIES)}"
        run(["debootstrap", "--variant=minbase", include, codename, target, *([mirror] if mirror else [])])
        partial = ROOTFS.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", target, "-cf", partial, "."])
        partial.rename(ROOTFS)


def download_wheels() -> None:
    stamp = WHEELS / ".downloaded"
    if up_to_date(stamp, REQUIREMENTS, RUNTIME_REQUIREMENTS):
        return
    print("==> The wheels of the function's bundle and of the runtime client, for `make sam`", flush=True)
    WHEELS.mkdir(parents=True, exist_ok=True)
    target = [
        f"--platform={PLATFORMS[ARCHITECTURE]}",
        "--implementation=cp",
        f"--python-version={python_version_of(RUNTIME)}",
        "--only-binary=:all:",
    ]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    for requirements in (REQUIREMENTS, RUNTIME_REQUIREMENTS):
        run([*pip, "download", "--require-hashes", "-r", requirements, *target, "--dest", WHEELS])
    stamp.touch()


if __name__ == "__main__":
    main()
